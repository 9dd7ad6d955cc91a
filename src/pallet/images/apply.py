"""Apply a layer (image-spec layer.md) to a directory: the changeset tar, its whiteouts, and
every file type and attribute it can carry.

Safety, because a layer is untrusted input:
- an entry name with a `..` component is refused; a leading `/` means the target's root;
- parent directories are resolved inside the target (`fsview.resolve`), so a symlink that
  an earlier layer (or an earlier entry) planted cannot lead a write outside it;
- the final component is never followed: whatever is there is replaced, not written through;
- a hard link's target is resolved the same way and must exist inside the target;
- the blob's size and digest and the tar's diffID are checked; the caller discards the
  target (an active snapshot) when this raises, so nothing is committed.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from dataclasses import dataclass, field
from decimal import Decimal
from typing import BinaryIO

from pallet.errors import FailedPrecondition, InvalidArgument
from pallet.images import compression as _compression
from pallet.images.fsview import FullView, OverlayView, split
from pallet.images.tarstream import TarStream
from pallet.oci import digest as _digest
from pallet.oci import mediatypes as mt
from pallet.oci.digest import Digest, HashingReader
from pallet.oci.image import Descriptor

WHITEOUT_PREFIX = ".wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
# xattrs that belong to the storage below, never to a layer: a layer that could set them
# would forge overlayfs whiteouts and redirects.
_FORBIDDEN_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_XATTR_PAX = "SCHILY.xattr."
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM}


class LayerError(InvalidArgument):
    """The layer's content is not acceptable (unsafe or malformed entry)."""


class LayerMismatch(FailedPrecondition):
    """The layer is not the one the manifest or config names (size or digest)."""


@dataclass
class ApplyOptions:
    # Ownership and device nodes need root; unprivileged unpack keeps the files, as
    # umoci --rootless does, and records what it skipped.
    chown: bool = field(default_factory=lambda: os.geteuid() == 0)
    devices: bool = field(default_factory=lambda: os.geteuid() == 0)
    # `docker cp` (an archive, not a layer): every entry owned by one uid:gid, `.wh.` names
    # are plain files, the target directory keeps its own attributes (a `./` entry does not
    # change them), and optionally a directory and a non-directory never replace each other
    # (the API's noOverwriteDirNonDir).
    owner: tuple[int, int] | None = None
    whiteouts: bool = True
    root_meta: bool = True
    no_overwrite_dir_non_dir: bool = False


@dataclass
class ApplyResult:
    digest: Digest
    size: int
    diff_id: Digest
    uncompressed_size: int
    compression: str
    skipped: list[str] = field(default_factory=list)


class _Limited:
    """A reader that refuses to yield more than the descriptor's size: a blob that is too
    large is known to be wrong before all of it is read."""

    def __init__(self, src: BinaryIO, limit: int | None, what: str) -> None:
        self._src, self._left, self._what = src, limit, what

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        if self._left is not None:
            self._left -= len(data)
            if self._left < 0:
                raise LayerMismatch(f"{self._what}: more data than its size says")
        return data


def _clean(name: str, what: str) -> list[str]:
    parts = split(name)
    if ".." in parts:
        raise LayerError(f"{what} {name!r}: '..' would escape the root")
    return parts


def _ns(member: tarfile.TarInfo, key: str) -> int:
    # pax keeps sub-second times as decimal strings; float seconds would lose nanoseconds.
    raw = member.pax_headers.get(key)
    if raw is not None:
        try:
            return int(Decimal(raw) * 1_000_000_000)
        except ArithmeticError:
            pass
    return int(member.mtime) * 1_000_000_000


def _check_overwrite(host: str, m: tarfile.TarInfo) -> None:
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode) and not m.isdir():
        raise LayerError(f"cannot overwrite directory {host!r} with non-directory {m.name!r}")
    if not stat.S_ISDIR(st.st_mode) and m.isdir():
        raise LayerError(f"cannot overwrite non-directory {host!r} with directory {m.name!r}")


