"""Blob endpoints: pull (GET/HEAD with Range), delete, and the upload sessions (POST,
PATCH, PUT, GET status, DELETE cancel), including cross-repository mount."""

from __future__ import annotations

from aiohttp import web

from pallet.oci import digest as _digest
from pallet.oci.digest import Digest
from pallet.registry import names, ranges
from pallet.registry.errors import RegistryError
from pallet.registry.scopes import PULL, repository
from pallet.registry.server.app import IDENTITY_KEY, Registry
from pallet.registry.server.storage import UploadRecord

DIGEST_HEADER = "Docker-Content-Digest"
OCTET = "application/octet-stream"


def parse_digest(value: str | None, *, what: str = "digest") -> Digest:
    if not value:
        raise RegistryError("DIGEST_INVALID", f"{what} missing")
    try:
        return _digest.parse(value)
    except _digest.DigestError as e:
        raise RegistryError("DIGEST_INVALID", str(e)) from None


def blob_location(name: str, dgst: Digest) -> str:
    return f"/v2/{name}/blobs/{dgst}"


def upload_location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


# --- pull ----------------------------------------------------------------------------------

async def get_blob(reg: Registry, request: web.Request, route: names.Route
                   ) -> web.StreamResponse:
    dgst = parse_digest(route.arg)
    if not reg.storage.has_blob(route.name, dgst):
        raise RegistryError("BLOB_UNKNOWN", {"digest": str(dgst)})
    path = reg.storage.content.blob_path(dgst)
    size = reg.storage.content.info(dgst).size
    headers = {DIGEST_HEADER: str(dgst), "Content-Type": OCTET,
               "ETag": f'"{dgst}"', "Accept-Ranges": "bytes",
               "Cache-Control": "max-age=31536000"}
    rng = request.headers.get("Range")
    if rng:
        try:
            ranges.parse_byte_range(rng, size)
        except ranges.RangeError as e:
            raise RegistryError("RANGE_INVALID", str(e), headers={
                "Content-Range": f"bytes */{size}"}) from None
    # FileResponse streams with sendfile(2) and answers the (already validated) Range
    # itself, with 206 and Content-Range.
    return web.FileResponse(path, headers=headers)


async def delete_blob(reg: Registry, request: web.Request, route: names.Route
                      ) -> web.Response:
    _deletion_allowed(reg)
    dgst = parse_digest(route.arg)
    if not reg.storage.unlink_blob(route.name, dgst):
        raise RegistryError("BLOB_UNKNOWN", {"digest": str(dgst)})
    # The bytes stay until `pallet registry gc`: another repository may link them.
    return web.Response(status=202, headers={DIGEST_HEADER: str(dgst)})


def _deletion_allowed(reg: Registry) -> None:
    if not reg.cfg.delete:
        raise RegistryError("UNSUPPORTED", "deletion is disabled by configuration")


# --- push ----------------------------------------------------------------------------------

def _created(name: str, dgst: Digest) -> web.Response:
    return web.Response(status=201, headers={"Location": blob_location(name, dgst),
                                             DIGEST_HEADER: str(dgst), "Content-Length": "0"})


def _accepted(name: str, upload_id: str, offset: int, status: int = 202) -> web.Response:
    return web.Response(status=status, headers={
        "Location": upload_location(name, upload_id),
        "Range": ranges.upload_range(offset),
        "Docker-Upload-UUID": upload_id,
        "Content-Length": "0",
    })


def _try_mount(reg: Registry, request: web.Request, name: str, dgst: Digest,
               source: str | None) -> bool:
    """Link `dgst` into `name` from `source`, or, with no source, from any repository the
    caller may pull (the spec lets a registry discover it)."""
    ident = request[IDENTITY_KEY]
    if source:
        if not names.valid_name(source):
            return False
        return reg.storage.has_blob(source, dgst)
    return any(ident.allows(repository(repo, PULL)) and reg.storage.has_blob(repo, dgst)
               for repo in reg.storage.repos_linking(dgst))


