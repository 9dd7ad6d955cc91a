"""Repository names and tags as the distribution-spec writes them ("Pulling manifests"),
and the request paths that carry them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pallet.oci import digest as _digest

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
# Clients limit `host[:port]/name` to 255 characters; leave room for a host.
NAME_MAX = 255


def valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX and bool(NAME.match(name))


def valid_tag(tag: str) -> bool:
    return bool(TAG.match(tag))


def is_digest(reference: str) -> bool:
    """A manifest `<reference>` is a digest when it has a ':' (a tag cannot)."""
    return ":" in reference


# Endpoint kinds, after spec.md's endpoint table.
BASE = "base"            # end-1
BLOB = "blob"            # end-2, end-10
MANIFEST = "manifest"    # end-3, end-7, end-9
UPLOADS = "uploads"      # end-4, end-11
UPLOAD = "upload"        # end-5, end-6, end-13, end-14
TAGS = "tags"            # end-8
REFERRERS = "referrers"  # end-12
CATALOG = "catalog"      # Docker's /v2/_catalog

# The name is greedy, so the endpoint is the rightmost match: a repository may well have a
# component called "manifests" or "blobs".
_PATH = re.compile(
    r"^/v2/(?P<name>.+)/(?:"
    r"manifests/(?P<manifest>[^/]+)|"
    r"blobs/uploads/(?P<upload>[^/]*)|"
    r"blobs/(?P<blob>[^/]+)|"
    r"(?P<tags>tags/list)|"
    r"referrers/(?P<referrers>[^/]+))$"
)


@dataclass(frozen=True)
class Route:
    kind: str
    name: str = ""
    arg: str = ""


def route(path: str) -> Route | None:
    """The endpoint `path` names, or None (not a registry path). The name is not validated
    here: the caller answers NAME_INVALID, not 404, for a bad name."""
    if path in ("/v2", "/v2/"):
        return Route(BASE)
    if path == "/v2/_catalog":
        return Route(CATALOG)
    m = _PATH.match(path)
    if m is None:
        return None
    name = m.group("name")
    for kind, group in ((MANIFEST, "manifest"), (BLOB, "blob"), (TAGS, "tags"),
                        (REFERRERS, "referrers")):
        if m.group(group) is not None:
            return Route(kind, name, m.group(group) if kind != TAGS else "")
    upload = m.group("upload")
    return Route(UPLOADS if upload == "" else UPLOAD, name, upload)


def parse_digest(value: str) -> _digest.Digest | None:
    try:
        return _digest.parse(value)
    except _digest.DigestError:
        return None
