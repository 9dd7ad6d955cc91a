"""Steps on snapshots: mount a step's root filesystem, run a command in it with an OCI
runtime, and turn what changed into a layer.

    prepare   active snapshot `build-<id>` over the parent image's top chain ID
    mount     at <workdir>/<id>/rootfs (overlay, or a bind of a native copy)
    work      RUN: config.json from the image config, `<runtime> run`; COPY: write files
    unmount
    diff      the snapshot's changes -> a layer blob (overlay upperdir, or a tree diff)
    commit    the snapshot under the new chain ID, so the next step (and containers of the
              image) start from it without unpacking

Snapshot and content operations go through `storage`, which palletd points at its one
storage thread; mounting, running and copying happen on the build's own thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pallet.errors import AlreadyExists, InvalidArgument, NotFound, PalletError
from pallet.images.bundle import runtime_config
from pallet.images.diff import (
    LayerInfo,
    TarWriter,
    commit_layer,
    tar_changes,
    tar_dir,
    tar_overlay_upper,
)
from pallet.images.resolve import ResolvedImage
from pallet.images.service import ImageService
from pallet.images.unpack import unpack
from pallet.linux.paths import resolve_in_root
from pallet.oci.image import ImageConfig
from pallet.oci.spec_default import DOCKER_DEFAULT_CAPS, DOCKER_DEVICE_RULES, set_shm_size
from pallet.snapshots.api import Mount, mount_all

T = TypeVar("T")
Storage = Callable[[Callable[[], T]], T]
ACTIVE_PREFIX = "build-"   # snapshot keys of steps in progress
LABEL_BUILD = "io.pallet.build"
LEASE_EXPIRY = 24 * 3600.0   # a dead palletd's lease ends by itself
LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
MNT_DETACH = 2


def direct(fn: Callable[[], T]) -> T:
    return fn()


class Cancelled(PalletError):
    kind = "unavailable"


class CommandFailed(PalletError):
    """A RUN whose command exited non-zero; `code` is its status, as docker reports it."""

    kind = "system"

    def __init__(self, command: str, code: int) -> None:
        super().__init__(f"The command '{command}' returned a non-zero code: {code}")
        self.code = code


@dataclass
class Runtime:
    name: str
    path: str
    root: str                    # the runtime's --root


@dataclass
class Attached:
    """A RUN step's network namespace on a network: where it is, the step's address, its
    resolv.conf, and how to give it back."""

    netns: str
    ip: str
    resolv_conf: str
    release: Callable[[], None]


@dataclass
class RunLimits:
    """What `docker build` lets a client set for its RUN steps."""

    network: str = "none"                 # "none", "host", or a network `attach` joins
    resources: dict[str, Any] = field(default_factory=dict)  # linux.resources: memory, cpu
    shm_size: int | None = None           # bytes of /dev/shm
    extra_hosts: list[str] = field(default_factory=list)     # "name:ip", for /etc/hosts
    attach: Callable[[str, str], Attached] | None = None     # (network, step id) -> netns


@dataclass
class RunRequest:
    config: ImageConfig          # the step's image config: Env, User, WorkingDir
    argv: list[str]
    env: list[str]               # build args RUN sees, after the config's Env
    limits: RunLimits


def _mount_points() -> list[str]:
    # os.path.ismount misses a bind mount from the same filesystem: ask the kernel
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def unmount(target: str) -> None:
    """Detach every mount stacked at `target`."""
    from pallet.linux import libc

    target = os.path.abspath(target)
    while target in _mount_points():
        libc.umount2(target, MNT_DETACH)


def remove_tree(path: str) -> None:
    """rmtree, after detaching whatever is still mounted below `path` (a step that failed
    half-way): deleting through a mount would delete the snapshot's files."""
    path = os.path.abspath(path)
    for mp in sorted(_mount_points(), reverse=True):
        if mp == path or mp.startswith(path + "/"):
            unmount(mp)
    shutil.rmtree(path, ignore_errors=True)


