"""The stores' SQLite handle: one connection per thread (sqlite3 objects must not cross
threads), autocommit, WAL so readers never wait for a writer."""

from __future__ import annotations

import os
import sqlite3
import threading


class ThreadLocalDB:
    def __init__(self, path: str | os.PathLike[str], *pragmas: str) -> None:
        self.path = os.fspath(path)
        self.pragmas = ("journal_mode=WAL", *pragmas)
        self._local = threading.local()

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            for pragma in self.pragmas:
                conn.execute(f"PRAGMA {pragma}")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Closes this thread's connection (the others close with their threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
