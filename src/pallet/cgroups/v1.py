"""linux.resources on cgroup v1 (config-linux.md#control-groups): one function per
controller, each writing its files in the container's directory of that hierarchy."""

from __future__ import annotations

import os

from pallet.errors import InvalidArgument

TYPE_CHECKING = False  # `typing` costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

# The devices every container gets whatever its rules say (runc's AllowedDevices): the
# default nodes the runtime creates, and mknod of any node (using one still needs a rule).
DEFAULT_ALLOWED = ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                   "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
                   "c 10:200 rwm"]


def write(path: str, name: str, value: str | int, field: str) -> None:
    try:
        with open(os.path.join(path, name), "w") as f:
            f.write(str(value))
    except OSError as e:
        raise InvalidArgument(
            f"linux.resources.{field}: writing {value} to {name}: {e.strerror}") from None


def _dir(paths: dict[str, str], controller: str, field: str) -> str:
    for name, path in paths.items():
        if controller in name.split(","):
            return path
    raise InvalidArgument(f"linux.resources.{field}: the {controller} controller is not "
                          "mounted on this host")


def memory(paths: dict[str, str], mem: dict[str, Any]) -> None:
    d = _dir(paths, "memory", "memory")
    if "reservation" in mem:
        write(d, "memory.soft_limit_in_bytes", mem["reservation"], "memory.reservation")
    limit, swap = mem.get("limit"), mem.get("swap")
    if swap is not None and not os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes")):
        raise InvalidArgument("linux.resources.memory.swap: this kernel has no swap "
                              "accounting (memory.memsw.limit_in_bytes)")
    # memsw must stay >= limit at every step: raise whichever bound has to go up first.
    if limit is not None and swap is not None:
        try:
            write(d, "memory.limit_in_bytes", limit, "memory.limit")
            write(d, "memory.memsw.limit_in_bytes", swap, "memory.swap")
        except InvalidArgument:
            write(d, "memory.memsw.limit_in_bytes", swap, "memory.swap")
            write(d, "memory.limit_in_bytes", limit, "memory.limit")
    elif limit is not None:
        write(d, "memory.limit_in_bytes", limit, "memory.limit")
    elif swap is not None:
        write(d, "memory.memsw.limit_in_bytes", swap, "memory.swap")
    for key, name in (("kernel", "memory.kmem.limit_in_bytes"),
                      ("kernelTCP", "memory.kmem.tcp.limit_in_bytes")):
        if key in mem and os.path.exists(os.path.join(d, name)):
            write(d, name, mem[key], f"memory.{key}")
    if mem.get("swappiness") is not None:
        write(d, "memory.swappiness", mem["swappiness"], "memory.swappiness")
    if "disableOOMKiller" in mem:
        write(d, "memory.oom_control", int(bool(mem["disableOOMKiller"])),
              "memory.disableOOMKiller")
    if "useHierarchy" in mem:
        write(d, "memory.use_hierarchy", int(bool(mem["useHierarchy"])), "memory.useHierarchy")


def cpu(paths: dict[str, str], c: dict[str, Any]) -> None:
    if any(k in c for k in ("shares", "quota", "period", "burst", "realtimeRuntime",
                            "realtimePeriod", "idle")):
        d = _dir(paths, "cpu", "cpu")
        if c.get("shares"):
            write(d, "cpu.shares", c["shares"], "cpu.shares")
        if c.get("period"):
            write(d, "cpu.cfs_period_us", c["period"], "cpu.period")
        if c.get("quota") is not None:
            write(d, "cpu.cfs_quota_us", c["quota"], "cpu.quota")
        if c.get("burst") is not None:
            write(d, "cpu.cfs_burst_us", c["burst"], "cpu.burst")
        if c.get("realtimePeriod"):
            write(d, "cpu.rt_period_us", c["realtimePeriod"], "cpu.realtimePeriod")
        if c.get("realtimeRuntime"):
            write(d, "cpu.rt_runtime_us", c["realtimeRuntime"], "cpu.realtimeRuntime")
        if c.get("idle") is not None and os.path.exists(os.path.join(d, "cpu.idle")):
            write(d, "cpu.idle", c["idle"], "cpu.idle")
    if c.get("cpus") or c.get("mems"):
        d = _dir(paths, "cpuset", "cpu.cpus")
        if c.get("cpus"):
            write(d, "cpuset.cpus", c["cpus"], "cpu.cpus")
        if c.get("mems"):
            write(d, "cpuset.mems", c["mems"], "cpu.mems")