class _Applier:
    def __init__(self, view: FullView | OverlayView, opts: ApplyOptions) -> None:
        self.view = view
        self.opts = opts
        self.written: dict[str, set[str]] = {}      # host dir -> names this layer made there
        self.dir_times: dict[str, tuple[int, int]] = {}
        self.parent_times: dict[str, tuple[int, int]] = {}
        self.skipped: list[str] = []

    def _note_parent(self, host_dir: str) -> None:
        # Creating a child changes its directory's mtime; umoci and tar put it back.
        if host_dir not in self.parent_times:
            st = os.lstat(host_dir)
            self.parent_times[host_dir] = (st.st_atime_ns, st.st_mtime_ns)

    def entry(self, tf: TarStream, m: tarfile.TarInfo) -> None:
        parts = _clean(m.name, "entry")
        if not parts:
            if not m.isdir():
                raise LayerError(f"entry {m.name!r}: the root must be a directory")
            if self.opts.root_meta:
                self._meta(self.view.root, m, is_dir=True)
            return
        parent, base = parts[:-1], parts[-1]
        if base.startswith(WHITEOUT_PREFIX) and self.opts.whiteouts:
            self._whiteout(parent, base)
            return
        pdir = self.view.parent_dir(parent)
        self._note_parent(pdir)
        host = os.path.join(pdir, base)
        if self.opts.no_overwrite_dir_non_dir:
            _check_overwrite(host, m)
        resolved = [*self.view.resolved_dir(parent), base]
        merge_dir = self.view.prepare_entry(host, resolved, m.isdir())
        self.written.setdefault(pdir, set()).add(base)
        if m.isreg():
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            try:
                tf.copy_to(fd, m)
            finally:
                os.close(fd)
        elif m.isdir():
            if not merge_dir:
                os.mkdir(host, 0o700)
        elif m.issym():
            os.symlink(m.linkname, host)
            self.view.invalidate()
        elif m.islnk():
            self._hardlink(m, host)
            return  # a hard link shares its target's inode and metadata
        elif m.ischr() or m.isblk():
            if not self.opts.devices:
                self.skipped.append(f"/{'/'.join(parts)}: device node")
                self.written[pdir].discard(base)
                return
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(host, kind | 0o600, os.makedev(m.devmajor, m.devminor))
        elif m.isfifo():
            os.mkfifo(host, 0o600)
        else:
            self.skipped.append(f"/{'/'.join(parts)}: tar type {m.type!r}")
            self.written[pdir].discard(base)
            return
        self._meta(host, m, is_dir=m.isdir())

    def _whiteout(self, parent: list[str], base: str) -> None:
        pdir = self.view.parent_dir(parent)
        self._note_parent(pdir)
        mine = self.written.get(pdir, set())
        if base == WHITEOUT_OPAQUE:
            self.view.opaque(parent, mine)
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk, ...): no meaning here
        name = base[len(WHITEOUT_PREFIX):]
        if name in ("", ".", ".."):
            raise LayerError(f"whiteout {base!r} in /{'/'.join(parent)}: invalid name")
        # layer.md: a whiteout hides only what lower layers hold, never this layer's own.
        if name not in mine:
            self.view.whiteout(parent, name)

    def _hardlink(self, m: tarfile.TarInfo, host: str) -> None:
        tparts = _clean(m.linkname, f"hard link {m.name!r} ->")
        if not tparts:
            raise LayerError(f"hard link {m.name!r}: target is the root")
        resolved = [*self.view.resolve(tparts[:-1]), tparts[-1]]
        target = self.view.copy_up(resolved)
        if target is None:
            raise LayerError(f"hard link {m.name!r}: target {m.linkname!r} does not exist")
        if stat.S_ISDIR(os.lstat(target).st_mode):
            raise LayerError(f"hard link {m.name!r}: target {m.linkname!r} is a directory")
        os.link(target, host, follow_symlinks=False)

    def _meta(self, host: str, m: tarfile.TarInfo, *, is_dir: bool) -> None:
        is_link = m.issym()
        if self.opts.chown:
            os.lchown(host, *(self.opts.owner or (m.uid, m.gid)))
        for key, value in m.pax_headers.items():
            if key.startswith(_XATTR_PAX):
                self._xattr(host, key[len(_XATTR_PAX):], value)
        # chmod after chown: chown clears the setuid and setgid bits.
        if not is_link:
            os.chmod(host, stat.S_IMODE(m.mode))
        times = (_ns(m, "atime") if "atime" in m.pax_headers else _ns(m, "mtime"),
                 _ns(m, "mtime"))
        if is_dir:
            self.dir_times[host] = times  # set last: children change a directory's mtime
        else:
            os.utime(host, ns=times, follow_symlinks=False)

    def _xattr(self, host: str, name: str, value: str) -> None:
        if name.startswith(_FORBIDDEN_XATTR_PREFIXES):
            self.skipped.append(f"{host}: xattr {name}")
            return
        try:
            os.setxattr(host, name, value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES):
                raise
            self.skipped.append(f"{host}: xattr {name}: {e.strerror}")

    def finish(self) -> None:
        for host, times in self.parent_times.items():
            if os.path.isdir(host):
                os.utime(host, ns=times, follow_symlinks=False)
        for host, times in self.dir_times.items():
            if os.path.isdir(host):
                os.utime(host, ns=times, follow_symlinks=False)


