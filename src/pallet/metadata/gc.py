"""Garbage collection of the content store and the snapshotters: mark from the roots, sweep
the rest (containerd's model and label names).

Roots
- every image name's target (the image store is the truth for names: a blob carrying
  pallet's own `containerd.io/gc.root=image` marker that no name targets any more is a
  leftover of a re-pointed tag, not a root);
- blobs and snapshots labelled `containerd.io/gc.root` with any other value;
- what a live lease names, and everything created since the oldest live lease was taken
  (an in-progress pull or import: leases.py), or since this collection started;
- active and view snapshots (container root filesystems, unpacks in progress) and their
  parents.

References (edges)
- `containerd.io/gc.ref.content.<any>` = digest, `containerd.io/gc.ref.snapshot.<snapshotter>`
  (or `...<snapshotter>.<any>`) = key, on blobs;
- what a reachable index or manifest lists (read by media type, so an unlabelled image is
  still kept whole), and a reachable config's layers as snapshots keyed by chain ID: every
  image keeps the snapshots of its unpacked layers, and images sharing a base share them;
- a snapshot's parent.

Ingests (partial downloads, resumable) are removed only when no writer holds their lock and
they were last written longer ago than `ingest_grace`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pallet.content.labels import GC_REF_CONTENT, GC_REF_SNAPSHOT, GC_ROOT
from pallet.content.local import LocalStore
from pallet.errors import NotFound
from pallet.images.store import ImageStore
from pallet.metadata.leases import CONTENT, INGEST, LeaseStore
from pallet.oci import digest as _digest
from pallet.oci import mediatypes as mt
from pallet.oci.image import chain_ids
from pallet.snapshots.api import Kind
from pallet.snapshots.base import BaseSnapshotter

IMAGE_MARKER = "image"          # GC_ROOT's value on image targets (fetch.register, layout)
_MAX_DOC = 4 * 1024 * 1024      # documents larger than this are not parsed for references
DEFAULT_INGEST_GRACE = 24 * 3600.0


@dataclass
class Report:
    content: list[tuple[str, int]] = field(default_factory=list)      # digest, bytes
    snapshots: list[tuple[str, str, int]] = field(default_factory=list)  # snapshotter, key, bytes
    ingests: list[str] = field(default_factory=list)
    kept_content: int = 0
    kept_snapshots: int = 0

    @property
    def reclaimed(self) -> int:
        return sum(n for _, n in self.content) + sum(n for _, _, n in self.snapshots)


@dataclass
class _Marks:
    content: set[str] = field(default_factory=set)
    snapshots: dict[str, set[str]] = field(default_factory=dict)   # snapshotter -> keys

    def snap(self, snapshotter: str, key: str) -> None:
        self.snapshots.setdefault(snapshotter, set()).add(key)


def _children(content: LocalStore, digest: str, media_type: str | None
              ) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Content this blob refers to (digest, media type), and the chain IDs of a config."""
    kids: list[tuple[str, str | None]] = []
    chains: list[str] = []
    if media_type is not None and not (mt.is_index(media_type) or mt.is_manifest(media_type)
                                       or media_type in mt.CONFIGS):
        return kids, chains     # a layer or an artifact blob: no references inside
    try:
        if os.path.getsize(content.blob_path(digest)) > _MAX_DOC:
            return kids, chains
        doc: Any = json.loads(content.read_blob(digest))
    except (OSError, ValueError, NotFound):
        return kids, chains
    if not isinstance(doc, dict):
        return kids, chains
    for key in ("manifests", "layers"):
        for d in doc.get(key) or []:
            if isinstance(d, dict) and isinstance(d.get("digest"), str):
                kids.append((d["digest"], d.get("mediaType")))
    cfg = doc.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("digest"), str):
        kids.append((cfg["digest"], cfg.get("mediaType") or mt.IMAGE_CONFIG))
    rootfs = doc.get("rootfs")
    if isinstance(rootfs, dict) and isinstance(rootfs.get("diff_ids"), list):
        try:
            chains = [str(c) for c in chain_ids([_digest.parse(x) for x in rootfs["diff_ids"]])]
        except (_digest.DigestError, TypeError, ValueError):
            chains = []
    return kids, chains


def _snapshot_ref(key: str) -> str | None:
    """The snapshotter named by a `containerd.io/gc.ref.snapshot.<snapshotter>[.<x>]` label."""
    rest = key[len(GC_REF_SNAPSHOT):]
    return rest.split(".", 1)[0] or None


