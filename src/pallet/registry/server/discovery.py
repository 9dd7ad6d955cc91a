"""Content discovery: tag listing (sorted, `n`/`last` pagination, `Link: rel="next"`),
the referrers API (with `artifactType` filtering), and Docker's `_catalog`."""

from __future__ import annotations

import bisect
import json
from urllib.parse import urlencode

from aiohttp import web

from pallet.oci import mediatypes as mt
from pallet.oci.image import Descriptor, Index
from pallet.registry import names
from pallet.registry.errors import RegistryError
from pallet.registry.server.app import Registry
from pallet.registry.server.blobs import parse_digest

FILTERS_HEADER = "OCI-Filters-Applied"


def paginate(items: list[str], n: int | None, last: str | None) -> tuple[list[str], bool]:
    """A page of the sorted `items` after `last` (exclusive), at most `n` long; and whether
    more follow. n=0 is an empty page with no next (the spec says so)."""
    start = bisect.bisect_right(items, last) if last is not None else 0
    rest = items[start:]
    if n is None:
        return rest, False
    return rest[:n], n > 0 and len(rest) > n


def parse_n(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise RegistryError("PAGINATION_NUMBER_INVALID", {"n": value})
    return n


def next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'


async def list_tags(reg: Registry, request: web.Request, route: names.Route) -> web.Response:
    if not reg.storage.repo_exists(route.name):
        raise RegistryError("NAME_UNKNOWN", {"name": route.name})
    n = parse_n(request.query.get("n"))
    page, more = paginate(reg.storage.tags(route.name), n, request.query.get("last"))
    headers = {}
    if more and n:
        headers["Link"] = next_link(f"/v2/{route.name}/tags/list", n, page[-1])
    return web.json_response({"name": route.name, "tags": page}, headers=headers)


async def catalog(reg: Registry, request: web.Request, route: names.Route) -> web.Response:
    n = parse_n(request.query.get("n"))
    page, more = paginate(reg.storage.repositories(), n, request.query.get("last"))
    headers = {}
    if more and n:
        headers["Link"] = next_link("/v2/_catalog", n, page[-1])
    return web.json_response({"repositories": page}, headers=headers)


async def referrers(reg: Registry, request: web.Request, route: names.Route) -> web.Response:
    """The referrers index, in pages of at most `referrers_page_size` (or `n`) by digest
    order; a further page is announced by `Link: <...?n=&last=>; rel="next"` (the spec
    lets a registry paginate a large list this way, as tag listing does)."""
    subject = parse_digest(route.arg)
    want = request.query.get("artifactType")
    recs = {rec.digest: rec for rec in reg.storage.referrers(route.name, str(subject))
            if want is None or rec.artifact_type == want}
    n = parse_n(request.query.get("n"))
    size = reg.cfg.referrers_page_size if n is None else min(n, reg.cfg.referrers_page_size)
    page, more = paginate(sorted(recs), size, request.query.get("last"))
    out = [Descriptor(recs[d].media_type, parse_digest(d), recs[d].size,
                      annotations=recs[d].annotations, artifact_type=recs[d].artifact_type)
           for d in page]
    headers = {"Content-Type": mt.IMAGE_INDEX}
    if want is not None:
        headers[FILTERS_HEADER] = "artifactType"
    if more and size:
        query = {"n": size, "last": page[-1]}
        if want is not None:
            query["artifactType"] = want
        headers["Link"] = (f'</v2/{route.name}/referrers/{subject}?{urlencode(query)}>; '
                           'rel="next"')
    body = Index(out, media_type=mt.IMAGE_INDEX).to_dict()
    return web.Response(body=json.dumps(body).encode(), headers=headers)
