"""Hijacked connections (`Connection: Upgrade`, `Upgrade: tcp`), as attach and exec start
use them: after `101 UPGRADED` the HTTP connection carries raw bytes both ways, and the
client may half-close its side (end of stdin) while it still reads the output.

aiohttp parses `Upgrade: tcp` as an upgrade and keeps later bytes for a payload parser;
this module gives it one that queues them, and keeps the transport open on a half-close
(aiohttp's `eof_received` would let asyncio close it).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"


class _Feed:
    """What aiohttp's protocol calls with the bytes after the upgrade."""

    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self.queue = queue

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")


class _HalfClose(asyncio.Protocol):
    """Between the transport and aiohttp's protocol: a half-close ends stdin, and the
    transport stays open for the output."""

    def __init__(self, inner: Any, feed: _Feed) -> None:
        self.inner = inner
        self.feed = feed

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool:
        self.feed.feed_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class Hijacked:
    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.response: web.StreamResponse | None = None
        self.eof = False
        self.closed = False
        self.upgraded = False

    async def upgrade(self, content_type: str = RAW_STREAM) -> web.StreamResponse:
        req = self.request
        proto = req.protocol
        feed = _Feed(self.queue)
        proto.set_parser(feed)  # type: ignore[arg-type]

        if req.transport is not None:
            req.transport.set_protocol(_HalfClose(proto, feed))
        upgrade = "upgrade" in req.headers.get("Connection", "").lower()
        if upgrade:
            resp = web.StreamResponse(status=101, reason="UPGRADED", headers={
                "Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"})
        else:  # an old client without upgrade: the stream is the response body
            resp = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        resp.force_close()
        await resp.prepare(req)
        self.upgraded = upgrade
        self.response = resp
        return resp

    async def read(self) -> bytes:
        if self.eof:
            return b""
        data = await self.queue.get()
        if not data:
            self.eof = True
        return data

    async def write(self, data: bytes) -> None:
        if not self.upgraded and self.response is not None:
            await self.response.write(data)
            return
        t = self.request.transport
        if t is None or t.is_closing():
            raise ConnectionResetError("client went away")
        t.write(data)
        if t.get_write_buffer_size() > 1 << 20:
            while t.get_write_buffer_size() > 1 << 18 and not t.is_closing():
                await asyncio.sleep(0.01)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        t = self.request.transport
        if t is not None and not t.is_closing():
            with contextlib.suppress(Exception):
                t.close()
