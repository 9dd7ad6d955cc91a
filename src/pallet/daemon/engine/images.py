"""/images: list, inspect, tag, remove, pull (`POST /images/create`) and push with Docker's
JSON progress stream, prune."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any

from aiohttp import web

from pallet.daemon.engine.common import (
    body,
    daemon,
    filters,
    qbool,
    reply,
    send_json,
    stream_json,
)
from pallet.daemon.filters import label_matches, prune_filter
from pallet.errors import InvalidArgument, NotFound, PalletError
from pallet.images import reference
from pallet.oci.image import Descriptor


async def list_(request: web.Request) -> web.Response:
    d = daemon(request)
    users = {k: len(v) for k, v in d.containers.image_users().items()}
    out = await d.blocking(d.images.summaries, users)
    return reply(filter_images(out, filters(request)))


def filter_images(out: list[dict[str, Any]], f: dict[str, list[str]]) -> list[dict[str, Any]]:
    """docker's image list filters: dangling, label, before, since, reference (an unknown
    one is an error, as in dockerd)."""
    import fnmatch

    for key in f:
        if key not in ("dangling", "label", "before", "since", "reference"):
            raise InvalidArgument(f"invalid filter '{key}'")

    everything = list(out)

    def anchor(ref: str) -> float:
        for s in everything:
            if ref in s["RepoTags"] or ref + ":latest" in s["RepoTags"] or \
                    s["Id"].removeprefix("sha256:").startswith(ref.removeprefix("sha256:")):
                return s["Created"]
        raise NotFound(f"No such image: {ref}")

    for v in f.get("dangling", []):
        if v.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"Invalid filter 'dangling={v}'")
        want = v.lower() in ("true", "1")
        out = [s for s in out if (not s["RepoTags"]) is want]
    for v in f.get("label", []):
        out = [s for s in out if label_matches(s.get("Labels"), v)]
    for v in f.get("before", []):
        t = anchor(v)
        out = [s for s in out if s["Created"] < t]
    for v in f.get("since", []):
        t = anchor(v)
        out = [s for s in out if s["Created"] > t]
    if f.get("reference"):
        out = [s for s in out if any(fnmatch.fnmatch(t, pat) or fnmatch.fnmatch(
            t.rsplit(":", 1)[0], pat) for t in s["RepoTags"] for pat in f["reference"])]
    return out


async def inspect(request: web.Request) -> web.Response:
    d = daemon(request)
    return reply(await d.blocking(d.images.inspect, request.match_info["name"]))


async def tag(request: web.Request) -> web.Response:
    d = daemon(request)
    repo = request.query.get("repo") or ""
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    name = await d.blocking(d.images.tag, request.match_info["name"], repo,
                            request.query.get("tag") or None)
    d.events.publish("image", "tag", name, {"name": name})
    return web.Response(status=201)


async def remove(request: web.Request) -> web.Response:
    d = daemon(request)
    out = await d.blocking(d.images.remove, request.match_info["name"],
                           force=qbool(request, "force"), in_use=d.containers.image_users(),
                           running=d.containers.image_users(running=True))
    for item in out:
        for action, what in item.items():
            d.events.publish("image", action.lower().replace("untagged", "untag")
                             .replace("deleted", "delete"), what, {"name": what})
    if any("Deleted" in x for x in out) and not qbool(request, "noprune"):
        await d.gc()
    return reply(out)


def _auth(request: web.Request) -> Any:
    """X-Registry-Auth: base64url JSON {username, password} (or identitytoken)."""
    raw = request.headers.get("X-Registry-Auth")
    if not raw:
        return None
    try:
        pad = "=" * (-len(raw) % 4)
        d = json.loads(base64.urlsafe_b64decode(raw + pad) or b"{}")
    except ValueError:
        return None
    return _credentials(d) if isinstance(d, dict) and (
        d.get("identitytoken") or d.get("username")) else None


def _credentials(d: dict[str, Any]) -> Any:
    """The credentials of an AuthConfig (X-Registry-Auth, `POST /auth`): an identity token
    or a user name and password."""
    from pallet.registry.client.credentials import Credentials

    if d.get("identitytoken"):
        return Credentials("<token>", str(d["identitytoken"]))
    return Credentials(str(d.get("username") or ""), str(d.get("password") or ""))


class StreamProgress:
    """The registry client's Progress protocol -> Docker's JSON progress messages."""

    def __init__(self, queue: asyncio.Queue[dict[str, Any]], push: bool = False) -> None:
        self.q = queue
        self.push = push

    def start(self, desc: Descriptor, what: str) -> None:
        if "layer" in what or "blob" in what or not self.push:
            self.q.put_nowait({"status": "Pushing" if self.push else "Waiting",
                               "progressDetail": {}, "id": desc.digest.encoded[:12]})

    def advance(self, desc: Descriptor, n: int) -> None:
        self.q.put_nowait({"status": "Pushing" if self.push else "Downloading",
                           "progressDetail": {"current": n, "total": desc.size},
                           "id": desc.digest.encoded[:12]})

    def reset(self, desc: Descriptor, offset: int) -> None:
        pass

    def done(self, desc: Descriptor, status: str) -> None:
        word = {"exists": "Layer already exists", "mounted": "Mounted from another repository",
                "pushed": "Pushed"}.get(status, status) if self.push else (
            "Already exists" if status in ("exists", "skipped") else "Pull complete")
        self.q.put_nowait({"status": word, "progressDetail": {},
                           "id": desc.digest.encoded[:12]})


async def _run_streaming(request: web.Request, work: Any, first: list[dict[str, Any]],
                         queue: asyncio.Queue[dict[str, Any]]) -> web.StreamResponse:
    """Errors before any progress are HTTP errors (as dockerd's); later ones are
    `errorDetail` messages in the stream."""
    task = asyncio.ensure_future(work)
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
    if task in done and task.exception() is not None:
        getter.cancel()
        raise task.exception()  # type: ignore[misc]
    resp = await stream_json(request)
    for m in first:
        await send_json(resp, m)
    try:
        while True:
            if getter.done():
                await send_json(resp, getter.result())
                getter = asyncio.ensure_future(queue.get())
            if task.done() and queue.empty():
                break
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
        getter.cancel()
        for m in task.result():
            await send_json(resp, m)
    except PalletError as e:
        await send_json(resp, {"errorDetail": {"message": str(e)}, "error": str(e)})
    except Exception as e:  # the registry client's transport errors
        await send_json(resp, {"errorDetail": {"message": str(e)}, "error": str(e)})
    await resp.write_eof()
    return resp


async def create(request: web.Request) -> web.StreamResponse:
    """Pull (`fromImage`), or import a root filesystem tar (`fromSrc`, engine/archive.py)."""
    d = daemon(request)
    if request.query.get("fromSrc"):
        from pallet.daemon.engine.archive import import_

        return await import_(request)
    name = request.query.get("fromImage") or ""
    if not name:
        raise InvalidArgument("fromImage is required")
    tag_ = request.query.get("tag") or ""
    ref = name
    if tag_:
        ref = f"{name}@{tag_}" if tag_.startswith("sha256:") else f"{name}:{tag_}"
    try:
        r = reference.parse(ref)
    except PalletError as e:
        raise InvalidArgument(f"invalid reference format: {e}") from None
    platform = request.query.get("platform") or None
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    creds = _auth(request)

    async def work() -> list[dict[str, Any]]:
        pulled = await d.pull(str(r), creds=creds, platform=platform,
                              progress=StreamProgress(queue))
        d.events.publish("image", "pull", r.familiar(), {"name": r.familiar()})
        return [{"status": f"Digest: {pulled.target.digest}"},
                {"status": f"Status: Downloaded newer image for {r.familiar()}"}]

    first = [{"status": f"Pulling from {r.path}", "id": r.tag or str(r.digest)}]
    return await _run_streaming(request, work(), first, queue)


async def push(request: web.Request) -> web.StreamResponse:
    d = daemon(request)
    name = request.match_info["name"]
    tag_ = request.query.get("tag") or ""
    ref = f"{name}:{tag_}" if tag_ else name
    try:
        r = reference.parse(ref)
    except PalletError as e:
        raise InvalidArgument(f"invalid reference format: {e}") from None
    await d.blocking(d.images.lookup, str(r))  # 404 before the stream
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    creds = _auth(request)

    async def work() -> list[dict[str, Any]]:
        pushed = await d.push(str(r), creds=creds, progress=StreamProgress(queue, push=True))
        d.events.publish("image", "push", r.familiar(), {"name": r.familiar()})
        size = pushed.target.size
        return [{"status": f"{r.tag or 'latest'}: digest: {pushed.target.digest} size: {size}"},
                {"progressDetail": {}, "aux": {"Tag": r.tag or "latest",
                                               "Digest": str(pushed.target.digest),
                                               "Size": size}}]

    first = [{"status": f"The push refers to repository [{r.domain}/{r.path}]"}]
    return await _run_streaming(request, work(), first, queue)


async def prune(request: web.Request) -> web.Response:
    d = daemon(request)
    f = filters(request)
    dangling = (f.pop("dangling", None) or ["true"])[0].lower() in ("1", "true")
    wanted = prune_filter(f)
    deleted: list[dict[str, str]] = []
    users = d.containers.image_users()
    for s in await d.blocking(d.images.summaries, None):
        # the images without a tag; with -a (dangling=false) every image no container uses
        if s["Id"] in users or (dangling and s["RepoTags"]):
            continue
        if not wanted(s["Created"], s.get("Labels") or {}):
            continue
        for t in s["RepoTags"] or [s["Id"]]:
            with contextlib.suppress(NotFound, PalletError):
                deleted += await d.blocking(d.images.remove, t, force=False, in_use=users)
    reclaimed = await d.gc()
    return reply({"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


async def auth(request: web.Request) -> web.Response:
    """`docker login`: the daemon checks the credentials against the registry."""
    from pallet.registry.client.errors import RequestError

    b = await body(request)
    if not isinstance(b, dict):
        raise InvalidArgument("the body must be a JSON object")
    server = str(b.get("serveraddress") or "")
    registry = server.split("://", 1)[-1].split("/", 1)[0]
    if not registry:
        raise InvalidArgument("serveraddress is required")
    if registry in ("index.docker.io", "registry-1.docker.io"):  # the CLI's default
        registry = "docker.io"
    try:
        await daemon(request).login(registry, _credentials(b))
    except RequestError as e:
        if e.status in (401, 403):  # dockerd's status for refused credentials
            return reply({"message": f"login to {registry}: {e}"}, 401)
        raise
    return reply({"Status": "Login Succeeded", "IdentityToken": ""})


async def distribution(request: web.Request) -> web.Response:
    """What a registry holds under a name (docker-py's get_registry_data): its manifest's
    descriptor and platforms, nothing pulled."""
    name = request.match_info["name"]
    try:
        ref = str(reference.parse(name))
    except PalletError as e:
        raise InvalidArgument(f"invalid reference format: {e}") from None
    remote = await daemon(request).inspect_remote(ref, _auth(request))
    d = remote.descriptor
    return reply({"Descriptor": {"mediaType": d.media_type, "digest": str(d.digest),
                                 "size": d.size},
                  "Platforms": [p.to_dict() for p in remote.platforms]})


async def search(request: web.Request) -> web.Response:
    # dockerd searches an index through the v1 search API, which registries that speak
    # only the distribution API (all of them here) do not have.
    term = request.query.get("term") or ""
    return reply({"message": f"search {term!r}: palletd has no image index to search (the "
                  "distribution API of registries has no search; list a registry's "
                  "repositories with its /v2/_catalog)"}, 501)


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/auth", auth),
    ("GET", "/images/search", search),
    ("GET", "/distribution/{name:.+}/json", distribution),
    ("GET", "/images/json", list_),
    ("POST", "/images/create", create),
    ("POST", "/images/prune", prune),
    ("GET", "/images/{name:.+}/json", inspect),
    ("POST", "/images/{name:.+}/tag", tag),
    ("POST", "/images/{name:.+}/push", push),
    ("DELETE", "/images/{name:.+}", remove),
]
