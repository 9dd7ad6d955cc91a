"""docker's legacy links (`--link name[:alias]`, HostConfig.Links).

A link gives the container the linked container's address in /etc/hosts, under the alias,
the linked container's short id and its name, and docker's link environment: `<ALIAS>_NAME`,
`<ALIAS>_PORT` (the lowest exposed port), `<ALIAS>_PORT_<port>_<PROTO>` with its `_ADDR`,
`_PORT` and `_PROTO`, and `<ALIAS>_ENV_<VAR>` for the linked container's own variables.
Deprecated in docker, still used by old compose files and scripts. Both containers must
share a network, and the linked one must run when this one starts (docker's rules).
"""

from __future__ import annotations

from typing import Any

from pallet.errors import InvalidArgument


def parse(link: str) -> tuple[str, str]:
    """(linked container, alias) of `name`, `name:alias` or inspect's `/name:/this/alias`."""
    name, _, alias = link.partition(":")
    name = name.lstrip("/")
    alias = alias.rsplit("/", 1)[-1] if alias else name
    if not name or not alias:
        raise InvalidArgument(f"invalid link {link!r}: expected name or name:alias")
    return name, alias


def normalize(links: list[str] | None, this: str) -> list[str] | None:
    """HostConfig.Links as docker's inspect shows them: `/name:/this/alias`."""
    if not links:
        return None
    return [f"/{name}:/{this}/{alias}" for name, alias in map(parse, links)]


def _var(alias: str) -> str:
    return alias.upper().replace("-", "_")  # docker keeps dots


def _ports(exposed: dict[str, Any] | None) -> list[tuple[int, str]]:
    """Exposed ports as docker orders them for links: TCP first, then by protocol, then by
    number (so `_PORT`, the first, is the lowest TCP port when there is one)."""
    ports = []
    for key in exposed or {}:
        port, _, proto = key.partition("/")
        if port.isdigit():
            ports.append((int(port), proto or "tcp"))
    ports.sort(key=lambda p: (p[1] != "tcp", p[1], p[0]))
    return ports


def environment(this: str, alias: str, ip: str, exposed: dict[str, Any] | None,
                env: list[str] | None) -> list[str]:
    """docker's variables for one link, in its order (daemon/links): the first port; each
    port, and after the port that ends a run of consecutive ports of one protocol (or
    after the one that breaks it) the run's `_START`/`_END`; the name; the linked
    container's own variables."""
    a = _var(alias)
    ports = _ports(exposed)
    out = []
    if ports:
        port, proto = ports[0]
        out.append(f"{a}_PORT={proto}://{ip}:{port}")
    first = last = ports[0] if ports else (0, "")
    for i, (port, proto) in enumerate(ports):
        p = f"{a}_PORT_{port}_{proto.upper()}"
        out += [f"{p}={proto}://{ip}:{port}", f"{p}_ADDR={ip}", f"{p}_PORT={port}",
                f"{p}_PROTO={proto}"]
        if (port, proto) == (last[0] + 1, last[1]):
            last = (port, proto)
            if i < len(ports) - 1:
                continue
        if first != last:
            run = last[1]
            p = f"{a}_PORT_{first[0]}_{run.upper()}"
            out += [f"{p}_START={run}://{ip}:{first[0]}", f"{p}_PORT_START={first[0]}",
                    f"{p}_END={run}://{ip}:{last[0]}", f"{p}_PORT_END={last[0]}"]
        first = last = (port, proto)
    out.append(f"{a}_NAME=/{this}/{alias}")
    for item in env or []:
        key, sep, value = item.partition("=")
        if sep and key not in ("HOME", "PATH"):  # docker leaves out these two
            out.append(f"{a}_ENV_{key}={value}")
    return out

