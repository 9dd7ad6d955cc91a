"""Root filesystems from layers: overlayfs (default) and native (copy) snapshotters."""

from pallet.snapshots.api import Info, Kind, Mount, Snapshotter, Usage
from pallet.snapshots.native import NativeSnapshotter
from pallet.snapshots.overlay import OverlaySnapshotter, supported

__all__ = ["Info", "Kind", "Mount", "NativeSnapshotter", "OverlaySnapshotter", "Snapshotter",
           "Usage", "new", "supported"]


def new(name: str, root: str) -> NativeSnapshotter | OverlaySnapshotter:
    if name in ("overlayfs", "overlay"):
        return OverlaySnapshotter(root)
    if name == "native":
        return NativeSnapshotter(root)
    raise ValueError(f"unknown snapshotter {name!r} (overlayfs, native)")
