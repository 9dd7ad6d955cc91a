"""The container lifecycle in palletd.

    create:  merge the request with the image config, prepare a snapshot, save the record
    start:   mount the snapshot, write config.json, launch the shim (which runs the
             runtime's `create`), connect the attach streams waiting, then `start`
    running: a task holds a `wait` on the shim; its answer (or the shim's death) is the exit
    exit:    the shim deletes the runtime container and exits; rootfs unmounted; waiters
             told; the restart policy may start it again, AutoRemove removes it
    remove:  the snapshot, directories and record go

A restarted palletd finds its containers in the store and each running one's shim by its
socket (`recover`): running ones keep running, and ones that exited meanwhile get the exit
code the shim recorded. Records are Docker's inspect shape, with private `_` keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import secrets
import shutil
import signal as _signal
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from pallet.daemon import health as _health
from pallet.daemon import links as _links
from pallet.daemon import logopts, ops
from pallet.daemon import spec as _spec
from pallet.daemon.config import Config
from pallet.daemon.events import Events
from pallet.daemon.filters import label_matches
from pallet.daemon.humanize import human_duration
from pallet.daemon.images import Images, parse_time
from pallet.daemon.mounts import views as mount_views
from pallet.daemon.networks import Networks
from pallet.daemon.sandbox import Sandboxes
from pallet.daemon.shims import LaunchSpec, Shim, Zygote, launch
from pallet.daemon.store import ContainerStore
from pallet.daemon.streams import Client, pump
from pallet.daemon.volumes import Volumes
from pallet.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PalletError,
    SystemError_,
)
from pallet.oci.image import ImageConfig
from pallet.oci.spec_default import SHM_SIZE
from pallet.runtime.state import now_rfc3339
from pallet.shim import wire

if TYPE_CHECKING:
    from pallet.daemon.health import Health

log = logging.getLogger("palletd")
T = TypeVar("T")
ZERO_TIME = "0001-01-01T00:00:00Z"
NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
STOP_TIMEOUT = 10


class NotModified(Exception):
    """The container already is in the state asked for (HTTP 304)."""


def signal_number(sig: str | int | None, default: int = _signal.SIGTERM) -> int:
    if sig is None or sig == "":
        return default
    if isinstance(sig, int) or str(sig).isdigit():
        return int(sig)
    name = str(sig).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(getattr(_signal, name))
    except AttributeError:
        raise InvalidArgument(f"invalid signal: {sig}") from None


_ADJ = ["admiring", "brave", "calm", "eager", "festive", "gentle", "happy", "jolly", "keen",
        "lucid", "modest", "nifty", "quirky", "relaxed", "serene", "tender", "upbeat", "vivid",
        "wizardly", "zealous"]
_NAMES = ["babbage", "curie", "darwin", "euler", "feynman", "gauss", "hopper", "jepsen",
          "knuth", "lamport", "lovelace", "noether", "pike", "ritchie", "shannon", "thompson",
          "turing", "wozniak"]


class Container:
    def __init__(self, rec: dict[str, Any]) -> None:
        self.rec = rec
        self.shim: Shim | None = None
        self.lock = asyncio.Lock()
        self.monitor: asyncio.Task[None] | None = None
        self.restart_task: asyncio.Task[None] | None = None
        self.pending_attach: list[tuple[dict[str, Any], asyncio.Future[Any]]] = []
        self.exit_waiters: list[asyncio.Future[int]] = []
        self.remove_waiters: list[asyncio.Future[int]] = []
        self.exec_ids: list[str] = []
        self.removing = False
        self.started_mono = 0.0
        self.warnings: list[str] = []  # what create accepted and dropped, for its reply

    @property
    def id(self) -> str:
        return self.rec["Id"]

    @property
    def name(self) -> str:
        return self.rec["Name"].lstrip("/")

    @property
    def state(self) -> dict[str, Any]:
        return self.rec["State"]

    @property
    def running(self) -> bool:
        return bool(self.state["Running"])

    @property
    def tty(self) -> bool:
        return bool(self.rec["Config"].get("Tty"))


class Containers:
    def __init__(self, cfg: Config, store: ContainerStore, images: Images, events: Events,
                 storage: ThreadPoolExecutor, networks: Networks) -> None:
        self.cfg = cfg
        self.networks = networks
        # list() copies the values in one step under the GIL: the sandbox reads this from
        # worker threads while the event loop may add or drop containers
        self.sandboxes = Sandboxes(networks, self.get, lambda: [
            c for c in list(self.by_id.values()) if c.running])
        self.store = store
        self.images = images
        self.events = events
        self.storage = storage
        self.by_id: dict[str, Container] = {}
        self.volumes = Volumes(cfg.root, events, self)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.zygote = Zygote(os.path.join(cfg.exec_root, "shims"))
        self.health: Health | None = None  # set by the daemon (it needs the execs)

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.storage, fn, *args)

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self._task_done)
        return t

    def _task_done(self, t: asyncio.Task[Any]) -> None:
        self.tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("background task failed", exc_info=t.exception())

    def save(self, c: Container) -> None:
        self.store.update(c.rec)

    def publish(self, c: Container, action: str, **extra: str) -> None:
        attrs = {"image": c.rec["Config"].get("Image", ""), "name": c.name}
        attrs.update({k: str(v) for k, v in (c.rec["Config"].get("Labels") or {}).items()})
        attrs.update(extra)
        self.events.publish("container", action, c.id, attrs)

    # --- lookup ---------------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        if ref in self.by_id:
            return self.by_id[ref]
        name = ref.lstrip("/")
        for c in self.by_id.values():
            if c.name == name:
                return c
        hits = [c for c in self.by_id.values() if c.id.startswith(ref)] if ref else []
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def image_users(self, running: bool = False) -> dict[str, list[str]]:
        """Image ID -> the containers made from it (only the running ones: `running`)."""
        out: dict[str, list[str]] = {}
        for c in self.by_id.values():
            if c.running or not running:
                out.setdefault(c.rec["Image"], []).append(c.id)
        return out

    # --- create ---------------------------------------------------------------------------

    def _new_name(self) -> str:
        taken = {c.name for c in self.by_id.values()}
        while True:
            n = f"{random.choice(_ADJ)}_{random.choice(_NAMES)}"
            if n not in taken:
                return n
            n += str(random.randint(1, 99))
            if n not in taken:
                return n

    def free_name(self, name: str) -> str:
        """`name` without its leading '/', if it is valid and no container has it."""
        if not NAME_RE.match(name):
            raise InvalidArgument(f"Invalid container name ({name}), only "
                                  "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        name = name.lstrip("/")
        for c in self.by_id.values():
            if c.name == name:
                raise AlreadyExists(
                    f'Conflict. The container name "/{name}" is already in use by '
                    f'container "{c.id}". You have to remove (or rename) that container '
                    "to be able to reuse that name.")
        return name

    async def create(self, body: dict[str, Any], name: str | None) -> Container:
        name = self.free_name(name) if name else self._new_name()
        image_ref = body.get("Image") or ""
        if not image_ref:
            raise InvalidArgument("config.Image: an image is required")
        host = dict(body.get("HostConfig") or {})
        # Log drivers: json-file (docker-py reads it back from inspect), or none.
        log_config = host.get("LogConfig") or {}
        driver = log_config.get("Type") or "json-file"
        if driver not in ("json-file", "none"):
            raise InvalidArgument(f"log driver {driver!r} is not supported (json-file and "
                                  "none are)")
        host["LogConfig"] = {"Type": driver, "Config": log_config.get("Config") or {}}
        if driver == "none" and host["LogConfig"]["Config"]:
            key = next(iter(host["LogConfig"]["Config"]))
            raise InvalidArgument(f"unknown log opt '{key}' for none log driver")
        logopts.parse(host["LogConfig"]["Config"])
        runtime_name, _ = self.cfg.runtime_path(host.get("Runtime") or None)
        host["Runtime"] = runtime_name
        policy = host.get("RestartPolicy") or {}
        if policy.get("Name") not in (None, "", "no", "always", "on-failure",
                                      "unless-stopped"):
            raise InvalidArgument(f"invalid restart policy {policy.get('Name')!r}")
        if policy.get("Name") != "on-failure" and policy.get("MaximumRetryCount"):
            raise InvalidArgument("maximum retry count cannot be used with restart policy "
                                  f"{policy.get('Name')!r}")
        if host.get("AutoRemove") and policy.get("Name") not in (None, "", "no"):
            raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
        host.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
        host.setdefault("NetworkMode", "default")
        # checks that do not need the image: fail before any work
        _spec.capabilities(host)
        _spec.security_options(host)
        warnings = _spec.check_host(host)
        for mode in (host.get("PidMode") or "", host.get("IpcMode") or ""):
            if mode.startswith("container:"):
                try:  # must exist now; not a 404: the docker CLI would go and pull the image
                    self.get(mode[10:])
                except NotFound as e:
                    raise InvalidArgument(str(e)) from None

        try:
            img, resolved = await self.blocking(self.images.lookup, image_ref)
        except NotFound:
            raise NotFound(f"No such image: {image_ref}") from None
        icfg = resolved.config
        ic = icfg.config
        cfg = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        env: list[str] = list(ic.Env or [])
        for e in body.get("Env") or []:
            env = [x for x in env if x.split("=", 1)[0] != e.split("=", 1)[0]] + [e]
        cfg["Env"] = env
        entrypoint = body.get("Entrypoint")
        if entrypoint is None:
            entrypoint = list(ic.Entrypoint or [])
        elif isinstance(entrypoint, str):
            entrypoint = [entrypoint]
        entrypoint = [x for x in entrypoint if x != ""] if entrypoint == [""] else entrypoint
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            cmd = [] if body.get("Entrypoint") is not None else list(ic.Cmd or [])
        argv = list(entrypoint) + list(cmd)
        if not argv:
            raise InvalidArgument("No command specified")
        cfg["Entrypoint"] = entrypoint or None
        cfg["Cmd"] = cmd or None
        cfg["WorkingDir"] = body.get("WorkingDir") or ic.WorkingDir or ""
        cfg["User"] = body.get("User") or ic.User or ""
        cfg["Labels"] = {**(ic.Labels or {}), **(body.get("Labels") or {})}
        if not cfg.get("StopSignal") and ic.StopSignal:
            cfg["StopSignal"] = ic.StopSignal
        cfg["Healthcheck"] = _health.merge(body.get("Healthcheck"), ic.extra.get("Healthcheck"))
        _health.validate(cfg["Healthcheck"])
        if not cfg.get("Healthcheck"):
            cfg.pop("Healthcheck")
        if not cfg.get("Shell") and ic.extra.get("Shell"):
            cfg["Shell"] = list(ic.extra["Shell"])
        cfg.setdefault("Hostname", "")
        cfg["Image"] = image_ref

        if not cfg.get("ExposedPorts") and icfg.config.ExposedPorts:
            cfg["ExposedPorts"] = dict(icfg.config.ExposedPorts)
        net = {"Id": "", "HostConfig": host, "Config": cfg}
        self.sandboxes.configure(net, body.get("NetworkingConfig"))
        if host.get("Links"):
            mode = host.get("NetworkMode") or "default"
            if mode == "host" or mode.startswith("container:"):
                kind = "host" if mode == "host" else "container"
                raise InvalidArgument(f"conflicting options: {kind} type networking can't be "
                                      "used with links. This would result in undefined "
                                      "behavior")
            for link in host["Links"]:  # docker checks that they exist at create
                target = _links.parse(link)[0]
                try:
                    self.sandboxes.lookup(target)
                except NotFound:  # not a 404: the docker CLI would go and pull the image
                    raise InvalidArgument(f"could not get container for {target}") from None
            host["Links"] = _links.normalize(host["Links"], name)
        cid = secrets.token_hex(32)
        cfg["Hostname"] = cfg["Hostname"] or cid[:12]
        mount_points = self.volumes.register(host, cfg, ic.Volumes)
        top: str = await self.blocking(self._prepare_snapshot, image_ref, resolved, cid)
        cdir = self.cfg.container_dir(cid)
        os.makedirs(cdir, exist_ok=True)
        rec: dict[str, Any] = {
            "Id": cid, "Created": now_rfc3339(), "Path": argv[0], "Args": argv[1:],
            "State": {"Status": "created", "Running": False, "Paused": False,
                      "Restarting": False, "OOMKilled": False, "Dead": False, "Pid": 0,
                      "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME,
                      "FinishedAt": ZERO_TIME},
            "Image": str(resolved.manifest.config.digest),
            "ResolvConfPath": os.path.join(cdir, "resolv.conf"),
            "HostnamePath": os.path.join(cdir, "hostname"),
            "HostsPath": os.path.join(cdir, "hosts"),
            "LogPath": "" if host["LogConfig"]["Type"] == "none" else
            os.path.join(cdir, f"{cid}-json.log"),
            "Name": "/" + name, "RestartCount": 0,
            "Driver": self.images.svc.snapshotter_name, "Platform": "linux",
            "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
            "HostConfig": host, "Config": cfg,
            "_Snapshot": cid, "_Parent": top, "_ImageConfig": icfg.to_dict(),
            "_ImageName": img.name, "_ManuallyStopped": False, "_MountPoints": mount_points,
            "NetworkSettings": net["NetworkSettings"], "_Ifnames": {},
        }
        c = Container(rec)
        c.warnings = warnings
        try:
            self.store.insert(rec)
        except AlreadyExists:
            await self.blocking(self._remove_snapshot, cid)
            raise
        self.by_id[cid] = c
        self.publish(c, "create")
        return c

    def _prepare_snapshot(self, ref: str, resolved: Any, key: str) -> str:
        from pallet.images.unpack import unpack

        svc = self.images.svc
        top = unpack(svc.content, svc.snapshotter, resolved)
        svc.snapshotter.prepare(key, top, {"io.pallet.container": key})
        return top

    def _remove_snapshot(self, key: str) -> None:
        with contextlib.suppress(NotFound):
            self.images.svc.snapshotter.remove(key)

    # --- rootfs ---------------------------------------------------------------------------

    def _mount_rootfs(self, c: Container) -> str:
        from pallet.snapshots.api import mount_all

        bundle = self.cfg.bundle_dir(c.id)
        rootfs = os.path.join(bundle, "rootfs")
        os.makedirs(rootfs, exist_ok=True)
        if os.path.ismount(rootfs):
            return rootfs
        mount_all(self.images.svc.snapshotter.mounts(c.rec["_Snapshot"]), rootfs)
        return rootfs

    def _unmount_rootfs(self, c: Container) -> None:
        from pallet.linux import libc

        self.volumes.teardown(c)
        for path in (os.path.join(self.cfg.bundle_dir(c.id), "rootfs"), self._shm_dir(c)):
            while os.path.ismount(path):
                try:
                    libc.umount2(path, 2)  # MNT_DETACH
                except OSError:
                    break

    def _donor(self, mode: str, what: str) -> Container:
        other = self.get(mode[10:])
        if not other.running or not other.state.get("Pid"):
            raise FailedPrecondition(f"cannot join {what} of a non running container: "
                                     f"{mode[10:]}")
        return other

    def _joins(self, c: Container) -> tuple[dict[str, str], str | None]:
        """The namespaces of other containers this one joins (`--pid container:<x>`,
        `--ipc container:<x>`), and the host directory its /dev/shm is (its own for
        `--ipc shareable`, the donor's for `--ipc container:<x>`)."""
        host = c.rec["HostConfig"]
        joins: dict[str, str] = {}
        pid = host.get("PidMode") or ""
        if pid.startswith("container:"):
            joins["pid"] = f"/proc/{self._donor(pid, 'PID').state['Pid']}/ns/pid"
        ipc = host.get("IpcMode") or ""
        if ipc == "shareable":
            return joins, self._mount_shm(c)
        if ipc.startswith("container:"):
            donor = self._donor(ipc, "IPC")
            if (donor.rec["HostConfig"].get("IpcMode") or "") != "shareable":
                raise FailedPrecondition("non-shareable IPC (hint: use IpcMode:shareable for "
                                         "the donor container)")
            joins["ipc"] = f"/proc/{donor.state['Pid']}/ns/ipc"
            return joins, self._shm_dir(donor)
        return joins, None

    def _shm_dir(self, c: Container) -> str:
        return os.path.join(self.cfg.container_dir(c.id), "mounts", "shm")

    def _mount_shm(self, c: Container) -> str:
        """A shareable container's /dev/shm: a tmpfs on the host that joiners bind too."""
        from pallet.linux import libc
        from pallet.linux import mount as mnt

        path = self._shm_dir(c)
        if not os.path.ismount(path):
            os.makedirs(path, mode=0o700, exist_ok=True)
            size = int(c.rec["HostConfig"].get("ShmSize") or SHM_SIZE)
            libc.mount("shm", path, "tmpfs", mnt.MS_NOSUID | mnt.MS_NODEV | mnt.MS_NOEXEC,
                       f"mode=1777,size={size}")
        return path

    def _write_bundle(self, c: Container, netns_path: str | None,
                      etc: dict[str, str]) -> dict[str, Any]:
        rootfs = self._mount_rootfs(c)
        self.volumes.setup(c.rec, rootfs)
        icfg = ImageConfig.from_dict(c.rec["_ImageConfig"])
        joins, shm = self._joins(c)
        spec = _spec.build(icfg, c.rec, rootfs, netns_path=netns_path, etc=etc,
                           joins=joins, shm=shm)
        spec["root"]["path"] = rootfs
        path = os.path.join(self.cfg.bundle_dir(c.id), "config.json")
        import json

        with open(path + ".tmp", "w") as f:
            json.dump(spec, f)
        os.replace(path + ".tmp", path)
        return spec

    # --- start ----------------------------------------------------------------------------

    async def start(self, c: Container) -> None:
        async with c.lock:
            if c.state.get("Paused"):
                raise FailedPrecondition("cannot start a paused container, try unpause "
                                         "instead")
            if c.running:
                raise NotModified()
            if c.removing:
                raise FailedPrecondition(f"container {c.id[:12]} is marked for removal")
            if c.restart_task is not None:
                c.restart_task.cancel()
                c.restart_task = None
            c.rec["_ManuallyStopped"] = False
            try:
                await self._start_locked(c)
            except PalletError as e:
                msg = str(e)
                code = 127 if ("no such file" in msg or "not found" in msg) else \
                    126 if "permission denied" in msg else 128
                c.state.update(ExitCode=code, Error=msg)
                self.save(c)
                if c.rec["HostConfig"].get("AutoRemove"):
                    self.spawn(self.remove(c, force=True))
                raise

    async def _start_locked(self, c: Container) -> None:
        try:
            await self._start_steps(c)
        except BaseException as e:
            # attach streams waiting for this start end with the error
            for _opts, fut in c.pending_attach:
                if not fut.done():
                    fut.set_exception(e if isinstance(e, PalletError)
                                      else SystemError_(str(e)))
            c.pending_attach.clear()
            raise

    async def _start_steps(self, c: Container) -> None:
        if "NetworkSettings" not in c.rec:  # a record from before networks
            self.sandboxes.configure(c.rec, None)
        c.rec["_LinkEnv"] = self.sandboxes.link_environment(c.rec)
        netns_path, etc, attaching = await self.sandboxes.up(c, self.cfg.container_dir(c.id))
        try:
            await self._create_task(c, netns_path, etc, attaching)
        except BaseException:
            # the ADDs under way finish (or undo themselves) before anything is released
            with contextlib.suppress(BaseException):
                await self.sandboxes.failure(attaching)
            raise

    async def _create_task(self, c: Container, netns_path: str | None, etc: dict[str, str],
                           attaching: asyncio.Task[None] | None) -> None:
        """The bundle, the shim (`<runtime> create`), then `start` once the network is up;
        each failure undoes what was done."""
        try:
            await self.blocking(self._write_bundle, c, netns_path, etc)
        except (PalletError, OSError) as e:
            await self.sandboxes.failure(attaching)
            await self.blocking(self._unmount_rootfs, c)
            await self.sandboxes.down(c)
            if isinstance(e, OSError):
                raise SystemError_(f"preparing the bundle: {e}") from None
            raise
        runtime_name, runtime = self.cfg.runtime_path(c.rec["HostConfig"].get("Runtime"))
        shim_dir = self.cfg.shim_dir(c.id)
        shutil.rmtree(shim_dir, ignore_errors=True)
        ls = LaunchSpec(
            id=c.id, bundle=self.cfg.bundle_dir(c.id), dir=shim_dir,
            socket=self.cfg.shim_socket(c.id), console_socket=self.cfg.console_socket(c.id),
            runtime=runtime, runtime_root=self.cfg.runtime_root(runtime_name),
            log_path=c.rec["LogPath"], log_format=self.cfg.log_format, tty=c.tty,
            stdin=bool(c.rec["Config"].get("OpenStdin")),
            log_max=logopts.parse((c.rec["HostConfig"].get("LogConfig") or {}).get("Config")),
            runtime_in_process=self.cfg.runtime_in_process(runtime_name))
        try:
            shim, pid = await launch(ls, os.path.join(self.cfg.exec_root, "shims",
                                                       c.id + ".log"), self.zygote)
        except PalletError as e:
            # a failed ADD may have taken the netns from under the runtime: its error is
            # the one that says what went wrong
            net = await self.sandboxes.failure(attaching)
            await self.blocking(self._unmount_rootfs, c)
            await self.sandboxes.down(c)
            err = net or SystemError_(f"failed to create task for container: {e}")
            c.state.update(Error=str(err), ExitCode=128)
            self.save(c)
            raise err from None
        c.shim = shim
        # attach streams that wait for the start connect before any output can happen
        for opts, fut in c.pending_attach:
            if fut.done():
                continue
            try:
                fut.set_result(await shim.stream("attach", **opts))
            except PalletError as e:
                fut.set_exception(e)
        c.pending_attach.clear()
        # the network is up before the process runs
        err = await self.sandboxes.failure(attaching)
        st: dict[str, Any] = {}
        if err is None:
            try:
                st = await shim.call("start")
            except PalletError as e:
                err = SystemError_(f"failed to start container: {e}")
        if err is not None:
            with contextlib.suppress(PalletError):
                await shim.call("delete", force=True)
            await asyncio.get_running_loop().run_in_executor(None, shim.reap)
            c.shim = None
            await self.blocking(self._unmount_rootfs, c)
            await self.sandboxes.down(c)
            c.state.update(Error=str(err), ExitCode=128)
            self.save(c)
            raise err
        c.state.update(Status="running", Running=True, Restarting=False, Pid=pid,
                       ExitCode=0, Error="", StartedAt=st.get("started_at") or now_rfc3339())
        c.started_mono = time.monotonic()
        self.save(c)
        await self.sandboxes.announce(c)
        self.publish(c, "start")
        c.monitor = self.spawn(self._monitor(c, shim))
        if self.health is not None:
            self.health.watch(c)

    async def _monitor(self, c: Container, shim: Shim) -> None:
        try:
            st = await shim.wait()
            code, at, err = int(st.get("exit_code") or 0), st.get("exited_at") or "", ""
        except (PalletError, OSError):
            code, at, err = await self._shim_lost(c)
        await self._exited(c, shim, code, at, err)

    async def _shim_lost(self, c: Container) -> tuple[int, str, str]:
        """The shim is gone: its exit.json if the container had exited, else the container
        is killed (nothing would hold its stdio or see its exit) and reported as such."""
        import json

        try:
            with open(os.path.join(self.cfg.shim_dir(c.id), "exit.json")) as f:
                d = json.load(f)
            return int(d["exit_code"]), d.get("exited_at", ""), ""
        except (OSError, ValueError, KeyError):
            pass
        await self.runtime(c, "kill", c.id, "KILL")
        return 128 + _signal.SIGKILL, now_rfc3339(), "shim exited unexpectedly"

    async def runtime(self, c: Container, *argv: str) -> tuple[int, str, str]:
        """`<c's runtime> --root <its root> argv...` from palletd itself (the shim is gone or
        not involved): exit status, stdout, stderr."""
        name, path = self.cfg.runtime_path(c.rec["HostConfig"].get("Runtime"))
        p = await asyncio.create_subprocess_exec(
            path, "--root", self.cfg.runtime_root(name), *argv,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await p.communicate()
        return p.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    async def _exited(self, c: Container, shim: Shim, code: int, at: str, err: str) -> None:
        async with c.lock:
            if c.shim is not shim:
                return
            if self.health is not None:
                self.health.unwatch(c)
            try:
                await shim.call("delete", force=True)
            except PalletError:
                await self.runtime(c, "delete", "--force", c.id)
            await asyncio.get_running_loop().run_in_executor(None, shim.reap)
            c.shim = None
            await self.blocking(self._unmount_rootfs, c)
            c.state.update(Running=False)  # peers' hosts files drop it now
            self.sandboxes.release(c)
            for fut, _ in c.pending_attach:
                if not fut.done():
                    fut.cancel()
            c.state.update(Status="exited", Running=False, Paused=False, Pid=0, ExitCode=code,
                           FinishedAt=at or now_rfc3339(), Error=err)
            self.save(c)
            self.publish(c, "die", exitCode=str(code))
            for f in c.exit_waiters:
                if not f.done():
                    f.set_result(code)
            c.exit_waiters.clear()
            if self._should_restart(c, code):
                c.state.update(Status="restarting", Restarting=True)
                self.save(c)
                c.restart_task = self.spawn(self._restart_later(c))
            elif c.rec["HostConfig"].get("AutoRemove") and not c.removing:
                self.spawn(self.remove(c, force=True))

    def _should_restart(self, c: Container, code: int) -> bool:
        if c.rec.get("_ManuallyStopped") or c.removing:
            return False
        p = c.rec["HostConfig"].get("RestartPolicy") or {}
        name = p.get("Name") or "no"
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure" and code != 0:
            limit = int(p.get("MaximumRetryCount") or 0)
            return limit == 0 or c.rec["RestartCount"] < limit
        return False

    async def _restart_later(self, c: Container) -> None:
        ran = time.monotonic() - c.started_mono
        n = 0 if ran > 10 else c.rec.get("_Backoff", 0)
        c.rec["_Backoff"] = n + 1
        await asyncio.sleep(min(0.1 * (2 ** n), 5.0))
        async with c.lock:
            if c.running or c.removing or c.rec.get("_ManuallyStopped"):
                return
            c.restart_task = None
            c.rec["RestartCount"] += 1
            try:
                await self._start_locked(c)
                self.publish(c, "restart")
            except PalletError as e:
                log.warning("restart of %s failed: %s", c.id[:12], e)
                c.state.update(Status="exited", Restarting=False, Error=str(e))
                self.save(c)

    # --- stop, kill, restart --------------------------------------------------------------

    def _next_exit(self, c: Container) -> asyncio.Future[int]:
        f: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        c.exit_waiters.append(f)
        return f

    def _cancel_restart(self, c: Container) -> bool:
        if c.restart_task is not None:
            c.restart_task.cancel()
            c.restart_task = None
            c.state.update(Status="exited", Restarting=False)
            self.save(c)
            return True
        return False

    async def stop(self, c: Container, timeout: int | None = None,
                   sig: str | None = None) -> None:
        c.rec["_ManuallyStopped"] = True
        self.save(c)
        if self._cancel_restart(c):
            return
        async with c.lock:
            pass  # a start under way (a restart policy's) ends before we look
        if not c.running or c.shim is None:
            raise NotModified()
        signum = signal_number(sig or c.rec["Config"].get("StopSignal"))
        if timeout is None:
            st = c.rec["Config"].get("StopTimeout")
            timeout = STOP_TIMEOUT if st is None else int(st)
        exited = self._next_exit(c)
        shim = c.shim
        with contextlib.suppress(PalletError):
            await shim.call("kill", signal=signum)
        await ops.thaw_after_signal(self, c, signum)
        try:
            await asyncio.wait_for(asyncio.shield(exited), timeout if timeout >= 0 else None)
        except TimeoutError:
            with contextlib.suppress(PalletError):
                await shim.call("kill", signal=_signal.SIGKILL, all=True)
            with contextlib.suppress(PalletError):
                await shim.call("kill", signal=_signal.SIGKILL)
            await asyncio.wait_for(asyncio.shield(exited), 30)

    async def kill(self, c: Container, sig: str | None) -> None:
        signum = signal_number(sig, _signal.SIGKILL)
        if not c.running or c.shim is None:
            raise FailedPrecondition(f"Cannot kill container: {c.id}: Container {c.id} is "
                                     "not running")
        if signum in (_signal.SIGKILL, _signal.SIGTERM, _signal.SIGINT):
            c.rec["_ManuallyStopped"] = True
            self.save(c)
        await c.shim.call("kill", signal=signum)
        await ops.thaw_after_signal(self, c, signum)
        if signum == _signal.SIGKILL:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._next_exit(c)), 10)
        self.publish(c, "kill", signal=str(signum))

    async def restart(self, c: Container, timeout: int | None = None) -> None:
        with contextlib.suppress(NotModified):
            await self.stop(c, timeout)
        with contextlib.suppress(NotModified):
            await self.start(c)
        self.publish(c, "restart")

    # --- wait, remove ---------------------------------------------------------------------

    async def wait(self, c: Container, condition: str) -> int:
        if condition == "removed":
            f: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            c.remove_waiters.append(f)
            return await f
        if condition == "next-exit":
            return await self._next_exit(c)
        if condition not in ("", "not-running"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        if not c.running and not c.state["Restarting"]:
            return int(c.state["ExitCode"])
        return await self._next_exit(c)

    async def remove(self, c: Container, force: bool = False, volumes: bool = False) -> None:
        if c.running and not force:
            raise FailedPrecondition(
                f"You cannot remove a running container {c.id}. Stop the container before "
                "attempting removal or force remove")
        if c.removing and not force:
            raise FailedPrecondition(f"removal of container {c.id[:12]} is already in progress")
        c.removing = True
        c.rec["_ManuallyStopped"] = True
        self._cancel_restart(c)
        if c.running and c.shim is not None:
            exited = self._next_exit(c)
            with contextlib.suppress(PalletError):
                await c.shim.call("kill", signal=_signal.SIGKILL, all=True)
            with contextlib.suppress(PalletError):
                await c.shim.call("kill", signal=_signal.SIGKILL)
            await ops.thaw_after_signal(self, c, _signal.SIGKILL)
            await asyncio.wait_for(asyncio.shield(exited), 30)
        async with c.lock:
            if c.id not in self.by_id:
                return
            await self.blocking(self._unmount_rootfs, c)
            await self.sandboxes.down(c)
            await self.blocking(self._remove_snapshot, c.rec["_Snapshot"])
            for d in (self.cfg.container_dir(c.id), self.cfg.bundle_dir(c.id),
                      self.cfg.shim_dir(c.id)):
                await self.blocking(shutil.rmtree, d, True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.cfg.exec_root, "shims", c.id + ".log"))
            self.store.delete(c.id)
            del self.by_id[c.id]
            self.publish(c, "destroy")
            await self.blocking(self.volumes.forget, c.rec,
                                volumes or bool(c.rec["HostConfig"].get("AutoRemove")))
            code = int(c.state["ExitCode"])
            for f in c.remove_waiters + c.exit_waiters:
                if not f.done():
                    f.set_result(code)

    def remove_link(self, link: str) -> None:
        """`docker rm --link /parent/alias`: the parent forgets the link (its hosts file
        too, when it runs); both containers stay."""
        parent, _, alias = link.strip("/").rpartition("/")
        if not parent:
            raise InvalidArgument("Conflict, cannot remove the default link name of the "
                                  "container")
        try:
            p = self.get(parent)
        except NotFound:
            raise NotFound(f"Cannot get parent /{parent} for link name /{parent}/{alias}"
                           ) from None
        host = p.rec["HostConfig"]
        kept = [x for x in host.get("Links") or [] if _links.parse(x)[1] != alias]
        if len(kept) == len(host.get("Links") or []):
            raise NotFound(f"No such container: {link.strip('/')}")
        host["Links"] = kept or None
        self.save(p)
        if p.running:
            self.sandboxes.rewrite_hosts(p)

    # --- attach, resize -------------------------------------------------------------------

    async def attach(self, c: Container, client: Client, *, stdin: bool, stdout: bool,
                     stderr: bool, detach_keys: bytes | None) -> bool:
        cfg = c.rec["Config"]
        stdin = stdin and bool(cfg.get("OpenStdin"))
        opts = {"stdin": stdin, "stdout": stdout, "stderr": stderr,
                "stdin_once": bool(cfg.get("StdinOnce"))}
        if c.running and c.shim is not None:
            r, w = await c.shim.stream("attach", **opts)
        elif c.state["Status"] in ("created", "restarting", "exited") and not c.removing:
            # docker run: attach before start; `start -a` too. Output waits for the start.
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            c.pending_attach.append((opts, fut))
            try:
                r, w = await fut
            finally:
                c.pending_attach = [p for p in c.pending_attach if p[1] is not fut]
        else:
            raise FailedPrecondition("You cannot attach to a stopped container, start it "
                                     "first")
        streams = tuple(s for s, on in ((wire.STDOUT, stdout), (wire.STDERR, stderr)) if on)
        return await pump(r, w, client, tty=c.tty, stdin=stdin, streams=streams,
                          detach_keys=detach_keys)

    async def resize(self, c: Container, height: int, width: int) -> None:
        if not c.running or c.shim is None:
            raise FailedPrecondition(f"Container {c.id} is not running")
        if c.tty:
            await c.shim.call("resize", height=height, width=width)

    # --- recovery, shutdown ---------------------------------------------------------------

    async def recover(self) -> None:
        for rec in self.store.all():
            self.by_id[rec["Id"]] = Container(rec)
        for c in list(self.by_id.values()):
            try:
                await self._recover_one(c)
            except Exception:
                log.exception("recovering container %s", c.id[:12])
        # attachments of containers that died with the daemon down (or never were
        # recorded: a crash mid-start) are released
        running = {c.id for c in self.by_id.values() if c.running} | set(
            self.sandboxes.pending)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.networks.release_stale, running)
        loop.run_in_executor(None, self.zygote.fill)  # ready for the first start

    async def _recover_one(self, c: Container) -> None:
        st = c.state
        if not (st["Running"] or st["Restarting"]):
            await self.blocking(self._unmount_rootfs, c)
            p = (c.rec["HostConfig"].get("RestartPolicy") or {}).get("Name")
            if (p == "always" and st["Status"] == "exited"
                    and not c.rec.get("_ManuallyStopped")):
                await self.start(c)
            return
        shim = Shim(self.cfg.shim_socket(c.id))
        try:
            s = await shim.call("state")
        except (PalletError, OSError):
            s = None
        c.shim = shim
        if s is not None and s["status"] == "running":
            paused = ops.recovered_paused(c)
            c.state.update(Pid=int(s.get("pid") or st["Pid"]), Restarting=False,
                           Paused=paused, Status="paused" if paused else "running")
            c.started_mono = time.monotonic()
            self.save(c)
            c.monitor = self.spawn(self._monitor(c, shim))
            if self.health is not None:
                self.health.watch(c, resume=True)
            return
        if s is not None and s["status"] == "stopped":
            await self._exited(c, shim, int(s.get("exit_code") or 0),
                               s.get("exited_at") or "", "")
        elif s is not None:  # created, never started: nothing ran; drop it
            await self._exited(c, shim, 0, now_rfc3339(), "")
        else:
            code, at, err = await self._shim_lost(c)
            await self._exited(c, shim, code, at, err)

    async def shutdown(self) -> None:
        """palletd stops; containers and their shims keep running (they are recovered by
        the next palletd). Network releases under way are finished first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.sandboxes.settle(), 30)
        await asyncio.get_running_loop().run_in_executor(None, self.zygote.close)
        for t in list(self.tasks):
            t.cancel()
        for c in self.by_id.values():
            for fut, _ in c.pending_attach:
                if not fut.done():
                    fut.cancel()

    # --- views ----------------------------------------------------------------------------

    def inspect(self, c: Container) -> dict[str, Any]:
        out = {k: v for k, v in c.rec.items() if not k.startswith("_")}
        out["State"] = dict(c.state)
        cfg = dict(out["Config"])
        cfg.pop("HostConfig", None)
        out["Config"] = cfg
        out["ExecIDs"] = list(c.exec_ids) or None
        out["SizeRw"] = None
        out["GraphDriver"] = {"Name": c.rec["Driver"], "Data": {
            "MergedDir": os.path.join(self.cfg.bundle_dir(c.id), "rootfs")}}
        out["Mounts"] = mount_views(c.rec)
        return out

    def summary(self, c: Container) -> dict[str, Any]:
        cfg = c.rec["Config"]
        argv = [c.rec["Path"], *c.rec["Args"]]
        return {
            "Id": c.id, "Names": ["/" + c.name], "Image": cfg.get("Image", ""),
            "ImageID": c.rec["Image"], "Command": " ".join(argv),
            "Created": int(parse_time(c.rec["Created"])), "Ports": summary_ports(c.rec),
            "Labels": cfg.get("Labels") or {}, "State": c.state["Status"],
            "Status": status_text(c.state), "SizeRw": None,
            "HostConfig": {"NetworkMode": c.rec["HostConfig"].get("NetworkMode", "default")},
            "NetworkSettings": {"Networks": (c.rec.get("NetworkSettings") or {}).get(
                "Networks") or {}}, "Mounts": mount_views(c.rec),
        }

    def list(self, all_: bool, filters: dict[str, list[str]], limit: int = -1
             ) -> list[dict[str, Any]]:
        cs = sorted(self.by_id.values(), key=lambda c: c.rec["Created"], reverse=True)
        if not all_ and not filters.get("status") and not filters.get("exited"):
            cs = [c for c in cs if c.running or c.state["Status"] == "restarting"]
        cs = [c for c in cs if _matches(c, filters)]
        if limit and limit > 0:
            cs = cs[:limit]
        return [self.summary(c) for c in cs]


def _matches(c: Container, filters: dict[str, list[str]]) -> bool:
    cfg = c.rec["Config"]

    def label_ok(v: str) -> bool:
        return label_matches(cfg.get("Labels"), v)

    checks: dict[str, Callable[[str], bool]] = {
        "id": lambda v: c.id.startswith(v),
        "name": lambda v: re.search(v, c.name) is not None,
        "status": lambda v: c.state["Status"] == v,
        "health": lambda v: _health.matches(c.state, v),
        "label": label_ok,
        "exited": lambda v: c.state["Status"] == "exited" and str(c.state["ExitCode"]) == v,
        "volume": lambda v: any(v in (m.get("Name"), m["Destination"])
                                for m in mount_views(c.rec)),
        "ancestor": lambda v: v in (cfg.get("Image"), c.rec["Image"],
                                    c.rec.get("_ImageName")) or c.rec["Image"].startswith(
                                        "sha256:" + v.removeprefix("sha256:")),
    }
    for key, values in filters.items():
        check = checks.get(key)
        if check is None:
            raise InvalidArgument(f"invalid filter '{key}'")
        # docker ANDs label filters and ORs the values of every other key
        combine = all if key == "label" else any
        if values and not combine(check(v) for v in values):
            return False
    return True


def summary_ports(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """`docker ps`'s PORTS: published mappings, and exposed ports that are not."""
    out: list[dict[str, Any]] = []
    ports = (rec.get("NetworkSettings") or {}).get("Ports") or {}
    for key, binds in ports.items():
        port, _, proto = key.partition("/")
        if not binds:
            out.append({"PrivatePort": int(port), "Type": proto})
        for b in binds or []:
            out.append({"IP": b["HostIp"], "PrivatePort": int(port),
                        "PublicPort": int(b["HostPort"]), "Type": proto})
    return out


def status_text(st: dict[str, Any]) -> str:
    now = time.time()
    if st["Status"] in ("running", "paused"):
        up = "Up " + human_duration(now - parse_time(st["StartedAt"]))
        return up + (" (Paused)" if st.get("Paused") else _health.status_suffix(st))
    if st["Status"] == "restarting":
        return (f"Restarting ({st['ExitCode']}) "
                f"{human_duration(now - parse_time(st['FinishedAt']))} ago")
    if st["Status"] == "exited":
        return (f"Exited ({st['ExitCode']}) "
                f"{human_duration(now - parse_time(st['FinishedAt']))} ago")
    return st["Status"].capitalize()
