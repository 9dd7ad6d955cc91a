"""Image references (distribution/reference's grammar, and Docker's normalisation).

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path-component ["/" path-component]*
    domain     := host [":" port]

`busybox` -> `docker.io/library/busybox:latest`; the first component is a domain only if it
has a `.` or a `:` or is `localhost`, as Docker decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pallet.errors import InvalidArgument
from pallet.oci import digest as _digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"

_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_NAME_MAX = 255


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: _digest.Digest | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def familiar(self) -> str:
        """The short form Docker prints: `busybox:latest`, `me/app:1`."""
        name = self.path
        if self.domain != DEFAULT_DOMAIN:
            name = self.name
        elif name.startswith(OFFICIAL_REPO_PREFIX) and name.count("/") == 1:
            name = name[len(OFFICIAL_REPO_PREFIX):]
        if self.tag is not None:
            name += f":{self.tag}"
        if self.digest is not None:
            name += f"@{self.digest}"
        return name

    def with_tag(self, tag: str) -> Reference:
        if not _TAG.match(tag):
            raise InvalidArgument(f"invalid tag {tag!r}")
        return Reference(self.domain, self.path, tag, None)


def parse(ref: str) -> Reference:
    """Parse and normalise `ref`; a reference without tag or digest gets `:latest`."""
    r = parse_named(ref)
    if r.tag is None and r.digest is None:
        return Reference(r.domain, r.path, DEFAULT_TAG, None)
    return r


def parse_named(ref: str) -> Reference:
    """Parse and normalise the name, keeping tag and digest as given (maybe none)."""
    if not ref or ref != ref.strip():
        raise InvalidArgument(f"invalid reference {ref!r}: empty or surrounded by spaces")
    rest, dg = ref, None
    if "@" in rest:
        rest, _, raw = rest.partition("@")
        try:
            dg = _digest.parse(raw)
        except _digest.DigestError as e:
            raise InvalidArgument(f"invalid reference {ref!r}: {e}") from None
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:  # a ':' after the last '/' is a tag, not a port
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidArgument(f"invalid reference {ref!r}: invalid tag {tag!r}")
    domain, path = _split_domain(rest, ref)
    for comp in path.split("/"):
        if not _PATH_COMPONENT.match(comp):
            if comp.lower() != comp:
                raise InvalidArgument(
                    f"invalid reference {ref!r}: repository name must be lowercase")
            raise InvalidArgument(f"invalid reference {ref!r}: invalid path component "
                                  f"{comp!r}")
    if len(domain) + 1 + len(path) > _NAME_MAX:
        raise InvalidArgument(f"invalid reference {ref!r}: name longer than {_NAME_MAX}")
    return Reference(domain, path, tag, dg)


def _split_domain(name: str, ref: str) -> tuple[str, str]:
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.match(first):
            raise InvalidArgument(f"invalid reference {ref!r}: invalid domain {first!r}")
        domain, path = first, remainder
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    if not path:
        raise InvalidArgument(f"invalid reference {ref!r}: empty repository")
    return domain, path


def normalize(ref: str) -> str:
    return str(parse(ref))


def is_tag_only(value: str) -> bool:
    """An OCI layout `ref.name` that is just a tag (`latest`, `v1.0`), no repository."""
    return bool(_TAG.match(value)) and "/" not in value and ":" not in value
