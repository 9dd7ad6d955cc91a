"""Volumes of palletd: docker's `local` driver, and what containers do with them.

A volume is a directory `<root>/volumes/<name>/_data` with its metadata next to it in
`volume.json` (labels, driver options, creation time; written atomically). Driver options
are mount(8)'s: `type`, `device`, `o` (`type=tmpfs,device=tmpfs,o=size=1m`, or
`type=none,device=/srv,o=bind`); such a volume is mounted on `_data` when a container
starting needs it and unmounted when the last running user stops, as dockerd's local driver.

The containers' side: `register` (at create) validates a container's mounts and creates the
named and anonymous volumes they name; `setup` (at start, rootfs mounted) mounts volumes
with driver options and copies the image's files into an empty volume (docker's copy-up);
`teardown` (at exit) unmounts; `forget` (at remove) deletes anonymous volumes on request.
A volume is in use while any container (running or not) has a mount point naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

from pallet.daemon import mounts as _mounts
from pallet.daemon.events import Events
from pallet.daemon.filters import label_matches, prune_filter
from pallet.errors import FailedPrecondition, InvalidArgument, NotFound, SystemError_
from pallet.runtime.state import write_atomic

if TYPE_CHECKING:
    from pallet.daemon.containers import Containers

META = "volume.json"
DATA = "_data"
DRIVER_OPTS = ("type", "device", "o")
# an option that needs the others to mean anything (dockerd's local driver mandatoryOpts)
_REQUIRED = {"device": ("type",), "type": ("device",), "o": ("device", "type")}


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _size(path: str) -> int:
    """Bytes of the files under `path`, each inode once (docker's directory.Size)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def check_driver_opts(opts: dict[str, str]) -> None:
    for k in opts:
        if k not in DRIVER_OPTS:
            raise InvalidArgument(f'invalid option key: "{k}"')
    for k, needs in _REQUIRED.items():
        for need in needs if k in opts else ():
            if need not in opts:
                raise InvalidArgument(f'missing required option: "{need}"')


class Volumes:
    def __init__(self, root: str, events: Events, containers: Containers) -> None:
        self.dir = os.path.join(root, "volumes")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o701)
        self.events = events
        self.containers = containers  # which own this service: volumes are used by them
        self.vols: dict[str, dict[str, Any]] = {}
        # container starts run in the storage thread; events are delivered on the loop
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None
        self.loop_thread = threading.get_ident()
        self._load()

    def _load(self) -> None:
        for name in os.listdir(self.dir):
            try:
                with open(os.path.join(self.dir, name, META)) as f:
                    self.vols[name] = json.load(f)
            except (OSError, ValueError):
                continue  # a volume whose creation did not finish

    def _publish(self, action: str, name: str, **attrs: str) -> None:
        attrs = {"driver": _mounts.LOCAL, **attrs}
        if self.loop is not None and threading.get_ident() != self.loop_thread:
            self.loop.call_soon_threadsafe(self.events.publish, "volume", action, name, attrs)
        else:
            self.events.publish("volume", action, name, attrs)

    def data_path(self, name: str) -> str:
        return os.path.join(self.dir, name, DATA)

    # --- the volume API -------------------------------------------------------------------

    def create(self, name: str | None = None, driver: str | None = None,
               opts: dict[str, str] | None = None, labels: dict[str, str] | None = None
               ) -> dict[str, Any]:
        """A new volume, or the existing one of that name (creating is idempotent)."""
        _mounts.check_driver(driver)
        if name:
            try:
                _mounts.check_volume_name(name)
            except InvalidArgument as e:
                raise InvalidArgument(f"create {name}: {e}") from None
            if name in self.vols:
                return self.view(self.vols[name])
        name = name or secrets.token_hex(32)
        opts = {str(k): str(v) for k, v in (opts or {}).items()}
        check_driver_opts(opts)
        meta = {"Name": name, "Driver": _mounts.LOCAL, "Labels": dict(labels or {}),
                "Options": opts, "CreatedAt": time.time()}
        vdir = os.path.join(self.dir, name)
        os.makedirs(os.path.join(vdir, DATA), mode=0o755, exist_ok=True)
        write_atomic(os.path.join(vdir, META), json.dumps(meta).encode(), 0o600)
        self.vols[name] = meta
        self._publish("create", name)
        return self.view(meta)

    def get(self, name: str) -> dict[str, Any]:
        try:
            return self.vols[name]
        except KeyError:
            raise NotFound(f"get {name}: no such volume") from None

    def view(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The API's Volume object."""
        return {"CreatedAt": _rfc3339(meta["CreatedAt"]), "Driver": meta["Driver"],
                "Labels": meta.get("Labels") or {}, "Mountpoint": self.data_path(meta["Name"]),
                "Name": meta["Name"], "Options": meta.get("Options") or {}, "Scope": "local"}

    def users(self, name: str) -> list[str]:
        # a copy: the storage thread asks while the loop may add or remove containers
        return [cid for cid, c in list(self.containers.by_id.items())
                if any(p.get("Name") == name for p in c.rec.get("_MountPoints") or [])]

    def list(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        def dangling(meta: dict[str, Any], v: str) -> bool:
            if v.lower() not in ("true", "1", "false", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={v}'")
            return (not self.users(meta["Name"])) == (v.lower() in ("true", "1"))

        checks: dict[str, Any] = {
            "name": lambda m, v: _search(v, m["Name"]),
            "driver": lambda m, v: m["Driver"] == v,
            "label": lambda m, v: label_matches(m.get("Labels") or {}, v),
            "dangling": dangling,
        }
        for key in filters:
            if key not in checks:
                raise InvalidArgument(f"invalid filter '{key}'")
        def ok(meta: dict[str, Any]) -> bool:
            for k, vs in filters.items():
                hits = [checks[k](meta, v) for v in vs]
                # label filters must all match; other values are alternatives
                if vs and not (all(hits) if k == "label" else any(hits)):
                    return False
            return True

        return [self.view(m) for m in sorted(self.vols.values(), key=lambda m: m["Name"])
                if ok(m)]

    def remove(self, name: str, force: bool = False) -> None:
        if name not in self.vols:
            if force:
                return
            raise NotFound(f"get {name}: no such volume")
        users = self.users(name)
        if users:
            raise FailedPrecondition(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self._destroy(name)

    def _destroy(self, name: str) -> None:
        from pallet.linux import libc

        vdir = os.path.join(self.dir, name)
        data = os.path.join(vdir, DATA)
        # unmount first: rmtree under a bind-mounted device would delete the host's files
        while _mounts.is_mount_point(data):
            try:
                libc.umount2(data, libc.MNT_DETACH)
            except OSError as e:
                raise SystemError_(f"remove {name}: unmounting {data}: {e}") from None
        os.unlink(os.path.join(vdir, META))
        del self.vols[name]
        shutil.rmtree(vdir, ignore_errors=True)
        self._publish("destroy", name)

    def prune(self, filters: dict[str, list[str]]) -> tuple[list[str], int]:
        """API 1.41 (dockerd 20.10): every unused volume, named or anonymous. (From 1.42 on
        only anonymous ones unless the `all` filter is set; palletd speaks 1.41, and takes
        `all` as the no-op it is there.)"""
        wanted = prune_filter(filters, ("label", "label!", "all"))
        deleted, reclaimed = [], 0
        for name, meta in sorted(self.vols.items()):
            if not wanted(0.0, meta.get("Labels") or {}):
                continue
            if self.users(name):
                continue
            size = _size(self.data_path(name))
            self._destroy(name)
            deleted.append(name)
            reclaimed += size
        return deleted, reclaimed

    def df(self) -> list[dict[str, Any]]:
        out = []
        for meta in sorted(self.vols.values(), key=lambda m: m["Name"]):
            v = self.view(meta)
            v["UsageData"] = {"Size": _size(self.data_path(meta["Name"])),
                              "RefCount": len(self.users(meta["Name"]))}
            out.append(v)
        return out

    # --- containers -----------------------------------------------------------------------

    def register(self, host: dict[str, Any], cfg: dict[str, Any],
                 image_volumes: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The mount points of a container being created (its record's `_MountPoints`):
        all validated before any volume is created. The image's volumes join
        Config.Volumes, as in docker's inspect."""
        merged = {**(image_volumes or {}), **(cfg.get("Volumes") or {})}
        if merged:
            cfg["Volumes"] = merged
        points = _mounts.plan(host, merged, self._volumes_from(host))
        for p in points:
            check_driver_opts(p.driver_opts)
        for p in points:
            if p.Type != _mounts.VOLUME:
                continue
            v = self.create(p.Name or None, p.Driver, p.driver_opts, p.labels)
            p.Name, p.Source = v["Name"], v["Mountpoint"]
        return [p.to_dict() for p in points]

    def _volumes_from(self, host: dict[str, Any]) -> list[_mounts.MountPoint]:
        """`--volumes-from container[:ro|rw]`: that container's mount points (its volumes,
        binds and tmpfs mounts), the mode overriding theirs when given."""
        out = []
        for spec in host.get("VolumesFrom") or []:
            ref, _, mode = str(spec).partition(":")
            if mode not in ("", "ro", "rw"):
                raise InvalidArgument(f"invalid mode for volumes-from: {mode}")
            src = self.containers.get(ref)
            for p in _mounts.points_of(src.rec):
                if mode:
                    p.RW = mode == "rw"
                out.append(p)
        return out

    def setup(self, rec: dict[str, Any], rootfs: str) -> None:
        """Before a start, rootfs mounted: bind sources made, volumes mounted and filled."""
        for d in rec.get("_MountPoints") or []:
            p = _mounts.MountPoint.from_dict(d)
            if p.Type == _mounts.BIND and not os.path.exists(p.Source):
                os.makedirs(p.Source, exist_ok=True)  # as dockerd for a missing -v source
            if p.Type != _mounts.VOLUME:
                continue
            meta = self.get(p.Name)
            data = self.data_path(p.Name)
            self._mount(meta, data)
            if p.copy_data:
                _copy_up(rootfs, p.Destination, data)
            self._publish("mount", p.Name, container=rec["Id"], destination=p.Destination,
                          propagation=p.Propagation, **{"read/write": str(p.RW).lower()})

    def _mount(self, meta: dict[str, Any], data: str) -> None:
        from pallet.linux.mount import MountOptions, bind, finish_bind, mount_fs

        opts = meta.get("Options") or {}
        if not opts.get("device") or _mounts.is_mount_point(data):
            return
        mo = MountOptions(opts.get("o", "").split(",") if opts.get("o") else [])
        try:
            if mo.is_bind or opts.get("type") in ("bind", "rbind"):
                bind(opts["device"], data, mo)
                finish_bind(data, mo)
            else:
                mount_fs(opts["device"], data, opts.get("type", ""), mo)
        except OSError as e:
            raise SystemError_(f"error while mounting volume '{data}': {e}") from None

    def teardown(self, c: Any) -> None:
        """After container `c` stopped (or did not start): volumes with driver options that
        no other running container uses are unmounted."""
        points = [p for p in c.rec.get("_MountPoints") or [] if p["Type"] == _mounts.VOLUME]
        if not points:
            return
        from pallet.linux import libc

        busy = {p.get("Name") for o in list(self.containers.by_id.values())
                if o is not c and o.running
                for p in o.rec.get("_MountPoints") or []}
        for p in points:
            if c.running:
                self._publish("unmount", p["Name"], container=c.id)
            data = self.data_path(p["Name"])
            opts = (self.vols.get(p["Name"]) or {}).get("Options") or {}
            if opts.get("device") and p["Name"] not in busy:
                with contextlib.suppress(OSError):
                    while _mounts.is_mount_point(data):
                        libc.umount2(data, libc.MNT_DETACH)

    def forget(self, rec: dict[str, Any], anonymous: bool) -> None:
        """A container was removed: with `anonymous` (rm -v, AutoRemove) its anonymous
        volumes go too, unless another container uses them."""
        if not anonymous:
            return
        for p in rec.get("_MountPoints") or []:
            if p.get("anonymous") and p.get("Name") in self.vols and not self.users(p["Name"]):
                self._destroy(p["Name"])


def _search(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return pattern in name


def _copy_up(rootfs: str, dest: str, data: str) -> None:
    """docker's copy-up: an empty volume gets the image's files at its destination, with the
    owner and mode of that directory. `cp -a` keeps links, devices, owners and xattrs."""
    from pallet.linux.paths import resolve_in_root

    src = resolve_in_root(rootfs, dest)
    if not os.path.isdir(src) or os.path.islink(src) or os.listdir(data):
        return
    p = subprocess.run(["cp", "-a", "--", src + "/.", data + "/"], capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise SystemError_(f"copying the image's {dest} into the volume: {p.stderr.strip()}")
    st = os.stat(src)
    os.chown(data, st.st_uid, st.st_gid)
    os.chmod(data, stat.S_IMODE(st.st_mode))
