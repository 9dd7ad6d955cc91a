"""Blob upload sessions over the content store's ingester.

A session is an ingest (`<root>/content/ingest/...`) plus a row in registry.db. Its bytes
are appended as they arrive and hashed on the way (no second pass at commit); the blob
becomes visible only when `commit` has checked the client's digest and renamed the file
into place, so a crash or a dropped connection leaves at most a resumable ingest, never a
wrong blob. Writers stay open between requests (one per session, serialised by a lock);
after a restart a session is reopened from its ingest, re-hashing what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

from pallet.content.local import LocalWriter
from pallet.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable
from pallet.oci import digest as _digest
from pallet.oci.digest import Digest
from pallet.registry.errors import RegistryError
from pallet.registry.server.storage import RegistryStorage, UploadRecord, upload_ref

# Hand the writer ~1 MiB at a time, in a worker thread: hashlib and write(2) release the
# GIL, so uploads in parallel hash on several cores while the loop keeps reading sockets.
_BATCH = 1 << 20


class Uploads:
    def __init__(self, storage: RegistryStorage) -> None:
        self.storage = storage
        self._writers: dict[str, LocalWriter] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def start(self, repo: str, algorithm: str = _digest.CANONICAL) -> str:
        upload_id = str(uuid.uuid4())
        self.storage.add_upload(upload_id, repo, algorithm)
        return upload_id

    def record(self, upload_id: str, repo: str) -> UploadRecord:
        rec = self.storage.get_upload(upload_id)
        if rec is None or rec.repo != repo:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"upload": upload_id})
        return rec

    def lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    def writer(self, rec: UploadRecord) -> LocalWriter:
        w = self._writers.get(rec.id)
        if w is None:
            try:
                w = self.storage.content.writer(upload_ref(rec.id), algorithm=rec.algorithm)
            except Unavailable:
                # another process holds the ingest (a second server on the same root)
                raise RegistryError("BLOB_UPLOAD_INVALID", "upload busy", status=409
                                    ) from None
            self._writers[rec.id] = w
        return w

    def offset(self, rec: UploadRecord) -> int:
        return self.writer(rec).offset

    async def append(self, rec: UploadRecord, body: AsyncIterator[bytes],
                     limit: int | None = None) -> int:
        """Append the whole request body; returns how many bytes it had. On a dropped
        connection what arrived stays, so the client can ask the offset and go on."""
        w = self.writer(rec)
        loop = asyncio.get_running_loop()
        buf = bytearray()
        n = 0
        try:
            async for chunk in body:
                n += len(chunk)
                if limit is not None and n > limit:
                    raise RegistryError("SIZE_INVALID", "body longer than its range")
                buf += chunk
                if len(buf) >= _BATCH:
                    data, buf = bytes(buf), bytearray()
                    await loop.run_in_executor(None, w.write, data)
        finally:
            if buf:
                w.write(bytes(buf))
        return n

    def truncate(self, rec: UploadRecord, offset: int) -> None:
        self.writer(rec).truncate(offset)

    async def commit(self, rec: UploadRecord, expected: Digest) -> Digest:
        """Verify and publish; on a digest mismatch the session is gone (nothing stays).
        A digest of another algorithm than the session's costs one re-read at commit."""
        w = self.writer(rec)
        loop = asyncio.get_running_loop()
        try:
            got = await loop.run_in_executor(None, w.commit, 0, expected)
        except AlreadyExists:
            got = expected  # committed meanwhile by a concurrent upload of the same bytes
        except FailedPrecondition as e:
            self.cancel(rec.id)
            raise RegistryError("DIGEST_INVALID", str(e)) from None
        self._forget(rec.id)
        self.storage.remove_upload(rec.id)
        return got

    def _forget(self, upload_id: str) -> None:
        w = self._writers.pop(upload_id, None)
        if w is not None:
            w.close()
        self._locks.pop(upload_id, None)

    def cancel(self, upload_id: str) -> None:
        self._forget(upload_id)
        with contextlib.suppress(NotFound):
            self.storage.content.abort(upload_ref(upload_id))
        self.storage.remove_upload(upload_id)

    def purge(self, older_than: float) -> list[str]:
        """Cancel sessions started more than `older_than` seconds ago (a client that never
        came back); returns their ids."""
        cutoff = time.time() - older_than
        gone = [u.id for u in self.storage.uploads() if u.started_at < cutoff]
        for upload_id in gone:
            self.cancel(upload_id)
        return gone

    def close(self) -> None:
        for upload_id in list(self._writers):
            self._writers.pop(upload_id).close()
