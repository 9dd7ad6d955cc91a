"""/networks: list, inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from pallet.daemon.engine.common import body, daemon, filters, reply
from pallet.daemon.filters import prune_filter
from pallet.daemon.images import parse_time
from pallet.daemon.networks import Network
from pallet.errors import FailedPrecondition, InvalidArgument


def _attached(request: web.Request, n: Network) -> dict[str, dict[str, Any]]:
    """Docker's Containers map of a network: its running containers' endpoints."""
    out = {}
    for c in daemon(request).containers.by_id.values():
        ep = ((c.rec.get("NetworkSettings") or {}).get("Networks") or {}).get(n.name)
        if not c.running or ep is None:
            continue
        ip = f"{ep['IPAddress']}/{ep['IPPrefixLen']}" if ep.get("IPAddress") else ""
        out[c.id] = {"Name": c.name, "EndpointID": ep.get("EndpointID", ""),
                     "MacAddress": ep.get("MacAddress", ""), "IPv4Address": ip,
                     "IPv6Address": ""}
    return out


def _users(request: web.Request, n: Network) -> list[str]:
    return [c.name for c in daemon(request).containers.by_id.values()
            if n.name in ((c.rec.get("NetworkSettings") or {}).get("Networks") or {})]


async def list_(request: web.Request) -> web.Response:
    d = daemon(request)
    f = filters(request)
    nets = d.networks.list(f)
    for v in f.get("dangling", []):
        want = v.lower() in ("1", "true")
        nets = [n for n in nets if n.user_defined and (not _users(request, n)) == want]
    return reply([d.networks.inspect(n, _attached(request, n)) for n in nets])


async def inspect(request: web.Request) -> web.Response:
    d = daemon(request)
    n = d.networks.get(request.match_info["id"])
    return reply(d.networks.inspect(n, _attached(request, n)))


async def create(request: web.Request) -> web.Response:
    d = daemon(request)
    b = await body(request)
    n = await asyncio.get_running_loop().run_in_executor(None, d.networks.create, b)
    d.events.publish("network", "create", n.id, {"name": n.name, "type": n.driver})
    return reply({"Id": n.id, "Warning": ""}, 201)


def _remove(request: web.Request, n: Network) -> None:
    d = daemon(request)
    active = [c.name for c in d.containers.by_id.values() if c.running and n.name in
              ((c.rec.get("NetworkSettings") or {}).get("Networks") or {})]
    if active:
        raise FailedPrecondition(f"error while removing network: network {n.name} id {n.id} "
                                 f"has active endpoints ({', '.join(sorted(active))})")
    d.networks.remove(n)
    d.events.publish("network", "destroy", n.id, {"name": n.name, "type": n.driver})


async def remove(request: web.Request) -> web.Response:
    d = daemon(request)
    await d.containers.sandboxes.settle()  # DELs under way still need the bridge
    _remove(request, d.networks.get(request.match_info["id"]))
    return web.Response(status=204)


async def _endpoint_change(request: web.Request, action: str) -> web.Response:
    d = daemon(request)
    n = d.networks.get(request.match_info["id"])
    b = await body(request)
    if not b.get("Container"):
        raise InvalidArgument(f"{action}: Container is required")
    c = d.containers.get(b["Container"])
    sb = d.containers.sandboxes
    async with c.lock:
        if action == "connect":
            await sb.connect(c, n, b.get("EndpointConfig") or {})
        else:
            await sb.disconnect(c, n)
        d.containers.save(c)
    d.events.publish("network", action, n.id, {"container": c.id, "name": n.name,
                                               "type": n.driver})
    return web.Response(status=200)


async def connect(request: web.Request) -> web.Response:
    return await _endpoint_change(request, "connect")


async def disconnect(request: web.Request) -> web.Response:
    return await _endpoint_change(request, "disconnect")


async def prune(request: web.Request) -> web.Response:
    d = daemon(request)
    wanted = prune_filter(filters(request))
    deleted = []
    await d.containers.sandboxes.settle()
    for n in d.networks.list({}):
        if not wanted(parse_time(n.rec.get("Created")), n.rec.get("Labels") or {}):
            continue
        if n.user_defined and not _users(request, n):
            _remove(request, n)
            deleted.append(n.name)
    return reply({"NetworksDeleted": deleted or None})


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/networks", list_),
    ("POST", "/networks/create", create),
    ("POST", "/networks/prune", prune),
    ("GET", "/networks/{id}", inspect),
    ("DELETE", "/networks/{id}", remove),
    ("POST", "/networks/{id}/connect", connect),
    ("POST", "/networks/{id}/disconnect", disconnect),
]
