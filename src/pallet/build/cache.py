"""The layer cache: (parent image, instruction) -> the image that step made.

The key is the parent's image ID (its config digest: everything the step starts from) and
the instruction's history text, which carries what else decides the result: the build
args a RUN sees, the content digest of COPY sources. Values are manifest descriptors in
the content store; each manifest carries the GC root label `build-cache`, so collections
(metadata/gc.py) keep intermediate images (and the snapshots of their layers) until
`builder prune` drops the cache (`POST /build/prune`). A tagged image's own `image` root
label is left alone, and removing its last name leaves the cache's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time

from pallet.content.labels import GC_ROOT
from pallet.content.local import LocalStore
from pallet.errors import NotFound
from pallet.metadata.sqlite import ThreadLocalDB
from pallet.oci.image import Descriptor

GC_MARKER = "build-cache"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    key TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


def cache_key(parent_id: str, created_by: str) -> str:
    return hashlib.sha256(f"{parent_id}\n{created_by}".encode()).hexdigest()


def path(root: str) -> str:
    return os.path.join(root, "metadata", "buildcache.db")


class BuildCache:
    def __init__(self, root: str) -> None:
        os.makedirs(os.path.join(root, "metadata"), exist_ok=True)
        self._db = ThreadLocalDB(path(root))
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        return self._db.conn()

    def get(self, key: str, content: LocalStore) -> Descriptor | None:
        row = self._conn().execute("SELECT target FROM steps WHERE key = ?",
                                   (key,)).fetchone()
        if row is None:
            return None
        desc = Descriptor.from_dict(json.loads(row[0]))
        return desc if content.exists(desc.digest) else None

    def put(self, key: str, target: Descriptor, content: LocalStore) -> None:
        if GC_ROOT not in content.info(target.digest).labels:  # a tagged image's stays
            content.update_labels(target.digest, {GC_ROOT: GC_MARKER})
        with self._conn() as c:
            c.execute("INSERT OR REPLACE INTO steps VALUES (?, ?, ?)",
                      (key, json.dumps(target.to_dict()), time.time()))

    def targets(self) -> list[Descriptor]:
        return [Descriptor.from_dict(json.loads(r[0]))
                for r in self._conn().execute("SELECT target FROM steps")]

    def clear(self, content: LocalStore) -> int:
        """Forget every step (the images stay until a collection); returns how many."""
        targets = self.targets()
        for t in targets:
            with contextlib.suppress(NotFound):
                if content.info(t.digest).labels.get(GC_ROOT) == GC_MARKER:
                    content.update_labels(t.digest, {GC_ROOT: None})
        with self._conn() as c:
            c.execute("DELETE FROM steps")
        return len(targets)

    def close(self) -> None:
        self._db.close()
