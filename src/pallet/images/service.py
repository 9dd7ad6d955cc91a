"""One root directory with everything the image verbs need, wired together:

    <root>/content/     content store (blobs, ingest, metadata.db)
    <root>/metadata/images.db, leases.db, gc.lock
    <root>/snapshots/<snapshotter>/

This is what the CLI uses without a daemon; palletd will hold one of these.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pallet.content.labels import GC_ROOT
from pallet.content.local import LocalStore
from pallet.errors import InvalidArgument, NotFound
from pallet.images import docker_archive, layout, reference
from pallet.images.apply import ApplyOptions
from pallet.images.bundle import runtime_config
from pallet.images.resolve import ResolvedImage, resolve, walk
from pallet.images.store import Image, ImageStore
from pallet.images.unpack import unpack, unpack_to_dir
from pallet.metadata import gc
from pallet.metadata.leases import Lease, LeaseStore
from pallet.oci.image import Platform
from pallet.snapshots import new as new_snapshotter
from pallet.snapshots import supported as overlay_supported

DEFAULT_ROOT = "/var/lib/pallet"


@dataclass
class ImageService:
    root: str
    snapshotter_name: str | None = None

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root)
        self.content = LocalStore(os.path.join(self.root, "content"))
        self.images = ImageStore(os.path.join(self.root, "metadata", "images.db"))
        if self.snapshotter_name is None:
            self.snapshotter_name = "overlayfs" if overlay_supported(self.root) else "native"
        self.leases = LeaseStore(os.path.join(self.root, "metadata", "leases.db"))
        self._snapshotter: Any = None

    @property
    def snapshotter(self) -> Any:
        if self._snapshotter is None:
            self._snapshotter = new_snapshotter(
                self.snapshotter_name,  # type: ignore[arg-type]
                os.path.join(self.root, "snapshots", self.snapshotter_name))  # type: ignore[arg-type]
        return self._snapshotter

    def close(self) -> None:
        self.content.close()
        self.images.close()
        self.leases.close()
        if self._snapshotter is not None:
            self._snapshotter.close()

    # --- names ----------------------------------------------------------------------------

    def get(self, name: str) -> Image:
        """By name, or by (a unique prefix of) the target digest, as docker accepts ids."""
        with contextlib.suppress(InvalidArgument, NotFound):
            return self.images.get(name)
        hexpart = name.split(":", 1)[-1]
        if len(hexpart) >= 4 and all(c in "0123456789abcdef" for c in hexpart):
            hits = [i for i in self.images.list()
                    if i.target.digest.encoded.startswith(hexpart)]
            if len({str(i.target.digest) for i in hits}) == 1:
                return hits[0]
        raise NotFound(f"image {name}: not found")

    def list(self) -> list[Image]:
        return self.images.list()

    def tag(self, source: str, target: str) -> Image:
        return self.images.put(target, self.get(source).target)

    def remove(self, name: str, *, prune: bool = False) -> gc.Report | None:
        """Drop a name; with `prune`, collect what no longer has one (docker rmi's default)."""
        self._untag(name)
        return self.gc() if prune else None

    def _untag(self, name: str) -> None:
        img = self.get(name)
        self.images.delete(img.name)
        if not any(i.target.digest == img.target.digest for i in self.images.list()):
            # Content stays until garbage collection; it is just no longer a GC root
            # (as an image: a root of another kind, such as the build cache's, stays).
            with contextlib.suppress(NotFound):
                if self.content.info(img.target.digest).labels.get(GC_ROOT) \
                        == gc.IMAGE_MARKER:
                    self.content.update_labels(img.target.digest, {GC_ROOT: None})

    # --- garbage collection ------------------------------------------------------------------

    def snapshotters(self) -> list[Any]:
        """Every snapshotter with state under this root (not only the configured one)."""
        base = os.path.join(self.root, "snapshots")
        names = {self.snapshotter_name} if self._snapshotter is not None else set()
        if os.path.isdir(base):
            names |= {n for n in os.listdir(base) if n in ("overlayfs", "native")}
        return [self.snapshotter if n == self.snapshotter_name else
                new_snapshotter(n, os.path.join(base, n)) for n in sorted(names)]  # type: ignore[arg-type]

    def gc(self, *, grace: float = 0.0, dry_run: bool = False) -> gc.Report:
        """Remove content and snapshots that no image, label or lease keeps (metadata/gc.py)."""
        sns = self.snapshotters()
        try:
            return gc.collect(self.content, self.images, self.leases, sns,
                              os.path.join(self.root, "metadata", "gc.lock"), grace=grace,
                              dry_run=dry_run)
        finally:
            for sn in sns:
                if sn is not self._snapshotter:
                    sn.close()

    def prune(self, *, all_images: bool = False, grace: float = 0.0,
              dry_run: bool = False) -> tuple[list[str], gc.Report]:
        """docker image prune: collect garbage; with `all_images`, first drop the name of
        every image no container uses (no active or view snapshot is made from its layers)."""
        untagged: list[str] = []
        if all_images:
            sns = self.snapshotters()
            try:
                used = gc.in_use_chains(sns)
            finally:
                for sn in sns:
                    if sn is not self._snapshotter:
                        sn.close()
            for img in self.images.list():
                chains = gc.image_chains(self.content, str(img.target.digest),
                                         img.target.media_type)
                if chains & used:
                    continue
                if not dry_run:
                    self._untag(img.name)
                untagged.append(img.name)
        return untagged, self.gc(grace=grace, dry_run=dry_run)

    @contextlib.contextmanager
    def lease(self, expiry: float = 3600.0) -> Iterator[Lease]:
        """Hold what this block creates against a concurrent collection (leases.py)."""
        with self.leases.lease(expiry) as lease:
            yield lease

    def resolve(self, name: str, platform: Platform | None = None) -> ResolvedImage:
        return resolve(self.content, self.get(name).target, platform)

    def inspect(self, name: str, platform: Platform | None = None) -> dict[str, Any]:
        img = self.get(name)
        r = resolve(self.content, img.target, platform)
        size = sum(x.size for x in r.layers)
        return {
            "Name": img.name,
            "Target": img.target.to_dict(),
            "Manifest": r.manifest_desc.to_dict(),
            "Config": r.config.to_dict(),
            "Size": size,
            "Blobs": len(list(walk(self.content, img.target, skip_missing=True))),
            "ChainID": str(r.chain_ids[-1]) if r.chain_ids else None,
        }

    # --- import / export -------------------------------------------------------------------

    def import_(self, path: str, *, fmt: str | None = None, base_name: str | None = None
                ) -> list[layout.Imported]:
        fmt = fmt or detect_format(path)
        with self.lease():
            if fmt == "oci":
                return layout.import_layout(self.content, self.images, path, base_name)
            if fmt == "docker-archive":
                return docker_archive.import_docker_archive(self.content, self.images, path)
        raise InvalidArgument(f"unknown import format {fmt!r} (oci, docker-archive)")

    def export(self, names: list[str], dest: str, *, fmt: str = "oci",
               platform: Platform | None = None) -> None:
        imgs = [self.get(n) for n in names]
        if fmt == "oci":
            layout.export_layout_dir(self.content, imgs, dest)
        elif fmt == "oci-archive":
            layout.export_layout_tar(self.content, imgs, dest)
        elif fmt == "docker-archive":
            docker_archive.export_docker_archive(self.content, imgs, dest, platform)
        else:
            raise InvalidArgument(f"unknown export format {fmt!r} "
                                  "(oci, oci-archive, docker-archive)")

    # --- unpack / bundle -------------------------------------------------------------------

    def unpack(self, name: str, platform: Platform | None = None) -> str:
        """Into the snapshotter; returns the chain ID of the top layer's snapshot."""
        with self.lease():
            return unpack(self.content, self.snapshotter, self.resolve(name, platform))

    def unpack_to_dir(self, name: str, dest: str, platform: Platform | None = None,
                      options: ApplyOptions | None = None) -> None:
        unpack_to_dir(self.content, self.resolve(name, platform), dest, options)

    def bundle(self, name: str, dest: str, *, args: list[str] | None = None,
               platform: Platform | None = None, snapshot: bool = False) -> dict[str, Any]:
        """An OCI runtime bundle: `dest/rootfs` and `dest/config.json`.

        The rootfs is a copy of the unpacked image, or with `snapshot` an active snapshot
        over the image's committed layers, mounted at `dest/rootfs` (needs root; undo with
        `remove_bundle`). The snapshot key is recorded in `dest/snapshot`.
        """
        r = self.resolve(name, platform)
        rootfs = os.path.join(dest, "rootfs")
        os.makedirs(dest, exist_ok=True)
        if snapshot:
            self._mount_snapshot(r, dest, rootfs)
        else:
            unpack_to_dir(self.content, r, rootfs)
        spec = runtime_config(r.config, rootfs, args=args)
        tmp = os.path.join(dest, ".config.json.tmp")
        with open(tmp, "w") as f:
            json.dump(spec, f, indent=2)
        os.replace(tmp, os.path.join(dest, "config.json"))
        return spec

    def _mount_snapshot(self, r: ResolvedImage, dest: str, rootfs: str) -> None:
        from pallet.snapshots.api import mount_all

        top = unpack(self.content, self.snapshotter, r)
        key = f"bundle-{os.path.abspath(dest)}"
        mounts = self.snapshotter.prepare(key, top)
        try:
            mount_all(mounts, rootfs)
        except BaseException:
            self.snapshotter.remove(key)
            raise
        with open(os.path.join(dest, "snapshot"), "w") as f:
            f.write(key)

    def remove_bundle(self, dest: str) -> None:
        """Unmount and drop the snapshot of a bundle made with `snapshot=True`."""
        from pallet.linux import libc

        with open(os.path.join(dest, "snapshot")) as f:
            key = f.read()
        libc.umount2(os.path.join(dest, "rootfs"), 2)  # MNT_DETACH
        self.snapshotter.remove(key)
        os.unlink(os.path.join(dest, "snapshot"))


def detect_format(path: str) -> str:
    """oci (a layout dir or tar) or docker-archive (a tar with manifest.json)."""
    if os.path.isdir(path):
        return "oci"
    import tarfile

    try:
        with tarfile.open(path, mode="r:*") as tf:
            names = {"/".join(p for p in n.split("/") if p not in ("", "."))
                     for n in tf.getnames()}
    except (tarfile.TarError, OSError) as e:
        raise InvalidArgument(f"{path}: not a directory or tar archive: {e}") from None
    if layout.LAYOUT_FILE in names:
        return "oci"
    if docker_archive.MANIFEST_FILE in names:
        return "docker-archive"
    raise InvalidArgument(f"{path}: neither an OCI layout nor a docker archive")


__all__ = ["DEFAULT_ROOT", "ImageService", "detect_format", "reference"]
