"""linux.resources on the cgroup v2 unified hierarchy, with runc's conversions of the
v1-shaped fields (config-linux.md; runc's libcontainer/cgroups/fs2)."""

from __future__ import annotations

import os

from pallet.cgroups.v1 import write
from pallet.errors import InvalidArgument

TYPE_CHECKING = False  # `typing` costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any


def enable_controllers(mountpoint: str, path: str) -> None:
    """A v2 controller's files appear in a cgroup only if its parent delegates it: enable
    every available controller on the way down from the root (no-internal-process rule
    permitting)."""
    rel = os.path.relpath(path, mountpoint)
    cur = mountpoint
    parts = [] if rel == "." else rel.split("/")
    for part in parts:
        try:
            with open(os.path.join(cur, "cgroup.controllers")) as f:
                available = f.read().split()
        except OSError:
            return
        if available:
            try:
                with open(os.path.join(cur, "cgroup.subtree_control"), "w") as f:
                    f.write(" ".join("+" + c for c in available))
            except OSError:
                # Busy (processes in an inner node) or not delegated: limits that need a
                # missing controller fail later with a message naming the file.
                pass
        cur = os.path.join(cur, part)


def shares_to_weight(shares: int) -> int:
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    return 1 + ((weight - 10) * 9999) // 990


def apply(path: str, r: dict[str, Any]) -> None:
    mem = r.get("memory") or {}
    if mem.get("reservation") is not None:
        write(path, "memory.low", mem["reservation"], "memory.reservation")
    if mem.get("limit") is not None:
        write(path, "memory.max", _max(mem["limit"]), "memory.limit")
    if mem.get("swap") is not None:
        swap, limit = mem["swap"], mem.get("limit")
        # v1's swap is memory+swap; v2's memory.swap.max is swap alone.
        value = "max" if swap < 0 else (swap - limit if limit and limit > 0 else swap)
        if isinstance(value, int) and value < 0:
            raise InvalidArgument("linux.resources.memory.swap: must be >= memory.limit")
        write(path, "memory.swap.max", value, "memory.swap")
    c = r.get("cpu") or {}
    if c.get("shares"):
        write(path, "cpu.weight", shares_to_weight(c["shares"]), "cpu.shares")
    if c.get("quota") is not None or c.get("period"):
        quota = c.get("quota")
        q = "max" if quota is None or quota <= 0 else str(quota)
        write(path, "cpu.max", f"{q} {c.get('period') or 100000}", "cpu.quota")
    if c.get("burst") is not None:
        write(path, "cpu.max.burst", c["burst"], "cpu.burst")
    if c.get("idle") is not None:
        write(path, "cpu.idle", c["idle"], "cpu.idle")
    if c.get("cpus"):
        write(path, "cpuset.cpus", c["cpus"], "cpu.cpus")
    if c.get("mems"):
        write(path, "cpuset.mems", c["mems"], "cpu.mems")
    p = r.get("pids") or {}
    if "limit" in p:
        write(path, "pids.max", _max(p["limit"]), "pids.limit")
    b = r.get("blockIO") or {}
    if b.get("weight"):
        write(path, "io.weight", f"default {blkio_to_io_weight(b['weight'])}", "blockIO.weight")
    for key, knob in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                      ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        for dev in b.get(key, []):
            write(path, "io.max", f"{dev['major']}:{dev['minor']} {knob}={dev['rate']}",
                  f"blockIO.{key}")
    for h in r.get("hugepageLimits") or []:
        write(path, f"hugetlb.{h['pageSize']}.max", h["limit"], "hugepageLimits")
    if "devices" in r:
        from pallet.cgroups import devices_bpf
        from pallet.cgroups.v1 import DEFAULT_ALLOWED

        rules = list(r["devices"] or []) + [_parse_rule(x) for x in DEFAULT_ALLOWED]
        try:
            devices_bpf.attach(path, rules)
        except OSError as e:
            raise InvalidArgument(f"linux.resources.devices: {e.strerror}") from None
    for key, value in (r.get("unified") or {}).items():
        if "/" in key or key.startswith("."):
            raise InvalidArgument(f"linux.resources.unified: bad key {key!r}")
        write(path, key, value, f"unified.{key}")


def _max(value: int) -> str:
    return "max" if value is None or value < 0 else str(value)


def _parse_rule(text: str) -> dict[str, Any]:
    """"c 1:3 rwm" (the v1 file syntax of the default allow list) as an OCI device rule."""
    kind, numbers, access = text.split()
    major, minor = numbers.split(":")
    return {"allow": True, "type": kind, "access": access,
            "major": -1 if major == "*" else int(major),
            "minor": -1 if minor == "*" else int(minor)}
