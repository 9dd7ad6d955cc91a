"""A container's Docker configuration (`Config`, `HostConfig`) -> its OCI runtime config.

The image's part comes from `pallet.images.bundle.runtime_config` (conversion.md); this
module adds what `docker run` decides: command, user, hostname, the /etc files, binds,
resources, capabilities, privileges, init. Docker's defaults where the API leaves them open
(its 14 default capabilities, no_new_privileges off, the default device rules).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
from typing import Any

from pallet.daemon import mounts as _mounts
from pallet.daemon.sandbox import hostname_of
from pallet.daemon.stats import cgroups_path
from pallet.errors import InvalidArgument
from pallet.images.bundle import read_db, resolve_user, runtime_config
from pallet.linux.caps import NAMES as ALL_CAPS
from pallet.linux.paths import resolve_in_root
from pallet.oci.image import ImageConfig
from pallet.oci.spec_default import DOCKER_DEFAULT_CAPS, DOCKER_DEVICE_RULES, set_shm_size

DEFAULT_CAPS = DOCKER_DEFAULT_CAPS
DEFAULT_DEVICE_RULES = DOCKER_DEVICE_RULES

RLIMITS = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME",
    "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK", "as": "RLIMIT_AS",
}

INIT_PATH = "/sbin/docker-init"
CPU_PERIOD = 100_000


def docker_init_binary() -> str | None:
    for name in ("docker-init", "tini-static", "tini"):
        p = shutil.which(name)
        if p:
            return os.path.realpath(p)
    return None


def host_caps() -> list[str]:
    """The capabilities this daemon's bounding set has: what `--privileged` and `ALL` grant
    (as dockerd's GetAllCapabilities)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    mask = int(line.split()[1], 16)
                    return [n for i, n in enumerate(ALL_CAPS) if mask & (1 << i)]
    except OSError:
        pass
    return list(ALL_CAPS)


def capabilities(host: dict[str, Any]) -> list[str]:
    if host.get("Privileged"):
        return host_caps()

    def norm(c: str) -> str:
        c = c.upper()
        return c if c.startswith("CAP_") or c == "ALL" else "CAP_" + c

    adds = [norm(c) for c in host.get("CapAdd") or []]
    drops = [norm(c) for c in host.get("CapDrop") or []]
    for c in adds + drops:
        if c != "ALL" and c not in ALL_CAPS:
            raise InvalidArgument(f"unknown capability: {c!r}")
    caps = host_caps() if "ALL" in adds else list(DEFAULT_CAPS)
    caps += [c for c in adds if c != "ALL" and c not in caps]
    if "ALL" in drops:
        return [c for c in adds if c != "ALL"]
    return [c for c in caps if c not in drops]


def security_options(host: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"no_new_privileges": False, "seccomp": None}
    for opt in host.get("SecurityOpt") or []:
        key, sep, value = opt.partition("=" if "=" in opt else ":")
        if key == "no-new-privileges":
            out["no_new_privileges"] = value.lower() in ("", "true", "1") if sep else True
        elif key == "seccomp":
            out["seccomp"] = value or "unconfined"
        elif key in ("apparmor", "label"):
            pass  # no LSM support on this host: accepted and ignored, as dockerd without it
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
    return out


# What docker's default profile also allows to a container that holds these capabilities.
_CAP_SYSCALLS = {
    "CAP_SYS_ADMIN": ["bpf", "fanotify_init", "fsconfig", "fsmount",
                      "fsopen", "fspick", "lookup_dcookie", "mount", "mount_setattr",
                      "move_mount", "name_to_handle_at", "open_tree", "perf_event_open",
                      "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns",
                      "syslog", "umount", "umount2", "unshare"],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_CHROOT": ["chroot"],
    "CAP_SYS_MODULE": ["delete_module", "init_module", "finit_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
                       "process_vm_writev", "ptrace"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "stime", "clock_settime", "clock_settime64"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
}


def seccomp_profile(option: str | None, caps: list[str], privileged: bool
                    ) -> dict[str, Any] | None:
    """docker's rules: the default profile unless privileged or `seccomp=unconfined`;
    `seccomp=<file>` takes an OCI linux.seccomp document; capabilities widen the default."""
    if privileged or option == "unconfined":
        return None
    if option:
        # The docker CLI reads a profile file and sends its JSON inline.
        try:
            if option.lstrip().startswith("{"):
                doc = json.loads(option)
            else:
                with open(option) as f:
                    doc = json.load(f)
        except (OSError, ValueError) as e:
            raise InvalidArgument(f"--security-opt seccomp: {e}") from None
        if not isinstance(doc, dict) or "defaultAction" not in doc:
            raise InvalidArgument("--security-opt seccomp: not a seccomp profile "
                                  "(an object with defaultAction)")
        return doc
    from pallet.oci.seccomp_default import docker_default

    profile = docker_default()
    extra = sorted({n for c in caps for n in _CAP_SYSCALLS.get(c, [])})
    if extra:
        profile["syscalls"].append({"names": extra, "action": "SCMP_ACT_ALLOW"})
    return profile


def linux_resources(u: dict[str, Any]) -> dict[str, Any]:
    """HostConfig resource fields as runtime-spec linux.resources: only those set (an update
    sends zeros for what it leaves as it is; runc and pallet-runtime leave absent fields)."""
    res: dict[str, Any] = {}
    mem = {k: int(u[f]) for f, k in (("Memory", "limit"), ("MemorySwap", "swap"),
                                     ("MemoryReservation", "reservation")) if u.get(f)}
    if mem:
        res["memory"] = mem
    cpu: dict[str, Any] = {}
    if u.get("NanoCpus"):
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = int(u["NanoCpus"]) * CPU_PERIOD // 1_000_000_000
    for f, k in (("CpuQuota", "quota"), ("CpuPeriod", "period"), ("CpuShares", "shares"),
                 ("CpuRealtimePeriod", "realtimePeriod"),
                 ("CpuRealtimeRuntime", "realtimeRuntime")):
        if u.get(f):
            cpu[k] = int(u[f])
    for f, k in (("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        if u.get(f):
            cpu[k] = str(u[f])
    if cpu:
        res["cpu"] = cpu
    if u.get("PidsLimit") is not None:
        # 0 and -1 both mean unlimited in the Engine API; -1 in the runtime spec
        res["pids"] = {"limit": int(u["PidsLimit"]) if int(u["PidsLimit"]) > 0 else -1}
    if u.get("BlkioWeight"):
        res["blockIO"] = {"weight": int(u["BlkioWeight"])}
    return res


def resources(host: dict[str, Any], rules: list[dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    """A new container's linux.resources; `rules` are its own devices' cgroup rules."""
    res = linux_resources(host)
    if not host.get("Memory"):
        res.get("memory", {}).pop("swap", None)  # -1 alone: nothing to limit
    if host.get("CpuQuota") and not host.get("CpuPeriod"):
        res["cpu"]["period"] = CPU_PERIOD
    mem = res.get("memory", {})
    if host.get("MemorySwappiness") is not None and int(host["MemorySwappiness"]) >= 0:
        mem["swappiness"] = int(host["MemorySwappiness"])
    if host.get("OomKillDisable"):
        mem["disableOOMKiller"] = True
    if mem:
        res["memory"] = mem
    else:
        res.pop("memory", None)
    if res.get("pids", {}).get("limit") == -1:
        del res["pids"]
    blkio = block_io(host)
    if blkio:
        res["blockIO"] = {**res.get("blockIO", {}), **blkio}
    if host.get("Privileged"):
        res["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        res["devices"] = [dict(r) for r in DEFAULT_DEVICE_RULES] + (rules or []) + [
            device_cgroup_rule(r) for r in host.get("DeviceCgroupRules") or []]
    return res


_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


def device_cgroup_rule(text: str) -> dict[str, Any]:
    """`--device-cgroup-rule 'c 1:3 mr'` as a linux.resources.devices entry."""
    m = _RULE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise InvalidArgument(f"invalid device cgroup format '{text}'")
    rule: dict[str, Any] = {"allow": True, "type": m.group(1), "access": m.group(4)}
    for key, value in (("major", m.group(2)), ("minor", m.group(3))):
        if value != "*":
            rule[key] = int(value)
    return rule


def host_devices(host: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """HostConfig.Devices (`--device /dev/x[:/dev/y][:rwm]`), and all of the host's for a
    privileged container: the linux.devices to create and the cgroup rules that allow them.
    A directory brings the devices under it, as dockerd."""
    devs: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    wanted = list(host.get("Devices") or [])
    if host.get("Privileged"):  # every device of the host, as dockerd
        wanted.insert(0, {"PathOnHost": "/dev", "PathInContainer": "/dev"})
    for d in wanted:
        src = d.get("PathOnHost") or ""
        dst = d.get("PathInContainer") or src
        perms = d.get("CgroupPermissions") or "rwm"
        found = _devices_at(src)
        for path, st in found:
            kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
            major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
            target = dst if path == src else os.path.join(dst, os.path.relpath(path, src))
            devs.append({"path": target, "type": kind, "major": major, "minor": minor,
                         "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                         "gid": st.st_gid})
            rules.append({"allow": True, "type": kind, "major": major, "minor": minor,
                          "access": perms})
    return devs, rules


# what a privileged container does not get from the host's /dev (containerd's HostDevices)
_NOT_HOST_DEVICES = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def _devices_at(path: str) -> list[tuple[str, os.stat_result]]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument("error gathering device information while adding custom "
                              f'device "{path}": {(e.strerror or str(e)).lower()}') from None
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return [(path, st)]
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument("error gathering device information while adding custom "
                              f'device "{path}": not a device node')
    out = []
    for root, dirs, files in os.walk(path):
        if root == "/dev":
            dirs[:] = [d for d in dirs if d not in _NOT_HOST_DEVICES]
            files = [f for f in files if f not in ("console", "ptmx")]  # the runtime's own
        for name in sorted(files):
            p = os.path.join(root, name)
            with contextlib.suppress(OSError):
                s2 = os.lstat(p)
                if stat.S_ISCHR(s2.st_mode) or stat.S_ISBLK(s2.st_mode):
                    out.append((p, s2))
    return out


def blkio_weight_supported() -> bool:
    """Whether block I/O weights can be set here: dockerd discards them (with a warning)
    where the kernel has neither CFQ's nor BFQ's weight files. Only v1 can be told from
    the root; on a pure v2 host the runtime reports it."""
    v1 = "/sys/fs/cgroup/blkio"
    if not os.path.isdir(v1):
        return True
    return any(os.path.exists(os.path.join(v1, f)) for f in ("blkio.weight",
                                                             "blkio.bfq.weight"))


def _block_devices(entries: list[dict[str, Any]] | None, key: str, value: str
                   ) -> list[dict[str, Any]]:
    out = []
    for e in entries or []:
        try:
            st = os.stat(e.get("Path") or "")
        except OSError as err:
            raise InvalidArgument(f"{key}: {e.get('Path')!r}: {err.strerror}") from None
        out.append({"major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                    value: int(e.get("Rate" if value == "rate" else "Weight") or 0)})
    return out


def block_io(host: dict[str, Any]) -> dict[str, Any]:
    """--blkio-weight-device and the --device-read/write-bps/iops throttles as
    linux.resources.blockIO (the weight itself comes with linux_resources)."""
    out = {}
    for key, field, value in (
            ("BlkioWeightDevice", "weightDevice", "weight"),
            ("BlkioDeviceReadBps", "throttleReadBpsDevice", "rate"),
            ("BlkioDeviceWriteBps", "throttleWriteBpsDevice", "rate"),
            ("BlkioDeviceReadIOps", "throttleReadIOPSDevice", "rate"),
            ("BlkioDeviceWriteIOps", "throttleWriteIOPSDevice", "rate")):
        devs = _block_devices(host.get(key), key, value)
        if devs:
            out[field] = devs
    return out


MIN_MEMORY = 6 * 1024 * 1024  # dockerd's linuxMinMemory


def _check_memory(host: dict[str, Any]) -> None:
    """dockerd's memory checks at create."""
    memory, swap = host.get("Memory") or 0, host.get("MemorySwap") or 0
    reservation = host.get("MemoryReservation") or 0
    if 0 < memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if swap > 0 and not memory:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap "
                              "limit, see usage")
    if memory and swap > 0 and swap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                              "see usage")
    if 0 < reservation < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if memory and reservation > memory:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation "
                              "limit, see usage")


def check_host(host: dict[str, Any]) -> list[str]:
    """dockerd's checks of HostConfig fields at create (the paths are looked at on start);
    the warnings dockerd gives for what it accepts and drops (the fields are cleared)."""
    warnings = []
    if host.get("DeviceRequests"):
        r = host["DeviceRequests"][0] or {}
        caps = "[" + " ".join("[" + " ".join(c) + "]" for c in r.get("Capabilities") or []) + "]"
        raise InvalidArgument(f'could not select device driver "{r.get("Driver") or ""}" '
                              f"with capabilities: {caps}")
    if host.get("StorageOpt"):
        raise InvalidArgument("--storage-opt is supported only for overlay over xfs with "
                              "'pquota' mount option")
    if host.get("KernelMemory"):
        host["KernelMemory"] = 0
        warnings.append("Specifying a kernel memory limit is deprecated and will be removed "
                        "in a future release.")
    if (host.get("BlkioWeight") or host.get("BlkioWeightDevice")) and \
            not blkio_weight_supported():
        host["BlkioWeight"], host["BlkioWeightDevice"] = 0, []
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not "
                        "mounted. Weight discarded.")
    for key in ("OomScoreAdj", "MemorySwappiness", "BlkioWeight", "Memory", "MemorySwap",
                "MemoryReservation", "ShmSize"):
        v = host.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InvalidArgument(f"HostConfig.{key} must be an integer")
    _check_memory(host)
    adj = int(host.get("OomScoreAdj") or 0)
    if not -1000 <= adj <= 1000:
        raise InvalidArgument(f"Invalid value {adj}, range for oom score adj is [-1000, 1000]")
    sw = host.get("MemorySwappiness")
    if sw is not None and int(sw) != -1 and not 0 <= int(sw) <= 100:
        raise InvalidArgument(f"Invalid value: {sw}, valid memory swappiness range is 0-100")
    bw = int(host.get("BlkioWeight") or 0)
    if bw and not 10 <= bw <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    for d in host.get("Devices") or []:
        if not isinstance(d, dict):
            raise InvalidArgument(f"invalid device specification: {d!r}")
        perms = str(d.get("CgroupPermissions") or "rwm")
        if not d.get("PathOnHost") or set(perms) - set("rwm"):
            raise InvalidArgument(f"invalid device specification: {d}")
        inside = str(d.get("PathInContainer") or d["PathOnHost"])
        if not inside.startswith("/"):
            raise InvalidArgument(f"{inside} is not an absolute path")
    for key in ("BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
                "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps"):
        if not all(isinstance(e, dict) for e in host.get(key) or []):
            raise InvalidArgument(f"HostConfig.{key} must be a list of objects")
    for r in host.get("DeviceCgroupRules") or []:
        device_cgroup_rule(r)
    if host.get("CgroupnsMode") not in (None, "", "host", "private"):
        raise InvalidArgument(f"invalid cgroup namespace mode: {host['CgroupnsMode']}")
    ipc = host.get("IpcMode") or ""
    if ipc not in ("", "private", "host", "none", "shareable") and not (
            ipc.startswith("container:") and ipc[10:]):
        raise InvalidArgument(f"invalid IPC mode: {ipc}")
    pid = host.get("PidMode") or ""
    if pid not in ("", "host") and not (pid.startswith("container:") and pid[10:]):
        raise InvalidArgument(f"invalid PID mode: {pid}")
    parent = host.get("CgroupParent") or ""
    if ".." in parent.split("/"):
        raise InvalidArgument(f"invalid cgroup parent {parent!r}: it may not contain '..'")
    if host.get("Sysctls") is not None and not isinstance(host["Sysctls"], dict):
        raise InvalidArgument("HostConfig.Sysctls must be an object")
    return warnings


def _additional_gids(rootfs: str, groups: list[str]) -> list[int]:
    """HostConfig.GroupAdd: numbers, or names from the image's /etc/group."""
    table = read_db(rootfs, "/etc/group")
    out = []
    for g in groups:
        if g.isdigit():
            out.append(int(g))
            continue
        entry = next((x for x in table if len(x) > 2 and x[0] == g), None)
        if entry is None or not entry[2].isdigit():
            raise InvalidArgument(f"Unable to find group {g}: no matching entries in group "
                                  "file")
        out.append(int(entry[2]))
    return out


def _bind(source: str, dest: str, ro: bool = False, extra: list[str] | None = None
          ) -> dict[str, Any]:
    return {"destination": dest, "type": "bind", "source": source,
            "options": ["rbind", "rprivate", "ro" if ro else "rw", *(extra or [])]}


def build(image: ImageConfig, rec: dict[str, Any], rootfs: str, *,
          netns_path: str | None, etc: dict[str, str],
          joins: dict[str, str] | None = None, shm: str | None = None) -> dict[str, Any]:
    """The config.json of container `rec` (palletd's record) over the mounted `rootfs`;
    `netns_path` is the network namespace to join, `etc` the /etc files to bind (both
    from the container's sandbox), `joins` other namespaces to join (type -> path), `shm`
    a host directory to bind on /dev/shm (a shared IPC namespace's)."""
    cfg, host = rec["Config"], rec["HostConfig"]
    argv = [rec["Path"], *rec["Args"]]
    spec = runtime_config(image, rootfs, args=argv, terminal=bool(cfg.get("Tty")),
                          readonly=bool(host.get("ReadonlyRootfs")),
                          extra_env=list(cfg.get("Env") or []))
    proc = spec["process"]
    init = host.get("Init")
    if init:
        binary = docker_init_binary()
        if binary is None:
            raise InvalidArgument("--init: no docker-init or tini binary on this host")
        argv = [INIT_PATH, "--", *argv]
        spec["mounts"].append(_bind(binary, INIT_PATH, ro=True))
    proc["args"] = argv
    hostname = hostname_of(rec)
    spec["hostname"] = hostname
    env = proc["env"]
    if not any(e.startswith("HOSTNAME=") for e in env):
        env.insert(1 if env and env[0].startswith("PATH=") else 0, f"HOSTNAME={hostname}")
    keys = {e.split("=", 1)[0] for e in env}
    # legacy links' variables; the container's own win (docker's order)
    env += [e for e in rec.get("_LinkEnv") or [] if e.split("=", 1)[0] not in keys]
    if cfg.get("User"):
        proc["user"] = resolve_user(rootfs, cfg["User"])
    if host.get("GroupAdd"):
        user = proc.setdefault("user", {"uid": 0, "gid": 0})
        gids = list(user.get("additionalGids") or [])
        gids += [g for g in _additional_gids(rootfs, host["GroupAdd"]) if g not in gids]
        user["additionalGids"] = gids
    if host.get("OomScoreAdj"):
        proc["oomScoreAdj"] = int(host["OomScoreAdj"])
    if cfg.get("WorkingDir"):
        if not cfg["WorkingDir"].startswith("/"):
            raise InvalidArgument(f"the working directory {cfg['WorkingDir']!r} is invalid: "
                                  "it needs to be an absolute path")
        proc["cwd"] = cfg["WorkingDir"]
        os.makedirs(resolve_in_root(rootfs, cfg["WorkingDir"]), exist_ok=True)
    size = host.get("ConsoleSize") or cfg.get("ConsoleSize")
    if cfg.get("Tty") and size:
        h, w = size[:2]
        if h and w:
            proc["consoleSize"] = {"height": int(h), "width": int(w)}

    caps = capabilities(host)
    proc["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    sec = security_options(host)
    proc["noNewPrivileges"] = sec["no_new_privileges"]
    profile = seccomp_profile(sec["seccomp"], caps, bool(host.get("Privileged")))
    rl = {r["type"]: r for r in proc.get("rlimits", [])}
    for u in host.get("Ulimits") or []:
        name = RLIMITS.get(str(u.get("Name", "")).lower())
        if name is None:
            raise InvalidArgument(f"invalid ulimit type: {u.get('Name')}")
        rl[name] = {"type": name, "soft": int(u["Soft"]), "hard": int(u["Hard"])}
    proc["rlimits"] = list(rl.values())

    linux = spec["linux"]
    if profile is not None:
        linux["seccomp"] = profile
    devices, rules = host_devices(host)
    if devices:
        linux["devices"] = [*linux.get("devices", []), *devices]
    linux["resources"] = resources(host, rules)
    linux["cgroupsPath"] = cgroups_path(rec)
    if host.get("Sysctls"):
        linux["sysctl"] = {str(k): str(v) for k, v in host["Sysctls"].items()}
    drop_ns = set()
    if netns_path:
        for ns in linux["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = netns_path
    if host.get("NetworkMode") == "host":
        drop_ns.add("network")
    if host.get("PidMode") == "host":
        drop_ns.add("pid")
    ipc = host.get("IpcMode") or ""
    if ipc == "host":
        drop_ns.add("ipc")
    _shm(spec, ipc, int(host.get("ShmSize") or 0), shm)
    if host.get("CgroupnsMode") == "private" and not any(
            n["type"] == "cgroup" for n in linux["namespaces"]):
        linux["namespaces"].append({"type": "cgroup"})
    for ns in linux["namespaces"]:
        if ns["type"] in (joins or {}):
            ns["path"] = (joins or {})[ns["type"]]
    if host.get("UTSMode") == "host":
        drop_ns.add("uts")
        spec.pop("hostname", None)
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] not in drop_ns]
    if host.get("Privileged"):
        linux.pop("maskedPaths", None)
        linux.pop("readonlyPaths", None)
        for m in spec["mounts"]:
            if m["destination"] in ("/sys", "/sys/fs/cgroup"):
                m["options"] = [o for o in m.get("options", []) if o != "ro"] + ["rw"]

    spec["mounts"] += [_bind(src, dst) for dst, src in etc.items()]
    _mounts.apply(spec, rec)  # binds, volumes, tmpfs
    spec["annotations"] = {**spec.get("annotations", {}), "io.pallet.container.name":
                           rec["Name"].lstrip("/")}
    return spec


def _shm(spec: dict[str, Any], ipc: str, size: int, shared: str | None) -> None:
    """/dev/shm: a tmpfs of ShmSize bytes (docker's 64 MiB by default), the host's for
    `--ipc host`, none for `--ipc none`, the shared one of a shareable IPC namespace."""
    for i, m in enumerate(spec["mounts"]):
        if m["destination"] != "/dev/shm":
            continue
        if ipc == "none":
            del spec["mounts"][i]
        elif ipc == "host" or shared:
            spec["mounts"][i] = _bind(shared or "/dev/shm", "/dev/shm")
        elif size:
            set_shm_size(spec, size)
        return


def exec_process(base: dict[str, Any], *, cmd: list[str], env: list[str], cwd: str,
                 user: str, tty: bool, privileged: bool, rootfs: str) -> dict[str, Any]:
    """The runtime-spec process of an exec instance, from its container's process."""
    proc = {k: v for k, v in base.items() if k != "consoleSize"}
    proc["args"] = list(cmd)
    proc["terminal"] = tty
    penv = list(base.get("env", []))
    for item in env:
        penv = [x for x in penv if x.split("=", 1)[0] != item.split("=", 1)[0]] + [item]
    proc["env"] = penv
    if cwd:
        proc["cwd"] = cwd
    if user:
        proc["user"] = resolve_user(rootfs, user)
    if privileged:
        proc["capabilities"] = {k: host_caps() for k in ("bounding", "effective",
                                                         "permitted")}
    return proc
