"""Blob metadata (created/updated times, labels) in SQLite, WAL mode.

The blob files are the truth about what exists; this database only annotates them. WAL lets
readers proceed while one writer commits, and a connection per thread keeps sqlite3's
thread rules simple.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping

from pallet.metadata.sqlite import ThreadLocalDB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    digest TEXT NOT NULL REFERENCES blobs(digest) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (digest, key)
);
"""


class Metadata:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db = ThreadLocalDB(self.path, "foreign_keys=ON", "synchronous=NORMAL")
        with self._conn() as c:
            c.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        return self._db.conn()

    def record(self, digest: str, labels: Mapping[str, str] | None, when: float | None = None
               ) -> None:
        now = when or time.time()
        c = self._conn()
        with c:
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO blobs VALUES (?, ?, ?) ON CONFLICT(digest) DO UPDATE "
                      "SET updated_at = excluded.updated_at", (digest, now, now))
            for k, v in (labels or {}).items():
                c.execute("INSERT OR REPLACE INTO labels VALUES (?, ?, ?)", (digest, k, v))

    def get(self, digest: str) -> tuple[float, float, dict[str, str]] | None:
        c = self._conn()
        row = c.execute("SELECT created_at, updated_at FROM blobs WHERE digest = ?",
                        (digest,)).fetchone()
        if row is None:
            return None
        labels = dict(c.execute("SELECT key, value FROM labels WHERE digest = ?", (digest,)))
        return row[0], row[1], labels

    def update_labels(self, digest: str, labels: Mapping[str, str | None]) -> None:
        now = time.time()
        c = self._conn()
        with c:
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO blobs VALUES (?, ?, ?) ON CONFLICT(digest) DO UPDATE "
                      "SET updated_at = excluded.updated_at", (digest, now, now))
            for k, v in labels.items():
                if v is None:
                    c.execute("DELETE FROM labels WHERE digest = ? AND key = ?", (digest, k))
                else:
                    c.execute("INSERT OR REPLACE INTO labels VALUES (?, ?, ?)", (digest, k, v))

    def delete(self, digest: str) -> None:
        c = self._conn()
        with c:
            c.execute("DELETE FROM blobs WHERE digest = ?", (digest,))

    def digests(self) -> Iterable[str]:
        return [r[0] for r in self._conn().execute("SELECT digest FROM blobs")]

    def close(self) -> None:
        self._db.close()