def apply_layer(
    src: BinaryIO,
    target: str | FullView | OverlayView,
    *,
    desc: Descriptor | None = None,
    diff_id: Digest | None = None,
    options: ApplyOptions | None = None,
) -> ApplyResult:
    """Apply the layer blob read from `src` to `target` (a directory holding the lower
    layers, or an OverlayView); `desc` and `diff_id`, when given, are verified."""
    view = FullView(target) if isinstance(target, str) else target
    what = f"layer {desc.digest}" if desc is not None else "layer"
    algo = desc.digest.algorithm if desc is not None else _digest.CANONICAL
    outer = HashingReader(_Limited(src, desc.size if desc else None, what),  # type: ignore[arg-type]
                          algo)
    compression = None
    if desc is not None and desc.media_type in mt.LAYERS:
        compression = mt.LAYERS[desc.media_type]
    try:
        raw, found = _compression.decompress_stream(outer, compression)  # type: ignore[arg-type]
    except _compression.CorruptData as e:
        raise LayerError(f"{what}: {e}") from None
    inner = HashingReader(raw, diff_id.algorithm if diff_id else _digest.CANONICAL)
    tf = TarStream(inner)  # type: ignore[arg-type]
    try:
        applier = _Applier(view, options or ApplyOptions())
        try:
            for m in tf:
                try:
                    applier.entry(tf, m)
                except OSError as e:
                    # An entry the tree cannot take (a file where its parent should be a
                    # directory, a hard link to a directory, ...) is a bad layer; a failing
                    # disk is not, and keeps its own error.
                    if e.errno in _STORAGE_ERRNOS or e.errno is None:
                        raise
                    raise LayerError(f"{what}: entry {m.name!r}: {e.strerror}") from None
            # tar's end blocks may be followed by padding; it is all hashed
            tf.drain()
            outer.drain()
        except tarfile.TarError as e:
            raise LayerError(f"{what}: invalid tar: {e}") from None
        except _compression.CorruptData as e:
            raise LayerError(f"{what}: {e}") from None
        except (EOFError, OSError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise
            raise LayerError(f"{what}: truncated or corrupt data: {e}") from None
        applier.finish()
    finally:
        tf.close()
        close = getattr(raw, "close", None)
        if close is not None:
            close()
    if desc is not None:
        if outer.size != desc.size:
            raise LayerMismatch(f"{what}: size {outer.size}, manifest says {desc.size}")
        if outer.digest() != desc.digest:
            raise LayerMismatch(f"{what}: content digest is {outer.digest()}")
    if diff_id is not None and inner.digest() != diff_id:
        raise LayerMismatch(f"{what}: diffID is {inner.digest()}, config says {diff_id}")
    return ApplyResult(outer.digest(), outer.size, inner.digest(), inner.size, found,
                       applier.skipped)

