"""The native snapshotter: every snapshot is a full copy of its parent (hard links, owners,
modes, xattrs and devices kept by `cp -a`). Works anywhere, costs disk; the fallback when
overlayfs cannot be used (no root, or a filesystem overlay refuses as upper)."""

from __future__ import annotations

import os
import subprocess

from pallet.errors import SystemError_
from pallet.snapshots.api import Kind, Mount
from pallet.snapshots.base import BaseSnapshotter


class NativeSnapshotter(BaseSnapshotter):
    name = "native"

    def _populate(self, d: str, parent: str | None) -> None:
        fs = os.path.join(d, "fs")
        if parent is None:
            os.mkdir(fs, 0o755)
            return
        src = self.fs_path(parent)
        # --reflink=auto shares extents where the filesystem can (btrfs, xfs)
        r = subprocess.run(["cp", "-a", "--reflink=auto", "--", src, fs],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemError_(f"copy snapshot {parent}: {r.stderr.strip()}")

    def mounts(self, key: str) -> list[Mount]:
        id_, info = self.meta.get(key)
        ro = info.kind != Kind.ACTIVE
        return [Mount("bind", os.path.join(self._dir(id_), "fs"),
                      ["rbind", "ro" if ro else "rw"])]
