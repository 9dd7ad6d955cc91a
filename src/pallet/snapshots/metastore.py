"""Snapshot metadata in SQLite (WAL): key -> id, kind, parent, labels. The id names the
snapshot's directory, so Commit renames a key without moving any file."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping

from pallet.errors import AlreadyExists, FailedPrecondition, NotFound
from pallet.metadata.sqlite import ThreadLocalDB
from pallet.snapshots.api import Info, Kind

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    key TEXT PRIMARY KEY,
    id INTEGER NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    parent TEXT REFERENCES snapshots(key),
    labels TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ids (next INTEGER NOT NULL);
"""


class MetaStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db = ThreadLocalDB(self.path, "foreign_keys=ON")
        c = self._conn()
        c.executescript(_SCHEMA)
        with c:
            if c.execute("SELECT COUNT(*) FROM ids").fetchone()[0] == 0:
                c.execute("INSERT INTO ids VALUES (1)")

    def _conn(self) -> sqlite3.Connection:
        return self._db.conn()

    @staticmethod
    def _info(row: tuple) -> tuple[int, Info]:
        key, id_, kind, parent, labels, created, updated = row
        return id_, Info(key, Kind(kind), parent, json.loads(labels), created, updated)

    def get(self, key: str) -> tuple[int, Info]:
        row = self._conn().execute("SELECT * FROM snapshots WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise NotFound(f"snapshot {key}: not found")
        return self._info(row)

    def chain(self, key: str) -> list[int]:
        """Ids of `key` and its ancestors, nearest first."""
        out = []
        k: str | None = key
        while k is not None:
            id_, info = self.get(k)
            out.append(id_)
            k = info.parent
        return out

    def create(self, key: str, kind: Kind, parent: str | None,
               labels: Mapping[str, str] | None) -> int:
        if not key:
            raise FailedPrecondition("snapshot key must not be empty")
        c = self._conn()
        now = time.time()
        with c:
            c.execute("BEGIN IMMEDIATE")
            if parent is not None:
                row = c.execute("SELECT kind FROM snapshots WHERE key = ?",
                                (parent,)).fetchone()
                if row is None:
                    raise NotFound(f"snapshot parent {parent}: not found")
                if row[0] != Kind.COMMITTED.value:
                    raise FailedPrecondition(f"snapshot parent {parent}: not committed")
            if c.execute("SELECT 1 FROM snapshots WHERE key = ?", (key,)).fetchone():
                raise AlreadyExists(f"snapshot {key}: already exists")
            id_ = c.execute("SELECT next FROM ids").fetchone()[0]
            c.execute("UPDATE ids SET next = next + 1")
            c.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (key, id_, kind.value, parent, json.dumps(dict(labels or {})), now, now))
        return id_

    def commit(self, name: str, key: str, labels: Mapping[str, str] | None) -> int:
        c = self._conn()
        now = time.time()
        with c:
            c.execute("BEGIN IMMEDIATE")
            row = c.execute("SELECT id, kind, parent, labels FROM snapshots WHERE key = ?",
                            (key,)).fetchone()
            if row is None:
                raise NotFound(f"snapshot {key}: not found")
            if row[1] != Kind.ACTIVE.value:
                raise FailedPrecondition(f"snapshot {key}: only an active snapshot can be "
                                         f"committed, it is {row[1]}")
            if c.execute("SELECT 1 FROM snapshots WHERE key = ?", (name,)).fetchone():
                raise AlreadyExists(f"snapshot {name}: already exists")
            merged = json.loads(row[3])
            merged.update(labels or {})
            c.execute("DELETE FROM snapshots WHERE key = ?", (key,))
            c.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (name, row[0], Kind.COMMITTED.value, row[2], json.dumps(merged), now,
                       now))
        return row[0]

    def remove(self, key: str) -> int:
        c = self._conn()
        with c:
            c.execute("BEGIN IMMEDIATE")
            row = c.execute("SELECT id FROM snapshots WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise NotFound(f"snapshot {key}: not found")
            if c.execute("SELECT 1 FROM snapshots WHERE parent = ?", (key,)).fetchone():
                raise FailedPrecondition(f"snapshot {key}: has children")
            c.execute("DELETE FROM snapshots WHERE key = ?", (key,))
        return row[0]

    def update(self, key: str, labels: Mapping[str, str | None]) -> Info:
        c = self._conn()
        with c:
            c.execute("BEGIN IMMEDIATE")
            _, info = self.get(key)
            for k, v in labels.items():
                if v is None:
                    info.labels.pop(k, None)
                else:
                    info.labels[k] = v
            c.execute("UPDATE snapshots SET labels = ?, updated_at = ? WHERE key = ?",
                      (json.dumps(info.labels), time.time(), key))
        return self.get(key)[1]

    def all(self) -> list[Info]:
        return [self._info(r)[1] for r in
                self._conn().execute("SELECT * FROM snapshots ORDER BY key")]

    def close(self) -> None:
        self._db.close()
