"""A container's resource usage in runc's `events --stats` shape (runc types/events.go),
read from cgroup v1 or v2 files."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # `typing` costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

MAX = 2**64 - 1  # "max"/unlimited, as runc reports it


def _read(path: str, name: str) -> str | None:
    try:
        with open(os.path.join(path, name)) as f:
            return f.read().strip()
    except OSError:
        return None


def _int(path: str, name: str) -> int:
    v = _read(path, name)
    if v is None or v == "":
        return 0
    return MAX if v == "max" else int(v.split()[0])


def _kv(path: str, name: str) -> dict[str, int]:
    out: dict[str, int] = {}
    text = _read(path, name) or ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _dir(paths: dict[str, str], controller: str) -> str | None:
    for name, path in paths.items():
        if controller in name.split(","):
            return path
    return None


def stats(paths: dict[str, str]) -> dict[str, Any]:
    if list(paths) == [""]:
        return _v2(paths[""])
    return _v1(paths)


def _v1(paths: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"cpu": {}, "memory": {}, "pids": {}, "blkio": {}, "hugetlb": {}}
    acct = _dir(paths, "cpuacct")
    if acct:
        usage: dict[str, Any] = {"total": _int(acct, "cpuacct.usage")}
        percpu = _read(acct, "cpuacct.usage_percpu")
        if percpu:
            usage["percpu"] = [int(x) for x in percpu.split()]
        st = _kv(acct, "cpuacct.stat")
        # cpuacct.stat is in USER_HZ ticks; runc reports nanoseconds.
        tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        usage["kernel"] = st.get("system", 0) * tick
        usage["user"] = st.get("user", 0) * tick
        out["cpu"]["usage"] = usage
    cpu = _dir(paths, "cpu")
    if cpu:
        st = _kv(cpu, "cpu.stat")
        out["cpu"]["throttling"] = {"periods": st.get("nr_periods", 0),
                                    "throttled_periods": st.get("nr_throttled", 0),
                                    "throttled_time": st.get("throttled_time", 0)}
    mem = _dir(paths, "memory")
    if mem:
        raw = _kv(mem, "memory.stat")

        def entry(prefix: str) -> dict[str, int]:
            return {"limit": _int(mem, f"{prefix}.limit_in_bytes"),
                    "usage": _int(mem, f"{prefix}.usage_in_bytes"),
                    "max": _int(mem, f"{prefix}.max_usage_in_bytes"),
                    "failcnt": _int(mem, f"{prefix}.failcnt")}

        out["memory"] = {"cache": raw.get("cache", 0), "usage": entry("memory"),
                         "swap": entry("memory.memsw"), "kernel": entry("memory.kmem"),
                         "kernelTCP": entry("memory.kmem.tcp"), "raw": raw}
    pids = _dir(paths, "pids")
    if pids:
        out["pids"] = {"current": _int(pids, "pids.current"), "limit": _int(pids, "pids.max")}
    blkio = _dir(paths, "blkio")
    if blkio:
        out["blkio"] = {
            "ioServiceBytesRecursive": _blkio(blkio, "blkio.throttle.io_service_bytes"),
            "ioServicedRecursive": _blkio(blkio, "blkio.throttle.io_serviced"),
        }
    return out


def _blkio(path: str, name: str) -> list[dict[str, Any]]:
    entries = []
    for line in (_read(path, name) or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            entries.append({"major": int(major), "minor": int(minor), "op": parts[1],
                            "value": int(parts[2])})
    return entries


def _v2(path: str) -> dict[str, Any]:
    cpu = _kv(path, "cpu.stat")
    mem = _kv(path, "memory.stat")
    usage = {"total": cpu.get("usage_usec", 0) * 1000,
             "kernel": cpu.get("system_usec", 0) * 1000,
             "user": cpu.get("user_usec", 0) * 1000}
    return {
        "cpu": {"usage": usage,
                "throttling": {"periods": cpu.get("nr_periods", 0),
                               "throttled_periods": cpu.get("nr_throttled", 0),
                               "throttled_time": cpu.get("throttled_usec", 0) * 1000}},
        "memory": {"cache": mem.get("file", 0),
                   "usage": {"limit": _int(path, "memory.max"),
                             "usage": _int(path, "memory.current"),
                             "max": _int(path, "memory.peak"),
                             "failcnt": _kv(path, "memory.events").get("max", 0)},
                   "swap": {"limit": _int(path, "memory.swap.max"),
                            "usage": _int(path, "memory.swap.current"), "failcnt": 0},
                   "raw": mem},
        "pids": {"current": _int(path, "pids.current"), "limit": _int(path, "pids.max")},
        "blkio": _io_stat(path),
        "hugetlb": {},
    }


def _io_stat(path: str) -> dict[str, Any]:
    """v2 io.stat (`8:0 rbytes=.. wbytes=.. rios=.. wios=..`) in v1's blkio shape, with
    runc's lower-case op names."""
    service_bytes: list[dict[str, Any]] = []
    serviced: list[dict[str, Any]] = []
    for line in (_read(path, "io.stat") or "").splitlines():
        dev, *fields = line.split()
        if ":" not in dev:
            continue
        major, minor = (int(x) for x in dev.split(":"))
        kv = dict(f.split("=", 1) for f in fields if "=" in f)
        for key, op, into in (("rbytes", "read", service_bytes), ("wbytes", "write",
                                                                   service_bytes),
                              ("rios", "read", serviced), ("wios", "write", serviced)):
            if key in kv:
                into.append({"major": major, "minor": minor, "op": op, "value": int(kv[key])})
    return {"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced}


def oom_kills(paths: dict[str, str]) -> int:
    """How many OOM kills the container's memory cgroup has seen."""
    if list(paths) == [""]:
        return _kv(paths[""], "memory.events").get("oom_kill", 0)
    mem = _dir(paths, "memory")
    return _kv(mem, "memory.oom_control").get("oom_kill", 0) if mem else 0
