"""A content store on a local filesystem, after containerd's `content/local`.

    <root>/blobs/<algo>/<hex>          committed, verified, read-only blobs
    <root>/ingest/<sha256(ref)>/       one in-progress write: data, ref, total, expected,
                                       startedat; `lock` is flock'ed by its one writer
    <root>/metadata.db                 labels and times (SQLite, WAL)

A blob becomes visible only by rename(2) of its fully written, fsync'ed and re-verified
ingest file, so a reader never sees a partial or wrong blob, and two writers committing the
same content race harmlessly: the loser finds the blob there and reports AlreadyExists.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from typing import BinaryIO

from pallet.content.api import Info, Status
from pallet.content.metadata import Metadata
from pallet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from pallet.oci import digest as _digest
from pallet.oci.digest import Digest, Digester

_BUF = 1 << 20


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_small(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_small(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


class LocalStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(os.path.join(self.root, "ingest"), exist_ok=True)
        for algo in _digest.ALGORITHMS:
            os.makedirs(os.path.join(self.root, "blobs", algo), exist_ok=True)
        self.meta = Metadata(os.path.join(self.root, "metadata.db"))

    # --- paths -----------------------------------------------------------------------------

    def blob_path(self, dgst: Digest | str) -> str:
        d = _digest.parse(dgst)  # validated: the digest is a file name below
        return os.path.join(self.root, "blobs", d.algorithm, d.encoded)

    def _ingest_dir(self, ref: str) -> str:
        if not ref:
            raise InvalidArgument("ingest ref must not be empty")
        return os.path.join(self.root, "ingest", hashlib.sha256(ref.encode()).hexdigest())

    # --- Provider ----------------------------------------------------------------------------

    def reader(self, dgst: Digest | str) -> BinaryIO:
        try:
            return open(self.blob_path(dgst), "rb")
        except FileNotFoundError:
            raise NotFound(f"content {dgst}: not found") from None

    def read_blob(self, dgst: Digest | str) -> bytes:
        with self.reader(dgst) as f:
            return f.read()

    def exists(self, dgst: Digest | str) -> bool:
        return os.path.exists(self.blob_path(dgst))

    # --- Manager -----------------------------------------------------------------------------

    def info(self, dgst: Digest | str) -> Info:
        d = _digest.parse(dgst)
        try:
            st = os.stat(self.blob_path(d))
        except FileNotFoundError:
            raise NotFound(f"content {d}: not found") from None
        meta = self.meta.get(str(d))
        if meta is None:
            return Info(d, st.st_size, st.st_mtime, st.st_mtime, {})
        return Info(d, st.st_size, meta[0], meta[1], meta[2])

    def update_labels(self, dgst: Digest | str, labels: Mapping[str, str | None]) -> Info:
        d = _digest.parse(dgst)
        if not self.exists(d):
            raise NotFound(f"content {d}: not found")
        self.meta.update_labels(str(d), labels)
        return self.info(d)

    def walk(self, fn: Callable[[Info], None] | None = None, *,
             labels: Mapping[str, str | None] | None = None) -> Iterator[Info]:
        """Every blob (optionally only those whose labels match: None means "present")."""
        out = []
        for algo in _digest.ALGORITHMS:
            for name in sorted(os.listdir(os.path.join(self.root, "blobs", algo))):
                try:
                    info = self.info(f"{algo}:{name}")
                except (NotFound, _digest.DigestError):
                    continue  # deleted meanwhile, or a stray file that is not a blob
                if labels and not all(
                    k in info.labels and (v is None or info.labels[k] == v)
                    for k, v in labels.items()
                ):
                    continue
                if fn is not None:
                    fn(info)
                out.append(info)
        return iter(out)

    def delete(self, dgst: Digest | str) -> None:
        d = _digest.parse(dgst)
        try:
            os.unlink(self.blob_path(d))
        except FileNotFoundError:
            raise NotFound(f"content {d}: not found") from None
        self.meta.delete(str(d))

    # --- Ingester ----------------------------------------------------------------------------

    def writer(self, ref: str, *, total: int | None = None,
               expected: Digest | str | None = None,
               algorithm: str | None = None) -> LocalWriter:
        """Open (or resume) the ingest `ref`. Only one writer per ref at a time.

        `algorithm` hashes as it writes when the digest is not known yet but its algorithm
        is (a registry upload with `digest-algorithm=sha512`), so commit needs no re-read."""
        exp = None if expected is None else _digest.parse(expected)
        if exp is not None and self.exists(exp):
            raise AlreadyExists(f"content {exp}: already exists")
        d = self._ingest_dir(ref)
        os.makedirs(d, exist_ok=True)
        lock = os.open(os.path.join(d, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            raise Unavailable(f"ingest {ref}: locked by another writer") from None
        try:
            if _read_small(os.path.join(d, "ref")) is None:
                _write_small(os.path.join(d, "startedat"), repr(time.time()))
                _write_small(os.path.join(d, "ref"), ref)
            if total is not None:
                _write_small(os.path.join(d, "total"), str(total))
            if exp is not None:
                _write_small(os.path.join(d, "expected"), str(exp))
            return LocalWriter(self, ref, d, lock, exp, algorithm)
        except BaseException:
            os.close(lock)
            raise

    def status(self, ref: str) -> Status:
        d = self._ingest_dir(ref)
        if _read_small(os.path.join(d, "ref")) != ref:
            raise NotFound(f"ingest {ref}: not found")
        return self._status(d)

    def _status(self, d: str) -> Status:
        data = os.path.join(d, "data")
        try:
            st = os.stat(data)
            offset, updated = st.st_size, st.st_mtime
        except FileNotFoundError:
            offset, updated = 0, os.stat(d).st_mtime
        total = _read_small(os.path.join(d, "total"))
        expected = _read_small(os.path.join(d, "expected"))
        return Status(
            ref=_read_small(os.path.join(d, "ref")) or "",
            offset=offset,
            total=None if total is None else int(total),
            expected=None if expected is None else _digest.parse(expected),
            started_at=float(_read_small(os.path.join(d, "startedat")) or 0),
            updated_at=updated,
        )

    def statuses(self) -> list[Status]:
        base = os.path.join(self.root, "ingest")
        out = []
        for name in sorted(os.listdir(base)):
            d = os.path.join(base, name)
            if _read_small(os.path.join(d, "ref")) is not None:
                out.append(self._status(d))
        return out

    def abort(self, ref: str) -> None:
        d = self._ingest_dir(ref)
        if not os.path.isdir(d):
            raise NotFound(f"ingest {ref}: not found")
        shutil.rmtree(d, ignore_errors=True)

    def close(self) -> None:
        self.meta.close()


class LocalWriter:
    """One ingest's writer. Appends only; `truncate` rewinds for a retry from an offset."""

    def __init__(self, store: LocalStore, ref: str, dirpath: str, lock_fd: int,
                 expected: Digest | None, algorithm: str | None = None) -> None:
        self.store = store
        self.ref = ref
        self._dir = dirpath
        self._lock = lock_fd
        self._expected = expected
        self._path = os.path.join(dirpath, "data")
        self._f: BinaryIO | None = open(self._path, "ab")  # noqa: SIM115 - lives with writer
        self._algo = expected.algorithm if expected is not None else \
            (algorithm or _digest.CANONICAL)
        self._digester = self._rehash(os.path.getsize(self._path))

    def _rehash(self, upto: int) -> Digester:
        # hashlib state cannot be saved to disk, so a resumed ingest re-reads what it has.
        d = Digester(self._algo)
        with open(self._path, "rb") as f:
            left = upto
            while left > 0:
                chunk = f.read(min(_BUF, left))
                if not chunk:
                    break
                d.update(chunk)
                left -= len(chunk)
        return d

    def _file(self) -> BinaryIO:
        if self._f is None:
            raise FailedPrecondition(f"ingest {self.ref}: writer is closed")
        return self._f

    @property
    def offset(self) -> int:
        return self._digester.size

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._file().write(data)
        self._digester.update(data)
        return len(data)

    def truncate(self, size: int) -> None:
        f = self._file()
        if size > self.offset:
            raise InvalidArgument(f"ingest {self.ref}: cannot truncate forward to {size}")
        f.flush()
        os.truncate(self._path, size)
        self._digester = self._rehash(size)

    def digest(self) -> Digest:
        return self._digester.digest()

    def status(self) -> Status:
        self._file().flush()
        return self.store._status(self._dir)

    def commit(self, size: int, expected: Digest | str | None,
               labels: Mapping[str, str] | None = None) -> Digest:
        """Verify size and digest, then make the blob visible atomically.

        `size` 0 means "unknown"; `expected` None means "whatever was written". On a
        mismatch nothing becomes visible and the ingest stays, to be truncated or aborted.
        """
        f = self._file()
        f.flush()
        os.fsync(f.fileno())
        exp = _digest.parse(expected) if expected is not None else self._expected
        if size and size != self.offset:
            raise FailedPrecondition(
                f"ingest {self.ref}: unexpected commit size {self.offset}, expected {size}")
        got = self.digest() if exp is None or exp.algorithm == self._algo else \
            self._rehash_as(exp.algorithm)
        if exp is not None and got != exp:
            raise FailedPrecondition(
                f"ingest {self.ref}: unexpected commit digest {got}, expected {exp}")
        target = self.store.blob_path(got)
        self.close()
        if os.path.exists(target):
            shutil.rmtree(self._dir, ignore_errors=True)
            raise AlreadyExists(f"content {got}: already exists")
        os.chmod(self._path, 0o444)
        os.rename(self._path, target)
        _fsync_dir(os.path.dirname(target))
        shutil.rmtree(self._dir, ignore_errors=True)
        self.store.meta.record(str(got), labels)
        return got

    def _rehash_as(self, algorithm: str) -> Digest:
        with open(self._path, "rb") as f:
            return _digest.from_file(f, algorithm)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
            os.close(self._lock)

    def __enter__(self) -> LocalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_blob(store: LocalStore, ref: str, src: BinaryIO | bytes, *, size: int = 0,
               expected: Digest | str | None = None,
               labels: Mapping[str, str] | None = None) -> Digest:
    """Copy `src` into the store and commit it; content already present is success.

    Resumes an interrupted ingest of the same ref by skipping what it already holds.
    """
    exp = None if expected is None else _digest.parse(expected)
    if isinstance(src, bytes | bytearray):
        if exp is None:
            exp = _digest.from_bytes(bytes(src))
        src = io.BytesIO(src)
    try:
        w = store.writer(ref, total=size or None, expected=exp)
    except AlreadyExists:
        assert exp is not None
        if labels:
            store.update_labels(exp, dict(labels))
        return exp
    with w:
        if w.offset:
            # resume: the caller's stream starts at 0, the ingest already has `offset` bytes
            if hasattr(src, "seek") and src.seekable():
                src.seek(w.offset)
            else:
                w.truncate(0)
        while chunk := src.read(_BUF):
            w.write(chunk)
        try:
            return w.commit(size, exp, labels)
        except AlreadyExists:
            got = exp or w.digest()
            if labels:
                store.update_labels(got, dict(labels))
            return got
        except FailedPrecondition:
            with contextlib.suppress(NotFound):
                store.abort(ref)
            raise
