"""Pull: resolve a reference to a descriptor, then fetch the graph under it into the
content store, layers in parallel.

A blob streams into the store's ingester, hashed as it is written (no second pass); the
ingest is committed against the descriptor's size and digest, so nothing unverified is
ever visible. A dropped connection keeps what arrived, and the next attempt asks for the
rest with `Range: bytes=<offset>-` (a registry that ignores Range sends 200 and we start
over). Same for an interrupted pull: the ingest ref is the digest, so a later pull
resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from pallet.content.labels import GC_ROOT
from pallet.content.local import LocalStore, LocalWriter, write_blob
from pallet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pallet.images import reference as _reference
from pallet.images.resolve import child_labels, read_index, read_manifest
from pallet.images.store import ImageStore
from pallet.oci import digest as _digest
from pallet.oci import mediatypes as mt
from pallet.oci.image import Descriptor, Platform
from pallet.registry.client.progress import NoProgress, Progress
from pallet.registry.client.transport import TRANSIENT, RequestError, Transport, backoff
from pallet.registry.scopes import PULL, Scope, repository

# Everything pallet can read, best first (the registry picks; the order is a hint).
ACCEPT = ", ".join([mt.IMAGE_INDEX, mt.IMAGE_MANIFEST, mt.DOCKER_MANIFEST_LIST,
                    mt.DOCKER_MANIFEST])
DIGEST_HEADER = "Docker-Content-Digest"
MAX_MANIFEST = 8 << 20
# containerd's label: where a blob came from, so a push to the same registry can mount it.
SOURCE_LABEL = "containerd.io/distribution.source."
_BATCH = 1 << 20
FOREIGN = frozenset({mt.IMAGE_LAYER_NONDISTRIBUTABLE, mt.IMAGE_LAYER_NONDISTRIBUTABLE_GZIP,
                     mt.IMAGE_LAYER_NONDISTRIBUTABLE_ZSTD, mt.DOCKER_FOREIGN_LAYER_GZIP})


async def read_capped(resp: Any, limit: int) -> bytes:
    """The body, or its first limit+1 bytes (enough to tell it is too large): one read()
    returns only what has arrived so far."""
    buf = bytearray()
    while len(buf) <= limit:
        part = await resp.content.read(limit + 1 - len(buf))
        if not part:
            break
        buf += part
    return bytes(buf)


def source_label(host: str) -> str:
    return SOURCE_LABEL + host


class Fetcher:
    """Pulls from one repository of one registry endpoint."""

    def __init__(self, transport: Transport, repo: str, content: LocalStore, *,
                 progress: Progress | None = None, parallel: int = 4,
                 source_host: str | None = None, foreign_layers: bool = False) -> None:
        self.t = transport
        self.repo = repo
        self.content = content
        self.progress = progress or NoProgress()
        self.scopes: list[Scope] = [repository(repo, PULL)]
        self._sem = asyncio.Semaphore(parallel)
        self._source = source_host
        # Non-distributable layers (image-spec's `urls`): fetched from their URLs, then the
        # registry, only when asked; otherwise left out, as registries do not hold them.
        self.foreign_layers = foreign_layers

    # --- manifests -------------------------------------------------------------------------

    async def resolve(self, ref: str) -> tuple[Descriptor, bytes]:
        """The descriptor and bytes of a tag's or digest's manifest, verified: against the
        digest when asked by digest, else against the registry's Docker-Content-Digest."""
        expected = _digest.parse(ref) if ":" in ref else None
        resp = await self.t.request("GET", f"/{self.repo}/manifests/{ref}",
                                    scopes=self.scopes, headers={"Accept": ACCEPT})
        async with resp:
            if (resp.content_length or 0) > MAX_MANIFEST:
                raise InvalidArgument(f"manifest {ref}: larger than {MAX_MANIFEST} bytes")
            data = await read_capped(resp, MAX_MANIFEST)
            if len(data) > MAX_MANIFEST:
                raise InvalidArgument(f"manifest {ref}: larger than {MAX_MANIFEST} bytes")
            header = resp.headers.get(DIGEST_HEADER)
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        want = expected
        if want is None and header:
            try:
                want = _digest.parse(header)
            except _digest.DigestError:
                raise InvalidArgument(f"manifest {ref}: bad {DIGEST_HEADER} {header!r}"
                                      ) from None
        got = _digest.from_bytes(data, want.algorithm if want else _digest.CANONICAL)
        if want is not None and got != want:
            raise InvalidArgument(f"manifest {ref}: content digest {got} does not match "
                                  f"{want}")
        media_type = _media_type(data, content_type, ref)
        return Descriptor(media_type, got, len(data)), data

    async def blob_bytes(self, desc: Descriptor, limit: int = MAX_MANIFEST) -> bytes:
        """A small blob (an image config) read into memory, not stored; verified."""
        if desc.size > limit:
            raise InvalidArgument(f"blob {desc.digest}: larger than {limit} bytes")
        resp = await self.t.request("GET", f"/{self.repo}/blobs/{desc.digest}",
                                    scopes=self.scopes)
        async with resp:
            data = await read_capped(resp, limit)
        if len(data) != desc.size or \
                _digest.from_bytes(data, desc.digest.algorithm) != desc.digest:
            raise InvalidArgument(f"blob {desc.digest}: content does not match its "
                                  "descriptor")
        return data

    def _store_manifest(self, desc: Descriptor, data: bytes) -> None:
        write_blob(self.content, f"pull-{desc.digest}", data, expected=desc.digest,
                   labels=self._labels())

    def _labels(self) -> dict[str, str]:
        return {source_label(self._source): self.repo} if self._source else {}

    async def fetch_manifest(self, desc: Descriptor) -> bytes:
        if self.content.exists(desc.digest):
            return self.content.read_blob(desc.digest)
        got, data = await self.resolve(str(desc.digest))
        if got.size != desc.size:
            raise InvalidArgument(f"manifest {desc.digest}: {got.size} bytes, descriptor "
                                  f"says {desc.size}")
        self._store_manifest(desc, data)
        return data

    # --- blobs -------------------------------------------------------------------------------

    async def fetch_blob(self, desc: Descriptor, what: str = "layer") -> None:
        """Into the content store, resuming any earlier partial ingest of the same blob."""
        self.progress.start(desc, what)
        if self.content.exists(desc.digest):
            self.progress.done(desc, "exists")
            return
        async with self._sem:
            ref = f"pull-{desc.digest}"
            try:
                w = self.content.writer(ref, total=desc.size, expected=desc.digest)
            except AlreadyExists:
                self.progress.done(desc, "exists")
                return
            with w:
                await self._download_any(desc, w)
                try:
                    w.commit(desc.size, desc.digest, self._labels())
                except AlreadyExists:
                    pass
                except FailedPrecondition as e:
                    with contextlib.suppress(NotFound):
                        self.content.abort(ref)
                    raise InvalidArgument(f"blob {desc.digest}: {e}") from None
        self.progress.done(desc, "done")

    async def _download_any(self, desc: Descriptor, w: LocalWriter) -> None:
        if not (self.foreign_layers and desc.urls):
            await self._download(desc, w)
            return
        # A foreign layer's URLs first (containerd's order), each without this registry's
        # credentials; what was received from one is verified like any blob at commit.
        import aiohttp

        errors = []
        urls = [u for u in desc.urls or [] if u.startswith(("http://", "https://"))]
        if urls:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
            async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as s:
                for url in urls:
                    async def get(headers: dict[str, str], url: str = url
                                  ) -> aiohttp.ClientResponse:
                        resp = await s.get(url, headers=headers)
                        if resp.status not in (200, 206):
                            resp.release()
                            raise RequestError(f"GET {url}: {resp.status}", resp.status)
                        return resp
                    try:
                        await self._download(desc, w, get)
                        return
                    except (RequestError, *TRANSIENT) as e:
                        errors.append(f"{url}: {e}")
                        w.truncate(0)   # another source starts afresh
        try:
            await self._download(desc, w)
        except RequestError as e:
            raise RequestError(f"foreign layer {desc.digest}: "
                               + "; ".join([*errors, f"registry: {e}"]), e.status) from None

    async def _download(self, desc: Descriptor, w: LocalWriter, get=None) -> None:
        """Into `w` from the registry (or `get(headers)`), resuming with Range."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            offset = w.offset
            if offset > desc.size:
                w.truncate(0)
                offset = 0
            self.progress.reset(desc, offset)
            if offset == desc.size:
                return
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            if get is not None:
                resp = await get(headers)
            else:
                resp = await self.t.request("GET", f"/{self.repo}/blobs/{desc.digest}",
                                            scopes=self.scopes, headers=headers, ok=(200, 206))
            try:
                async with resp:
                    if resp.status == 200 and offset:
                        # the registry ignored Range: the body starts at 0
                        await loop.run_in_executor(None, w.truncate, 0)
                        self.progress.reset(desc, 0)
                    buf = bytearray()
                    try:
                        async for chunk in resp.content.iter_chunked(1 << 16):
                            buf += chunk
                            if len(buf) >= _BATCH:
                                data, buf = bytes(buf), bytearray()
                                await loop.run_in_executor(None, w.write, data)
                                self.progress.advance(desc, len(data))
                    finally:
                        if buf:
                            w.write(bytes(buf))  # keep what arrived, to resume from
                            self.progress.advance(desc, len(buf))
                if w.offset >= desc.size:
                    return
                raise aiohttp_payload_error(desc, w.offset)
            except TRANSIENT:
                if attempt >= self.t.retries:
                    raise RequestError(f"blob {desc.digest}: connection lost at "
                                       f"{w.offset}/{desc.size} bytes, giving up") from None
                await asyncio.sleep(backoff(attempt, self.t.backoff_base))
                attempt += 1


def aiohttp_payload_error(desc: Descriptor, offset: int) -> Exception:
    import aiohttp

    return aiohttp.ClientPayloadError(f"blob {desc.digest}: body ended at {offset} of "
                                      f"{desc.size} bytes")


def _media_type(data: bytes, content_type: str, ref: str) -> str:
    """The manifest's media type: its own `mediaType`, else the response's Content-Type,
    else its shape (an OCI document may omit mediaType)."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise InvalidArgument(f"manifest {ref}: not JSON") from None
    field = doc.get("mediaType") if isinstance(doc, dict) else None
    if isinstance(field, str) and field:
        return field
    if content_type in mt.MANIFESTS | mt.INDEXES:
        return content_type
    if isinstance(doc, dict) and "manifests" in doc:
        return mt.IMAGE_INDEX
    return mt.IMAGE_MANIFEST


