"""/containers/{id}: stats, pause, unpause, rename, update, top (pallet.daemon.ops and
pallet.daemon.stats do the work)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from pallet.daemon import ops
from pallet.daemon.engine.common import body, daemon, qbool, reply, send_json, stream_json
from pallet.daemon.stats import Sampler, zero
from pallet.errors import InvalidArgument

INTERVAL = 1.0  # dockerd's stats collector period


def _container(request: web.Request):
    return daemon(request).containers.get(request.match_info["id"])


def _sampler(c: Any) -> Sampler:
    return Sampler("/" + c.name, c.rec, int(c.state["Pid"]),
                   with_network=c.rec["HostConfig"].get("NetworkMode") != "host")


async def stats(request: web.Request) -> web.StreamResponse:
    c = _container(request)
    stream = qbool(request, "stream", True)
    one_shot = qbool(request, "one-shot")
    if stream and one_shot:
        raise InvalidArgument("cannot have stream=true and one-shot=true")
    if not stream:
        if not c.running or c.state["Restarting"]:
            return reply(zero("/" + c.name, c.id))
        s = _sampler(c)
        first = s.sample()
        if one_shot:
            return reply(first)
        await asyncio.sleep(INTERVAL)
        # it may have stopped during the second: then its zero object, as dockerd
        return reply(s.sample() if c.running else zero("/" + c.name, c.id))
    resp = await stream_json(request)
    sampler: Sampler | None = None
    while True:
        if c.running and not c.state["Restarting"]:
            if sampler is None or sampler.pid != c.state["Pid"]:
                sampler = _sampler(c)
            obj = sampler.sample()
        else:
            sampler = None
            obj = zero("/" + c.name, c.id)
        try:
            await send_json(resp, obj)
        except ConnectionError:
            break
        await asyncio.sleep(INTERVAL)
        if c.id not in daemon(request).containers.by_id:
            break  # removed: dockerd ends the stream
    return resp


async def pause(request: web.Request) -> web.Response:
    c = _container(request)
    await asyncio.shield(ops.pause(daemon(request).containers, c))
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    c = _container(request)
    await asyncio.shield(ops.unpause(daemon(request).containers, c))
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    c = _container(request)
    ops.rename(daemon(request).containers, c, request.query.get("name", ""))
    return web.Response(status=204)


async def update(request: web.Request) -> web.Response:
    c = _container(request)
    b = await body(request)
    warnings = await asyncio.shield(ops.update(daemon(request).containers, c, b))
    return reply({"Warnings": warnings})


async def top(request: web.Request) -> web.Response:
    c = _container(request)
    return reply(await ops.top(daemon(request).containers, c,
                               request.query.get("ps_args", "")))


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/containers/{id}/stats", stats),
    ("GET", "/containers/{id}/top", top),
    ("POST", "/containers/{id}/pause", pause),
    ("POST", "/containers/{id}/unpause", unpause),
    ("POST", "/containers/{id}/rename", rename),
    ("POST", "/containers/{id}/update", update),
]
