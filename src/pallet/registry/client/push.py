"""Push: blobs first (each checked with HEAD, then a mount attempted, then uploaded
monolithically or in chunks), manifests children-first, the tagged one last, so the
registry never holds a manifest whose content is missing.

A chunked upload that loses its connection asks the registry where it stands (GET on the
upload location answers `Range: 0-<end>`) and goes on from there."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

from yarl import URL

from pallet.content.local import LocalStore
from pallet.errors import InvalidArgument, NotFound
from pallet.images.resolve import read_index, read_manifest
from pallet.oci import mediatypes as mt
from pallet.oci.image import Descriptor
from pallet.registry import ranges
from pallet.registry.client.fetch import FOREIGN, SOURCE_LABEL
from pallet.registry.client.progress import NoProgress, Progress
from pallet.registry.client.transport import TRANSIENT, RequestError, Transport, backoff
from pallet.registry.scopes import PULL, PUSH, Scope, repository

DEFAULT_CHUNK = 0  # 0: monolithic uploads


def with_query(location: str, **params: str) -> str:
    """`location` with `params` added to its query (a Location may carry its own)."""
    parts = urlsplit(location)
    query = parts.query + ("&" if parts.query else "") + urlencode(params, safe=":")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def plan(content: LocalStore, target: Descriptor) -> tuple[list[Descriptor], list[Descriptor]]:
    """(blobs, manifests) under `target`; manifests ordered children first, target last."""
    blobs: dict[str, Descriptor] = {}
    manifests: list[Descriptor] = []
    seen: set[str] = set()

    def visit(desc: Descriptor) -> None:
        if str(desc.digest) in seen:
            return
        seen.add(str(desc.digest))
        if not content.exists(desc.digest):
            raise NotFound(f"{desc.media_type} {desc.digest} is not in the content store "
                           "(pull every platform to push an index)")
        if mt.is_index(desc.media_type):
            for child in read_index(content, desc).manifests:
                visit(child)
        elif mt.is_manifest(desc.media_type):
            m = read_manifest(content, desc)
            for b in [m.config, *m.layers]:
                if b.media_type in FOREIGN:
                    continue
                if not content.exists(b.digest):
                    raise NotFound(f"blob {b.digest} is not in the content store")
                blobs.setdefault(str(b.digest), b)
        else:
            raise InvalidArgument(f"{desc.digest}: cannot push media type {desc.media_type}")
        manifests.append(desc)

    visit(target)
    return list(blobs.values()), manifests


class Pusher:
    def __init__(self, transport: Transport, repo: str, content: LocalStore, *,
                 host: str, progress: Progress | None = None, parallel: int = 4,
                 chunk_size: int = DEFAULT_CHUNK, mount: bool = True) -> None:
        self.t = transport
        self.repo = repo
        self.content = content
        self.host = host
        self.progress = progress or NoProgress()
        self.chunk_size = chunk_size
        self.mount = mount
        self._sem = asyncio.Semaphore(parallel)
        self.scopes: list[Scope] = [repository(repo, PULL, PUSH)]

    def mount_source(self, desc: Descriptor) -> str | None:
        """The repository of this registry the blob was pulled from (containerd's
        distribution.source label), a candidate to mount from."""
        try:
            labels = self.content.info(desc.digest).labels
        except NotFound:
            return None
        src = labels.get(SOURCE_LABEL + self.host)
        return src if src and src != self.repo else None

    def add_source_scopes(self, blobs: list[Descriptor]) -> None:
        # One token for the whole push: ask for pull on every mount source up front.
        for b in blobs:
            src = self.mount_source(b)
            if src and all(s.name != src for s in self.scopes):
                self.scopes.append(repository(src, PULL))

    async def exists(self, desc: Descriptor) -> bool:
        try:
            resp = await self.t.request("HEAD", f"/{self.repo}/blobs/{desc.digest}",
                                        scopes=self.scopes)
        except RequestError as e:
            if e.status == 404:
                return False
            raise
        resp.release()
        return True

    async def push_blob(self, desc: Descriptor, what: str = "layer") -> str:
        """Returns how it got there: exists, mounted or pushed."""
        self.progress.start(desc, what)
        async with self._sem:
            if await self.exists(desc):
                self.progress.done(desc, "exists")
                return "exists"
            query = {}
            src = self.mount_source(desc) if self.mount else None
            if self.mount:
                query["mount"] = str(desc.digest)
                if src:
                    query["from"] = src
            resp = await self.t.request("POST", f"/{self.repo}/blobs/uploads/?"
                                        + urlencode(query), scopes=self.scopes,
                                        ok=(201, 202), headers={"Content-Length": "0"})
            resp.release()
            if resp.status == 201:
                self.progress.done(desc, "mounted")
                return "mounted"
            location = _location(resp)
            if self.chunk_size and desc.size > self.chunk_size:
                await self._chunked(desc, location)
            else:
                await self._monolithic(desc, location)
        self.progress.done(desc, "pushed")
        return "pushed"

    async def _monolithic(self, desc: Descriptor, location: str) -> None:
        path = self.content.blob_path(desc.digest)

        def body():
            self.progress.reset(desc, 0)
            return _ProgressFile(path, lambda n: self.progress.advance(desc, n))

        resp = await self.t.request(
            "PUT", with_query(location, digest=str(desc.digest)), scopes=self.scopes,
            ok=(201, 204), body=body,
            headers={"Content-Type": "application/octet-stream",
                     "Content-Length": str(desc.size)}, retry=False)
        resp.release()

    async def _chunked(self, desc: Descriptor, location: str) -> None:
        path = self.content.blob_path(desc.digest)
        offset, attempt = 0, 0
        with open(path, "rb") as f:
            while offset < desc.size:
                n = min(self.chunk_size, desc.size - offset)
                f.seek(offset)
                chunk = f.read(n)
                try:
                    resp = await self.t.request(
                        "PATCH", location, scopes=self.scopes, ok=(202,), body=chunk,
                        retry=False, headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Range": f"{offset}-{offset + n - 1}",
                            "Content-Length": str(n)})
                except (RequestError, *TRANSIENT) as e:
                    if (isinstance(e, RequestError) and e.status not in (0, 416)) or \
                            attempt >= self.t.retries:
                        raise
                    # Where did the registry get to? Go on from there.
                    await asyncio.sleep(backoff(attempt, self.t.backoff_base))
                    attempt += 1
                    location, offset = await self.status(location)
                    self.progress.reset(desc, offset)
                    continue
                resp.release()
                location = _location(resp, location)
                offset += n
                self.progress.advance(desc, n)
        resp = await self.t.request("PUT", with_query(location, digest=str(desc.digest)),
                                    scopes=self.scopes, ok=(201, 204),
                                    headers={"Content-Length": "0"})
        resp.release()

    async def status(self, location: str) -> tuple[str, int]:
        resp = await self.t.request("GET", location, scopes=self.scopes, ok=(204,))
        resp.release()
        rng = resp.headers.get("Range")
        offset = ranges.parse_upload_range(rng) if rng else 0
        if rng == "0-0":
            offset = 0  # distribution's answer for an empty upload (ranges.upload_range)
        return _location(resp, location), offset

    async def push_manifest(self, desc: Descriptor, reference: str) -> str:
        data = self.content.read_blob(desc.digest)
        resp = await self.t.request("PUT", f"/{self.repo}/manifests/{reference}",
                                    scopes=self.scopes, ok=(201,), body=data,
                                    headers={"Content-Type": desc.media_type})
        resp.release()
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != str(desc.digest):
            raise InvalidArgument(f"registry stored manifest as {got}, expected {desc.digest}")
        return str(desc.digest)


def _location(resp, default: str | None = None) -> str:
    loc = resp.headers.get("Location") or default
    if not loc:
        raise RequestError(f"{resp.method} {resp.url}: {resp.status} without Location",
                           resp.status)
    if not loc.startswith(("http://", "https://", "/")):
        # relative to the request URL (RFC 3986 reference resolution)
        loc = str(resp.url.join(URL(loc)))
    return loc


class _ProgressFile(io.BufferedReader):
    """A file aiohttp streams as a request body, reporting each read."""

    def __init__(self, path: str, report: Callable[[int], None]) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self._report = report

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self._report(len(data))
        return data
