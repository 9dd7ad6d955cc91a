"""`GET /containers/{id}/stats`: Docker's StatsJSON (api/types/stats.go, dockerd 20.10),
read straight from the container's cgroup files (v1 or v2) and its network namespace's
/proc/<pid>/net/dev: a sample costs a few file reads, no runtime subprocess.

dockerd's shapes, which the docker CLI's arithmetic depends on:
- CPU % = Δcpu_usage.total_usage / Δsystem_cpu_usage * online_cpus; system_cpu_usage is the
  host's /proc/stat total in nanoseconds, so both deltas need the previous sample
  (`precpu_stats`): a one-object answer (stream=0) takes two samples a second apart.
- MEM USAGE = memory_stats.usage - total_inactive_file (v1) / inactive_file (v2), so the
  raw memory.stat goes into memory_stats.stats; an unlimited cgroup reports the host's
  memory as its limit.
- A container that is not running gets the zero object with only name and id.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pallet.cgroups import Manager
from pallet.cgroups import stats as cg_stats
from pallet.shim.wire import timestamp

ZERO_TIME = "0001-01-01T00:00:00Z"
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
_NET_FIELDS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes",
               "tx_packets", "tx_errors", "tx_dropped")


def cgroups_path(rec: dict[str, Any]) -> str:
    """The absolute cgroupsPath palletd gives a container: /<CgroupParent, or pallet>/<id>
    (which runc and pallet-runtime resolve alike)."""
    parent = (rec["HostConfig"].get("CgroupParent") or "pallet").strip("/")
    return f"/{parent}/{rec['Id']}"


def cgroup_paths(rec: dict[str, Any]) -> dict[str, str]:
    """The container's cgroup directories."""
    return Manager.for_config(cgroups_path(rec), rec["Id"]).paths


def machine_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def system_cpu_usage() -> int:
    """The host's CPU time in nanoseconds: as dockerd, the first seven fields of the `cpu`
    line of /proc/stat (user to softirq)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                ticks = [int(x) for x in line.split()[1:8]]
                return sum(ticks) * _TICK_NS
    return 0


def networks(pid: int) -> dict[str, dict[str, int]] | None:
    """Per-interface counters of the container's network namespace (its eth* devices, as
    libnetwork reports the sandbox's interfaces); None when it has none."""
    out: dict[str, dict[str, int]] = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return None
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        if not name.startswith("eth"):
            continue
        v = [int(x) for x in rest.split()]
        # /proc/net/dev: 8 receive columns then 8 transmit columns
        rx, tx = v[0:4], v[8:12]
        out[name] = dict(zip(_NET_FIELDS, rx + tx, strict=True))
    return out or None


def _unlimited(v: int) -> int:
    return 0 if v >= cg_stats.MAX else v


def _blkio(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"major": e["major"], "minor": e["minor"], "op": e["op"], "value": e["value"]}
            for e in entries]


def _zero_cpu() -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def zero(name: str, cid: str) -> dict[str, Any]:
    """What dockerd answers for a container that is not running: Go's zero StatsJSON."""
    blk = {k: None for k in ("io_service_bytes_recursive", "io_serviced_recursive",
                             "io_queue_recursive", "io_service_time_recursive",
                             "io_wait_time_recursive", "io_merged_recursive",
                             "io_time_recursive", "sectors_recursive")}
    return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {}, "blkio_stats": blk,
            "num_procs": 0, "storage_stats": {}, "cpu_stats": _zero_cpu(),
            "precpu_stats": _zero_cpu(), "memory_stats": {}, "name": name, "id": cid}


class Sampler:
    """Consecutive samples of one container: each carries the one before it as pre*."""

    def __init__(self, name: str, rec: dict[str, Any], pid: int, with_network: bool
                 ) -> None:
        self.name, self.id, self.pid = name, rec["Id"], pid
        self.with_network = with_network
        self.paths = cgroup_paths(rec)
        self.mem_total = machine_memory()
        self.online = os.sysconf("SC_NPROCESSORS_ONLN")
        self.prev: dict[str, Any] | None = None

    def sample(self) -> dict[str, Any]:
        raw = cg_stats.stats(self.paths)
        read = timestamp(time.time_ns())
        cpu = raw.get("cpu") or {}
        usage = cpu.get("usage") or {}
        thr = cpu.get("throttling") or {}
        cpu_usage: dict[str, Any] = {"total_usage": usage.get("total", 0),
                                     "usage_in_kernelmode": usage.get("kernel", 0),
                                     "usage_in_usermode": usage.get("user", 0)}
        if usage.get("percpu"):
            cpu_usage["percpu_usage"] = usage["percpu"]
        cpu_stats = {"cpu_usage": cpu_usage, "system_cpu_usage": system_cpu_usage(),
                     "online_cpus": self.online,
                     "throttling_data": {"periods": thr.get("periods", 0),
                                         "throttled_periods": thr.get("throttled_periods", 0),
                                         "throttled_time": thr.get("throttled_time", 0)}}
        mem = raw.get("memory") or {}
        mu = mem.get("usage") or {}
        limit = _unlimited(mu.get("limit", 0))
        if not limit or (self.mem_total and limit > self.mem_total):
            limit = self.mem_total
        memory_stats: dict[str, Any] = {"usage": mu.get("usage", 0),
                                        "stats": mem.get("raw") or {}, "limit": limit}
        if "kernel" in mem:  # v1 only: max_usage and failcnt have no v2 counterpart
            memory_stats["max_usage"] = mu.get("max", 0)
            memory_stats["failcnt"] = mu.get("failcnt", 0)
        pids = raw.get("pids") or {}
        pids_stats = {k: v for k, v in (("current", pids.get("current", 0)),
                                        ("limit", _unlimited(pids.get("limit", 0)))) if v}
        blk = raw.get("blkio") or {}
        blkio_stats = zero("", "")["blkio_stats"]
        blkio_stats["io_service_bytes_recursive"] = _blkio(
            blk.get("ioServiceBytesRecursive") or [])
        blkio_stats["io_serviced_recursive"] = _blkio(blk.get("ioServicedRecursive") or [])
        out: dict[str, Any] = {
            "read": read, "preread": ZERO_TIME, "pids_stats": pids_stats,
            "blkio_stats": blkio_stats, "num_procs": 0, "storage_stats": {},
            "cpu_stats": cpu_stats, "precpu_stats": _zero_cpu(),
            "memory_stats": memory_stats, "name": self.name, "id": self.id,
        }
        if self.with_network:
            nets = networks(self.pid)
            if nets is not None:
                out["networks"] = nets
        if self.prev is not None:
            out["preread"] = self.prev["read"]
            out["precpu_stats"] = self.prev["cpu_stats"]
        self.prev = out
        return out
