"""Files in and out: `/containers/{id}/archive` (GET, HEAD, PUT), `/containers/{id}/export`,
`/containers/{id}/changes`, `/commit`, `/images/get`, `/images/{name}/get`, `/images/load`,
and the import half of `/images/create` (`fromSrc`). The work is in `pallet.daemon.archive`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import posixpath
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from pallet.daemon import archive as _archive
from pallet.daemon.cp_helper import stat_path
from pallet.daemon.engine.common import daemon, fetch_url, qbool, reply, send_json, stream_json
from pallet.daemon.images import familiar
from pallet.errors import InvalidArgument, NotFound, PalletError

log = logging.getLogger("palletd")
STAT_HEADER = "X-Docker-Container-Path-Stat"
_CHUNK = 1 << 16


def _container(request: web.Request) -> Any:
    return daemon(request).containers.get(request.match_info["id"])


def _path(request: web.Request) -> str:
    path = request.query.get("path") or ""
    if not path:
        raise InvalidArgument("path cannot be empty")
    return path


def _not_found(c: Any, path: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {c.name}")


def _binds(c: Any) -> list[dict[str, Any]]:
    """The container's binds and volumes (as OCI bind mounts), which the copy helper mounts
    first; a tmpfs lives only in the running container and is not reached."""
    from pallet.daemon import mounts

    return [mounts.oci_mount(p) for p in mounts.points_of(c.rec)
            if p.Type != mounts.TMPFS and p.Source]


def _in_volume(binds: list[dict[str, Any]], path: str) -> bool:
    p = posixpath.normpath("/" + path.lstrip("/"))
    return any(p == m["destination"].rstrip("/") or p.startswith(
        m["destination"].rstrip("/") + "/") for m in binds)


async def _helper_answer(proc: Any, c: Any, path: str) -> dict[str, Any]:
    """The helper's first line; an error there is raised as the kind it names."""
    line = await proc.stdout.readline()
    head = json.loads(line) if line.strip() else {"error": "system",
                                                   "message": "the copy helper died"}
    if "error" in head:
        err = _archive.helper_error(head)
        raise _not_found(c, path) if isinstance(err, NotFound) else err
    return head


# --- container files ----------------------------------------------------------------------


async def _send_tar(request: web.Request, c: Any, path: str, *, verb: str,
                    content_type: str, with_stat: bool, mounts: list[dict[str, Any]]
                    ) -> web.StreamResponse:
    d = daemon(request)
    async with _archive.container_rootfs(d.containers, c) as root:
        proc = await _archive.spawn_helper(verb, root, json.dumps(mounts), path)
        try:
            assert proc.stdout is not None
            head = await _helper_answer(proc, c, path)
            headers = {"Content-Type": content_type}
            if with_stat:
                headers[STAT_HEADER] = base64.b64encode(
                    json.dumps(head["stat"]).encode()).decode()
            resp = web.StreamResponse(headers=headers)
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            while chunk := await proc.stdout.read(_CHUNK):
                await resp.write(chunk)
            if await proc.wait() != 0:
                # the tar is cut short; the client sees a truncated archive, as with dockerd
                log.warning("copy of %s from %s failed (see the helper's message above)",
                            path, c.id[:12])
        finally:
            await _archive.end_helper(proc)
    # the end of the response after the rootfs is unmounted and the lock released: a client
    # that acts on the container next finds it as it was
    await resp.write_eof()
    return resp


async def get_archive(request: web.Request) -> web.StreamResponse:
    """GET: a tar of the path with its stat in a header; HEAD: the stat alone."""
    c = _container(request)
    path = _path(request)
    if request.method == "HEAD":
        d = daemon(request)
        mounts = _binds(c)
        async with _archive.container_rootfs(d.containers, c) as root:
            if not mounts:  # no volumes to mount first: no need for the helper
                try:
                    st = await asyncio.to_thread(stat_path, root, path)
                except NotFound:
                    raise _not_found(c, path) from None
            else:
                proc = await _archive.spawn_helper("stat", root, json.dumps(mounts), path)
                try:
                    st = (await _helper_answer(proc, c, path))["stat"]
                finally:
                    await _archive.end_helper(proc)
        return web.Response(headers={STAT_HEADER: base64.b64encode(
            json.dumps(st).encode()).decode(), "Content-Type": "application/json"})
    resp = await _send_tar(request, c, path, verb="tar", content_type="application/x-tar",
                           with_stat=True, mounts=_binds(c))
    daemon(request).containers.publish(c, "archive-path")
    return resp


