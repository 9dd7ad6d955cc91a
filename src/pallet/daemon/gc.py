"""Garbage collection of content and snapshots (mark and sweep, containerd's rules).

Roots: every image name (its target and all it references, every platform that is
present), every image of the build cache, what running builds hold, and every container's
snapshot. Marked snapshots keep their parent chains.
Blobs being ingested are not in the store yet and are never swept. Blocking: run on the
storage thread, between image and container operations.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from pallet.build import cache as build_cache
from pallet.build.executor import held as build_held
from pallet.errors import NotFound
from pallet.images.resolve import resolve, walk
from pallet.images.service import ImageService


@dataclass
class Result:
    blobs: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    bytes: int = 0


def collect(svc: ImageService, container_snapshots: set[str]) -> Result:
    res = Result()
    keep_blobs: set[str] = set()
    keep_snaps: set[str] = set(container_snapshots)
    held_snaps, held_blobs = build_held()
    keep_snaps |= held_snaps
    keep_blobs |= held_blobs
    for target in [i.target for i in svc.list()] + build_cache.roots(svc.root):
        for d in walk(svc.content, target, skip_missing=True):
            keep_blobs.add(str(d.digest))
        with contextlib.suppress(Exception):
            r = resolve(svc.content, target)
            keep_snaps.update(str(c) for c in r.chain_ids)

    snaps = {i.name: i for i in svc.snapshotter.walk()}
    # a kept snapshot keeps its parents
    stack = [k for k in keep_snaps if k in snaps]
    while stack:
        parent = snaps[stack.pop()].parent
        if parent and parent not in keep_snaps:
            keep_snaps.add(parent)
            stack.append(parent)
    # sweep snapshots leaves first
    doomed = {k for k in snaps if k not in keep_snaps and not k.startswith("extract-")}
    while doomed:
        parents = {snaps[k].parent for k in doomed}
        leaves = [k for k in doomed if k not in parents]
        if not leaves:
            break
        for k in leaves:
            with contextlib.suppress(Exception):
                res.bytes += svc.snapshotter.usage(k).size
            with contextlib.suppress(NotFound):
                svc.snapshotter.remove(k)
                res.snapshots.append(k)
            doomed.discard(k)

    for info in svc.content.walk():
        d = str(info.digest)
        if d not in keep_blobs:
            with contextlib.suppress(NotFound):
                svc.content.delete(d)
                res.blobs.append(d)
                res.bytes += info.size
    return res
