"""The registry's storage: blobs in a content store (the same `LocalStore` as pallet's
images), and the repository view in SQLite.

    <root>/content/          LocalStore: blobs/<algo>/<hex> verified before visible,
                             ingest/<...> the upload sessions (resumable, crash-safe)
    <root>/registry.db       which repository links which blob, manifests (media type,
                             subject, artifactType), tags, upload sessions

A blob is one file however many repositories link it; a repository only sees blobs it
links (by upload, mount, or a manifest push), as distribution's link files do.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass

from pallet.content.local import LocalStore
from pallet.errors import NotFound
from pallet.metadata.sqlite import ThreadLocalDB
from pallet.oci.digest import Digest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    repo TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (repo, digest));
CREATE INDEX IF NOT EXISTS blobs_digest ON blobs(digest);
CREATE TABLE IF NOT EXISTS manifests (
    repo TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, size INTEGER NOT NULL,
    subject TEXT, artifact_type TEXT, annotations TEXT, created_at REAL NOT NULL,
    PRIMARY KEY (repo, digest));
CREATE INDEX IF NOT EXISTS manifests_subject ON manifests(repo, subject);
CREATE TABLE IF NOT EXISTS tags (
    repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (repo, tag));
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY, repo TEXT NOT NULL, algorithm TEXT NOT NULL, started_at REAL NOT NULL);
"""


@dataclass
class ManifestRecord:
    repo: str
    digest: str
    media_type: str
    size: int
    subject: str | None
    artifact_type: str | None
    annotations: dict[str, str] | None


@dataclass
class UploadRecord:
    id: str
    repo: str
    algorithm: str
    started_at: float


class RegistryStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)
        self.content = LocalStore(os.path.join(self.root, "content"))
        self._db_path = os.path.join(self.root, "registry.db")
        self._db = ThreadLocalDB(self._db_path, "synchronous=NORMAL")
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        return self._db.conn()

    def close(self) -> None:
        self._db.close()
        self.content.close()

    # --- repositories ----------------------------------------------------------------------

    def repo_exists(self, repo: str) -> bool:
        c = self._conn()
        return any(c.execute(f"SELECT 1 FROM {t} WHERE repo = ? LIMIT 1", (repo,)).fetchone()
                   for t in ("blobs", "manifests", "tags"))

    def repositories(self) -> list[str]:
        rows = self._conn().execute(
            "SELECT repo FROM blobs UNION SELECT repo FROM manifests "
            "UNION SELECT repo FROM tags ORDER BY 1")
        return [r[0] for r in rows]

    # --- blobs -----------------------------------------------------------------------------

    def has_blob(self, repo: str, dgst: Digest) -> bool:
        row = self._conn().execute("SELECT 1 FROM blobs WHERE repo = ? AND digest = ?",
                                   (repo, str(dgst))).fetchone()
        return row is not None and self.content.exists(dgst)

    def blob_path(self, repo: str, dgst: Digest) -> str:
        if not self.has_blob(repo, dgst):
            raise NotFound(f"blob {dgst} in {repo}: not found")
        return self.content.blob_path(dgst)

    def link_blob(self, repo: str, dgst: Digest) -> None:
        with self._conn() as c:
            c.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (repo, str(dgst)))

    def unlink_blob(self, repo: str, dgst: Digest) -> bool:
        with self._conn() as c:
            return c.execute("DELETE FROM blobs WHERE repo = ? AND digest = ?",
                             (repo, str(dgst))).rowcount > 0

    def repos_linking(self, dgst: Digest) -> list[str]:
        return [r[0] for r in self._conn().execute(
            "SELECT repo FROM blobs WHERE digest = ? ORDER BY repo", (str(dgst),))]

    def linked_digests(self) -> set[str]:
        return {r[0] for r in self._conn().execute("SELECT DISTINCT digest FROM blobs")}

    def drop_links(self, digests: Iterable[str]) -> None:
        with self._conn() as c:
            c.executemany("DELETE FROM blobs WHERE digest = ?", [(d,) for d in digests])

    # --- manifests and tags ------------------------------------------------------------------

    def put_manifest(self, rec: ManifestRecord, tags: Iterable[str] = ()) -> None:
        """Record a manifest (its bytes are already a committed blob) and point `tags` at it,
        in one transaction: a reader never sees a tag before its manifest."""
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (rec.repo, rec.digest))
            c.execute("INSERT OR REPLACE INTO manifests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (rec.repo, rec.digest, rec.media_type, rec.size, rec.subject,
                       rec.artifact_type,
                       None if rec.annotations is None else json.dumps(rec.annotations),
                       time.time()))
            for tag in tags:
                c.execute("INSERT OR REPLACE INTO tags VALUES (?, ?, ?)",
                          (rec.repo, tag, rec.digest))

    @staticmethod
    def _manifest(row: tuple) -> ManifestRecord:
        return ManifestRecord(row[0], row[1], row[2], row[3], row[4], row[5],
                              None if row[6] is None else json.loads(row[6]))

    def get_manifest(self, repo: str, dgst: str) -> ManifestRecord | None:
        row = self._conn().execute(
            "SELECT repo, digest, media_type, size, subject, artifact_type, annotations "
            "FROM manifests WHERE repo = ? AND digest = ?", (repo, dgst)).fetchone()
        return None if row is None else self._manifest(row)

    def manifests(self, repo: str | None = None) -> list[ManifestRecord]:
        q = ("SELECT repo, digest, media_type, size, subject, artifact_type, annotations "
             "FROM manifests")
        rows = (self._conn().execute(q + " WHERE repo = ?", (repo,)) if repo is not None
                else self._conn().execute(q))
        return [self._manifest(r) for r in rows]

    def referrers(self, repo: str, subject: str) -> list[ManifestRecord]:
        rows = self._conn().execute(
            "SELECT repo, digest, media_type, size, subject, artifact_type, annotations "
            "FROM manifests WHERE repo = ? AND subject = ? ORDER BY created_at, digest",
            (repo, subject))
        return [self._manifest(r) for r in rows]

    def delete_manifest(self, repo: str, dgst: str) -> bool:
        """Drop the manifest, every tag that points at it, and its blob link."""
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            n = c.execute("DELETE FROM manifests WHERE repo = ? AND digest = ?",
                          (repo, dgst)).rowcount
            c.execute("DELETE FROM tags WHERE repo = ? AND digest = ?", (repo, dgst))
            c.execute("DELETE FROM blobs WHERE repo = ? AND digest = ?", (repo, dgst))
        return n > 0

    def resolve_tag(self, repo: str, tag: str) -> str | None:
        row = self._conn().execute("SELECT digest FROM tags WHERE repo = ? AND tag = ?",
                                   (repo, tag)).fetchone()
        return None if row is None else row[0]

    def tags(self, repo: str) -> list[str]:
        # Go's sort.Strings order: bytewise, which BINARY collation is.
        return [r[0] for r in self._conn().execute(
            "SELECT tag FROM tags WHERE repo = ? ORDER BY tag COLLATE BINARY", (repo,))]

    def all_tags(self) -> list[tuple[str, str, str]]:
        return list(self._conn().execute("SELECT repo, tag, digest FROM tags"))

    def delete_tag(self, repo: str, tag: str) -> bool:
        with self._conn() as c:
            return c.execute("DELETE FROM tags WHERE repo = ? AND tag = ?",
                             (repo, tag)).rowcount > 0

    # --- upload sessions ---------------------------------------------------------------------

    def add_upload(self, upload_id: str, repo: str, algorithm: str) -> None:
        with self._conn() as c:
            c.execute("INSERT INTO uploads VALUES (?, ?, ?, ?)",
                      (upload_id, repo, algorithm, time.time()))

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = self._conn().execute("SELECT id, repo, algorithm, started_at FROM uploads "
                                   "WHERE id = ?", (upload_id,)).fetchone()
        return None if row is None else UploadRecord(*row)

    def uploads(self) -> list[UploadRecord]:
        return [UploadRecord(*r) for r in self._conn().execute(
            "SELECT id, repo, algorithm, started_at FROM uploads")]

    def remove_upload(self, upload_id: str) -> None:
        with self._conn() as c:
            c.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))


def upload_ref(upload_id: str) -> str:
    """The content store's ingest ref of an upload session."""
    return f"registry-upload-{upload_id}"
