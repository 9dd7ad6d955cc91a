"""The build context: unpacking the tar the client sent, finding COPY sources in it, and
writing files into a root filesystem without ever leaving it.

Two kinds of untrusted input meet here: the context (a tar from the client, with whatever
names, links and symlinks it holds) and the image's root filesystem (symlinks planted by
earlier layers). So:
- every write goes through `linux.paths` resolution inside its root: a symlink (in the
  context or in the image) is followed as if the root were `/`, and `..` stops at it;
- the last component is never followed: what is there is replaced, not written through;
- a COPY source must stay inside the context, also after following its symlinks.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from pallet.build.dockerignore import Matcher, compile_pattern
from pallet.build.dockerignore import parse as parse_ignore
from pallet.errors import InvalidArgument, NotFound
from pallet.images.fsview import clear_for_entry
from pallet.linux.paths import mkdir_all_in_root, resolve_in_root

_BUF = 1 << 20
WILDCARDS = "*?["


def _chown(host: str, uid: int, gid: int) -> None:
    # Ownership needs root; without it (tests, a rootless caller) files stay the caller's.
    if os.geteuid() == 0:
        os.lchown(host, uid, gid)


def _host_parent(root: str, path: str) -> str:
    return mkdir_all_in_root(root, posixpath.dirname(path) or "/")


class Source(NamedTuple):
    """A COPY source: its path in the context (symlinks followed), the host path, and the
    name it gets in a destination directory (the name as written: a symlink's own)."""

    rel: str
    host: str
    name: str


@dataclass
class Owner:
    uid: int
    gid: int


def extract_tar(src: BinaryIO, root: str, dest: str = "/", owner: Owner | None = None) -> int:
    """Unpack a (possibly compressed) tar stream into `dest` inside `root`; returns the
    number of entries. Ownership is the archive's unless `owner` is given; device nodes
    are skipped."""
    count = 0
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    try:
        tf = tarfile.open(fileobj=src, mode="r|*")  # noqa: SIM115
    except tarfile.TarError as e:
        raise InvalidArgument(f"the build context is not a tar archive: {e}") from None
    with tf:
        try:
            while True:
                try:
                    m = tf.next()
                except tarfile.ReadError as e:
                    # The docker CLI's `-f -` context ends right after the last file's
                    # data (no padding, no end blocks); dockerd takes it, so do we. A
                    # file cut short still fails, in its own read below.
                    if count == 0 or "unexpected end of data" not in str(e):
                        raise
                    break
                if m is None:
                    break
                parts = [p for p in m.name.split("/") if p not in ("", ".")]
                if not parts:
                    continue
                path = posixpath.join(dest, *parts)
                host = os.path.join(_host_parent(root, path), parts[-1])
                merge = clear_for_entry(host, m.isdir())
                if m.isreg():
                    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o600)
                    with os.fdopen(fd, "wb") as out:
                        f = tf.extractfile(m)
                        assert f is not None
                        while chunk := f.read(_BUF):
                            out.write(chunk)
                elif m.isdir():
                    if not merge:
                        os.mkdir(host, 0o700)
                    dirs.append((host, m))
                elif m.issym():
                    os.symlink(m.linkname, host)
                elif m.islnk():
                    target = resolve_in_root(root, posixpath.join(dest, m.linkname))
                    if not os.path.isfile(target) or os.path.islink(target):
                        raise InvalidArgument(f"archive entry {m.name!r}: hard link target "
                                              f"{m.linkname!r} is not a file in the archive")
                    os.link(target, host, follow_symlinks=False)
                    count += 1
                    continue
                else:
                    continue  # devices, fifos: not for a context or a COPY
                uid, gid = (owner.uid, owner.gid) if owner else (m.uid, m.gid)
                _chown(host, uid, gid)
                if not m.issym():
                    os.chmod(host, stat.S_IMODE(m.mode))
                    if not m.isdir():
                        os.utime(host, (m.mtime, m.mtime))
                count += 1
        except (tarfile.TarError, EOFError) as e:
            raise InvalidArgument(f"invalid tar archive: {e}") from None
    for host, m in reversed(dirs):  # after their children, which move a directory's mtime
        with contextlib.suppress(OSError):
            os.utime(host, (m.mtime, m.mtime))
    return count