def remove_stale(svc: ImageService, base: str) -> list[str]:
    """What builds of a process that died left: their directories (and mounts) under
    `base`, and their `build-` snapshots, which a collection keeps as it keeps every active
    one. Call it before the first build of a process; returns the snapshot keys removed.
    Blocking (palletd: on the storage thread)."""
    remove_tree(base)
    gone = []
    for info in svc.snapshotter.walk():
        if info.name.startswith(ACTIVE_PREFIX):
            with contextlib.suppress(NotFound):
                svc.snapshotter.remove(info.name)
                gone.append(info.name)
    return gone


class Executor:
    def __init__(self, svc: ImageService, workdir: str, runtime: Runtime,
                 storage: Storage[Any] = direct, cancel: threading.Event | None = None
                 ) -> None:
        self.svc = svc
        self.workdir = workdir
        self.runtime = runtime
        self.storage = storage
        self.cancel = cancel or threading.Event()
        self.lease: str | None = None

    def start(self) -> None:
        """Take a lease for the build: while it lives, a collection keeps everything the
        build makes (metadata/gc.py), before the cache or a tag names it."""
        leases = self.svc.leases
        self.lease = self.storage(lambda: leases.create(LEASE_EXPIRY).id)

    def protect(self, digest: str) -> None:
        """Keep `digest` (an image the build uses) and what it references until the end."""
        from pallet.metadata.leases import CONTENT

        if self.lease is not None:
            leases, lease = self.svc.leases, self.lease
            self.storage(lambda: leases.add(lease, CONTENT, digest))

    def release(self) -> None:
        if self.lease is not None:
            leases, lease = self.svc.leases, self.lease
            self.storage(lambda: leases.delete(lease))
            self.lease = None

    # --- snapshots ----------------------------------------------------------------------

    def _prepare(self, image: ResolvedImage | None, key: str, view: bool = False
                 ) -> tuple[list[Mount], str | None]:
        """Unpack the image and make snapshot `key` over its top layer, in one storage
        call (so no collection runs between the two and takes the parent away)."""
        svc = self.svc

        def work() -> tuple[list[Mount], str | None]:
            parent = None
            if image is not None and image.layers:
                parent = unpack(svc.content, svc.snapshotter, image)
            make = svc.snapshotter.view if view else svc.snapshotter.prepare
            return make(key, parent, {LABEL_BUILD: key}), parent

        return self.storage(work)

    def _remove(self, key: str) -> None:
        sn = self.svc.snapshotter

        def work() -> None:
            with contextlib.suppress(NotFound):
                sn.remove(key)
        self.storage(work)

    @contextlib.contextmanager
    def view(self, image: ResolvedImage | None) -> Iterator[str]:
        """A read-only mount of an image's root filesystem (COPY --from)."""
        key = f"{ACTIVE_PREFIX}view-{uuid.uuid4().hex[:16]}"
        path = os.path.join(self.workdir, key, "rootfs")
        os.makedirs(path)
        try:
            if image is None or not image.layers:
                yield path  # FROM scratch: nothing to see
                return
            mounts, _ = self._prepare(image, key, view=True)
            try:
                mount_all(mounts, path)
                try:
                    yield path
                finally:
                    unmount(path)
            finally:
                self._remove(key)
        finally:
            remove_tree(os.path.dirname(path))

    def layer_step(self, image: ResolvedImage | None, diff_ids: list[Any],
                   work: Callable[[str, str], None]) -> LayerInfo | None:
        """Run `work(rootfs, step_dir)` on a new snapshot of `image`; the changes as a
        committed layer, or None when nothing changed."""
        from pallet.oci.image import chain_ids

        sn = self.svc.snapshotter
        key = f"{ACTIVE_PREFIX}{uuid.uuid4().hex[:16]}"
        step_dir = os.path.join(self.workdir, key)
        rootfs = os.path.join(step_dir, "rootfs")
        committed = False
        try:
            mounts, parent = self._prepare(image, key)
            mount_all(mounts, rootfs)
            try:
                work(rootfs, step_dir)
            finally:
                unmount(rootfs)

            def commit() -> LayerInfo | None:
                layer, entries = self._diff(mounts, parent)
                if entries == 0:
                    return None
                chain = str(chain_ids([*diff_ids, layer.diff_id])[-1])
                try:
                    sn.commit(chain, key)
                except AlreadyExists:
                    sn.remove(key)  # the same layer was committed before: keep that one
                return layer

            layer = self.storage(commit)
            committed = layer is not None
            return layer
        finally:
            if not committed:
                self._remove(key)
            remove_tree(step_dir)

    def _diff(self, mounts: list[Mount], parent: str | None) -> tuple[LayerInfo, int]:
        m = mounts[0]
        if m.type == "overlay":
            upper = m.option("upperdir")
            assert upper is not None
            prune_copied_up_dirs(upper, (m.option("lowerdir") or "").split(":"))

            def produce(tw: TarWriter) -> None:
                tar_overlay_upper(upper, tw)
        elif parent is None:
            def produce(tw: TarWriter) -> None:
                tar_dir(m.source, tw)
        else:
            lower = self.svc.snapshotter.fs_path(parent)

            def produce(tw: TarWriter) -> None:
                tar_changes(lower, m.source, tw)
        counted: list[int] = []

        def counting(tw: TarWriter) -> None:
            produce(tw)
            counted.append(len(tw.tf.members))

        info = commit_layer(self.svc.content, counting)
        return info, counted[0]

    # --- RUN ----------------------------------------------------------------------------

    def run(self, req: RunRequest, rootfs: str, step_dir: str, cid: str,
            out: Callable[[str], None]) -> int:
        """Run `req.argv` in the mounted `rootfs` to its end; output lines go to `out`."""
        lim = req.limits
        if lim.network in ("none", "host"):
            return self._run(req, rootfs, step_dir, cid, out, None)
        if lim.attach is None:
            raise InvalidArgument(f"network {lim.network}: this builder has no networks to "
                                  "attach RUN to (none, host)")
        attached = lim.attach(lim.network, cid)
        try:
            return self._run(req, rootfs, step_dir, cid, out, attached)
        finally:
            attached.release()

    def _run(self, req: RunRequest, rootfs: str, step_dir: str, cid: str,
             out: Callable[[str], None], attached: Attached | None) -> int:
        cfg = ImageConfig.from_dict(req.config.to_dict())
        cfg.config.Entrypoint = None  # RUN never goes through the entrypoint
        spec = runtime_config(cfg, rootfs, args=req.argv, extra_env=req.env)
        proc = spec["process"]
        proc["capabilities"] = {k: list(DOCKER_DEFAULT_CAPS)
                                for k in ("bounding", "effective", "permitted")}
        proc["noNewPrivileges"] = False
        spec["hostname"] = cid[:12]
        spec["root"] = {"path": rootfs, "readonly": False}
        linux = spec["linux"]
        lim = req.limits
        linux["resources"] = {**lim.resources,
                              "devices": [dict(r) for r in DOCKER_DEVICE_RULES]}
        linux["cgroupsPath"] = f"/pallet-build/{cid}"
        from pallet.oci.seccomp_default import docker_default

        linux["seccomp"] = docker_default()
        if lim.shm_size:
            set_shm_size(spec, lim.shm_size)
        hosts = LOCALHOST
        if attached is not None:
            for ns in linux["namespaces"]:
                if ns["type"] == "network":
                    ns["path"] = attached.netns
            with open(os.path.join(step_dir, "resolv.conf"), "w") as f:
                f.write(attached.resolv_conf)
            spec["mounts"].append(_bind(os.path.join(step_dir, "resolv.conf"),
                                        "/etc/resolv.conf", ro=False))
            hosts += f"{attached.ip}\t{cid[:12]}\n"
        elif lim.network == "host":
            linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
            if os.path.exists("/etc/resolv.conf"):
                spec["mounts"].append(_bind("/etc/resolv.conf", "/etc/resolv.conf", ro=True))
            with contextlib.suppress(OSError), open("/etc/hosts") as f:
                hosts = f.read()
        # As docker's build containers: a hosts file of the step's own, writable, whose
        # changes do not become part of the image.
        for entry in lim.extra_hosts:
            name, _, ip = entry.partition(":")
            hosts += f"{ip}\t{name}\n"
        with open(os.path.join(step_dir, "hosts"), "w") as f:
            f.write(hosts)
        spec["mounts"].append(_bind(os.path.join(step_dir, "hosts"), "/etc/hosts", ro=False))
        # Mount points the runtime has to create are not the command's changes: note what
        # is missing now, and take away afterwards what is still empty.
        created = [m["destination"] for m in spec["mounts"]
                   if not os.path.lexists(resolve_in_root(rootfs, m["destination"]))]
        os.makedirs(resolve_in_root(rootfs, proc["cwd"]), exist_ok=True)
        with open(os.path.join(step_dir, "config.json"), "w") as f:
            json.dump(spec, f)
        try:
            return self._runtime_run(step_dir, cid, out)
        finally:
            for dest in reversed(created):
                _remove_if_empty(resolve_in_root(rootfs, dest))

    def _runtime_run(self, bundle: str, cid: str, out: Callable[[str], None]) -> int:
        rt = self.runtime
        os.makedirs(rt.root, exist_ok=True)
        p = subprocess.Popen([rt.path, "--root", rt.root, "run", "--bundle", bundle, cid],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, cwd=bundle)
        assert p.stdout is not None
        fd = p.stdout.fileno()
        buf = b""
        killed = 0.0
        try:
            while True:
                # again now and then: a cancel can come before the container exists
                if self.cancel.is_set() and time.monotonic() - killed > 0.5:
                    self._runtime("kill", cid, "KILL")
                    killed = time.monotonic()
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    out(line.decode(errors="replace") + "\n")
            if buf:
                out(buf.decode(errors="replace") + "\n")
            code = p.wait()
        finally:
            p.stdout.close()
            if p.poll() is None:
                p.kill()
                p.wait()
            self._runtime("delete", "--force", cid)
        if killed:
            raise Cancelled("the build was cancelled")
        return code

    def _runtime(self, *argv: str) -> None:
        rt = self.runtime
        subprocess.run([rt.path, "--root", rt.root, *argv], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("the build was cancelled")


def prune_copied_up_dirs(upper: str, lowers: list[str]) -> None:
    """Take out of an overlay upperdir the directories that carry no change: empty, not
    opaque, and the same (type, mode, owner, xattrs) as in the lower layers. overlayfs
    copies a directory up as soon as an entry in it is created, even one deleted again
    (a mount point the runtime made, a temporary file), and the layer should not hold it."""
    from pallet.images.diff import layer_xattrs
    from pallet.images.fsview import OPAQUE_XATTR

    def same(st: os.stat_result, path: str, rel: str) -> bool:
        for low in lowers:
            lp = os.path.join(low, rel)
            try:
                lst = os.lstat(lp)
            except (FileNotFoundError, NotADirectoryError):
                continue
            return (lst.st_mode, lst.st_uid, lst.st_gid) == (st.st_mode, st.st_uid,
                                                            st.st_gid) \
                and layer_xattrs(lp) == layer_xattrs(path)
        return False

    for dirpath, _dirs, _files in os.walk(upper, topdown=False):
        if dirpath == upper or os.listdir(dirpath):
            continue
        with contextlib.suppress(OSError):
            if os.getxattr(dirpath, OPAQUE_XATTR, follow_symlinks=False) == b"y":
                continue
        st = os.lstat(dirpath)
        if same(st, dirpath, os.path.relpath(dirpath, upper)):
            os.rmdir(dirpath)


def _bind(source: str, dest: str, *, ro: bool) -> dict[str, Any]:
    return {"destination": dest, "type": "bind", "source": source,
            "options": ["rbind", "ro" if ro else "rw"]}


def _remove_if_empty(path: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        elif os.path.isfile(path) and not os.path.islink(path) and \
                os.path.getsize(path) == 0:
            os.unlink(path)