async def start_upload(reg: Registry, request: web.Request, route: names.Route
                       ) -> web.Response:
    q = request.query
    name = route.name
    if "mount" in q:
        dgst = parse_digest(q["mount"], what="mount")
        if _try_mount(reg, request, name, dgst, q.get("from")):
            reg.storage.link_blob(name, dgst)
            return _created(name, dgst)
        # Not mountable: an ordinary upload session begins (202), as the spec says.
    algorithm = q.get("digest-algorithm", _digest.CANONICAL)
    if algorithm not in _digest.ALGORITHMS:
        raise RegistryError("DIGEST_INVALID", f"unsupported digest algorithm {algorithm!r}")
    expected = parse_digest(q["digest"]) if "digest" in q else None
    if expected is not None:
        algorithm = expected.algorithm
    upload_id = reg.uploads.start(name, algorithm)
    if expected is None:
        return _accepted(name, upload_id, 0)
    # Single POST: the whole blob is the body.
    rec = reg.uploads.record(upload_id, name)
    return await _finish(reg, request, rec, expected, None)


async def upload_status(reg: Registry, request: web.Request, route: names.Route
                        ) -> web.Response:
    rec = reg.uploads.record(route.arg, route.name)
    async with reg.uploads.lock(rec.id):
        return _accepted(route.name, rec.id, reg.uploads.offset(rec), status=204)


def _chunk_range(request: web.Request) -> tuple[int, int] | None:
    value = request.headers.get("Content-Range")
    if value is None:
        return None
    try:
        return ranges.parse_content_range(value)
    except ranges.RangeError as e:
        raise RegistryError("RANGE_INVALID", str(e)) from None


async def _append(reg: Registry, request: web.Request, rec: UploadRecord) -> int:
    """Append the body at the session's offset; a Content-Range must start right there
    (else 416 with the current Range, so the client can resume) and cover the body."""
    offset = reg.uploads.offset(rec)
    rng = _chunk_range(request)
    if rng is not None and rng[0] != offset:
        raise RegistryError("RANGE_INVALID", {"offset": offset, "range": f"{rng[0]}-{rng[1]}"},
                            headers={"Location": upload_location(rec.repo, rec.id),
                                     "Range": ranges.upload_range(offset)})
    want = None if rng is None else rng[1] - rng[0] + 1
    length = request.content_length
    if want is not None and length is not None and length != want:
        raise RegistryError("SIZE_INVALID", {"Content-Length": length, "range": want})
    try:
        n = await reg.uploads.append(rec, request.content.iter_chunked(1 << 16), want)
    except RegistryError:
        reg.uploads.truncate(rec, offset)  # a chunk longer than its range: drop it whole
        raise
    if want is not None and n != want:
        reg.uploads.truncate(rec, offset)
        raise RegistryError("SIZE_INVALID", {"received": n, "range": want})
    return offset + n


async def patch_upload(reg: Registry, request: web.Request, route: names.Route
                       ) -> web.Response:
    rec = reg.uploads.record(route.arg, route.name)
    async with reg.uploads.lock(rec.id):
        end = await _append(reg, request, rec)
        return _accepted(route.name, rec.id, end)


async def put_upload(reg: Registry, request: web.Request, route: names.Route
                     ) -> web.Response:
    rec = reg.uploads.record(route.arg, route.name)
    expected = parse_digest(request.query.get("digest"))
    return await _finish(reg, request, rec, expected, rec.id)


async def _finish(reg: Registry, request: web.Request, rec: UploadRecord, expected: Digest,
                  upload_id: str | None) -> web.Response:
    async with reg.uploads.lock(rec.id):
        try:
            await _append(reg, request, rec)
        except RegistryError:
            if upload_id is None:  # a single POST has no session for the client to resume
                reg.uploads.cancel(rec.id)
            raise
        dgst = await reg.uploads.commit(rec, expected)
    reg.storage.link_blob(rec.repo, dgst)
    return _created(rec.repo, dgst)


async def cancel_upload(reg: Registry, request: web.Request, route: names.Route
                        ) -> web.Response:
    rec = reg.uploads.record(route.arg, route.name)
    async with reg.uploads.lock(rec.id):
        reg.uploads.cancel(rec.id)
    return web.Response(status=204)

