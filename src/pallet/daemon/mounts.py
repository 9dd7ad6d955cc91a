"""A container's mounts as docker defines them: `HostConfig.Binds` (`-v`), `HostConfig.Mounts`
(`--mount`), `HostConfig.Tmpfs` (`--tmpfs`) and `Config.Volumes` (`VOLUME`, `-v /dst`) ->
mount points, and mount points -> OCI `mounts`.

Pure logic (no volume store, no syscalls but one look at /proc/self/mountinfo for the
shared-propagation check): `plan` validates and lists the mount points when a container is
created; the daemon resolves the volume ones to directories (`pallet.daemon.volumes`); at
start `apply` turns them into the runtime-spec mounts. The rules and messages are dockerd
20.10's (volume/mounts/linux_parser.go, daemon/oci_linux.go).
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from pallet.errors import InvalidArgument, NotFound

BIND, VOLUME, TMPFS = "bind", "volume", "tmpfs"
LOCAL = "local"
DEFAULT_PROPAGATION = "rprivate"
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_RW_MODES = ("rw", "ro")
_LABEL_MODES = ("z", "Z")
_COPY_MODES = ("nocopy",)
_CONSISTENCY_MODES = ("consistent", "cached", "delegated", "default")
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
# docker's tmpfs defaults, before the user's options (which win: MergeTmpfsOptions)
TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev", DEFAULT_PROPAGATION]
# flag pairs of mount(8) where the later one of a pair cancels the earlier
_OPPOSITES = {"ro": "rw", "exec": "noexec", "suid": "nosuid", "dev": "nodev",
              "atime": "noatime", "diratime": "nodiratime", "sync": "async"}
_OPPOSITES.update({v: k for k, v in list(_OPPOSITES.items())})


@dataclass
class MountPoint:
    """docker's MountPoint (the inspect fields, capitalised) plus what the daemon needs to
    provide it (lower case, kept in palletd's record only)."""

    Type: str
    Destination: str
    Source: str = ""            # host path (bind) or the volume's directory once resolved
    Name: str = ""              # volume name
    Driver: str = ""
    Mode: str = ""              # the mode string as given (`ro,z`), "z" for local volumes
    RW: bool = True
    Propagation: str = ""
    copy_data: bool = True      # initialise an empty volume from the image (copy-up)
    anonymous: bool = False     # no source given: removed with `rm -v` / AutoRemove
    non_recursive: bool = False
    data: str = ""              # tmpfs options (size=..,mode=..)
    labels: dict[str, str] = field(default_factory=dict)       # for a volume created here
    driver_opts: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MountPoint:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def view(self) -> dict[str, Any]:
        """The `Mounts` entry of `GET /containers/{id}/json` (Name and Driver omitempty)."""
        out: dict[str, Any] = {"Type": self.Type}
        if self.Name:
            out["Name"] = self.Name
        out["Source"] = self.Source
        out["Destination"] = self.Destination
        if self.Driver:
            out["Driver"] = self.Driver
        out.update(Mode=self.Mode, RW=self.RW, Propagation=self.Propagation)
        return out


def _invalid_spec(raw: str) -> InvalidArgument:
    return InvalidArgument(f"invalid volume specification: '{raw}'")


def _mount_error(m: dict[str, Any], why: str) -> InvalidArgument:
    return InvalidArgument(f'invalid mount config for type "{m.get("Type", "")}": {why}')


def valid_mode(mode: str) -> bool:
    """At most one of each kind: rw/ro, z/Z, a propagation, nocopy, a consistency."""
    if not mode:
        return True
    counts: dict[int, int] = {}
    for opt in mode.split(","):
        for kind, names in enumerate((_RW_MODES, _LABEL_MODES, PROPAGATIONS, _COPY_MODES,
                                      _CONSISTENCY_MODES)):
            if opt in names:
                counts[kind] = counts.get(kind, 0) + 1
                break
        else:
            return False
    return all(n == 1 for n in counts.values())


def check_destination(dest: str) -> str:
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid mount path: '{dest}' mount path must be absolute")
    clean = posixpath.normpath(dest)
    if clean == "/":
        raise InvalidArgument("invalid specification: destination can't be '/'")
    return clean


def check_volume_name(name: str) -> None:
    if not VOLUME_NAME_RE.match(name):
        raise InvalidArgument(
            f'"{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path")


def check_driver(name: str | None) -> str:
    if name in (None, "", LOCAL):
        return LOCAL
    # dockerd's answer when no plugin has that name (404)
    raise NotFound(f'error looking up volume plugin {name}: plugin "{name}" not found')


def parse_bind(raw: str, volume_driver: str | None = None) -> MountPoint:
    """One `HostConfig.Binds` entry: `[src:]dst[:mode]`; a src that is not an absolute path
    names a volume."""
    if not isinstance(raw, str):
        raise InvalidArgument(f"invalid volume specification: {raw!r}")
    parts = raw.split(":")
    if len(parts) == 1:
        src, dst, mode = "", parts[0], ""
    elif len(parts) == 2:
        if valid_mode(parts[1]):
            raise _invalid_spec(raw)  # `/dst:ro`: a mode, but no destination
        src, dst, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        src, dst, mode = parts
    else:
        raise _invalid_spec(raw)
    if not dst:
        raise _invalid_spec(raw)
    if not valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    opts = mode.split(",") if mode else []
    try:
        dest = check_destination(dst)
    except InvalidArgument as e:
        raise InvalidArgument(f"{_invalid_spec(raw)}: {e}") from None
    rw = "ro" not in opts
    prop = next((o for o in opts if o in PROPAGATIONS), "")
    if src.startswith("/"):
        return MountPoint(BIND, dest, Source=posixpath.normpath(src), Mode=mode, RW=rw,
                          Propagation=prop or DEFAULT_PROPAGATION, copy_data=False)
    if prop:
        raise InvalidArgument(f"{_invalid_spec(raw)}: propagation is for bind mounts only")
    if src:
        check_volume_name(src)
    return MountPoint(VOLUME, dest, Name=src, Driver=check_driver(volume_driver),
                      Mode=mode or "z", RW=rw, copy_data="nocopy" not in opts,
                      anonymous=not src)


def tmpfs_data(opts: dict[str, Any] | None, read_only: bool) -> str:
    """`TmpfsOptions` -> mount data, as dockerd's ConvertTmpfsOptions (size with the largest
    unit that divides it)."""
    out = ["ro"] if read_only else []
    opts = opts or {}
    if opts.get("Mode"):
        out.append(f"mode={int(opts['Mode']):o}")
    size = int(opts.get("SizeBytes") or 0)
    if size:
        if size < 0:
            raise InvalidArgument(f"invalid tmpfs size: {size}")
        for suffix, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % div == 0:
                out.append(f"size={size // div}{suffix}")
                break
        else:
            out.append(f"size={size}")
    return ",".join(out)


def parse_mount(m: dict[str, Any], volume_driver: str | None = None) -> MountPoint:
    """One `HostConfig.Mounts` entry (docker's mount.Mount, validateMountConfig)."""
    if not isinstance(m, dict):
        raise InvalidArgument(f"invalid mount: {m!r}")
    kind = m.get("Type") or ""
    target = m.get("Target") or ""
    if not target:
        raise _mount_error(m, "field Target must not be empty")
    try:
        dest = check_destination(target)
    except InvalidArgument as e:
        raise _mount_error(m, str(e)) from None
    src = m.get("Source") or ""
    ro = bool(m.get("ReadOnly"))
    # a present options object of another type is an error, even empty (Go's nil check)
    bopts, vopts, topts = m.get("BindOptions"), m.get("VolumeOptions"), m.get("TmpfsOptions")
    if kind == BIND:
        if not src:
            raise _mount_error(m, "field Source must not be empty")
        if vopts is not None:
            raise _mount_error(m, "field VolumeOptions must not be specified")
        if not src.startswith("/"):
            raise _mount_error(m, f"invalid mount path: '{src}' mount path must be absolute")
        prop = (bopts or {}).get("Propagation") or ""
        if prop and prop not in PROPAGATIONS:
            raise _mount_error(m, f"invalid propagation mode: {prop}")
        if not os.path.exists(src):
            raise _mount_error(m, f"bind source path does not exist: {src}")
        return MountPoint(BIND, dest, Source=posixpath.normpath(src), RW=not ro,
                          Propagation=prop or DEFAULT_PROPAGATION, copy_data=False,
                          non_recursive=bool((bopts or {}).get("NonRecursive")))
    if kind == VOLUME:
        if bopts is not None:
            raise _mount_error(m, "field BindOptions must not be specified")
        if topts is not None:
            raise _mount_error(m, "field TmpfsOptions must not be specified")
        if not src and ro:
            raise _mount_error(m, "must not set ReadOnly mode when using anonymous volumes")
        if src:
            check_volume_name(src)
        vopts = vopts or {}
        dcfg = vopts.get("DriverConfig") or {}
        driver = check_driver(dcfg.get("Name") or volume_driver)
        return MountPoint(VOLUME, dest, Name=src, Driver=driver, Mode="z", RW=not ro,
                          copy_data=not vopts.get("NoCopy"), anonymous=not src,
                          labels=dict(vopts.get("Labels") or {}),
                          driver_opts=dict(dcfg.get("Options") or {}))
    if kind == TMPFS:
        if bopts is not None:
            raise _mount_error(m, "field BindOptions must not be specified")
        if vopts is not None:
            raise _mount_error(m, "field VolumeOptions must not be specified")
        if src:
            raise _mount_error(m, "field Source must not be specified")
        return MountPoint(TMPFS, dest, RW=not ro, copy_data=False,
                          data=tmpfs_data(topts, ro))
    if kind == "npipe":
        raise _mount_error(m, "named pipes are for Windows containers only")
    raise _mount_error(m, "mount type unknown")


def plan(host: dict[str, Any], config_volumes: dict[str, Any] | None,
         inherited: list[MountPoint] | None = None) -> list[MountPoint]:
    """Every mount point of a new container, validated: those `inherited` (VolumesFrom),
    replaced by Binds and Mounts (a destination twice among these is an error), then the
    image's and `-v /dst` volumes where nothing else is mounted (docker-py sends Binds'
    destinations as Config.Volumes too)."""
    out: dict[str, MountPoint] = {}
    seen: set[str] = set()
    driver = host.get("VolumeDriver") or None
    points = [parse_bind(b, driver) for b in _list(host.get("Binds"), "Binds")]
    points += [parse_mount(m, driver) for m in _list(host.get("Mounts"), "Mounts")]
    for p in points:
        if p.Destination in seen:
            raise InvalidArgument(f"Duplicate mount point: {p.Destination}")
        seen.add(p.Destination)
    tmpfs = tmpfs_mounts(host)
    for dest in tmpfs:
        if dest in seen:
            raise InvalidArgument(f"Duplicate mount point: {dest}")
    for p in [*(inherited or []), *points]:
        out[p.Destination] = p
    for dest in tmpfs:
        out.pop(dest, None)
    for spec in sorted(config_volumes or {}):
        dest = check_destination(spec)
        if dest not in out and dest not in tmpfs:
            out[dest] = MountPoint(VOLUME, dest, Driver=check_driver(driver),
                                   anonymous=True)
    return list(out.values())


def _list(v: Any, what: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise InvalidArgument(f"HostConfig.{what} must be a list")
    return v


def tmpfs_mounts(host: dict[str, Any]) -> dict[str, str]:
    """`HostConfig.Tmpfs` ({dst: options}) with clean, checked destinations."""
    raw = host.get("Tmpfs") or {}
    if not isinstance(raw, dict):
        raise InvalidArgument("HostConfig.Tmpfs must be an object of path: options")
    out = {}
    for dest, opts in raw.items():
        try:
            out[check_destination(dest)] = str(opts or "")
        except InvalidArgument as e:
            raise InvalidArgument(f"invalid tmpfs mount {dest!r}: {e}") from None
    return out


def merge_tmpfs_options(options: list[str]) -> list[str]:
    """Later options win over earlier ones: the same key, or a flag and its opposite."""
    out: list[str] = []
    for opt in options:
        key = opt.split("=", 1)[0]
        drop = {key, _OPPOSITES.get(key, "")}
        if key in PROPAGATIONS:
            drop |= set(PROPAGATIONS)
        out = [o for o in out if o.split("=", 1)[0] not in drop]
        out.append(opt)
    return out


def _tmpfs(dest: str, data: str) -> dict[str, Any]:
    opts = TMPFS_DEFAULTS + [o for o in data.split(",") if o]
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs",
            "options": merge_tmpfs_options(opts)}


def points_of(rec: dict[str, Any]) -> list[MountPoint]:
    """The mount points of container record `rec`."""
    if "_MountPoints" not in rec:  # a record of a palletd before volumes: binds only
        return [parse_bind(b) for b in rec["HostConfig"].get("Binds") or []]
    return [MountPoint.from_dict(d) for d in rec["_MountPoints"]]


def views(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """`Mounts` of a container's inspect and list entries."""
    return [p.view() for p in points_of(rec)]


def oci_mount(p: MountPoint) -> dict[str, Any]:
    if p.Type == TMPFS:
        return _tmpfs(p.Destination, p.data)
    opts = ["bind" if p.non_recursive else "rbind", "rw" if p.RW else "ro"]
    if p.Propagation:
        opts.append(p.Propagation)
    return {"destination": p.Destination, "type": "bind", "source": p.Source,
            "options": opts}


def _depth(m: dict[str, Any]) -> int:
    return len([c for c in m["destination"].split("/") if c])


def apply(spec: dict[str, Any], rec: dict[str, Any]) -> None:
    """Add the container's mounts to its runtime config: a user mount replaces a default
    one at the same destination (as dockerd does for /etc/hosts or /dev/shm); parents are
    mounted before their children; shared and slave binds need a shared (or slave) source
    and a root propagation that lets events through."""
    points = points_of(rec)
    user = [oci_mount(p) for p in points]
    user += [_tmpfs(d, o) for d, o in tmpfs_mounts(rec["HostConfig"]).items()]
    dests = {m["destination"] for m in user}
    # One stable sort by depth puts every parent before its children, whoever added them:
    # the /etc/hosts bind goes over a volume on /etc, as dockerd mounts its network files
    # after the user's mounts.
    spec["mounts"] = sorted([m for m in spec["mounts"] if m["destination"] not in dests]
                            + user, key=_depth)
    linux = spec.setdefault("linux", {})
    for p in points:
        if p.Type != BIND or p.Propagation.lstrip("r") not in ("shared", "slave"):
            continue
        root = linux.get("rootfsPropagation", "")
        if p.Propagation.lstrip("r") == "shared":
            _require_propagation(p.Source, ("shared:",))
            if root.lstrip("r") != "shared":
                linux["rootfsPropagation"] = "shared"
        else:
            _require_propagation(p.Source, ("shared:", "master:"))
            if root.lstrip("r") not in ("shared", "slave"):
                linux["rootfsPropagation"] = "rslave"


def _require_propagation(source: str, tags: tuple[str, ...]) -> None:
    """The host mount holding `source` must be shared (or a slave) for shared (slave) bind
    propagation to mean anything; dockerd refuses otherwise (ensureShared)."""
    mount_point, optional = mount_of(source)
    if not any(o.startswith(t) for o in optional for t in tags):
        what = "shared" if tags == ("shared:",) else "shared or slave"
        raise InvalidArgument(f"path {source} is mounted on {mount_point} but it is not a "
                              f"{what} mount")


def is_mount_point(path: str) -> bool:
    """Also true for a bind mount within one filesystem, which os.path.ismount misses."""
    return mount_of(path)[0] == os.path.realpath(path)


def mount_of(path: str) -> tuple[str, list[str]]:
    """The mount point holding `path` (the longest prefix in /proc/self/mountinfo) and its
    optional fields (`shared:N`, `master:N`)."""
    path = os.path.realpath(path)
    best, fields = "/", []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            mp = parts[4].replace("\\040", " ")
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, fields = mp, parts[6:parts.index("-")]
    return best, fields
