"""What overlay and native share: metadata, directories, usage, removal."""

from __future__ import annotations

import abc
import os
import shutil
import stat
from collections.abc import Callable, Mapping

from pallet.snapshots.api import Info, Kind, Mount, Usage
from pallet.snapshots.metastore import MetaStore


def disk_usage(path: str) -> Usage:
    """Bytes and inodes under `path`, each hard-linked inode counted once (as du does)."""
    seen: set[tuple[int, int]] = set()
    u = Usage()
    for dirpath, _dirnames, filenames in os.walk(path):
        for p in [dirpath, *(os.path.join(dirpath, n) for n in filenames)]:
            st = os.lstat(p)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            u.inodes += 1
            if not stat.S_ISDIR(st.st_mode):
                u.size += st.st_blocks * 512
    return u


class BaseSnapshotter(abc.ABC):
    name = "base"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(os.path.join(self.root, "snapshots"), exist_ok=True)
        self.meta = MetaStore(os.path.join(self.root, "metadata.db"))

    def _dir(self, id_: int) -> str:
        return os.path.join(self.root, "snapshots", str(id_))

    def fs_path(self, key: str) -> str:
        """The directory holding this snapshot's own files."""
        return os.path.join(self._dir(self.meta.get(key)[0]), "fs")

    # --- containerd's Snapshotter methods ---------------------------------------------------

    def stat(self, key: str) -> Info:
        return self.meta.get(key)[1]

    def update(self, key: str, labels: Mapping[str, str | None]) -> Info:
        return self.meta.update(key, labels)

    def usage(self, key: str) -> Usage:
        return disk_usage(self.fs_path(key))

    def prepare(self, key: str, parent: str | None = None,
                labels: Mapping[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.ACTIVE, key, parent, labels)

    def view(self, key: str, parent: str | None = None,
             labels: Mapping[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.VIEW, key, parent, labels)

    def _create(self, kind: Kind, key: str, parent: str | None,
                labels: Mapping[str, str] | None) -> list[Mount]:
        id_ = self.meta.create(key, kind, parent, labels)
        d = self._dir(id_)
        try:
            os.makedirs(d)
            self._populate(d, parent)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            self.meta.remove(key)
            raise
        return self.mounts(key)

    def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        id_ = self.meta.commit(name, key, labels)
        self._committed(self._dir(id_))

    def remove(self, key: str) -> None:
        id_ = self.meta.remove(key)
        shutil.rmtree(self._dir(id_), ignore_errors=True)

    def walk(self, fn: Callable[[Info], None] | None = None) -> list[Info]:
        out = self.meta.all()
        if fn is not None:
            for i in out:
                fn(i)
        return out

    def close(self) -> None:
        self.meta.close()

    # --- per-driver ----------------------------------------------------------------------

    @abc.abstractmethod
    def mounts(self, key: str) -> list[Mount]:
        """The mount description of snapshot `key` (overlay or bind)."""

    @abc.abstractmethod
    def _populate(self, d: str, parent: str | None) -> None:
        """Make new snapshot directory `d` over `parent` (native copies the parent; overlay
        makes its fs/ and work/)."""

    def _committed(self, d: str) -> None:  # noqa: B027 - a hook: most drivers do nothing
        """After a commit of directory `d` (overlay drops its work dir)."""
