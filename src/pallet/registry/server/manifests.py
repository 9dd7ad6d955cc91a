"""Manifest endpoints: GET/HEAD by tag or digest, PUT (validated: the document parses, its
media type agrees with Content-Type, every blob it references is in the repository),
DELETE of tags and manifests; a PUT with a `subject` answers `OCI-Subject`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from pallet.content.local import write_blob
from pallet.oci import digest as _digest
from pallet.oci import mediatypes as mt
from pallet.oci.image import Descriptor, Index, Manifest, ValidationError
from pallet.registry import names
from pallet.registry.errors import RegistryError
from pallet.registry.server.app import Registry
from pallet.registry.server.blobs import DIGEST_HEADER, _deletion_allowed, parse_digest
from pallet.registry.server.storage import ManifestRecord

SUBJECT_HEADER = "OCI-Subject"
TAG_HEADER = "OCI-Tag"
# Media types a manifest PUT accepts: OCI and Docker schema 2 (schema 1 is long gone).
ACCEPTED = mt.MANIFESTS | mt.INDEXES
# Layers a registry does not hold (image-spec: "nondistributable"; Docker: "foreign").
_FOREIGN = frozenset({mt.IMAGE_LAYER_NONDISTRIBUTABLE, mt.IMAGE_LAYER_NONDISTRIBUTABLE_GZIP,
                      mt.IMAGE_LAYER_NONDISTRIBUTABLE_ZSTD, mt.DOCKER_FOREIGN_LAYER_GZIP})


def manifest_location(name: str, dgst: str) -> str:
    return f"/v2/{name}/manifests/{dgst}"


def _lookup(reg: Registry, name: str, reference: str) -> ManifestRecord:
    if names.is_digest(reference):
        dgst = str(parse_digest(reference))
    else:
        if not names.valid_tag(reference):
            raise RegistryError("MANIFEST_INVALID", {"tag": reference},
                                message="invalid tag")
        found = reg.storage.resolve_tag(name, reference)
        if found is None:
            raise RegistryError("MANIFEST_UNKNOWN", {"tag": reference})
        dgst = found
    rec = reg.storage.get_manifest(name, dgst)
    if rec is None:
        raise RegistryError("MANIFEST_UNKNOWN", {"digest": dgst})
    return rec


async def get_manifest(reg: Registry, request: web.Request, route: names.Route
                       ) -> web.Response:
    rec = _lookup(reg, route.name, route.arg)
    headers = {DIGEST_HEADER: rec.digest, "Content-Type": rec.media_type,
               "ETag": f'"{rec.digest}"'}
    if request.method == "HEAD":
        headers["Content-Length"] = str(rec.size)
        return web.Response(status=200, headers=headers)
    body = reg.storage.content.read_blob(rec.digest)
    return web.Response(status=200, body=body, headers=headers)


def media_type_of(doc: dict[str, Any], content_type: str) -> str:
    """The manifest's media type: its `mediaType` field, which Content-Type must not
    contradict, else Content-Type, else what the document's shape says."""
    field = doc.get("mediaType")
    ct = content_type.split(";", 1)[0].strip().lower()
    if field is not None and not isinstance(field, str):
        raise RegistryError("MANIFEST_INVALID", "mediaType is not a string")
    if field and ct and ct not in ("application/octet-stream", "application/json")\
            and ct != field:
        raise RegistryError("MANIFEST_INVALID",
                            f"mediaType {field!r} does not match Content-Type {ct!r}")
    kind = field or (ct if ct in ACCEPTED else "")
    if not kind:
        kind = mt.IMAGE_INDEX if "manifests" in doc else mt.IMAGE_MANIFEST
    if kind not in ACCEPTED:
        raise RegistryError("MANIFEST_INVALID", f"unsupported manifest media type {kind!r}")
    return kind


