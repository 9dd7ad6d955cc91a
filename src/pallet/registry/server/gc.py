"""Garbage collection of a registry's storage (`pallet registry gc`), mark and sweep as
distribution's `garbage-collect`: blobs that no manifest of any repository references are
deleted, with their repository links; stale upload sessions are cancelled.

Run it with the server stopped (or read-only): a blob pushed just before its manifest is
unreferenced for a moment. `grace` keeps blobs younger than that many seconds, so a GC
during light traffic does not race a push in flight.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from pallet.errors import NotFound
from pallet.oci import digest as _digest
from pallet.oci import mediatypes as mt
from pallet.registry.server.storage import RegistryStorage
from pallet.registry.server.uploads import Uploads


@dataclass
class Result:
    marked: int = 0
    deleted_blobs: list[str] = field(default_factory=list)
    deleted_manifests: list[tuple[str, str]] = field(default_factory=list)
    purged_uploads: list[str] = field(default_factory=list)
    freed_bytes: int = 0


def _children(storage: RegistryStorage, media_type: str, dgst: str) -> list[tuple[str, str]]:
    """(media type, digest) of what a manifest or index references; the subject is not a
    reference that keeps anything alive (the referrer points at it, not the other way)."""
    try:
        doc = json.loads(storage.content.read_blob(dgst))
    except (NotFound, ValueError):
        return []
    if not isinstance(doc, dict):
        return []
    items = []
    if mt.is_index(media_type) or "manifests" in doc:
        items = doc.get("manifests") or []
    else:
        items = [doc.get("config"), *list(doc.get("layers") or [])]
    out = []
    for d in items:
        if isinstance(d, dict) and isinstance(d.get("digest"), str):
            out.append((str(d.get("mediaType", "")), d["digest"]))
    return out


def collect(storage: RegistryStorage, *, dry_run: bool = False, delete_untagged: bool = False,
            grace: float = 0.0, upload_age: float = 7 * 24 * 3600) -> Result:
    res = Result()
    manifests = storage.manifests()
    if delete_untagged:
        # Keep what a tag reaches (through indexes), and referrers of what is kept.
        by_key = {(m.repo, m.digest): m for m in manifests}
        keep: set[tuple[str, str]] = set()
        todo = [(repo, dg) for repo, _tag, dg in storage.all_tags()]
        while todo:
            key = todo.pop()
            if key in keep or key not in by_key:
                continue
            keep.add(key)
            m = by_key[key]
            todo += [(m.repo, d) for t, d in _children(storage, m.media_type, m.digest)
                     if mt.is_index(t) or mt.is_manifest(t)]
            todo += [(m.repo, r.digest) for r in storage.referrers(m.repo, m.digest)]
        for m in manifests:
            if (m.repo, m.digest) not in keep:
                res.deleted_manifests.append((m.repo, m.digest))
                if not dry_run:
                    storage.delete_manifest(m.repo, m.digest)
        manifests = [m for m in manifests if (m.repo, m.digest) in keep]
    marked: set[str] = set()
    for m in manifests:
        marked.add(m.digest)
        for _t, d in _children(storage, m.media_type, m.digest):
            marked.add(d)
    res.marked = len(marked)
    now = time.time()
    for info in list(storage.content.walk()):
        d = str(info.digest)
        if d in marked or now - info.created_at < grace:
            continue
        res.deleted_blobs.append(d)
        res.freed_bytes += info.size
        if not dry_run:
            try:
                storage.content.delete(_digest.parse(d))
            except NotFound:
                pass
    if not dry_run:
        storage.drop_links(res.deleted_blobs)
        gone = set(res.deleted_blobs)
        storage.drop_links(d for d in storage.linked_digests()
                           if d not in marked and (d in gone or not storage.content.exists(d)))
        res.purged_uploads = Uploads(storage).purge(upload_age)
    return res