async def pull_graph(f: Fetcher, target: Descriptor, target_data: bytes, *,
                     platform: Platform | None, all_platforms: bool = False) -> None:
    """Fetch what the image under `target` needs: for an index the manifest for
    `platform` (or every one), for a manifest its config and layers."""
    f._store_manifest(target, target_data)
    todo = [target]
    blobs: dict[str, tuple[Descriptor, str]] = {}
    while todo:
        desc = todo.pop()
        if mt.is_index(desc.media_type):
            index = read_index(f.content, desc)
            if all_platforms:
                children = list(index.manifests)
            else:
                try:
                    children = [index.select(platform)]
                except LookupError as e:
                    raise NotFound(str(e)) from None
            for child in children:
                if mt.is_index(child.media_type) or mt.is_manifest(child.media_type):
                    await f.fetch_manifest(child)
                    todo.append(child)
        elif mt.is_manifest(desc.media_type):
            m = read_manifest(f.content, desc)
            blobs.setdefault(str(m.config.digest), (m.config, "config"))
            for layer in m.layers:
                if layer.media_type in FOREIGN and not f.foreign_layers:
                    continue  # nondistributable: not in registries, by definition
                blobs.setdefault(str(layer.digest), (layer, "layer"))
    await asyncio.gather(*(f.fetch_blob(d, what) for d, what in blobs.values()))
    # Label parents after their children exist, as a GC would walk them.
    for desc in [target, *_manifests_under(f.content, target)]:
        labels = child_labels(f.content, desc)
        if labels:
            f.content.update_labels(desc.digest, labels)


def _manifests_under(content: LocalStore, desc: Descriptor) -> list[Descriptor]:
    out = []
    if mt.is_index(desc.media_type):
        for child in read_index(content, desc).manifests:
            if content.exists(child.digest):
                out.append(child)
                out += _manifests_under(content, child)
    return out


def register(images: ImageStore, content: LocalStore, name: str, target: Descriptor) -> str:
    images.put(name, target)
    content.update_labels(target.digest, {GC_ROOT: "image"})
    return _reference.normalize(name)