async def put_archive(request: web.Request) -> web.Response:
    d = daemon(request)
    c = _container(request)
    path = _path(request)
    mounts = _binds(c)
    # the rootfs is writable where palletd mounts it: the container's read-only flag is
    # checked here (a volume stays writable, as with dockerd)
    if c.rec["HostConfig"].get("ReadonlyRootfs") and not _in_volume(mounts, path):
        return reply({"message": "container rootfs is marked read-only"}, 403)
    owner = (0, 0)
    async with _archive.container_rootfs(d.containers, c) as root:
        if qbool(request, "copyUIDGID") and c.rec["Config"].get("User"):
            from pallet.images.bundle import resolve_user

            u = await asyncio.to_thread(resolve_user, root, c.rec["Config"]["User"])
            owner = (int(u["uid"]), int(u["gid"]))
        no_overwrite = "1" if qbool(request, "noOverwriteDirNonDir") else "0"
        proc = await _archive.spawn_helper(
            "untar", root, json.dumps(mounts), path, no_overwrite, str(owner[0]),
            str(owner[1]), stdin=asyncio.subprocess.PIPE)
        try:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                async for chunk in request.content.iter_chunked(_CHUNK):
                    proc.stdin.write(chunk)
                    await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the helper stopped reading: its answer says why
            out = await proc.stdout.read()
            await proc.wait()
        finally:
            await _archive.end_helper(proc)
    lines = out.strip().splitlines()
    answer = json.loads(lines[-1]) if lines else {"error": "system",
                                                  "message": "the copy helper died"}
    if "error" in answer:
        err = _archive.helper_error(answer)
        if "Read-only file system" in str(err):
            return reply({"message": f"mounted volume is marked read-only: {err}"}, 403)
        raise _not_found(c, path) if isinstance(err, NotFound) else err
    d.containers.publish(c, "extract-to-dir")
    return web.Response(status=200)


async def export(request: web.Request) -> web.StreamResponse:
    c = _container(request)
    # the container's own filesystem: volumes are not part of an export
    resp = await _send_tar(request, c, "/", verb="export",
                           content_type="application/octet-stream",
                           with_stat=False, mounts=[])
    daemon(request).containers.publish(c, "export")
    return resp


async def changes(request: web.Request) -> web.Response:
    d = daemon(request)
    c = _container(request)

    def work() -> list[dict[str, Any]]:
        return _archive.SnapshotChanges(
            d.images.svc, c.rec["_Snapshot"],
            _archive.runtime_mountpoints(d.cfg.bundle_dir(c.id))).list()

    out = await d.blocking(work)
    return reply(out or None)


# --- images -------------------------------------------------------------------------------


def _changes(request: web.Request) -> list[str]:
    return [x for x in request.query.getall("changes", []) if x]


async def commit(request: web.Request) -> web.Response:
    d = daemon(request)
    ref = request.query.get("container") or ""
    if not ref:
        raise InvalidArgument("container is required")
    c = d.containers.get(ref)
    raw = await request.read()
    try:
        config = json.loads(raw) if raw.strip() else None
    except ValueError as e:
        raise InvalidArgument(f"invalid JSON body: {e}") from None
    name = _archive.image_name(request.query.get("repo") or "", request.query.get("tag") or "")
    try:
        _, parent = await d.blocking(d.images.lookup, c.rec["Image"])
    except NotFound:
        raise NotFound(f"the image of container {c.name} ({c.rec['Image']}) is gone") \
            from None
    # dockerd freezes a running container for a commit (pause=true, the default), so the
    # layer is one moment of its files
    paused = qbool(request, "pause", True) and c.running and not c.state.get("Paused")
    if paused:
        rc, _, _ = await d.containers.runtime(c, "pause", c.id)
        if rc != 0:
            log.warning("commit of %s: the runtime could not pause it; committing it running",
                        c.id[:12])
            paused = False
    try:
        iid = await d.blocking(
            _archive.commit, d.images.svc, c.rec, parent, d.cfg.bundle_dir(c.id), name=name,
            author=request.query.get("author") or "",
            comment=request.query.get("comment") or "", changes=_changes(request),
            config=config if isinstance(config, dict) else None)
    finally:
        if paused:
            rc, _, _ = await d.containers.runtime(c, "resume", c.id)
            if rc != 0:
                log.error("commit of %s: the runtime could not resume it", c.id[:12])
    d.containers.publish(c, "commit", comment=request.query.get("comment") or "")
    if name:
        d.events.publish("image", "tag", name, {"name": familiar(name)})
    return reply({"Id": iid}, 201)


def _tmp_dir(request: web.Request) -> str:
    """Where temporary files go: beside the content store (same filesystem)."""
    path = os.path.join(daemon(request).cfg.root, "tmp")
    os.makedirs(path, exist_ok=True)
    return path


