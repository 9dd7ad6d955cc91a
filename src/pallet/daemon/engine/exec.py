"""/containers/{id}/exec and /exec/{id}: create, start (hijacked or detached), resize,
inspect."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from pallet.daemon.engine.common import body, daemon, qint, reply
from pallet.daemon.engine.hijack import Hijacked
from pallet.errors import PalletError
from pallet.shim import wire


async def create(request: web.Request) -> web.Response:
    d = daemon(request)
    c = d.containers.get(request.match_info["id"])
    e = d.execs.create(c, await body(request))
    return reply({"Id": e.id}, 201)


async def start(request: web.Request) -> web.StreamResponse:
    d = daemon(request)
    e = d.execs.get(request.match_info["id"])
    b = await body(request)
    tty = b.get("Tty")
    if b.get("Detach"):
        await d.execs.start(e, None, tty=tty)
        return web.Response(status=200)
    h = Hijacked(request)
    resp = await h.upgrade()
    try:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await d.execs.start(e, h, tty=tty)
    except PalletError as err:
        with contextlib.suppress(ConnectionError):
            msg = f"{err}\n".encode()
            await h.write(msg if e.tty else wire.frame(wire.STDERR, msg))
    finally:
        h.close()
    return resp


async def resize(request: web.Request) -> web.Response:
    d = daemon(request)
    e = d.execs.get(request.match_info["id"])
    await d.execs.resize(e, qint(request, "h", 0) or 0, qint(request, "w", 0) or 0)
    return web.Response(status=201)


async def inspect(request: web.Request) -> web.Response:
    d = daemon(request)
    return reply(d.execs.get(request.match_info["id"]).inspect())


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/containers/{id}/exec", create),
    ("POST", "/exec/{id}/start", start),
    ("POST", "/exec/{id}/resize", resize),
    ("GET", "/exec/{id}/json", inspect),
]
