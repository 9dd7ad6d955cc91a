"""/volumes: create, list, inspect, remove, prune (the `local` driver only)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pallet.daemon.engine.common import body, daemon, filters, qbool, reply
from pallet.errors import InvalidArgument


def _strings(b: dict[str, Any], key: str) -> dict[str, str]:
    v = b.get(key) or {}
    if not isinstance(v, dict):
        raise InvalidArgument(f"{key} must be an object of strings")
    return {str(k): str(x) for k, x in v.items()}


async def create(request: web.Request) -> web.Response:
    b = await body(request)
    name = b.get("Name") or None
    if name is not None and not isinstance(name, str):
        raise InvalidArgument("Name must be a string")
    v = daemon(request).volumes.create(name, b.get("Driver") or None,
                                       _strings(b, "DriverOpts"), _strings(b, "Labels"))
    return reply(v, 201)


async def list_(request: web.Request) -> web.Response:
    vols = daemon(request).volumes.list(filters(request))
    return reply({"Volumes": vols, "Warnings": []})


async def inspect(request: web.Request) -> web.Response:
    vs = daemon(request).volumes
    return reply(vs.view(vs.get(request.match_info["name"])))


async def remove(request: web.Request) -> web.Response:
    d = daemon(request)
    # rmtree of a big volume runs off the event loop
    await d.blocking(d.volumes.remove, request.match_info["name"], qbool(request, "force"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    d = daemon(request)
    deleted, reclaimed = await d.blocking(d.volumes.prune, filters(request))
    return reply({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/volumes/create", create),
    ("POST", "/volumes/prune", prune),
    ("GET", "/volumes", list_),
    ("GET", "/volumes/{name}", inspect),
    ("DELETE", "/volumes/{name}", remove),
]