def pids(paths: dict[str, str], p: dict[str, Any]) -> None:
    if "limit" in p:
        d = _dir(paths, "pids", "pids")
        limit = p["limit"]
        write(d, "pids.max", "max" if limit <= 0 else limit, "pids.limit")


def _devno(dev: dict[str, Any]) -> str:
    return f"{dev['major']}:{dev['minor']}"


def block_io(paths: dict[str, str], b: dict[str, Any]) -> None:
    d = _dir(paths, "blkio", "blockIO")
    weight_file = "blkio.weight" if os.path.exists(os.path.join(d, "blkio.weight")) \
        else "blkio.bfq.weight"
    if b.get("weight"):
        write(d, weight_file, b["weight"], "blockIO.weight")
    if b.get("leafWeight") and os.path.exists(os.path.join(d, "blkio.leaf_weight")):
        write(d, "blkio.leaf_weight", b["leafWeight"], "blockIO.leafWeight")
    for dev in b.get("weightDevice", []):
        if dev.get("weight"):
            write(d, weight_file.replace("weight", "weight_device"),
                  f"{_devno(dev)} {dev['weight']}", "blockIO.weightDevice")
    for key, name in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                      ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                      ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                      ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
        for dev in b.get(key, []):
            write(d, name, f"{_devno(dev)} {dev['rate']}", f"blockIO.{key}")


def hugepages(paths: dict[str, str], limits: list[dict[str, Any]]) -> None:
    d = _dir(paths, "hugetlb", "hugepageLimits")
    for h in limits:
        write(d, f"hugetlb.{h['pageSize']}.limit_in_bytes", h["limit"], "hugepageLimits")


def network(paths: dict[str, str], n: dict[str, Any]) -> None:
    if n.get("classID") is not None:
        write(_dir(paths, "net_cls", "network.classID"), "net_cls.classid", n["classID"],
              "network.classID")
    for prio in n.get("priorities", []):
        write(_dir(paths, "net_prio", "network.priorities"), "net_prio.ifpriomap",
              f"{prio['name']} {prio['priority']}", "network.priorities")


def device_rule(rule: dict[str, Any]) -> str:
    kind = rule.get("type", "a")
    if kind not in ("a", "c", "b"):
        raise InvalidArgument(f"linux.resources.devices: unknown device type {kind!r}")
    major = rule.get("major")
    minor = rule.get("minor")
    maj = "*" if major is None or major < 0 else str(major)
    mnr = "*" if minor is None or minor < 0 else str(minor)
    access = rule.get("access") or "rwm"
    if not access or set(access) - set("rwm"):
        raise InvalidArgument(f"linux.resources.devices: bad access {access!r}")
    if kind == "a":
        return "a"
    return f"{kind} {maj}:{mnr} {access}"


def devices(paths: dict[str, str], rules: list[dict[str, Any]]) -> None:
    """Rules in order, after the defaults: deny-all first unless the rules say otherwise,
    as runc does, so an empty list still means a closed device cgroup."""
    d = _dir(paths, "devices", "devices")
    write(d, "devices.deny", "a", "devices")
    for rule in rules:
        name = "devices.allow" if rule.get("allow") else "devices.deny"
        write(d, name, device_rule(rule), "devices")
    for rule in DEFAULT_ALLOWED:
        write(d, "devices.allow", rule, "devices")


def apply(paths: dict[str, str], resources: dict[str, Any]) -> None:
    if resources.get("memory"):
        memory(paths, resources["memory"])
    if resources.get("cpu"):
        cpu(paths, resources["cpu"])
    if resources.get("pids"):
        pids(paths, resources["pids"])
    if resources.get("blockIO"):
        block_io(paths, resources["blockIO"])
    if resources.get("hugepageLimits"):
        hugepages(paths, resources["hugepageLimits"])
    if resources.get("network"):
        network(paths, resources["network"])
    if "devices" in resources:
        devices(paths, resources["devices"] or [])
    if resources.get("unified"):
        raise InvalidArgument("linux.resources.unified: needs a cgroup v2 host; this one "
                              "uses cgroup v1 controllers")
