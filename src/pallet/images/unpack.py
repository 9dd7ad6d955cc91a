"""Unpack: apply an image's layers into snapshots (committed under their chain IDs, so
images that share a base share its snapshots), or straight into a directory.

The layer is written into the directories the snapshotter's mount description names, not
into a mount: a bind mount's source is the whole tree, an overlay's upperdir gets the layer
in overlay's own whiteout format (`fsview.OverlayView`). An apply that fails removes its
active snapshot, so a bad layer never leaves a committed snapshot.
"""

from __future__ import annotations

import os
import shutil
import uuid

from pallet.content.local import LocalStore
from pallet.errors import AlreadyExists, InvalidArgument, NotFound
from pallet.images.apply import ApplyOptions, apply_layer
from pallet.images.fsview import FullView, OverlayView
from pallet.images.resolve import ResolvedImage
from pallet.oci.digest import Digest
from pallet.snapshots.api import Mount, Snapshotter

LABEL_UNPACK = "io.pallet.snapshot.unpack"


def view_for(mounts: list[Mount]) -> FullView | OverlayView:
    """Where to write a layer for a snapshot, read from its mount description."""
    if len(mounts) != 1:
        raise InvalidArgument(f"cannot apply to {len(mounts)} mounts")
    m = mounts[0]
    if m.type == "bind":
        return FullView(m.source)
    if m.type == "overlay":
        upper, lower = m.option("upperdir"), m.option("lowerdir")
        if upper is None:
            raise InvalidArgument("cannot apply to a read-only overlay")
        return OverlayView(upper, lower.split(":") if lower else [])
    raise InvalidArgument(f"cannot apply to a {m.type} mount")


def unpack(content: LocalStore, snapshotter: Snapshotter, image: ResolvedImage,
           options: ApplyOptions | None = None) -> str:
    """Make sure every layer of `image` is a committed snapshot; returns the top chain ID."""
    parent: str | None = None
    for desc, diff_id, chain in zip(image.layers, image.diff_ids, image.chain_ids,
                                    strict=True):
        key = str(chain)
        try:
            snapshotter.stat(key)
            parent = key
            continue
        except NotFound:
            pass
        active = f"extract-{uuid.uuid4().hex[:12]}-{chain.encoded[:12]}"
        mounts = snapshotter.prepare(active, parent, {LABEL_UNPACK: key})
        try:
            with content.reader(desc.digest) as f:
                apply_layer(f, view_for(mounts), desc=desc, diff_id=diff_id, options=options)
            snapshotter.commit(key, active)
        except AlreadyExists:
            snapshotter.remove(active)  # another unpack of the same layer won the race
        except BaseException:
            snapshotter.remove(active)
            raise
        parent = key
    if parent is None:
        raise InvalidArgument(f"image {image.manifest_desc.digest} has no layers")
    return parent


def unpack_to_dir(content: LocalStore, image: ResolvedImage, dest: str,
                  options: ApplyOptions | None = None) -> list[Digest]:
    """Apply every layer into `dest` (created, must be empty). On failure `dest` is
    removed if this call created it."""
    created = not os.path.exists(dest)
    if not created and os.listdir(dest):
        raise InvalidArgument(f"{dest}: not empty")
    os.makedirs(dest, exist_ok=True)
    try:
        for desc, diff_id in zip(image.layers, image.diff_ids, strict=True):
            with content.reader(desc.digest) as f:
                apply_layer(f, dest, desc=desc, diff_id=diff_id, options=options)
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    return image.diff_ids
