"""`pallet registry serve` configuration: a TOML file, then flags over it.

    [http]
    addr = "127.0.0.1:5000"          # host:port
    tls_cert = "/etc/pallet/registry.crt"
    tls_key = "/etc/pallet/registry.key"
    rate_limit = 0.0                 # requests per second per client IP (0: no limit);
    rate_burst = 0                   # over it: 429 TOOMANYREQUESTS; burst default 2x rate
    referrers_page_size = 1000       # referrers listed per response; more: Link rel="next"

    [storage]
    root = "/var/lib/pallet-registry"
    delete = true                    # DELETE of manifests, tags, blobs (else UNSUPPORTED)
    max_manifest_size = 4194304

    [auth]
    type = "none"                    # none | htpasswd | token
    realm = "pallet-registry"
    htpasswd = "/etc/pallet/htpasswd"   # bcrypt entries (htpasswd -B)
    anonymous_read = false           # pull without credentials

    [auth.token]                     # with type = "token": the registry is its own issuer
    realm = ""                       # default: this server's /token
    service = "pallet-registry"
    issuer = "pallet-registry"
    secret_file = ""                 # HS256 key; default <storage.root>/token.key
    expiration = 300
    signing = "HS256"                # or RS256: signed by key_file, with the x5c chain of
    key_file = ""                    # cert_file (PEM, leaf first), which other registries
    cert_file = ""                   # (docker-registry's `rootcertbundle`) can verify;
                                     # default: a CA and a signing cert made under the
                                     # storage root (token-ca.crt is the bundle to trust)

    [[auth.token.access]]            # first match wins; default: accounts get everything
    account = "alice"                # "*" = any authenticated account, "" = anonymous
    name = "alice/*"                 # fnmatch pattern of repository names
    actions = ["pull", "push", "delete"]
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from pallet.errors import InvalidArgument

DEFAULT_ADDR = "127.0.0.1:5000"
DEFAULT_ROOT = "/var/lib/pallet-registry"
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
AUTH_TYPES = ("none", "htpasswd", "token")
SIGNING = ("HS256", "RS256")


@dataclass
class AccessRule:
    account: str
    name: str
    actions: list[str]


@dataclass
class TokenConfig:
    realm: str = ""
    service: str = "pallet-registry"
    issuer: str = "pallet-registry"
    secret_file: str = ""
    expiration: int = 300
    access: list[AccessRule] = field(default_factory=list)
    signing: str = "HS256"
    key_file: str = ""
    cert_file: str = ""


@dataclass
class Config:
    addr: str = DEFAULT_ADDR
    tls_cert: str = ""
    tls_key: str = ""
    root: str = DEFAULT_ROOT
    delete: bool = True
    max_manifest_size: int = MAX_MANIFEST_SIZE
    auth: str = "none"
    realm: str = "pallet-registry"
    htpasswd: str = ""
    anonymous_read: bool = False
    token: TokenConfig = field(default_factory=TokenConfig)
    rate_limit: float = 0.0
    rate_burst: int = 0
    referrers_page_size: int = 1000

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_addr(self.addr)

    def validate(self) -> Config:
        parse_addr(self.addr)
        if self.auth not in AUTH_TYPES:
            raise InvalidArgument(f"auth.type {self.auth!r}: want one of {AUTH_TYPES}")
        if self.auth == "htpasswd" and not self.htpasswd:
            raise InvalidArgument("auth.type htpasswd needs auth.htpasswd")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise InvalidArgument("http.tls_cert and http.tls_key go together")
        if self.max_manifest_size <= 0:
            raise InvalidArgument("storage.max_manifest_size must be positive")
        if self.rate_limit < 0 or self.rate_burst < 0:
            raise InvalidArgument("http.rate_limit and http.rate_burst must not be negative")
        if self.referrers_page_size <= 0:
            raise InvalidArgument("http.referrers_page_size must be positive")
        if self.token.signing not in SIGNING:
            raise InvalidArgument(f"auth.token.signing {self.token.signing!r}: want one of "
                                  f"{SIGNING}")
        if bool(self.token.key_file) != bool(self.token.cert_file):
            raise InvalidArgument("auth.token.key_file and cert_file go together")
        for rule in self.token.access:
            bad = set(rule.actions) - {"pull", "push", "delete", "*"}
            if bad:
                raise InvalidArgument(f"auth.token.access: unknown actions {sorted(bad)}")
        return self


def parse_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidArgument(f"address {addr!r}: want host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def _section(doc: dict[str, Any], key: str) -> dict[str, Any]:
    v = doc.get(key, {})
    if not isinstance(v, dict):
        raise InvalidArgument(f"config: [{key}] must be a table")
    return v


def _typed(d: dict[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    v = d.get(key, default)
    # bool is an int in Python; a port or size given as `true` is still wrong.
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise InvalidArgument(f"config: {where}.{key} must be {kind.__name__}, got {v!r}")
    return v


_KNOWN = {"http": {"addr", "tls_cert", "tls_key", "rate_limit", "rate_burst",
                  "referrers_page_size"},
          "storage": {"root", "delete", "max_manifest_size"},
          "auth": {"type", "realm", "htpasswd", "anonymous_read", "token"}}


def from_dict(doc: dict[str, Any]) -> Config:
    for key in doc:
        if key not in _KNOWN:
            raise InvalidArgument(f"config: unknown section [{key}]")
    for sec, known in _KNOWN.items():
        unknown = set(_section(doc, sec)) - known
        if unknown:
            raise InvalidArgument(f"config: unknown keys in [{sec}]: {sorted(unknown)}")
    http, storage, auth = (_section(doc, k) for k in ("http", "storage", "auth"))
    d = Config()
    tok = _section(auth, "token")
    rules = []
    for i, r in enumerate(tok.get("access", [])):
        where = f"auth.token.access[{i}]"
        if not isinstance(r, dict):
            raise InvalidArgument(f"config: {where} must be a table")
        actions = _typed(r, "actions", list, where, [])
        rules.append(AccessRule(_typed(r, "account", str, where, "*"),
                                _typed(r, "name", str, where, "*"),
                                [str(a) for a in actions]))
    token = TokenConfig(
        realm=_typed(tok, "realm", str, "auth.token", ""),
        service=_typed(tok, "service", str, "auth.token", d.token.service),
        issuer=_typed(tok, "issuer", str, "auth.token", d.token.issuer),
        secret_file=_typed(tok, "secret_file", str, "auth.token", ""),
        expiration=_typed(tok, "expiration", int, "auth.token", d.token.expiration),
        access=rules,
        signing=_typed(tok, "signing", str, "auth.token", d.token.signing),
        key_file=_typed(tok, "key_file", str, "auth.token", ""),
        cert_file=_typed(tok, "cert_file", str, "auth.token", ""),
    )
    rate = http.get("rate_limit", 0.0)
    if isinstance(rate, int) and not isinstance(rate, bool):
        rate = float(rate)
    return Config(
        addr=_typed(http, "addr", str, "http", d.addr),
        tls_cert=_typed(http, "tls_cert", str, "http", ""),
        tls_key=_typed(http, "tls_key", str, "http", ""),
        rate_limit=_typed({"rate_limit": rate}, "rate_limit", float, "http", 0.0),
        rate_burst=_typed(http, "rate_burst", int, "http", 0),
        referrers_page_size=_typed(http, "referrers_page_size", int, "http",
                                   d.referrers_page_size),
        root=_typed(storage, "root", str, "storage", d.root),
        delete=_typed(storage, "delete", bool, "storage", d.delete),
        max_manifest_size=_typed(storage, "max_manifest_size", int, "storage",
                                 d.max_manifest_size),
        auth=_typed(auth, "type", str, "auth", d.auth),
        realm=_typed(auth, "realm", str, "auth", d.realm),
        htpasswd=_typed(auth, "htpasswd", str, "auth", ""),
        anonymous_read=_typed(auth, "anonymous_read", bool, "auth", False),
        token=token,
    ).validate()


def load(path: str | os.PathLike[str] | None) -> Config:
    if path is None:
        return Config()
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise InvalidArgument(f"config {path}: {e}") from None
    return from_dict(doc)
