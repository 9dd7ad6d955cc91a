"""The image store: normalised names -> target descriptors (an index or a manifest), in
SQLite (WAL). Content is elsewhere: this is only the naming layer over it."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from pallet.errors import AlreadyExists, NotFound
from pallet.images import reference
from pallet.metadata.sqlite import ThreadLocalDB
from pallet.oci.image import Descriptor

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    name TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}'
);
"""


@dataclass
class Image:
    name: str
    target: Descriptor
    created_at: float = 0.0
    updated_at: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)


class ImageStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._db = ThreadLocalDB(self.path)
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        return self._db.conn()

    @staticmethod
    def _row(row: tuple[str, str, float, float, str]) -> Image:
        return Image(row[0], Descriptor.from_dict(json.loads(row[1])), row[2], row[3],
                     json.loads(row[4]))

    def get(self, name: str) -> Image:
        n = reference.normalize(name)
        row = self._conn().execute("SELECT * FROM images WHERE name = ?", (n,)).fetchone()
        if row is None:
            raise NotFound(f"image {name}: not found")
        return self._row(row)

    def list(self) -> list[Image]:
        return [self._row(r) for r in
                self._conn().execute("SELECT * FROM images ORDER BY name")]

    def create(self, name: str, target: Descriptor,
               labels: Mapping[str, str] | None = None) -> Image:
        n = reference.normalize(name)
        now = time.time()
        try:
            with self._conn() as c:
                c.execute("INSERT INTO images VALUES (?, ?, ?, ?, ?)",
                          (n, json.dumps(target.to_dict()), now, now,
                           json.dumps(dict(labels or {}))))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"image {n}: already exists") from None
        return self.get(n)

    def put(self, name: str, target: Descriptor,
            labels: Mapping[str, str] | None = None) -> Image:
        """Create, or point an existing name at a new target (as a re-import or pull does)."""
        n = reference.normalize(name)
        now = time.time()
        with self._conn() as c:
            c.execute("INSERT INTO images VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE "
                      "SET target = excluded.target, updated_at = excluded.updated_at, "
                      "labels = excluded.labels",
                      (n, json.dumps(target.to_dict()), now, now,
                       json.dumps(dict(labels or {}))))
        return self.get(n)

    def delete(self, name: str) -> None:
        n = reference.normalize(name)
        with self._conn() as c:
            cur = c.execute("DELETE FROM images WHERE name = ?", (n,))
        if cur.rowcount == 0:
            raise NotFound(f"image {name}: not found")

    def close(self) -> None:
        self._db.close()
