"""The overlayfs snapshotter: each snapshot holds only its own changes (`fs` is the
upperdir, `work` overlay's workdir); parents are lowerdirs, so images share layers on disk.

Mounts, as containerd's overlay snapshotter returns them:
- no parent:              bind of `fs` (rw for active, ro for a view)
- view of one parent:     bind (ro) of the parent's `fs`
- otherwise:              overlay, lowerdir = parents nearest first, upperdir/workdir if active
"""

from __future__ import annotations

import os
import shutil

from pallet.snapshots.api import Kind, Mount
from pallet.snapshots.base import BaseSnapshotter


def supported(root: str) -> bool:
    """overlay needs the kernel module and, for trusted.* xattrs and whiteout devices, root.
    (A definitive check would mount; that is left to whoever mounts.)"""
    try:
        with open("/proc/filesystems") as f:
            has = any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False
    return has and os.geteuid() == 0


class OverlaySnapshotter(BaseSnapshotter):
    name = "overlayfs"

    def _populate(self, d: str, parent: str | None) -> None:
        os.mkdir(os.path.join(d, "fs"), 0o755)
        os.mkdir(os.path.join(d, "work"), 0o711)

    def _committed(self, d: str) -> None:
        # the workdir is only for a writable mount; a committed snapshot is never one
        shutil.rmtree(os.path.join(d, "work"), ignore_errors=True)

    def mounts(self, key: str) -> list[Mount]:
        id_, info = self.meta.get(key)
        d = self._dir(id_)
        parents = self.meta.chain(info.parent) if info.parent else []
        lowers = [os.path.join(self._dir(p), "fs") for p in parents]
        ro = info.kind != Kind.ACTIVE
        if not lowers:
            return [Mount("bind", os.path.join(d, "fs"), ["rbind", "ro" if ro else "rw"])]
        if ro and len(lowers) == 1:
            return [Mount("bind", lowers[0], ["rbind", "ro"])]
        if ro:
            return [Mount("overlay", "overlay", [f"lowerdir={':'.join(lowers)}"])]
        return [Mount("overlay", "overlay", [
            "index=off",  # snapshots are copied and re-used across mounts; no inode index
            f"workdir={os.path.join(d, 'work')}",
            f"upperdir={os.path.join(d, 'fs')}",
            f"lowerdir={':'.join(lowers)}",
        ])]
