"""Published ports: docker's `-p [ip:][hostPort:]containerPort[/proto]` (with ranges) as the
portMappings capability of the CNI portmap plugin."""

from __future__ import annotations

from pallet.errors import InvalidArgument

TYPE_CHECKING = False  # the `pallet run -p` path: `typing` costs ms of imports
if TYPE_CHECKING:
    from typing import Any


def _range(text: str, what: str, spec: str) -> list[int]:
    lo, _, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        raise InvalidArgument(f"port {spec!r}: bad {what} {text!r}") from None
    if not (0 < a <= b <= 65535):
        raise InvalidArgument(f"port {spec!r}: {what} {text!r} out of range")
    return list(range(a, b + 1))


def parse(spec: str) -> list[dict[str, Any]]:
    body, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"port {spec!r}: unknown protocol {proto!r}")
    host_ip = ""
    if body.startswith("["):  # [ipv6]:host:container
        end = body.index("]")
        host_ip, body = body[1:end], body[end + 2:]
    parts = body.split(":")
    if len(parts) == 3:
        host_ip, host, container = parts
    elif len(parts) == 2:
        host, container = parts
    elif len(parts) == 1:
        host, container = "", parts[0]
    else:
        raise InvalidArgument(f"port {spec!r}: expected [ip:][hostPort:]containerPort")
    cports = _range(container, "container port", spec)
    hports = _range(host, "host port", spec) if host else [0] * len(cports)
    if len(hports) != len(cports):
        raise InvalidArgument(f"port {spec!r}: host and container ranges differ in size")
    return [{"hostPort": h, "containerPort": c, "protocol": proto, "hostIP": host_ip}
            for h, c in zip(hports, cports, strict=True)]
