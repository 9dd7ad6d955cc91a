"""What every engine module uses: the daemon object, query and body parsing, JSON replies,
and chunked JSON streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pallet.errors import InvalidArgument

if TYPE_CHECKING:
    from pallet.daemon.server import Daemon

DAEMON: web.AppKey[Daemon] = web.AppKey("daemon")


def daemon(request: web.Request) -> Daemon:
    return request.app[DAEMON]


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    v = request.query.get(name)
    if v is None or v == "":
        return default
    return v.lower() not in ("0", "false", "no")


def qint(request: web.Request, name: str, default: int | None = None) -> int | None:
    v = request.query.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {v!r}") from None


def query_json(request: web.Request, name: str, default: Any) -> Any:
    """A query parameter that holds JSON (`filters`, `buildargs`...); `default` when it is
    absent or empty."""
    raw = request.query.get(name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name}: {raw!r}") from None


def filters(request: web.Request) -> dict[str, list[str]]:
    """`filters` as JSON: {"key": ["v", ...]} or the older {"key": {"v": true}}."""
    d = query_json(request, "filters", {})
    out: dict[str, list[str]] = {}
    for k, v in (d or {}).items():
        out[k] = [x for x, on in v.items() if on] if isinstance(v, dict) else list(v)
    return out


async def fetch_url(url: str, what: str, info: dict[str, str] | None = None
                    ) -> AsyncIterator[bytes]:
    """The body at an http(s) URL, fetched by palletd itself (`docker import <url>`, remote
    build contexts, as dockerd); errors start with `what` and the URL; `info` gets the
    response's content type."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url) as r:
            if r.status != 200:
                raise InvalidArgument(f"{what} {url}: {r.status} {r.reason or ''}".rstrip())
            if info is not None:
                info["content_type"] = r.content_type
            async for chunk in r.content.iter_chunked(1 << 20):
                yield chunk
    except (aiohttp.ClientError, TimeoutError) as e:
        raise InvalidArgument(f"{what} {url}: {str(e) or type(e).__name__}") from None


async def body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        d = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"invalid JSON body: {e}") from None
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise InvalidArgument("the body must be a JSON object")
    return d


def reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data).encode(),
                        content_type="application/json")


async def stream_json(request: web.Request) -> web.StreamResponse:
    """A chunked JSON stream whose headers are sent now (clients wait for them)."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    return resp


async def send_json(resp: web.StreamResponse, obj: Any) -> None:
    await resp.write(json.dumps(obj).encode() + b"\n")