def is_archive(path: str) -> bool:
    """Whether ADD unpacks this file: a tar, plain or gzip/bzip2/xz compressed."""
    try:
        with tarfile.open(path, mode="r:*") as tf:
            return tf.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False


class Context:
    """A directory of sources (the unpacked context, or another stage's root filesystem)
    and the .dockerignore patterns that apply to it."""

    def __init__(self, root: str, ignore: Matcher | None = None,
                 always: tuple[str, ...] = (), *, strict: bool = True) -> None:
        self.root = os.path.abspath(root)
        # strict (the client's context): a symlink that leaves it is an error. Not strict
        # (another image's root filesystem): symlinks resolve inside it, as if it were `/`.
        self.strict = strict
        self.ignore = ignore
        self.always = set(always)  # the Dockerfile and .dockerignore are always sent

    @classmethod
    def with_dockerignore(cls, root: str, dockerfile: str = "", *,
                          extra_patterns: tuple[str, ...] = ()) -> Context:
        """The context with its .dockerignore. A `dockerfile` name means the client's
        view: the Dockerfile and .dockerignore are always sent, even when excluded (the
        daemon reads them, but COPY does not see them then)."""
        try:
            with open(os.path.join(root, ".dockerignore")) as f:
                patterns = parse_ignore(f.read())
        except FileNotFoundError:
            patterns = []
        patterns += list(extra_patterns)
        always = (posixpath.normpath(dockerfile), ".dockerignore") if dockerfile else ()
        return cls(root, Matcher(patterns) if patterns else None, always)

    def excluded(self, rel: str) -> bool:
        return (self.ignore is not None and rel not in self.always
                and self.ignore.excluded(rel))

    def resolve(self, rel: str, what: str) -> str:
        """Host path of `rel` with its symlinks followed; leaving the context is refused
        (a strict context) or clamped to its root."""
        def refuse(path: str, target: str) -> None:
            if target == "..":
                raise InvalidArgument(f"{what}: forbidden path outside the build context")
            raise InvalidArgument(f"{what}: symlink {path!r} points outside the build "
                                  f"context ({target})")

        try:
            return resolve_in_root(self.root, rel, refuse if self.strict else None)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise InvalidArgument(f"{what}: too many levels of symbolic links") from None
            raise

    def walk(self, rel: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
        """(relative path, host path, lstat) below `rel`, sorted, not excluded."""
        base = os.path.join(self.root, rel)
        for name in sorted(os.listdir(base)):
            r = posixpath.join(rel, name) if rel else name
            host = os.path.join(base, name)
            st = os.lstat(host)
            if self.excluded(r):
                if stat.S_ISDIR(st.st_mode) and self.ignore is not None \
                        and self.ignore.may_include_below(r):
                    yield from self.walk(r)
                continue
            yield r, host, st
            if stat.S_ISDIR(st.st_mode):
                yield from self.walk(r)

    def sources(self, src: str, what: str) -> list[Source]:
        """The sources a COPY argument names: the path, or every context path a wildcard
        pattern matches."""
        clean = posixpath.normpath("/" + src).lstrip("/") if src not in ("", ".") else ""
        norm = posixpath.normpath(src)
        if self.strict and (norm.startswith("../") or norm == ".."):
            raise InvalidArgument(f"{what}: forbidden path outside the build context: {src} "
                                  f"({posixpath.normpath(src)})")
        if any(c in clean for c in WILDCARDS):
            rx = compile_pattern(clean)
            hits = [(r, h) for r, h, _ in self.walk() if rx.match(r)]
            if not hits:
                raise NotFound(f"{what}: no source files were specified ({src} matches "
                               "nothing)")
            # a matched directory brings its contents: drop matches below another match
            return [Source(r, h, posixpath.basename(r)) for r, h in hits
                    if not any(r.startswith(o + "/") for o, _ in hits)]
        host = self.resolve(clean, what)
        rel = os.path.relpath(host, self.root)
        rel = "" if rel == "." else rel
        if not os.path.lexists(host) or (rel and self.excluded(rel)):
            raise NotFound(f"{what}: file not found in build context or excluded by "
                           f".dockerignore: stat {src}: file does not exist")
        return [Source(rel, host, posixpath.basename(clean) or posixpath.basename(rel))]

    def digest(self, sources: list[Source]) -> str:
        """A content hash of the sources (names, types, modes, bytes, link targets): the
        layer cache's word for "the same files"."""
        h = hashlib.sha256()
        for rel, host, name in sources:
            st = os.lstat(host)
            h.update(f"{name}\0".encode())
            entries = [(rel, host, st)]
            if stat.S_ISDIR(st.st_mode):
                entries += list(self.walk(rel))
            for r, x, s in entries:
                h.update(f"{r}\0{stat.S_IFMT(s.st_mode)}\0{stat.S_IMODE(s.st_mode)}\0"
                         .encode())
                if stat.S_ISREG(s.st_mode):
                    with open(x, "rb") as f:
                        while chunk := f.read(_BUF):
                            h.update(chunk)
                elif stat.S_ISLNK(s.st_mode):
                    h.update(os.readlink(x).encode())
                h.update(b"\n")
        return h.hexdigest()


def copy_into(ctx: Context, rel: str, host: str, root: str, dest: str,
              owner: Owner | None) -> None:
    """Copy one source (a file, symlink or directory's contents) to container path `dest`
    inside `root`. Ownership is `owner` or root's; modes and mtimes are kept."""
    st = os.lstat(host)
    uid, gid = (owner.uid, owner.gid) if owner else (0, 0)
    if stat.S_ISDIR(st.st_mode):
        target = mkdir_all_in_root(root, dest)
        if owner is not None:
            _chown(target, uid, gid)
        dirs = []
        for r, h, s in list(ctx.walk(rel)):
            sub = posixpath.join(dest, os.path.relpath(r, rel) if rel else r)
            made = _copy_entry(h, s, root, sub, uid, gid)
            if made is not None:
                dirs.append((made, s))
        for made, s in reversed(dirs):
            os.utime(made, ns=(s.st_atime_ns, s.st_mtime_ns))
        return
    _copy_entry(host, st, root, dest, uid, gid)


def _copy_entry(src: str, st: os.stat_result, root: str, path: str, uid: int, gid: int
                ) -> str | None:
    """One entry; returns the host path of a directory (its times are set by the caller,
    after its children)."""
    host = os.path.join(_host_parent(root, path), posixpath.basename(path))
    is_dir = stat.S_ISDIR(st.st_mode)
    merge = clear_for_entry(host, is_dir)
    if stat.S_ISREG(st.st_mode):
        fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            try:
                while chunk := os.read(fd_in, _BUF):
                    os.write(fd, chunk)
            finally:
                os.close(fd)
        finally:
            os.close(fd_in)
    elif is_dir:
        if not merge:
            os.mkdir(host, 0o700)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), host)
        _chown(host, uid, gid)
        return None
    else:
        return None  # sockets, fifos, devices are not copied
    _chown(host, uid, gid)
    os.chmod(host, stat.S_IMODE(st.st_mode))
    if is_dir:
        return host
    os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns))
    return None