def _ingest_locked(d: str) -> bool:
    try:
        fd = os.open(os.path.join(d, "lock"), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken here
    return False


def in_use_chains(snapshotters: Iterable[BaseSnapshotter]) -> set[str]:
    """Committed snapshots that an active or view snapshot (a container) is made from."""
    out = set()
    for sn in snapshotters:
        for info in sn.walk():
            if info.kind != Kind.COMMITTED and info.parent:
                out.add(info.parent)
    return out


def image_chains(content: LocalStore, target_digest: str, media_type: str) -> set[str]:
    """Chain IDs of every config under an image target that is in the store."""
    out: set[str] = set()
    todo: list[tuple[str, str | None]] = [(target_digest, media_type)]
    seen = set()
    while todo:
        d, m = todo.pop()
        if d in seen or not content.exists(d):
            continue
        seen.add(d)
        kids, chains = _children(content, d, m)
        out.update(chains)
        todo += [(k, km) for k, km in kids if km is None or not mt.is_layer(km)]
    return out


def collect(content: LocalStore, images: ImageStore, leases: LeaseStore,
            snapshotters: Iterable[BaseSnapshotter], lock_path: str, *,
            grace: float = 0.0, ingest_grace: float = DEFAULT_INGEST_GRACE,
            dry_run: bool = False) -> Report:
    """Mark and sweep. `grace`: blobs and snapshots younger than this many seconds are kept
    whatever refers to them. One collection at a time (an flock on `lock_path`)."""
    snapshotters = list(snapshotters)
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _collect(content, images, leases, snapshotters, grace=grace,
                        ingest_grace=ingest_grace, dry_run=dry_run)
    finally:
        os.close(lock)


def _collect(content: LocalStore, images: ImageStore, leases: LeaseStore,
             snapshotters: list[BaseSnapshotter], *, grace: float, ingest_grace: float,
             dry_run: bool) -> Report:
    start = time.time()
    live = leases.live(start)
    # Anything created after this instant is kept: by a live lease's holder, or racing us.
    keep_since = min([start - grace, *(x.created_at for x in live)])
    marks = _Marks()
    todo: list[tuple[str, str | None]] = []
    targets = {str(i.target.digest) for i in images.list()}
    for img in images.list():
        todo.append((str(img.target.digest), img.target.media_type))
    for lease in live:
        for kind, name in lease.resources:
            if kind == CONTENT:
                todo.append((name, None))
            elif kind.startswith("snapshot/"):
                marks.snap(kind.split("/", 1)[1], name)
    leased_ingests = {name for x in live for kind, name in x.resources if kind == INGEST}
    infos = {str(i.digest): i for i in content.walk()}
    for d, info in infos.items():
        root = info.labels.get(GC_ROOT)
        if (root is not None and (root != IMAGE_MARKER or d in targets)) \
                or info.created_at >= keep_since:
            todo.append((d, None))
    # mark content, collecting the snapshots it keeps
    while todo:
        d, media_type = todo.pop()
        if d in marks.content or d not in infos:
            continue
        marks.content.add(d)
        for k, v in infos[d].labels.items():
            if k.startswith(GC_REF_CONTENT):
                todo.append((v, None))
            elif k.startswith(GC_REF_SNAPSHOT):
                sn = _snapshot_ref(k)
                if sn:
                    marks.snap(sn, v)
        kids, chains = _children(content, d, media_type)
        todo += kids
        for c in chains:
            for sn in snapshotters:
                marks.snap(sn.name, c)
    report = Report()
    # snapshots: mark roots, close over parents, sweep leaves first
    for sn in snapshotters:
        all_ = {i.name: i for i in sn.walk()}
        keep = {k for k in marks.snapshots.get(sn.name, set()) if k in all_}
        for i in all_.values():
            if i.kind != Kind.COMMITTED or GC_ROOT in i.labels or i.created_at >= keep_since:
                keep.add(i.name)
        for k in list(keep):
            p = all_[k].parent
            while p is not None and p in all_:
                keep.add(p)
                p = all_[p].parent
        report.kept_snapshots += len(keep)
        doomed = [k for k in all_ if k not in keep]
        children: dict[str, int] = {}
        for i in all_.values():
            if i.parent:
                children[i.parent] = children.get(i.parent, 0) + 1
        while doomed:
            leaves = [k for k in doomed if not children.get(k)]
            if not leaves:
                break  # cannot happen: a kept snapshot's parents are kept
            for k in leaves:
                size = sn.usage(k).size
                if not dry_run:
                    sn.remove(k)
                report.snapshots.append((sn.name, k, size))
                doomed.remove(k)
                p = all_[k].parent
                if p:
                    children[p] -= 1
    # content
    for d, info in infos.items():
        if d in marks.content:
            report.kept_content += 1
            continue
        if not dry_run:
            with contextlib.suppress(NotFound):
                content.delete(d)
        report.content.append((d, info.size))
    # ingests
    base = os.path.join(content.root, "ingest")
    for st in content.statuses():
        if st.ref in leased_ingests or st.updated_at >= start - ingest_grace:
            continue
        d = content._ingest_dir(st.ref)
        if _ingest_locked(d):
            continue
        if not dry_run:
            shutil.rmtree(d, ignore_errors=True)
        report.ingests.append(st.ref)
    # ingest directories with no ref file (a writer that died before writing it)
    for name in os.listdir(base):
        d = os.path.join(base, name)
        if os.path.exists(os.path.join(d, "ref")) or _ingest_locked(d):
            continue
        with contextlib.suppress(OSError):
            if os.stat(d).st_mtime < start - ingest_grace and not dry_run:
                shutil.rmtree(d, ignore_errors=True)
    return report
