"""Container metadata in SQLite (WAL): one row per container, its record as JSON."""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from pallet.errors import AlreadyExists

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
"""


class ContainerStore:
    """Used from the daemon's event loop thread only."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.db.execute("SELECT data FROM containers")]

    def insert(self, record: dict[str, Any]) -> None:
        try:
            with self.db:
                self.db.execute("INSERT INTO containers VALUES (?, ?, ?)",
                                (record["Id"], record["Name"], json.dumps(record)))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"container name {record['Name']} is in use") from None

    def update(self, record: dict[str, Any]) -> None:
        with self.db:
            self.db.execute("UPDATE containers SET name = ?, data = ? WHERE id = ?",
                            (record["Name"], json.dumps(record), record["Id"]))

    def delete(self, cid: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM containers WHERE id = ?", (cid,))

    def close(self) -> None:
        self.db.close()
