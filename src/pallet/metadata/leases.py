"""Leases, after containerd's: while a lease lives, the garbage collector keeps what it
names and everything created since it was taken.

An operation that writes in several steps (a pull commits layers, then the config, then the
manifest, and names the image last) takes a lease for its duration, so a collection running
meanwhile does not remove the blobs it already committed but has not yet tied to a name.
"Everything created since" needs no bookkeeping in every writer, at the price of keeping
other new garbage a little longer. A lease has an expiry, so a crashed holder's lease ends
by itself.

    <root>/metadata/leases.db   (SQLite, WAL)
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from pallet.metadata.sqlite import ThreadLocalDB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_resources (
    lease TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,          -- content | snapshot/<snapshotter> | ingest
    name TEXT NOT NULL,
    PRIMARY KEY (lease, kind, name)
);
"""

DEFAULT_EXPIRY = 24 * 3600.0
CONTENT = "content"
INGEST = "ingest"


def snapshot_kind(snapshotter: str) -> str:
    return f"snapshot/{snapshotter}"


@dataclass
class Lease:
    id: str
    created_at: float
    expires_at: float
    resources: set[tuple[str, str]] = field(default_factory=set)


class LeaseStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._db = ThreadLocalDB(self.path, "foreign_keys=ON")
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        return self._db.conn()

    def create(self, expiry: float = DEFAULT_EXPIRY, lease_id: str | None = None) -> Lease:
        now = time.time()
        lease = Lease(lease_id or uuid.uuid4().hex, now, now + expiry)
        with self._conn() as c:
            c.execute("INSERT INTO leases VALUES (?, ?, ?)",
                      (lease.id, lease.created_at, lease.expires_at))
        return lease

    def add(self, lease_id: str, kind: str, name: str) -> None:
        with self._conn() as c:
            c.execute("INSERT OR IGNORE INTO lease_resources VALUES (?, ?, ?)",
                      (lease_id, kind, name))

    def delete(self, lease_id: str) -> None:
        with self._conn() as c:
            c.execute("DELETE FROM leases WHERE id = ?", (lease_id,))

    def live(self, now: float | None = None) -> list[Lease]:
        """Unexpired leases with their resources; expired ones are dropped on the way."""
        now = time.time() if now is None else now
        c = self._conn()
        with c:
            c.execute("DELETE FROM leases WHERE expires_at <= ?", (now,))
        out = {r[0]: Lease(r[0], r[1], r[2]) for r in
               c.execute("SELECT id, created_at, expires_at FROM leases")}
        for lease, kind, name in c.execute("SELECT lease, kind, name FROM lease_resources"):
            if lease in out:
                out[lease].resources.add((kind, name))
        return list(out.values())

    @contextlib.contextmanager
    def lease(self, expiry: float = DEFAULT_EXPIRY) -> Iterator[Lease]:
        """A lease for the duration of a `with` block."""
        lease = self.create(expiry)
        try:
            yield lease
        finally:
            self.delete(lease.id)

    def close(self) -> None:
        self._db.close()
