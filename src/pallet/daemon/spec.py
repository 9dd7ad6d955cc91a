"""A container's Docker configuration (`Config`, `HostConfig`) -> its OCI runtime config.

The image's part comes from `pallet.images.bundle.runtime_config` (conversion.md); this
module adds what `docker run` decides: command, user, hostname, the /etc files, binds,
resources, capabilities, privileges, init. Docker's defaults where the API leaves them open
(its 14 default capabilities, no_new_privileges off, the default device rules).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from pallet.daemon import mounts as _mounts
from pallet.daemon.sandbox import hostname_of
from pallet.errors import InvalidArgument
from pallet.images.bundle import resolve_user, runtime_config
from pallet.linux.caps import NAMES as ALL_CAPS
from pallet.linux.paths import resolve_in_root
from pallet.oci.image import ImageConfig
from pallet.oci.spec_default import DOCKER_DEFAULT_CAPS, DOCKER_DEVICE_RULES

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


def resources(host: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": (
        [{"allow": True, "access": "rwm"}] if host.get("Privileged")
        else [dict(r) for r in DEFAULT_DEVICE_RULES])}
    if host.get("Memory"):
        res["memory"] = {"limit": int(host["Memory"])}
        if host.get("MemorySwap"):
            res["memory"]["swap"] = int(host["MemorySwap"])
    cpu: dict[str, Any] = {}
    if host.get("NanoCpus"):
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = int(host["NanoCpus"]) * CPU_PERIOD // 1_000_000_000
    if host.get("CpuQuota"):
        cpu["quota"] = int(host["CpuQuota"])
        cpu["period"] = int(host.get("CpuPeriod") or CPU_PERIOD)
    if host.get("CpuShares"):
        cpu["shares"] = int(host["CpuShares"])
    if host.get("CpusetCpus"):
        cpu["cpus"] = host["CpusetCpus"]
    if cpu:
        res["cpu"] = cpu
    if host.get("PidsLimit") and int(host["PidsLimit"]) > 0:
        res["pids"] = {"limit": int(host["PidsLimit"])}
    return res


def _bind(source: str, dest: str, ro: bool = False, extra: list[str] | None = None
          ) -> dict[str, Any]:
    return {"destination": dest, "type": "bind", "source": source,
            "options": ["rbind", "rprivate", "ro" if ro else "rw", *(extra or [])]}


def build(image: ImageConfig, rec: dict[str, Any], rootfs: str, *,
          netns_path: str | None, etc: dict[str, str]) -> dict[str, Any]:
    """The config.json of container `rec` (palletd's record) over the mounted `rootfs`;
    `netns_path` is the network namespace to join, `etc` the /etc files to bind (both
    from the container's sandbox)."""
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
    linux["resources"] = resources(host)
    linux["cgroupsPath"] = f"/pallet/{rec['Id']}"
    drop_ns = set()
    if netns_path:
        for ns in linux["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = netns_path
    if host.get("NetworkMode") == "host":
        drop_ns.add("network")
    if host.get("PidMode") == "host":
        drop_ns.add("pid")
    if host.get("IpcMode") == "host":
        drop_ns.add("ipc")
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
