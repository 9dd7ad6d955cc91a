"""/_ping, /version, /info, /events, /system/df."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import time
from typing import Any

from aiohttp import web

import pallet
from pallet.daemon.engine.common import (
    daemon,
    filters,
    reply,
    send_json,
    stream_json,
)
from pallet.daemon.events import matches
from pallet.daemon.filters import timestamp
from pallet.daemon.spec import blkio_weight_supported
from pallet.daemon.version import API_VERSION, MIN_API_VERSION


async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK" if request.method != "HEAD" else None,
                        headers={"Cache-Control": "no-cache, no-store, must-revalidate",
                                 "Pragma": "no-cache"},
                        content_type="text/plain")


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


async def version(request: web.Request) -> web.Response:
    d = daemon(request)
    kernel = platform.release()
    rt_name, rt_path = d.cfg.runtime_path(None)
    return reply({
        "Platform": {"Name": "pallet"},
        "Components": [
            {"Name": "Engine", "Version": pallet.__version__, "Details": {
                "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                "Arch": _arch(), "BuildTime": "", "Experimental": "false", "GitCommit": "",
                "GoVersion": "python" + platform.python_version(), "KernelVersion": kernel,
                "Os": "linux"}},
            {"Name": rt_name, "Version": pallet.__version__, "Details": {"Path": rt_path}},
        ],
        "Version": pallet.__version__, "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
        "GoVersion": "python" + platform.python_version(), "Os": "linux", "Arch": _arch(),
        "KernelVersion": kernel, "BuildTime": "",
    })


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


async def info(request: web.Request) -> web.Response:
    d = daemon(request)
    cs = list(d.containers.by_id.values())
    running = sum(1 for c in cs if c.running)
    images = len(await d.blocking(d.images.summaries, None))
    return reply({
        "ID": d.node_id, "Containers": len(cs), "ContainersRunning": running,
        "ContainersPaused": 0, "ContainersStopped": len(cs) - running, "Images": images,
        "Driver": d.images.svc.snapshotter_name,
        "DriverStatus": [["Root Dir", os.path.join(d.cfg.root, "snapshots")]],
        "Plugins": {"Volume": ["local"], "Network": [], "Authorization": None,
                    "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": False, "KernelMemory": False,
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True,
        "PidsLimit": True, "IPv4Forwarding": False, "BridgeNfIptables": False,
        "BridgeNfIp6tables": False, "Debug": False, "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": False, "NGoroutines": len(asyncio.all_tasks()),
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
        + time.strftime("%z")[:3] + ":" + time.strftime("%z")[3:],
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": _cgroup_version(),
        "NEventsListener": len(d.events.subscribers), "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(), "OSVersion": "", "OSType": "linux",
        "Architecture": platform.machine(), "IndexServerAddress":
        "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [],
                           "AllowNondistributableArtifactsHostnames": [],
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                           "IndexConfigs": {}, "Mirrors": []},
        "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(), "GenericResources": None,
        "DockerRootDir": d.cfg.root, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": pallet.__version__,
        "Runtimes": {name: {"path": path} for name, path in d.cfg.runtimes.items()},
        "DefaultRuntime": d.cfg.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""}, "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=cgroupns"] if _cgroup_version() == "2" else [],
        "Warnings": [] if blkio_weight_supported() else [
            "WARNING: No blkio weight support", "WARNING: No blkio weight_device support"],
    })


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


async def events(request: web.Request) -> web.StreamResponse:
    d = daemon(request)
    f = filters(request)
    since = timestamp(request.query["since"]) if request.query.get("since") else 0.0
    until_q = request.query.get("until")
    until = timestamp(until_q) if until_q else None
    q = d.events.subscribe()  # before the history, so nothing falls between
    resp = await stream_json(request)
    try:
        if since:
            for ev in list(d.events.history):
                if ev["timeNano"] / 1e9 >= since and (until is None or
                                                        ev["timeNano"] / 1e9 <= until) \
                        and matches(ev, f):
                    await send_json(resp, ev)
        while True:
            timeout = None if until is None else max(0.0, until - time.time())
            if timeout == 0.0:
                break
            try:
                ev = await asyncio.wait_for(q.get(), timeout)
            except TimeoutError:
                break
            if until is not None and ev["timeNano"] / 1e9 > until:
                break
            if matches(ev, f):
                await send_json(resp, ev)
    finally:
        d.events.unsubscribe(q)
    await resp.write_eof()
    return resp


async def df(request: web.Request) -> web.Response:
    d = daemon(request)
    users = {k: len(v) for k, v in d.containers.image_users().items()}
    images = await d.blocking(d.images.summaries, users)
    layers = await d.blocking(d.content_size)
    cs = list(d.containers.by_id.values())
    containers = []
    for c, (rw, root) in zip(cs, await d.blocking(d.sizes, cs), strict=True):
        s = d.containers.summary(c)
        s["SizeRw"], s["SizeRootFs"] = rw, root
        containers.append(s)
    return reply({"LayersSize": layers, "Images": images, "Containers": containers,
                  "Volumes": await d.blocking(d.volumes.df), "BuildCache": []})


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", events),
    ("GET", "/system/df", df),
]