def make_tar(root: str, dockerfile: str, out: BinaryIO,
             outside: bytes | None = None) -> None:
    """The context as a client sends it: every path .dockerignore does not exclude (and
    always the Dockerfile and .dockerignore), symlinks as symlinks, owners dropped.
    `outside` is a Dockerfile from outside the context: it travels as `dockerfile`, and,
    as the docker CLI does it, .dockerignore names it so COPY never sees it."""
    import io

    ctx = Context.with_dockerignore(root, dockerfile)

    def add(name: str, data: bytes) -> None:
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode = len(data), 0o644
        tf.addfile(ti, io.BytesIO(data))

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        if outside is not None:
            add(dockerfile, outside)
            try:
                with open(os.path.join(root, ".dockerignore"), "rb") as f:
                    ignore = f.read()
            except FileNotFoundError:
                ignore = b""
            add(".dockerignore", ignore + b"\n" + dockerfile.encode() + b"\n")
        for rel, host, _st in ctx.walk():
            if outside is not None and rel == ".dockerignore":
                continue  # sent above, with the Dockerfile's name added
            ti = tf.gettarinfo(host, rel)
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            if ti.isreg():
                with open(host, "rb") as f:
                    tf.addfile(ti, f)
            elif ti.isdir() or ti.issym() or ti.islnk():
                tf.addfile(ti)
