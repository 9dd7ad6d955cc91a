"""/build: the classic builder's endpoint (`docker build` without BuildKit, docker-py's
`images.build`), /build/prune, and `GET /images/{name}/history`, where a build's steps show.

The tar context is streamed to a file, then a worker thread unpacks it and runs the build
(`pallet.build`); its snapshot and content operations go to palletd's storage thread one by
one, so the API stays responsive and a build's storage work never races other image
operations. Progress is docker's JSON stream: `{"stream": "Step 1/4 : FROM busybox\\n"}`
... `{"aux": {"ID": "sha256:..."}}`, `Successfully built`, `Successfully tagged`; an error
after the stream began is `{"errorDetail": {...}, "error": ...}`, as dockerd sends it. A
client that goes away cancels the build (its running step is killed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

from pallet.build import remote
from pallet.build.builder import Builder, BuildOptions, BuildResult
from pallet.build.cache import BuildCache
from pallet.build.context import extract_tar
from pallet.build.executor import (
    Attached,
    CommandFailed,
    Executor,
    RunLimits,
    Runtime,
    remove_stale,
    remove_tree,
)
from pallet.daemon.engine.common import (
    daemon,
    fetch_url,
    qbool,
    qint,
    query_json,
    reply,
    send_json,
    stream_json,
)
from pallet.errors import InvalidArgument, NotFound, PalletError
from pallet.images import reference
from pallet.oci.image import Platform

# per build directory: this process's clean-up of what a dead palletd left there
_STALE: dict[str, asyncio.Future[Any]] = {}
# RUN's network, as docker's classic builder: the default bridge unless told otherwise
log = logging.getLogger("palletd")

NETWORKS = {"": "bridge", "default": "bridge", "none": "none", "host": "host"}


def _json_map(request: web.Request, name: str) -> dict[str, Any]:
    d = query_json(request, name, {})
    if not isinstance(d, dict):
        raise InvalidArgument(f"{name} must be a JSON object")
    return d


def _options(request: web.Request) -> BuildOptions:
    q = request.query
    url = q.get("remote") or ""
    if url and (remote.is_git(url) or not remote.is_url(url)):
        raise InvalidArgument(f"remote {url!r}: git build contexts are not supported (clone "
                              "the repository and build from it); a remote context is an "
                              "http(s) URL of a tar archive or of a Dockerfile")
    tags = q.getall("t", [])
    for t in tags:
        try:
            reference.normalize(t)
        except PalletError as e:
            raise InvalidArgument(f"invalid reference format: {t}: {e}") from None
    network = NETWORKS.get(q.get("networkmode") or "", q.get("networkmode") or "")
    net = None
    if network not in ("none", "host"):
        try:
            net = daemon(request).networks.get(network)
        except NotFound:
            raise InvalidArgument(f"networkmode {network!r}: no such network") from None
        if net.driver != "bridge":
            raise InvalidArgument(f"network {network!r} cannot be used by a build (driver "
                                  f"{net.driver})")
    return BuildOptions(
        dockerfile=q.get("dockerfile") or "Dockerfile", tags=tags,
        build_args=_json_map(request, "buildargs"), no_cache=qbool(request, "nocache"),
        target=q.get("target") or None,
        labels={str(k): str(v) for k, v in _json_map(request, "labels").items()},
        run=_limits(request, network, net))


def _limits(request: web.Request, network: str, net: Any) -> RunLimits:
    """RUN's resources, as docker's query parameters name them."""
    res: dict[str, Any] = {}
    memory, swap = qint(request, "memory"), qint(request, "memswap")
    if memory:
        res["memory"] = {"limit": memory, **({"swap": swap} if swap else {})}
    cpu = {key: v for key, name in (("shares", "cpushares"), ("period", "cpuperiod"),
                                    ("quota", "cpuquota"))
           if (v := qint(request, name))}
    if request.query.get("cpusetcpus"):
        cpu["cpus"] = request.query["cpusetcpus"]
    if cpu:
        res["cpu"] = cpu
    hosts = [h for v in request.query.getall("extrahosts", []) for h in v.split(",") if h]
    for h in hosts:
        if ":" not in h:
            raise InvalidArgument(f"invalid extra host {h!r}: want name:ip")
    return RunLimits(network, res, qint(request, "shmsize") or None, hosts,
                     _attacher(daemon(request), net) if net is not None else None)


def _attacher(d: Any, n: Any) -> Callable[[str, str], Attached]:
    """RUN steps on network `n` (looked up on the event loop, before the build: the build's
    thread does not walk palletd's tables): a pinned netns with one CNI ADD, DEL and gone
    after the step (a crash in between leaves a cached result palletd releases when it
    comes back)."""

    def attach(network: str, step: str) -> Attached:
        from pallet.daemon.networks import resolv_text
        from pallet.network import netns
        from pallet.network.cni import Attachment

        path = d.networks.netns_path(step)
        netns.remove(path)
        netns.create(path)
        try:
            ep = d.networks.attach(step, path, n, "eth0")
        except BaseException:
            netns.remove(path)
            raise

        def release() -> None:
            try:  # the list ADD ran, from the result cache
                d.networks.cni.delete(None, Attachment(step, path, "eth0"), network=n.name)
            except Exception as e:  # a plugin's failure or hang must not hide the step's
                log.warning("CNI DEL of build step %s: %s", step[:12], e)
            finally:
                netns.remove(path)

        return Attached(path, ep["IPAddress"], resolv_text({}), release)

    return attach


async def _fetch_context(url: str, path: str, dockerfile: str) -> None:
    """`docker build <http(s) URL>`: palletd downloads the context, as dockerd: a tar
    archive (compressed or not), or a plain-text Dockerfile, which becomes a context of
    that one file."""
    import io
    import tarfile

    info: dict[str, str] = {}
    with open(path, "wb") as f:
        async for chunk in fetch_url(url, "remote", info):
            f.write(chunk)
    if info.get("content_type") == "text/plain":
        with open(path, "rb") as f:
            text = f.read()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            ti = tarfile.TarInfo(dockerfile)
            ti.size, ti.mode = len(text), 0o644
            tf.addfile(ti, io.BytesIO(text))
        with open(path, "wb") as f:
            f.write(buf.getvalue())


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


def _message(e: BaseException) -> dict[str, Any]:
    msg = str(e) if isinstance(e, PalletError) else f"{type(e).__name__}: {e}"
    detail: dict[str, Any] = {"message": msg}
    if isinstance(e, CommandFailed):
        detail["code"] = e.code
    return {"errorDetail": detail, "error": msg}


async def build(request: web.Request) -> web.StreamResponse:
    d = daemon(request)
    opts = _options(request)
    quiet = qbool(request, "q")
    runtime_name, runtime_path = d.cfg.runtime_path(request.query.get("runtime") or None)
    loop = asyncio.get_running_loop()
    base = os.path.join(d.cfg.exec_root, "build")
    if base not in _STALE:
        # before this process's first build, nothing of ours runs there: what is there
        # is a dead palletd's. Concurrent first requests wait for the same clean-up.
        _STALE[base] = asyncio.ensure_future(d.blocking(remove_stale, d.images.svc, base))
    await asyncio.shield(_STALE[base])
    os.makedirs(base, exist_ok=True)
    workdir = tempfile.mkdtemp(dir=base)
    try:
        # The context goes to a file first: reading the socket stays on the event loop, and
        # the tar is unpacked where the build runs.
        body = os.path.join(workdir, "context.tar")
        if request.query.get("remote"):
            await _fetch_context(request.query["remote"], body, opts.dockerfile)
        else:
            with open(body, "wb") as f:
                async for chunk in request.content.iter_chunked(1 << 20):
                    f.write(chunk)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise

    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    cancel = threading.Event()

    def emit(text: str) -> None:
        if not quiet:
            loop.call_soon_threadsafe(queue.put_nowait, {"stream": text})

    def pull(name: str, platform: Platform | None) -> None:
        emit(f"Pulling {name}\n")
        asyncio.run_coroutine_threadsafe(
            d.pull(name, platform=str(platform) if platform else None), loop).result()

    def storage(fn: Any) -> Any:
        return d.storage.submit(fn).result()

    def work() -> BuildResult:
        svc = d.images.svc
        ctx = os.path.join(workdir, "context")
        ex = Executor(svc, workdir, Runtime(runtime_name, runtime_path,
                                            d.cfg.runtime_root(runtime_name)),
                      storage, cancel)
        cache = BuildCache(svc.root)
        try:
            ex.start()
            os.makedirs(ctx)
            with open(body, "rb") as f:
                extract_tar(f, ctx)
            os.unlink(body)
            return Builder(ex, cache, pull).build(ctx, opts, emit)
        finally:
            ex.release()
            cache.close()
            remove_tree(workdir)

    fut: asyncio.Future[BuildResult] = loop.create_future()

    def thread() -> None:
        # A thread of its own, not the loop's default executor: a long build must not
        # hold a worker that shims and other handlers wait for.
        try:
            res = work()
        except BaseException as e:
            loop.call_soon_threadsafe(_settle, fut, None, e)
        else:
            loop.call_soon_threadsafe(_settle, fut, res, None)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=thread, name="build", daemon=True).start()
    resp = await stream_json(request)
    try:
        while (msg := await queue.get()) is not None:
            await send_json(resp, msg)
        try:
            res = fut.result()
        except Exception as e:
            await send_json(resp, _message(e))
        else:
            short = res.image_id.removeprefix("sha256:")[:12]
            if quiet:
                await send_json(resp, {"stream": res.image_id + "\n"})
            else:
                await send_json(resp, {"aux": {"ID": res.image_id}})
                await send_json(resp, {"stream": f"Successfully built {short}\n"})
            for t in res.tags:
                name = reference.parse(t).familiar()
                d.events.publish("image", "tag", name, {"name": name})
                if not quiet:
                    await send_json(resp, {"stream": f"Successfully tagged {name}\n"})
        await resp.write_eof()
    finally:
        # a client that went away (or a cancelled handler) stops the build; its outcome
        # is then nobody's to read
        cancel.set()
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    return resp


async def prune(request: web.Request) -> web.Response:
    """Forget the layer cache; what only it kept is collected."""
    d = daemon(request)

    def clear() -> int:
        c = BuildCache(d.images.svc.root)
        try:
            return c.clear(d.images.svc.content)
        finally:
            c.close()

    await d.blocking(clear)
    reclaimed = await d.gc()
    return reply({"CachesDeleted": None, "SpaceReclaimed": reclaimed})


def _history(d: Any, ref: str) -> list[dict[str, Any]]:
    """The image config's history, newest first, as `docker history` shows a build: the
    layer entries carry their layer's (compressed) size; only the top has an ID, since
    the steps below are not images of their own name here."""
    from pallet.daemon.images import familiar, parse_time
    from pallet.oci.image import History

    _img, r = d.images.lookup(ref)
    layers = list(r.layers)
    entries = r.config.history or [History(created=r.config.created) for _ in layers]
    out = []
    for h in entries:
        size = 0
        if not h.empty_layer and layers:
            size = layers.pop(0).size
        out.append({"Id": "<missing>", "Created": int(parse_time(h.created)),
                    "CreatedBy": h.created_by or "", "Tags": None, "Size": size,
                    "Comment": h.comment or ""})
    out.reverse()
    if out:
        iid = str(r.manifest.config.digest)
        out[0]["Id"] = iid
        out[0]["Tags"] = sorted(familiar(i.name) for i in d.images.names_of(iid)) or None
    return out


async def history(request: web.Request) -> web.Response:
    d = daemon(request)
    return reply(await d.blocking(_history, d, request.match_info["name"]))


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/build", build),
    ("POST", "/build/prune", prune),
    ("GET", "/images/{name:.+}/history", history),
]
