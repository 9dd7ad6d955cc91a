"""What every engine module uses: the daemon object, query and body parsing, JSON replies,
and chunked JSON streams."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pallet.daemon.labels import label_matches
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


def timestamp(value: str, now: float | None = None) -> float:
    """A point in time as docker's API takes it (GetTimestamp): a Go duration before now
    (`10m`, `1h30m`), Unix seconds (`1600000000.5`), or an RFC 3339 date or time."""
    from pallet.build.dockerfile import parse_duration

    now = time.time() if now is None else now
    text = value.strip()
    if text != "0":  # "0" is the epoch, not now
        try:
            return now - parse_duration(text) / 1e9
        except ValueError:
            pass
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"failed to parse value as time or duration: {value!r}"
                              ) from None
    return t.timestamp()  # without a zone: local time, as docker


def prune_filter(f: dict[str, list[str]], keys: tuple[str, ...] = ("until", "label",
                                                                    "label!")
                 ) -> Callable[[float, dict[str, str]], bool]:
    """docker's prune filters as a test of (created, labels): `until` (created before),
    `label` (each must match, `key` or `key=value`) and `label!` (none may)."""
    for key in f:
        if key not in keys:
            raise InvalidArgument(f"invalid filter '{key}'")
    until = min((timestamp(u) for u in f.get("until", [])), default=None)

    def test(created: float, labels: dict[str, str]) -> bool:
        return ((until is None or created < until)
                and all(label_matches(labels, x) for x in f.get("label", []))
                and not any(label_matches(labels, x) for x in f.get("label!", [])))
    return test


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
