"""Test images without a network: OCI image layouts built from Debian's busybox-static, and
tools to compare unpacked trees.

Shapes (each a function returning the layout path and the image's ref name):
- `single_layer`        one layer, the busybox rootfs
- `multi_layer`         three layers: whiteouts, an opaque directory, a replaced file
- `with_users`          Config.User names a user of the image's /etc/passwd and /etc/group
- `multi_platform`      an index with linux/amd64 and linux/arm64 manifests
- any of them with `compression="gzip" | "zstd" | "none"`
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from typing import Any

from pallet.oci import digest
from pallet.oci import mediatypes as mt
from pallet.oci.image import Descriptor


def describe_tree(root: str, *, mtimes: bool = False) -> dict[str, tuple[Any, ...]]:
    """Everything that an unpack must reproduce, path -> attributes, to compare two trees:
    type, mode, owner, content hash or link target, device numbers, xattrs, and which
    other paths share the inode (hard links)."""
    out: dict[str, tuple[Any, ...]] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            host = os.path.join(dirpath, name)
            rel = os.path.relpath(host, root)
            st = os.lstat(host)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(kind):
                with open(host, "rb") as f:
                    what: Any = hashlib.sha256(f.read()).hexdigest()
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(kind):
                what = os.readlink(host)
            elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
                what = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                what = None
            try:
                xattrs = tuple(sorted(
                    (n, os.getxattr(host, n, follow_symlinks=False))
                    for n in os.listxattr(host, follow_symlinks=False)))
            except OSError:
                xattrs = ()
            entry: tuple[Any, ...] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                      what, xattrs)
            if mtimes and not stat.S_ISDIR(kind):
                entry += (st.st_mtime_ns // 1_000_000_000,)
            out[rel] = entry
    for paths in inodes.values():
        if len(paths) > 1:
            group = tuple(sorted(paths))
            for p in paths:
                out[p] = (*out[p], group)
    return out


# --- crafted layers, entry by entry (for apply tests) ---------------------------------

def entry(name: str, kind: str = "file", data: bytes = b"", *, mode: int | None = None,
          uid: int = 0, gid: int = 0, link: str = "", mtime: int = 1_600_000_000,
          pax: dict[str, str] | None = None, dev: tuple[int, int] = (0, 0)):
    ti = tarfile.TarInfo(name)
    ti.uid, ti.gid, ti.mtime = uid, gid, mtime
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE,
             "block": tarfile.BLKTYPE}
    ti.type = types[kind]
    ti.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    ti.linkname = link
    ti.devmajor, ti.devminor = dev
    if pax:
        ti.pax_headers = dict(pax)
    if kind == "file":
        ti.size = len(data)
    return ti, data


def make_tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def compress(tar: bytes, how: str) -> bytes:
    if how == mt.GZIP:
        return gzip.compress(tar, mtime=0)
    if how == mt.ZSTD:
        import zstandard

        return zstandard.ZstdCompressor().compress(tar)
    return tar


def layer(entries, how: str = mt.UNCOMPRESSED):
    tar = make_tar(entries)
    blob = compress(tar, how)
    desc = Descriptor(mt.OCI_LAYER_BY_COMPRESSION[how], digest.from_bytes(blob), len(blob))
    return blob, desc, digest.from_bytes(tar)
