"""Where a registry's requests go: containerd's hosts.toml model.

    <hosts_dir>/<registry>/hosts.toml     e.g. /etc/pallet/certs.d/docker.io/hosts.toml

    server = "https://registry-1.docker.io"     # the upstream (default: https://<registry>)
    skip_verify = false
    [host."http://mirror.local:5000"]           # mirrors, tried in order before the server
      capabilities = ["pull", "resolve"]        # push goes only to hosts that have "push"
      skip_verify = true
      ca = "/etc/pallet/certs.d/mirror.crt"     # or a list
      client = ["/path/client.crt", "/path/client.key"]
      override_path = false                     # true: the URL already ends in the API root
      [host."http://mirror.local:5000".header]
        x-custom = "1"

`insecure` marks a registry whose TLS is not verified and that may answer on plain http
(Docker's insecure-registries); `plain_http` sends http only (`ctr --plain-http`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from pallet.errors import InvalidArgument

DEFAULT_HOSTS_DIR = "/etc/pallet/certs.d"
DOCKER_HUB = "docker.io"
DOCKER_HUB_SERVER = "https://registry-1.docker.io"
PULL, RESOLVE, PUSH = "pull", "resolve", "push"
ALL_CAPABILITIES = frozenset({PULL, RESOLVE, PUSH})


@dataclass
class Endpoint:
    """One host to send a registry's requests to."""

    scheme: str                       # https | http
    host: str                         # host[:port]
    path: str = "/v2"                 # the API root on that host
    capabilities: frozenset[str] = ALL_CAPABILITIES
    skip_verify: bool = False
    ca: list[str] = field(default_factory=list)
    client_cert: tuple[str, str] | None = None
    header: dict[str, str] = field(default_factory=dict)
    # https first, then http when https cannot connect (Docker's insecure registries)
    http_fallback: bool = False
    mirror: bool = False

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}{self.path}"

    def can(self, capability: str) -> bool:
        return capability in self.capabilities


def _split_url(url: str, where: str) -> tuple[str, str, str]:
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "https", url
    if scheme not in ("http", "https"):
        raise InvalidArgument(f"{where}: unsupported scheme {scheme!r}")
    host, _, path = rest.partition("/")
    if not host:
        raise InvalidArgument(f"{where}: no host in {url!r}")
    return scheme, host, ("/" + path).rstrip("/")


def _str_list(v: Any, where: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    raise InvalidArgument(f"{where}: want a string or a list of strings")


def _endpoint(url: str, spec: dict[str, Any], where: str, *, mirror: bool) -> Endpoint:
    scheme, host, path = _split_url(url, where)
    caps = spec.get("capabilities")
    capabilities = ALL_CAPABILITIES if caps is None else frozenset(_str_list(caps, where))
    bad = capabilities - ALL_CAPABILITIES
    if bad:
        raise InvalidArgument(f"{where}: unknown capabilities {sorted(bad)}")
    if not spec.get("override_path", False):
        path = path + "/v2"
    client = _str_list(spec.get("client"), f"{where}.client")
    header = spec.get("header") or {}
    if not isinstance(header, dict):
        raise InvalidArgument(f"{where}.header: want a table")
    return Endpoint(
        scheme=scheme, host=host, path=path, capabilities=capabilities,
        skip_verify=bool(spec.get("skip_verify", False)),
        ca=_str_list(spec.get("ca"), f"{where}.ca"),
        client_cert=(client[0], client[1]) if len(client) == 2 else
        ((client[0], client[0]) if len(client) == 1 else None),
        header={str(k): str(v) for k, v in header.items()}, mirror=mirror)


def default_server(registry: str) -> str:
    return DOCKER_HUB_SERVER if registry == DOCKER_HUB else f"https://{registry}"


def parse_hosts(doc: dict[str, Any], registry: str, where: str = "hosts.toml"
                ) -> list[Endpoint]:
    """The endpoints of one registry's hosts.toml, mirrors first, the server last."""
    out = []
    hosts = doc.get("host") or {}
    if not isinstance(hosts, dict):
        raise InvalidArgument(f"{where}: [host] must be a table")
    for url, spec in hosts.items():
        if not isinstance(spec, dict):
            raise InvalidArgument(f"{where}: host {url!r} must be a table")
        out.append(_endpoint(url, spec, f"{where}: host {url!r}", mirror=True))
    server = doc.get("server", default_server(registry))
    if not isinstance(server, str):
        raise InvalidArgument(f"{where}: server must be a string")
    top = {k: v for k, v in doc.items() if k not in ("server", "host")}
    out.append(_endpoint(server, top, f"{where}: server", mirror=False))
    return out


def _dir_name(registry: str) -> str:
    return registry


def endpoints(registry: str, *, hosts_dir: str | None = None, insecure: bool = False,
              plain_http: bool = False) -> list[Endpoint]:
    """The endpoints for `registry` (a reference's domain, e.g. `docker.io`,
    `localhost:5000`), from `<hosts_dir>/<registry>/hosts.toml` when it exists."""
    hosts_dir = hosts_dir if hosts_dir is not None else os.environ.get(
        "PALLET_HOSTS_DIR", DEFAULT_HOSTS_DIR)
    path = os.path.join(hosts_dir, _dir_name(registry), "hosts.toml") if hosts_dir else ""
    if path and os.path.exists(path):
        try:
            with open(path, "rb") as f:
                eps = parse_hosts(tomllib.load(f), registry, path)
        except tomllib.TOMLDecodeError as e:
            raise InvalidArgument(f"{path}: {e}") from None
    else:
        eps = parse_hosts({}, registry)
    for ep in eps:
        if plain_http:
            ep.scheme = "http"
        elif insecure and ep.scheme == "https":
            ep.skip_verify = True
            ep.http_fallback = True
    return eps
