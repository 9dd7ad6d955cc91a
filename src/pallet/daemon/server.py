"""The Daemon object (the services wired together) and its aiohttp application.

Every route is served both bare and under a `/v1.NN` prefix; a version above API_VERSION or
below MIN_API_VERSION is refused as dockerd does. Errors are Docker's JSON
`{"message": ...}` with the HTTP status `pallet.errors` maps the error kind to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

import pallet
from pallet.daemon.config import Config
from pallet.daemon.containers import Containers
from pallet.daemon.engine import archive as e_archive
from pallet.daemon.engine import build as e_build
from pallet.daemon.engine import containers as e_containers
from pallet.daemon.engine import exec as e_exec
from pallet.daemon.engine import images as e_images
from pallet.daemon.engine import networks as e_networks
from pallet.daemon.engine import ops as e_ops
from pallet.daemon.engine import system as e_system
from pallet.daemon.engine import volumes as e_volumes
from pallet.daemon.engine.common import DAEMON
from pallet.daemon.events import Events
from pallet.daemon.execs import Execs
from pallet.daemon.health import Health
from pallet.daemon.images import Images
from pallet.daemon.networks import Networks
from pallet.daemon.store import ContainerStore
from pallet.daemon.version import API_VERSION, MIN_API_VERSION, parse
from pallet.errors import PalletError, Unavailable, http_status
from pallet.images.service import ImageService

log = logging.getLogger("palletd")
T = TypeVar("T")
VERSION_RE = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
HEADERS = {"Api-Version": API_VERSION, "Docker-Experimental": "false", "Ostype": "linux",
           "Server": f"Pallet/{pallet.__version__} (linux)"}


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        for d in (cfg.root, cfg.exec_root, os.path.join(cfg.exec_root, "s"),
                  os.path.join(cfg.exec_root, "shims"), os.path.join(cfg.root, "containers")):
            os.makedirs(d, exist_ok=True)
        os.chmod(os.path.join(cfg.exec_root, "s"), 0o700)
        # one storage thread: image, snapshot and content operations are blocking and
        # run one at a time there
        self.storage = ThreadPoolExecutor(1, thread_name_prefix="storage")
        self.images = Images(ImageService(cfg.root, cfg.snapshotter))
        self.store = ContainerStore(os.path.join(cfg.root, "metadata", "containers.db"))
        self.events = Events()
        self.networks = Networks(cfg.root, cfg.exec_root, bridge=cfg.bridge,
                                 subnet=cfg.bridge_subnet, plugin_dirs=cfg.cni_plugin_dirs)
        self.containers = Containers(cfg, self.store, self.images, self.events, self.storage,
                                     self.networks)
        self.execs = Execs(self.containers)
        self.containers.health = Health(self.containers, self.execs)
        self.volumes = self.containers.volumes
        self.node_id = self._node_id()

    def _node_id(self) -> str:
        path = os.path.join(self.cfg.root, "engine-id")
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            nid = secrets.token_hex(16)
            with open(path, "w") as f:
                f.write(nid)
            return nid

    async def blocking(self, fn: Any, *args: Any, **kw: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.storage, lambda: fn(*args, **kw))

    # --- images through the registry client -------------------------------------------

    def _registry_options(self, registry: str, creds: Any) -> Any:
        from pallet.registry.client.api import Options

        host = registry.split(":")[0]
        insecure = (registry in self.cfg.insecure_registries or host in ("localhost",)
                    or host.startswith("127."))
        return Options(hosts_dir=self.cfg.hosts_dir, insecure=insecure, credentials=creds)

    async def pull(self, ref: str, *, creds: Any = None, platform: str | None = None,
                   progress: Any = None) -> Any:
        try:
            from pallet.registry.client import api
        except ImportError:
            raise Unavailable("image pull needs the registry client (pallet.registry)") \
                from None
        from pallet.images import reference
        from pallet.oci.image import Platform

        plat = Platform.parse(platform) if platform else None
        opts = self._registry_options(reference.parse(ref).domain, creds)
        return await api.pull(self.images.svc, ref, opts=opts, platform=plat,
                              progress=progress)

    async def inspect_remote(self, ref: str, creds: Any = None) -> Any:
        from pallet.images import reference
        from pallet.registry.client import api

        opts = self._registry_options(reference.parse(ref).domain, creds)
        return await api.inspect_remote(self.images.svc, ref, opts=opts)

    async def login(self, registry: str, creds: Any) -> None:
        """What dockerd does for `docker login`: check the credentials, keep nothing (the
        client stores them and sends them with each pull and push)."""
        from pallet.registry.client import api

        await api.check_login(registry, creds, opts=self._registry_options(registry, creds))

    async def push(self, ref: str, *, creds: Any = None, progress: Any = None) -> Any:
        from pallet.images import reference
        from pallet.registry.client import api

        opts = self._registry_options(reference.parse(ref).domain, creds)
        return await api.push(self.images.svc, ref, opts=opts, progress=progress)

    # --- storage ------------------------------------------------------------------------

    async def gc(self) -> int:
        """The image library's collector (metadata/gc.py: image names, leases of pulls and
        builds in flight, and active snapshots — every container's root — are the roots)."""
        res = await self.blocking(self.images.svc.gc)
        if res.content or res.snapshots:
            log.info("gc: %d blobs, %d snapshots, %d bytes", len(res.content),
                     len(res.snapshots), res.reclaimed)
        return res.reclaimed

    def content_size(self) -> int:
        return sum(i.size for i in self.images.svc.content.walk())

    def sizes(self, cs: list[Any]) -> list[tuple[int, int]]:
        """(SizeRw, SizeRootFs) of containers: their snapshot's own files, and with their
        image's layers (what `docker ps -s` and `inspect -s` show)."""
        images = {s["Id"]: s["Size"] for s in self.images.summaries()}
        out = []
        for c in cs:
            rw = self.snapshot_size(c.rec["_Snapshot"])
            out.append((rw, rw + images.get(c.rec["Image"], 0)))
        return out

    def snapshot_size(self, key: str) -> int:
        try:
            return self.images.svc.snapshotter.usage(key).size
        except PalletError:
            return 0

    async def close(self) -> None:
        await self.containers.shutdown()
        self.storage.shutdown(wait=True)
        self.store.close()
        self.images.svc.close()


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"message": message}).encode(),
                        content_type="application/json")