def parse_manifest(data: bytes, content_type: str) -> tuple[str, Manifest | Index]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise RegistryError("MANIFEST_INVALID", f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise RegistryError("MANIFEST_INVALID", "not a JSON object")
    kind = media_type_of(doc, content_type)
    try:
        if mt.is_index(kind):
            return kind, Index.from_dict(doc, media_type=kind)
        return kind, Manifest.from_dict(doc, media_type=kind)
    except ValidationError as e:
        raise RegistryError("MANIFEST_INVALID", str(e)) from None


def referenced(doc: Manifest | Index) -> list[Descriptor]:
    """The descriptors whose content must already be in the repository. Not the subject
    (a referrer may come before its subject), nor layers that live elsewhere."""
    if isinstance(doc, Index):
        return list(doc.manifests)
    out = [doc.config]
    out += [x for x in doc.layers if x.media_type not in _FOREIGN and not x.urls]
    return out


def artifact_type_of(doc: Manifest | Index) -> str | None:
    """What the referrers API lists: artifactType, else (a manifest) the config's type."""
    if doc.artifact_type:
        return doc.artifact_type
    return doc.config.media_type if isinstance(doc, Manifest) else None


async def put_manifest(reg: Registry, request: web.Request, route: names.Route
                       ) -> web.Response:
    name, reference = route.name, route.arg
    by_digest = names.is_digest(reference)
    expected = parse_digest(reference) if by_digest else None
    if not by_digest and not names.valid_tag(reference):
        raise RegistryError("MANIFEST_INVALID", {"tag": reference}, message="invalid tag")
    tags = [] if by_digest else [reference]
    if by_digest:
        tags = request.query.getall("tag", [])
        bad = [t for t in tags if not names.valid_tag(t)]
        if bad:
            raise RegistryError("MANIFEST_INVALID", {"tags": bad}, message="invalid tag")
    limit = reg.cfg.max_manifest_size
    if request.content_length is not None and request.content_length > limit:
        raise RegistryError("SIZE_INVALID", {"limit": limit}, status=413,
                            message="manifest too large")
    data = await _read_limited(request, limit)
    dgst = _digest.from_bytes(data, expected.algorithm if expected else _digest.CANONICAL)
    if expected is not None and dgst != expected:
        raise RegistryError("DIGEST_INVALID", {"expected": str(expected), "got": str(dgst)})
    kind, doc = parse_manifest(data, request.headers.get("Content-Type", ""))
    missing = [str(d.digest) for d in referenced(doc)
               if not reg.storage.has_blob(name, d.digest)]
    if missing:
        raise RegistryError("MANIFEST_BLOB_UNKNOWN", {"digests": missing})
    await asyncio.get_running_loop().run_in_executor(
        None, lambda: write_blob(reg.storage.content, f"registry-manifest-{dgst}", data,
                                 expected=dgst))
    subject = str(doc.subject.digest) if doc.subject is not None else None
    reg.storage.put_manifest(ManifestRecord(
        name, str(dgst), kind, len(data), subject, artifact_type_of(doc), doc.annotations),
        tags)
    headers = {"Location": manifest_location(name, str(dgst)), DIGEST_HEADER: str(dgst),
               "Content-Length": "0"}
    if subject is not None:
        headers[SUBJECT_HEADER] = subject
    resp = web.Response(status=201, headers=headers)
    for t in tags if by_digest else []:
        resp.headers.add(TAG_HEADER, t)
    return resp


async def _read_limited(request: web.Request, limit: int) -> bytes:
    buf = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > limit:
            raise RegistryError("SIZE_INVALID", {"limit": limit}, status=413,
                                message="manifest too large")
    return bytes(buf)


async def delete_manifest(reg: Registry, request: web.Request, route: names.Route
                          ) -> web.Response:
    _deletion_allowed(reg)
    name, reference = route.name, route.arg
    if names.is_digest(reference):
        dgst = str(parse_digest(reference))
        if not reg.storage.delete_manifest(name, dgst):
            raise RegistryError("MANIFEST_UNKNOWN", {"digest": dgst})
    else:
        if not names.valid_tag(reference):
            raise RegistryError("MANIFEST_INVALID", {"tag": reference}, message="invalid tag")
        if not reg.storage.delete_tag(name, reference):
            raise RegistryError("MANIFEST_UNKNOWN", {"tag": reference})
    return web.Response(status=202)