@contextlib.asynccontextmanager
async def _spooled(request: web.Request, chunks: AsyncIterator[bytes] | None = None,
                   prefix: str = "upload-") -> Any:
    """`chunks` (by default the request body) in a temporary file (archives need random
    access, and a bad one must be refused before anything is stored)."""
    fd, path = tempfile.mkstemp(prefix=prefix, dir=_tmp_dir(request))
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in chunks or request.content.iter_chunked(1 << 20):
                await asyncio.to_thread(f.write, chunk)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def _fetched(url: str) -> AsyncIterator[bytes]:
    """`docker import <url>`: the file at an http(s) URL, fetched by the daemon as dockerd
    does."""
    if not url.startswith(("http://", "https://")):
        raise InvalidArgument(f"fromSrc {url!r}: not a URL palletd can fetch (http or https), "
                              "nor - (the request body)")
    async for chunk in fetch_url(url, "Get"):
        yield chunk


async def import_(request: web.Request) -> web.StreamResponse:
    """`POST /images/create?fromSrc=-` (the body is a root filesystem tar) or
    `fromSrc=<http(s) URL>` (palletd downloads it)."""
    d = daemon(request)
    src = request.query.get("fromSrc") or ""
    repo, tag = request.query.get("repo") or "", request.query.get("tag") or ""
    if repo and not tag and ":" in repo.rsplit("/", 1)[-1]:
        repo, tag = repo.rsplit(":", 1)  # the docker CLI sends `repo=name:tag`
    name = _archive.image_name(repo, tag)
    chunks = None if src == "-" else _fetched(src)
    async with _spooled(request, chunks, "upload-" if chunks is None else "download-") as path:
        iid = await d.blocking(_archive.import_rootfs, d.images.svc, path, name=name,
                               changes=_changes(request),
                               message=request.query.get("message") or "", source=src)
    d.events.publish("image", "import", iid, {"name": familiar(name or iid)})
    resp = await stream_json(request)
    await send_json(resp, {"status": iid})
    await resp.write_eof()
    return resp


async def _send_file(request: web.Request, path: str) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    with open(path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, 1 << 20):
            await resp.write(chunk)
    await resp.write_eof()
    return resp


async def save(request: web.Request) -> web.StreamResponse:
    """docker save: a docker-archive (manifest.json, repositories, config, layer.tar)."""
    d = daemon(request)
    names = [request.match_info["name"]] if "name" in request.match_info else \
        [n for n in request.query.getall("names", []) if n]
    if not names:
        raise InvalidArgument("no image names given")

    def work(dest: str) -> None:
        from pallet.images.docker_archive import export_docker_archive

        imgs = []
        for n in names:
            img, _ = d.images.lookup(n)
            imgs.append(img)
        export_docker_archive(d.images.svc.content, imgs, dest)

    with tempfile.TemporaryDirectory(prefix="save-", dir=_tmp_dir(request)) as tmp:
        dest = os.path.join(tmp, "image.tar")
        await d.blocking(work, dest)
        resp = await _send_file(request, dest)
    for n in names:
        d.events.publish("image", "save", n, {"name": n})
    return resp


async def load(request: web.Request) -> web.StreamResponse:
    """docker load: a docker-archive or an OCI layout tar. A bad archive is refused with
    nothing named, and what it had stored is collected."""
    d = daemon(request)

    def work(path: str) -> list[tuple[str | None, str | None]]:
        from pallet.images.service import detect_format

        try:
            fmt = detect_format(path)
        except InvalidArgument:
            raise InvalidArgument("invalid archive: not a tar of a docker save or an OCI "
                                  "image layout") from None
        # an image the archive names no tag for is kept as a dangling one (by its ID)
        return [(item.name, None) if item.name else (None, _keep_untagged(d, item.target))
                for item in d.images.svc.import_(path, fmt=fmt)]

    async with _spooled(request) as path:
        try:
            loaded = await d.blocking(work, path)
        except PalletError as e:
            await d.gc()
            # the spool file's name means nothing to the client
            raise type(e)(str(e).replace(path, "archive")) from None
    lines = []
    for name, iid in loaded:
        what = familiar(name) if name else iid
        lines.append(f"Loaded image: {what}\n" if name else f"Loaded image ID: {what}\n")
        d.events.publish("image", "load", what, {"name": what})
    resp = await stream_json(request)
    for line in lines:
        await send_json(resp, {"stream": line})
    await resp.write_eof()
    return resp


def _keep_untagged(d: Any, target: Any) -> str:
    from pallet.content.labels import GC_ROOT
    from pallet.daemon.images import dangling_name
    from pallet.images.resolve import resolve

    svc = d.images.svc
    if not any(i.target.digest == target.digest for i in svc.list()):
        svc.images.put(dangling_name(str(target.digest)), target)
        svc.content.update_labels(target.digest, {GC_ROOT: "image"})
    return str(resolve(svc.content, target).manifest.config.digest)


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/containers/{id}/archive", get_archive),  # HEAD too (aiohttp's add_get)
    ("PUT", "/containers/{id}/archive", put_archive),
    ("GET", "/containers/{id}/export", export),
    ("GET", "/containers/{id}/changes", changes),
    ("POST", "/commit", commit),
    ("GET", "/images/get", save),
    ("GET", "/images/{name:.+}/get", save),
    ("POST", "/images/load", load),
]
