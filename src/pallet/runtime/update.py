"""`update`: change the resources of a created, running or paused container, from runc's
flags or a linux.resources JSON document, and keep the new values in its state."""

from __future__ import annotations

import sys

from pallet import jsonlite
from pallet.cgroups import Manager
from pallet.errors import FailedPrecondition, InvalidArgument
from pallet.oci import runtime_config
from pallet.runtime.state import STOPPED, ContainerState

TYPE_CHECKING = False  # `typing` costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

_SUFFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

# flag -> (section, key, parser kind)
FLAGS = {
    "memory": ("memory", "limit", "bytes"),
    "memory_reservation": ("memory", "reservation", "bytes"),
    "memory_swap": ("memory", "swap", "bytes"),
    "kernel_memory": ("memory", "kernel", "bytes"),
    "kernel_memory_tcp": ("memory", "kernelTCP", "bytes"),
    "cpu_shares": ("cpu", "shares", "int"),
    "cpu_quota": ("cpu", "quota", "int"),
    "cpu_period": ("cpu", "period", "int"),
    "cpu_rt_period": ("cpu", "realtimePeriod", "int"),
    "cpu_rt_runtime": ("cpu", "realtimeRuntime", "int"),
    "cpuset_cpus": ("cpu", "cpus", "str"),
    "cpuset_mems": ("cpu", "mems", "str"),
    "pids_limit": ("pids", "limit", "int"),
    "blkio_weight": ("blockIO", "weight", "int"),
}


def parse_bytes(text: str, flag: str) -> int:
    t = text.strip().lower().rstrip("b")
    if t == "-1":
        return -1
    mult = 1
    if t and t[-1] in _SUFFIX:
        mult, t = _SUFFIX[t[-1]], t[:-1]
    try:
        return int(float(t) * mult)
    except ValueError:
        raise InvalidArgument(f"--{flag.replace('_', '-')} {text!r}: not a size") from None


def resources_from_flags(ns: Any) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if ns.resources:
        try:
            if ns.resources == "-":
                res = jsonlite.loads(sys.stdin.read())  # type: ignore[assignment]
            else:
                with open(ns.resources) as f:
                    res = jsonlite.loads(f.read())  # type: ignore[assignment]
        except OSError as e:
            raise InvalidArgument(f"--resources {ns.resources}: {e.strerror}") from None
        except ValueError as e:
            raise InvalidArgument(f"--resources: invalid JSON: {e}") from None
        runtime_config.check_shape(res, {}, "linux.resources")
    for flag, (section, key, kind) in FLAGS.items():
        value = getattr(ns, flag)
        if value is None:
            continue
        if kind == "bytes":
            parsed: Any = parse_bytes(value, flag)
        elif kind == "int":
            try:
                parsed = int(value)
            except ValueError:
                raise InvalidArgument(f"--{flag.replace('_', '-')} {value!r}: not a number") \
                    from None
        else:
            parsed = value
        res.setdefault(section, {})[key] = parsed
    if not res:
        raise InvalidArgument("update: nothing to change (give --resources or a flag)")
    return res


def update(st: ContainerState, resources: dict[str, Any]) -> None:
    if st.status() == STOPPED:
        raise FailedPrecondition(f"cannot update container {st.id}: it is stopped")
    Manager(st.record["cgroupPaths"]).apply(resources)
    linux = st.config.setdefault("linux", {})
    current = linux.setdefault("resources", {})
    for section, values in resources.items():
        if isinstance(values, dict) and isinstance(current.get(section), dict):
            current[section].update(values)
        else:
            current[section] = values
    st.save()
