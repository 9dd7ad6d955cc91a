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
import json
import os
import shutil
import stat
import tarfile
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pallet.images.diff import LayerInfo, TarWriter, tar_dir, write_layer
from pallet.oci import digest
from pallet.oci import mediatypes as mt
from pallet.oci.image import (
    ANNOTATION_REF_NAME,
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Index,
    Manifest,
    Platform,
)
from pallet.testing.busybox import make_rootfs

CREATED = "2024-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


# --- writing an OCI image layout ------------------------------------------------------------

class LayoutWriter:
    """Writes blobs, manifests and index.json of an OCI image layout directory."""

    def __init__(self, dest: str | os.PathLike[str]) -> None:
        self.dest = Path(dest)
        (self.dest / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.manifests: list[Descriptor] = []

    def blob(self, media_type: str, data: bytes, **kw: Any) -> Descriptor:
        desc = Descriptor.of(media_type, data, **kw)
        (self.dest / "blobs" / "sha256" / desc.digest.encoded).write_bytes(data)
        return desc

    def layer(self, produce: Callable[[TarWriter], None], compression: str = mt.GZIP
              ) -> LayerInfo:
        tmp = self.dest / "blobs" / f".layer-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            info = write_layer(f, produce, compression)  # type: ignore[arg-type]
        os.replace(tmp, self.dest / "blobs" / "sha256" / info.digest.encoded)
        return info

    def image(self, layers: list[LayerInfo], config: ContainerConfig, *,
              platform: Platform | None = None, ref_name: str | None = None,
              index: bool = True) -> Descriptor:
        plat = platform or Platform("linux", "amd64")
        cfg = ImageConfig(
            architecture=plat.architecture, os=plat.os, variant=plat.variant or None,
            diff_ids=[x.diff_id for x in layers], config=config, created=CREATED,
            history=[History(created=CREATED, created_by=f"pallet.testing layer {i}")
                     for i in range(len(layers))],
        )
        cdesc = self.blob(mt.IMAGE_CONFIG, _json(cfg.to_dict()))
        m = Manifest(cdesc, [x.descriptor() for x in layers])
        mdesc = self.blob(mt.IMAGE_MANIFEST, _json(m.to_dict()), platform=plat)
        if index:
            ann = {ANNOTATION_REF_NAME: ref_name} if ref_name else None
            self.manifests.append(Descriptor(mdesc.media_type, mdesc.digest, mdesc.size,
                                             annotations=ann, platform=plat))
        return mdesc

    def index_of(self, manifests: list[Descriptor], ref_name: str) -> Descriptor:
        """A nested image index (multi-platform), named in index.json."""
        idx = Index(manifests)
        desc = self.blob(mt.IMAGE_INDEX, _json(idx.to_dict()))
        self.manifests.append(Descriptor(desc.media_type, desc.digest, desc.size,
                                         annotations={ANNOTATION_REF_NAME: ref_name}))
        return desc

    def close(self) -> Path:
        (self.dest / "index.json").write_bytes(_json(Index(self.manifests).to_dict()))
        return self.dest


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _busybox_config(**kw: Any) -> ContainerConfig:
    return ContainerConfig(Env=[PATH_ENV], Cmd=["sh"], **kw)


def _staged(build: Callable[[Path], None], produce: Callable[[TarWriter, Path], None]
            ) -> Callable[[TarWriter], None]:
    """A layer whose files are built in a scratch directory, entries added by `produce`."""
    def run(tw: TarWriter) -> None:
        with tempfile.TemporaryDirectory(prefix="pallet-layer-") as d:
            root = Path(d)
            build(root)
            _clamp_mtimes(root)
            produce(tw, root)
    return run


SOURCE_DATE = 1_700_000_000


def _clamp_mtimes(root: Path) -> None:
    """Every file of a test layer gets one fixed mtime (SOURCE_DATE_EPOCH-style): two builds
    of the same shape are then the same bytes, whenever the clock ticked in between."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), ns=(SOURCE_DATE * 10**9,) * 2,
                     follow_symlinks=False)


def _busybox_layer(extra: Callable[[Path], None] | None = None) -> Callable[[TarWriter], None]:
    def build(root: Path) -> None:
        make_rootfs(root / "r")
        if extra is not None:
            extra(root / "r")
    return _staged(build, lambda tw, root: tar_dir(str(root / "r"), tw))


def single_layer(dest: str | os.PathLike[str], *, compression: str = mt.GZIP,
                 ref_name: str = "latest") -> Path:
    w = LayoutWriter(dest)
    w.image([w.layer(_busybox_layer(), compression)], _busybox_config(), ref_name=ref_name)
    return w.close()


def _add(tw: TarWriter, root: Path, *rels: str) -> None:
    for rel in rels:
        tw.add(rel, str(root / rel))


def multi_layer(dest: str | os.PathLike[str], *, compression: str = mt.GZIP,
                ref_name: str = "latest") -> Path:
    """Three layers. After all of them:
    /data: `a` whited out, `b` kept, `c` added;  /opaque: only `new` (opaque in layer 2);
    /etc/motd replaced; /gone removed (directory whiteout); a hard link, a symlink, a
    fifo and a file owned by 1000:1000 with mode 0640; a file re-added after a whiteout."""
    def base(r: Path) -> None:
        (r / "data").mkdir()
        for n in ("a", "b"):
            (r / "data" / n).write_text(n)
        (r / "opaque" / "sub").mkdir(parents=True)
        (r / "opaque" / "x").write_text("x")
        (r / "opaque" / "sub" / "y").write_text("y")
        (r / "gone").mkdir()
        (r / "gone" / "file").write_text("gone")
        (r / "etc" / "motd").write_text("v1\n")

    def l2_build(r: Path) -> None:
        for d in ("data", "opaque", "etc"):
            (r / d).mkdir()
        (r / "data" / "c").write_text("c")
        (r / "opaque" / "new").write_text("new")
        (r / "etc" / "motd").write_text("v2\n")
        (r / "etc" / "motd.link").symlink_to("motd")
        os.link(r / "etc" / "motd", r / "etc" / "motd.hard")

    def l2(tw: TarWriter, r: Path) -> None:
        _add(tw, r, "data")
        tw.whiteout("data", "a")
        _add(tw, r, "data/c", "opaque")
        tw.opaque("opaque")
        _add(tw, r, "opaque/new", "etc", "etc/motd", "etc/motd.hard", "etc/motd.link")
        tw.whiteout("", "gone")

    def l3_build(r: Path) -> None:
        (r / "home" / "tester").mkdir(parents=True)
        notes = r / "home" / "tester" / "notes"
        notes.write_text("private")
        os.chmod(notes, 0o640)
        if os.geteuid() == 0:
            os.chown(notes, 1000, 1000)
            os.chown(r / "home" / "tester", 1000, 1000)
        os.mkfifo(r / "fifo")
        (r / "data").mkdir()
        (r / "data" / "a").write_text("a again")

    def l3(tw: TarWriter, r: Path) -> None:
        _add(tw, r, "fifo", "home", "home/tester", "home/tester/notes", "data", "data/a")

    w = LayoutWriter(dest)
    layers = [w.layer(_busybox_layer(base), compression),
              w.layer(_staged(l2_build, l2), compression),
              w.layer(_staged(l3_build, l3), compression)]
    w.image(layers, _busybox_config(), ref_name=ref_name)
    return w.close()


APP_PASSWD = "app:x:1234:2345:app:/home/app:/bin/sh\n"
APP_GROUP = "appgrp:x:2345:\nextra:x:3000:app,tester\nmore:x:3001:app\n"


def with_users(dest: str | os.PathLike[str], *, compression: str = mt.GZIP,
               ref_name: str = "latest") -> Path:
    """Config.User is `app`, a user of the image's own /etc/passwd (uid 1234, primary group
    2345, supplementary groups 3000 and 3001), with the other conversion.md fields set."""
    def extra(r: Path) -> None:
        with open(r / "etc" / "passwd", "a") as f:
            f.write(APP_PASSWD)
        with open(r / "etc" / "group", "a") as f:
            f.write(APP_GROUP)
        (r / "home" / "app").mkdir(parents=True)
        if os.geteuid() == 0:
            os.chown(r / "home" / "app", 1234, 2345)

    cfg = ContainerConfig(
        User="app", Env=[PATH_ENV, "APP_MODE=test"], Entrypoint=["/bin/sh", "-c"],
        Cmd=["id"], WorkingDir="/home/app", ExposedPorts={"8080/tcp": {}, "53/udp": {}},
        Volumes={"/data": {}}, StopSignal="SIGUSR1",
        Labels={"org.example.role": "test", "org.opencontainers.image.stopSignal": "SIGINT"},
    )
    w = LayoutWriter(dest)
    w.image([w.layer(_busybox_layer(extra), compression)], cfg, ref_name=ref_name)
    return w.close()


def multi_platform(dest: str | os.PathLike[str], *, compression: str = mt.GZIP,
                   ref_name: str = "latest") -> Path:
    """An index with linux/amd64 and linux/arm64 manifests. The arm64 image carries a
    marker file (/etc/platform) so a test can tell which one was unpacked."""
    w = LayoutWriter(dest)
    manifests = []
    for plat in (Platform("linux", "amd64"), Platform("linux", "arm64")):
        def mark(r: Path, p: Platform = plat) -> None:
            (r / "etc" / "platform").write_text(str(p))
        layer = w.layer(_busybox_layer(mark), compression)
        manifests.append(w.image([layer], _busybox_config(), platform=plat, index=False))
    w.index_of(manifests, ref_name)
    return w.close()


SHAPES: dict[str, Callable[..., Path]] = {
    "single": single_layer,
    "multi": multi_layer,
    "users": with_users,
    "multiplatform": multi_platform,
}


def make_layout(shape: str, dest: str | os.PathLike[str], *, compression: str = mt.GZIP,
                ref_name: str = "latest") -> Path:
    if Path(dest).exists():
        shutil.rmtree(dest)
    return SHAPES[shape](dest, compression=compression, ref_name=ref_name)


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description="Write a busybox OCI image layout for tests")
    p.add_argument("shape", choices=sorted(SHAPES))
    p.add_argument("dest")
    p.add_argument("--compression", default=mt.GZIP, choices=[mt.GZIP, mt.ZSTD,
                                                              mt.UNCOMPRESSED])
    p.add_argument("--ref-name", default="latest")
    ns = p.parse_args()
    print(make_layout(ns.shape, ns.dest, compression=ns.compression, ref_name=ns.ref_name))


if __name__ == "__main__":
    main()


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
