"""Copying between a client's stream (a hijacked HTTP connection) and a shim stream.

A client is anything with `async read() -> bytes` (b"" at EOF), `async write(bytes)` and
`close()`; the engine's hijacked connection is one. Output frames from the shim are passed
on as Docker's stdcopy frames, or unframed for a tty (raw stream).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from pallet.daemon.shims import frames
from pallet.shim import wire


class Client(Protocol):
    async def read(self) -> bytes: ...
    async def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: Client, *,
               tty: bool, stdin: bool, streams: tuple[int, ...] = (wire.STDOUT, wire.STDERR),
               detach_keys: bytes | None = None,
               on_frame: Callable[[int, bytes], Any] | None = None) -> bool:
    """Until the shim ends the stream (True) or the client detaches (False)."""
    detached = asyncio.Event()

    async def client_to_shim() -> None:
        window = b""
        while True:
            data = await client.read()
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    writer.write_eof()
                return
            if detach_keys and tty:
                seen = window + data
                i = seen.find(detach_keys)
                if i >= 0:
                    head = seen[len(window):i] if i >= len(window) else b""
                    if head:
                        writer.write(head)
                    detached.set()
                    return
                window = seen[-(len(detach_keys) - 1):] if len(detach_keys) > 1 else b""
            writer.write(data)
            await writer.drain()

    async def shim_to_client() -> None:
        async for stream, data in frames(reader):
            if stream in (wire.STDOUT, wire.STDERR):
                if stream in streams:
                    await client.write(data if tty else wire.frame(stream, data))
            elif on_frame is not None:
                on_frame(stream, data)

    out = asyncio.ensure_future(shim_to_client())
    inp = asyncio.ensure_future(client_to_shim()) if stdin else None
    det = asyncio.ensure_future(detached.wait())
    try:
        waiting = {out, det}
        if inp is not None:
            waiting.add(inp)
        while True:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if out in done or det in done:
                break
            waiting -= done  # stdin ended: keep copying output
            for t in done:
                t.result()
    finally:
        for t in (out, inp, det):
            if t is not None and not t.done():
                t.cancel()
        writer.close()
    if out.done() and not out.cancelled():
        with contextlib.suppress(ConnectionError):
            out.result()
    return not detached.is_set()
