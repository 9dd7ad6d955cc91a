"""Produce a layer from a filesystem: a whole directory, the changes between two directory
trees (native snapshots), or an overlay upperdir (whiteout devices and opaque xattrs become
`.wh.` entries). The inverse of `apply`.

Output is a deterministic PAX tar (sorted names, empty user/group names, second-resolution
times), so the same tree gives the same diffID; compressed and hashed as it streams.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pallet.content.labels import UNCOMPRESSED
from pallet.content.local import LocalStore
from pallet.errors import AlreadyExists, NotFound
from pallet.images import compression as _compression
from pallet.images.apply import WHITEOUT_OPAQUE, WHITEOUT_PREFIX
from pallet.images.fsview import OPAQUE_XATTR, is_overlay_whiteout
from pallet.oci import mediatypes as mt
from pallet.oci.digest import Digest, HashingWriter
from pallet.oci.image import Descriptor

_BUF = 1 << 20
_SKIP_XATTR = ("trusted.overlay.", "user.overlay.")


def layer_xattrs(path: str) -> dict[str, bytes]:
    """The xattrs of `path` that belong in a layer (not overlayfs' own), by name."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out = {}
    for n in sorted(names):
        if n.startswith(_SKIP_XATTR):
            continue
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError:
            continue
    return out


class TarWriter:
    """Adds filesystem entries to a tar stream, hard links kept as links."""

    def __init__(self, out: BinaryIO) -> None:
        self.tf = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]  # noqa: SIM115
        self._inodes: dict[tuple[int, int], str] = {}

    def add(self, rel: str, host: str, st: os.stat_result | None = None) -> None:
        st = st or os.lstat(host)
        is_dir = stat.S_ISDIR(st.st_mode) and not rel.endswith("/")
        ti = tarfile.TarInfo(rel + ("/" if is_dir else ""))
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        ti.mtime = int(st.st_mtime)
        for k, v in layer_xattrs(host).items():
            ti.pax_headers["SCHILY.xattr." + k] = v.decode("utf-8", "surrogateescape")
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFREG:
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._inodes:
                ti.type, ti.linkname = tarfile.LNKTYPE, self._inodes[key]
                self.tf.addfile(ti)
                return
            if st.st_nlink > 1:
                self._inodes[key] = rel
            ti.type, ti.size = tarfile.REGTYPE, st.st_size
            # The tree may be a running container's: what was a file at lstat may be a
            # symlink (not followed) or a FIFO (would block) by now.
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            with open(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise OSError(errno.EAGAIN, "changed while being read", host)
                self.tf.addfile(ti, f)
            return
        if fmt == stat.S_IFDIR:
            ti.type = tarfile.DIRTYPE
        elif fmt == stat.S_IFLNK:
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(host)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            ti.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif fmt == stat.S_IFIFO:
            ti.type = tarfile.FIFOTYPE
        else:
            return  # sockets do not belong in a layer
        self.tf.addfile(ti)

    def whiteout(self, rel_parent: str, name: str) -> None:
        self._marker(os.path.join(rel_parent, WHITEOUT_PREFIX + name))

    def opaque(self, rel_dir: str) -> None:
        self._marker(os.path.join(rel_dir, WHITEOUT_OPAQUE))

    def _marker(self, rel: str) -> None:
        ti = tarfile.TarInfo(rel)
        ti.type, ti.mode, ti.mtime = tarfile.REGTYPE, 0o644, 0
        ti.uname = ti.gname = ""
        self.tf.addfile(ti)

    def close(self) -> None:
        self.tf.close()


def _walk(root: str, rel: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """(rel, host, lstat) of everything below root, parents first, names sorted."""
    d = os.path.join(root, rel)
    for name in sorted(os.listdir(d)):
        r = os.path.join(rel, name) if rel else name
        host = os.path.join(d, name)
        st = os.lstat(host)
        yield r, host, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, r)


def tar_dir(root: str, tw: TarWriter) -> None:
    """Every entry below `root` (not the root itself), as a base layer holds them."""
    for rel, host, st in _walk(root):
        tw.add(rel, host, st)


def tar_tree(path: str, name: str, tw: TarWriter) -> None:
    """`path` and everything below it as entries `name`, `name/...`; with `name` "" only
    what is below (a directory's contents): the archives of `docker cp` and export. (For a
    container's `/` dockerd names them `/`, `/bin`, ...: `name` "/" does that.)"""
    st = os.lstat(path)
    if name:
        tw.add(name, path, st)
    if stat.S_ISDIR(st.st_mode):
        for rel, host, cst in _walk(path):
            tw.add(os.path.join(name, rel) if name else rel, host, cst)


def tar_overlay_upper(upper: str, tw: TarWriter) -> None:
    """An overlay upperdir as a changeset: 0:0 devices -> `.wh.name`, opaque -> `.wh..wh..opq`."""
    for rel, host, st in _walk(upper):
        if is_overlay_whiteout(st):
            tw.whiteout(os.path.dirname(rel), os.path.basename(rel))
            continue
        tw.add(rel, host, st)
        if stat.S_ISDIR(st.st_mode):
            try:
                opaque = os.getxattr(host, OPAQUE_XATTR, follow_symlinks=False) == b"y"
            except OSError:
                opaque = False
            if opaque:
                tw.opaque(rel)


def _changed(lower: str, lst: os.stat_result, upper: str, ust: os.stat_result) -> bool:
    if stat.S_IFMT(lst.st_mode) != stat.S_IFMT(ust.st_mode):
        return True
    if (lst.st_mode, lst.st_uid, lst.st_gid) != (ust.st_mode, ust.st_uid, ust.st_gid):
        return True
    if stat.S_ISDIR(ust.st_mode):
        # a directory's mtime moves whenever a child changes; the children say what changed
        return layer_xattrs(lower) != layer_xattrs(upper)
    if stat.S_ISLNK(ust.st_mode):
        return os.readlink(lower) != os.readlink(upper)
    if stat.S_ISCHR(ust.st_mode) or stat.S_ISBLK(ust.st_mode):
        return lst.st_rdev != ust.st_rdev
    # containerd's rule for regular files: size and mtime (copies keep mtimes exactly)
    return (lst.st_size, lst.st_mtime_ns) != (ust.st_size, ust.st_mtime_ns) or \
        layer_xattrs(lower) != layer_xattrs(upper)


def tar_changes(lower: str, upper: str, tw: TarWriter) -> None:
    """The changes that turn tree `lower` into tree `upper`, as a layer."""
    emitted: set[str] = set()

    def ensure_parents(rel: str) -> None:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p not in emitted:
                emitted.add(p)
                tw.add(p, os.path.join(upper, p))

    def walk(rel: str, has_lower: bool) -> None:
        ldir, udir = os.path.join(lower, rel), os.path.join(upper, rel)
        unames = sorted(os.listdir(udir))
        lnames = set(os.listdir(ldir)) if has_lower else set()
        for name in sorted(lnames - set(unames)):
            r = os.path.join(rel, name) if rel else name
            ensure_parents(r)
            tw.whiteout(rel, name)
        for name in unames:
            r = os.path.join(rel, name) if rel else name
            uhost = os.path.join(udir, name)
            ust = os.lstat(uhost)
            lst = os.lstat(os.path.join(ldir, name)) if name in lnames else None
            if lst is None or _changed(os.path.join(ldir, name), lst, uhost, ust):
                ensure_parents(r)
                emitted.add(r)
                tw.add(r, uhost, ust)
            if stat.S_ISDIR(ust.st_mode):
                walk(r, lst is not None and stat.S_ISDIR(lst.st_mode))

    walk("", True)


@dataclass
class LayerInfo:
    digest: Digest
    size: int
    diff_id: Digest
    compression: str

    def descriptor(self, media_type: str | None = None) -> Descriptor:
        return Descriptor(media_type or mt.OCI_LAYER_BY_COMPRESSION[self.compression],
                          self.digest, self.size)


def write_layer(out: BinaryIO, produce: Callable[[TarWriter], None],
                compression: str = mt.GZIP) -> LayerInfo:
    """Stream a layer into `out`: tar -> diffID hash -> compressor -> blob hash -> out."""
    blob = HashingWriter(out)
    comp = _compression.compress_stream(blob, compression)  # type: ignore[arg-type]
    tar_side = HashingWriter(comp)
    tw = TarWriter(tar_side)  # type: ignore[arg-type]
    produce(tw)
    tw.close()
    comp.close()
    return LayerInfo(blob.digest(), blob.size, tar_side.digest(), compression)


def commit_layer(store: LocalStore, produce: Callable[[TarWriter], None],
                 compression: str = mt.GZIP) -> LayerInfo:
    """`write_layer` into the content store, committed under its own digest."""
    ref = f"layer-{uuid.uuid4().hex}"
    w = store.writer(ref)
    try:
        info = write_layer(w, produce, compression)  # type: ignore[arg-type]
        try:
            w.commit(info.size, info.digest, {UNCOMPRESSED: str(info.diff_id)})
        except AlreadyExists:
            store.update_labels(info.digest, {UNCOMPRESSED: str(info.diff_id)})
        return info
    except BaseException:
        w.close()
        with contextlib.suppress(NotFound):
            store.abort(ref)
        raise