@web.middleware
async def api_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    m = VERSION_RE.match(request.path)
    if m:
        v = (int(m.group(1)), int(m.group(2)))
        if v > parse(API_VERSION):
            return _error(400, f"client version {v[0]}.{v[1]} is too new. Maximum supported "
                          f"API version is {API_VERSION}")
        if v < parse(MIN_API_VERSION):
            return _error(400, f"client version {v[0]}.{v[1]} is too old. Minimum supported "
                          f"API version is {MIN_API_VERSION}, please upgrade your client to "
                          "a newer version")
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except PalletError as e:
        return _error(http_status(e), str(e))
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as e:
        log.exception("%s %s", request.method, request.path)
        return _error(500, f"{type(e).__name__}: {e}")


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    for k, v in HEADERS.items():
        response.headers.setdefault(k, v)


async def _not_found(request: web.Request) -> web.Response:
    return _error(404, "page not found")


def make_app(d: Daemon) -> web.Application:
    app = web.Application(middlewares=[api_middleware], client_max_size=1 << 30)
    app[DAEMON] = d
    app.on_response_prepare.append(_headers)
    for mod in (e_system, e_containers, e_exec, e_images, e_networks, e_volumes,
                e_archive, e_ops, e_build):
        for method, path, handler in mod.ROUTES:
            for prefix in ("", "/v{version:[0-9]+\\.[0-9]+}"):
                if method == "GET":
                    app.router.add_get(prefix + path, handler)
                else:
                    app.router.add_route(method, prefix + path, handler)
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app


async def serve(cfg: Config, stop: asyncio.Event) -> None:
    d = Daemon(cfg)
    await d.containers.recover()
    app = make_app(d)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                           shutdown_timeout=1.0)
    await runner.setup()
    os.makedirs(os.path.dirname(cfg.socket), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(cfg.socket)
    site = web.UnixSite(runner, cfg.socket)
    await site.start()
    os.chmod(cfg.socket, 0o660)
    log.info("palletd %s: API %s on %s (root %s, exec-root %s, runtime %s)",
             pallet.__version__, API_VERSION, cfg.socket, cfg.root, cfg.exec_root,
             cfg.default_runtime)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cfg.socket)
        await d.close()
