"""`events`: runc's JSON event stream — stats every interval, and an "oom" event when the
kernel OOM-kills in the container."""

from __future__ import annotations

import sys
import time

from pallet import jsonlite
from pallet.cgroups import stats
from pallet.errors import FailedPrecondition, InvalidArgument
from pallet.runtime.state import STOPPED, ContainerState

TYPE_CHECKING = False  # `typing` costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_interval(text: str) -> float:
    """Go durations as runc takes them: 5s, 500ms, 1m."""
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            number = text[: -len(unit)]
            try:
                value = float(number) * _UNITS[unit]
            except ValueError:
                break
            if value > 0:
                return value
    raise InvalidArgument(f"--interval {text!r}: expected a duration such as 5s or 500ms")


def stats_event(st: ContainerState) -> dict[str, Any]:
    if st.status() == STOPPED:
        raise FailedPrecondition(f"container {st.id} is not running")
    return {"type": "stats", "id": st.id, "data": stats.stats(st.record["cgroupPaths"])}


def follow(st: ContainerState, interval: float) -> None:
    paths = st.record["cgroupPaths"]
    ooms = stats.oom_kills(paths)
    next_stats = 0.0
    while st.status() != STOPPED:
        now = time.monotonic()
        if now >= next_stats:
            _emit(stats_event(st))
            next_stats = now + interval
        count = stats.oom_kills(paths)
        if count > ooms:
            _emit({"type": "oom", "id": st.id})
            ooms = count
        time.sleep(min(0.2, interval))


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(jsonlite.dumps(event) + "\n")
    sys.stdout.flush()
