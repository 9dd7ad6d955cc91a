"""/containers: create, start, stop, kill, restart, wait, attach, logs, resize, inspect,
list, remove, prune."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from pallet.daemon.containers import NotModified
from pallet.daemon.engine.common import (
    body,
    daemon,
    filters,
    qbool,
    qint,
    reply,
    send_json,
    stream_json,
)
from pallet.daemon.engine.hijack import Hijacked
from pallet.daemon.filters import prune_filter, timestamp
from pallet.daemon.images import parse_time
from pallet.daemon.keys import parse_detach_keys
from pallet.daemon.logs import read as read_logs
from pallet.errors import FailedPrecondition, InvalidArgument, NotFound, PalletError, http_status
from pallet.shim import wire


def _container(request: web.Request):
    return daemon(request).containers.get(request.match_info["id"])


async def create(request: web.Request) -> web.Response:
    d = daemon(request)
    b = await body(request)
    name = request.query.get("name") or None
    c = await asyncio.shield(d.containers.create(b, name))
    return reply({"Id": c.id, "Warnings": c.warnings}, 201)


async def start(request: web.Request) -> web.Response:
    c = _container(request)
    try:
        await asyncio.shield(daemon(request).containers.start(c))
    except NotModified:
        return web.Response(status=304)
    return web.Response(status=204)


async def stop(request: web.Request) -> web.Response:
    c = _container(request)
    try:
        await asyncio.shield(daemon(request).containers.stop(
            c, qint(request, "t"), request.query.get("signal") or None))
    except NotModified:
        return web.Response(status=304)
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    c = _container(request)
    await asyncio.shield(daemon(request).containers.kill(c, request.query.get("signal")))
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    c = _container(request)
    await asyncio.shield(daemon(request).containers.restart(c, qint(request, "t")))
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    d = daemon(request)
    c = _container(request)
    condition = request.query.get("condition", "")
    waiting = asyncio.ensure_future(d.containers.wait(c, condition))
    await asyncio.sleep(0)  # register the waiter before answering (the client starts next)
    resp = await stream_json(request)
    try:
        code = await waiting
        await send_json(resp, {"Error": None, "StatusCode": code})
    except PalletError as e:
        await send_json(resp, {"Error": {"Message": str(e)}, "StatusCode": -1})
    finally:
        waiting.cancel()
    await resp.write_eof()
    return resp


async def attach(request: web.Request) -> web.StreamResponse:
    d = daemon(request)
    c = _container(request)
    if not qbool(request, "stream") and not qbool(request, "logs"):
        raise InvalidArgument("attach: stream or logs must be set")
    if c.state.get("Paused"):
        raise FailedPrecondition("You cannot attach to a paused container, unpause it first")
    try:
        keys = parse_detach_keys(request.query.get("detachKeys"))
    except ValueError as e:
        raise InvalidArgument(str(e)) from None
    h = Hijacked(request)
    resp = await h.upgrade()
    try:
        if qbool(request, "logs") and c.rec["LogPath"]:
            async for e in read_logs(c.rec["LogPath"], stdout=qbool(request, "stdout"),
                                     stderr=qbool(request, "stderr")):
                s = wire.STDERR if e.stream == "stderr" else wire.STDOUT
                await h.write(e.data if c.tty else wire.frame(s, e.data))
        if qbool(request, "stream"):
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await d.containers.attach(
                    c, h, stdin=qbool(request, "stdin"), stdout=qbool(request, "stdout"),
                    stderr=qbool(request, "stderr"), detach_keys=keys)
    except PalletError:
        pass  # the start that failed reports the error; the stream just ends
    finally:
        h.close()
    return resp


async def logs(request: web.Request) -> web.StreamResponse:
    c = _container(request)
    stdout, stderr = qbool(request, "stdout"), qbool(request, "stderr")
    if not stdout and not stderr:
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    tail_q = request.query.get("tail", "all")
    tail = None if tail_q in ("", "all") else int(tail_q) if tail_q.lstrip("-").isdigit() \
        else None
    since = timestamp(request.query["since"]) if request.query.get("since") else 0.0
    until = timestamp(request.query["until"]) if request.query.get("until") else 0.0
    timestamps = qbool(request, "timestamps")
    if not c.rec["LogPath"]:  # the none driver; dockerd's "not implemented"
        return reply({"message": "configured logging driver does not support reading"}, 501)
    resp = web.StreamResponse(status=200)
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    tty = c.tty
    async for e in read_logs(c.rec["LogPath"], stdout=stdout, stderr=stderr, since=since,
                             until=until, tail=tail, follow=qbool(request, "follow"),
                             running=lambda: c.running or c.state["Restarting"]):
        data = (e.time.encode() + b" " + e.data) if timestamps else e.data
        s = wire.STDERR if e.stream == "stderr" else wire.STDOUT
        await resp.write(data if tty else wire.frame(s, data))
    await resp.write_eof()
    return resp


async def resize(request: web.Request) -> web.Response:
    c = _container(request)
    await daemon(request).containers.resize(c, qint(request, "h", 0) or 0,
                                            qint(request, "w", 0) or 0)
    return web.Response(status=200)


async def inspect(request: web.Request) -> web.Response:
    c = _container(request)
    d = daemon(request)
    out = d.containers.inspect(c)
    if qbool(request, "size"):
        (out["SizeRw"], out["SizeRootFs"]), = await d.blocking(d.sizes, [c])
    return reply(out)


async def list_(request: web.Request) -> web.Response:
    d = daemon(request)
    out = d.containers.list(qbool(request, "all"), filters(request),
                            qint(request, "limit", -1) or -1)
    if qbool(request, "size") and out:
        sizes = await d.blocking(d.sizes, [d.containers.by_id[s["Id"]] for s in out])
        for s, (rw, root) in zip(out, sizes, strict=True):
            s["SizeRw"], s["SizeRootFs"] = rw, root
    return reply(out)


async def remove(request: web.Request) -> web.Response:
    if qbool(request, "link"):  # `docker rm --link parent/alias`
        daemon(request).containers.remove_link(request.match_info["id"])
        return web.Response(status=204)
    c = _container(request)
    await asyncio.shield(daemon(request).containers.remove(c, qbool(request, "force"),
                                                           qbool(request, "v")))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    d = daemon(request)
    wanted = prune_filter(filters(request))
    deleted: list[str] = []
    for c in list(d.containers.by_id.values()):
        if c.running or c.state["Restarting"]:
            continue
        if not wanted(parse_time(c.rec["Created"]), c.rec["Config"].get("Labels") or {}):
            continue
        with contextlib.suppress(NotFound):
            await asyncio.shield(d.containers.remove(c))
            deleted.append(c.id)
    return reply({"ContainersDeleted": deleted or None, "SpaceReclaimed": 0})


def _error_status(e: BaseException) -> int:
    return http_status(e)


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/containers/create", create),
    ("GET", "/containers/json", list_),
    ("POST", "/containers/prune", prune),
    ("GET", "/containers/{id}/json", inspect),
    ("GET", "/containers/{id}/logs", logs),
    ("POST", "/containers/{id}/start", start),
    ("POST", "/containers/{id}/stop", stop),
    ("POST", "/containers/{id}/kill", kill),
    ("POST", "/containers/{id}/restart", restart),
    ("POST", "/containers/{id}/wait", wait),
    ("POST", "/containers/{id}/attach", attach),
    ("POST", "/containers/{id}/resize", resize),
    ("DELETE", "/containers/{id:.+}", remove),  # a link's name has a slash
]
