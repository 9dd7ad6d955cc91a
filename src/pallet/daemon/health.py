"""docker's health checks: Config.Healthcheck (HEALTHCHECK, `--health-*`), probed by an exec
in the running container; State.Health (status, failing streak, the last five results),
`health_status: <status>` events, `(healthy)` in `ps`, the `health` filter.

dockerd's rules (daemon/health.go): the first probe runs an interval after the start (or
the start interval while starting, during the start period); exit 0 is healthy, anything
else a failure, which counts only after the start period or once the container has been
healthy; `Retries` failures in a row make it unhealthy; a probe that runs past its timeout
is killed and fails with exit code -1. The monitor stops with the container, skips probes
while it is paused, and starts again (status `starting`) with each start, also for the
containers a restarted palletd finds running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal as _signal
import time
from typing import TYPE_CHECKING, Any

from pallet.daemon.images import parse_time
from pallet.errors import InvalidArgument, PalletError
from pallet.runtime.state import now_rfc3339
from pallet.shim import wire

if TYPE_CHECKING:
    from pallet.daemon.containers import Container, Containers
    from pallet.daemon.execs import Execs

log = logging.getLogger("palletd")

SECOND = 1_000_000_000  # the API's durations are nanoseconds
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MAX_LOG = 5
MAX_OUTPUT = 4096
STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"
_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


def merge(user: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """The container's Healthcheck: its own fields, the image's where it sets none (an
    empty Test inherits the image's test; `--no-healthcheck` is Test ["NONE"])."""
    if user is not None and not isinstance(user, dict):
        raise InvalidArgument("Healthcheck must be a JSON object")
    if not user:
        return dict(image) if image else None
    out = dict(user)
    for key in ("Test", *_DURATIONS, "Retries"):
        if not out.get(key) and image and image.get(key):
            out[key] = image[key]
    return out


def validate(hc: dict[str, Any] | None) -> None:
    """dockerd's checks at create."""
    if not hc:
        return
    for key in _DURATIONS:
        v = hc.get(key) or 0
        if not isinstance(v, int) or (v != 0 and v < 1_000_000):
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    retries = hc.get("Retries") or 0
    if not isinstance(retries, int) or retries < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    test = hc.get("Test") or []
    if not isinstance(test, list) or not all(isinstance(x, str) for x in test):
        raise InvalidArgument("Healthcheck.Test must be a list of strings")


def probe_command(cfg: dict[str, Any]) -> list[str] | None:
    """The probe's argv, or None when the container has no health check (none, NONE, or a
    test type dockerd does not know)."""
    test = (cfg.get("Healthcheck") or {}).get("Test") or []
    if len(test) < 2 or test[0] not in ("CMD", "CMD-SHELL"):
        return None
    if test[0] == "CMD-SHELL":
        return [*(cfg.get("Shell") or ["/bin/sh", "-c"]), *test[1:]]
    return list(test[1:])


def status_suffix(st: dict[str, Any]) -> str:
    """What `docker ps` adds to "Up ..." for a running container with a health check."""
    status = (st.get("Health") or {}).get("Status")
    if not status or status == NONE:
        return ""
    return " (health: starting)" if status == STARTING else f" ({status})"


def matches(st: dict[str, Any], wanted: str) -> bool:
    """The `health` filter of `docker ps`."""
    if wanted not in (STARTING, HEALTHY, UNHEALTHY, NONE):
        raise InvalidArgument(f"Unrecognised filter value for health: {wanted}")
    return ((st.get("Health") or {}).get("Status") or NONE) == wanted


def _ns(hc: dict[str, Any], key: str, default: int) -> float:
    return (hc.get(key) or default) / SECOND


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(), as dockerd's messages print durations: 300ms, 1.5s,
    1m30s."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)

    def frac(value: int, unit: int, name: str) -> str:
        whole, rest = divmod(value, unit)
        digits = f"{rest:0{len(str(unit)) - 1}d}".rstrip("0")
        return f"{whole}{'.' + digits if digits else ''}{name}"

    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return sign + frac(ns, 1_000, "µs")
    if ns < SECOND:
        return sign + frac(ns, 1_000_000, "ms")
    h, rest = divmod(ns, 3600 * SECOND)
    m, rest = divmod(rest, 60 * SECOND)
    out = frac(rest, SECOND, "s")
    if h:
        return f"{sign}{h}h{m}m{out}"
    return f"{sign}{m}m{out}" if m else sign + out


class _Output:
    """A probe's stdout and stderr together, at most MAX_OUTPUT bytes ("..." when cut)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.cut = False

    async def read(self) -> bytes:
        await asyncio.Event().wait()  # the probe gets no stdin
        return b""

    async def write(self, data: bytes) -> None:
        # without a terminal each write is one stdcopy frame: its 8-byte header goes
        payload = data[wire.HEADER:]
        room = MAX_OUTPUT - len(self.buf)
        self.buf += payload[:max(room, 0)]
        self.cut = self.cut or len(payload) > room

    def close(self) -> None:
        pass

    def text(self) -> str:
        return self.buf.decode(errors="replace") + ("..." if self.cut else "")


class Health:
    def __init__(self, containers: Containers, execs: Execs) -> None:
        self.containers = containers
        self.execs = execs
        self.monitors: dict[str, asyncio.Task[None]] = {}

    def watch(self, c: Container, *, resume: bool = False) -> None:
        """The container (re)started: status `starting`, the streak reset, the log kept;
        found running by a restarted palletd (`resume`): probed on from where it was."""
        self.unwatch(c)
        if probe_command(c.rec["Config"]) is None:
            return
        h = c.state.get("Health") or {"Log": []}
        if not (resume and h.get("Status")):
            h.update(Status=STARTING, FailingStreak=0)
        c.state["Health"] = h
        self.containers.save(c)
        self.monitors[c.id] = self.containers.spawn(self._monitor(c))

    def unwatch(self, c: Container) -> None:
        """The container stopped: no more probes, and, as dockerd says it "for
        compatibility reasons", unhealthy from now on (no event)."""
        t = self.monitors.pop(c.id, None)
        if t is not None:
            t.cancel()
            if c.state.get("Health"):
                c.state["Health"]["Status"] = UNHEALTHY
                self.containers.save(c)

    def paused(self, c: Container) -> None:
        """dockerd stops a paused container's monitor, which makes it unhealthy; the probes
        (skipped while paused) bring it back once it is unpaused."""
        if c.id in self.monitors and c.state.get("Health"):
            c.state["Health"]["Status"] = UNHEALTHY
            self.containers.save(c)

    def _interval(self, c: Container, hc: dict[str, Any]) -> float:
        """The time to the next probe: the start interval while starting within the start
        period, else the interval; never past the start period's end."""
        interval = _ns(hc, "Interval", DEFAULT_INTERVAL)
        start_period = _ns(hc, "StartPeriod", 0)
        elapsed = time.time() - parse_time(c.state["StartedAt"])
        if elapsed >= start_period:
            return interval
        if c.state["Health"]["Status"] == STARTING:
            interval = _ns(hc, "StartInterval", DEFAULT_START_INTERVAL)
        return min(interval, start_period - elapsed)

    async def _monitor(self, c: Container) -> None:
        hc = c.rec["Config"].get("Healthcheck") or {}
        while True:
            await asyncio.sleep(self._interval(c, hc))
            if not c.running:
                return
            if c.state.get("Paused"):
                continue
            started = time.time()
            try:
                result = await self._probe(c, hc)
            except (PalletError, OSError) as e:
                log.warning("health check of %s: %s", c.id[:12], e)
                result = {"ExitCode": -1, "Output": str(e)}
            result = {"Start": now_rfc3339(started), "End": now_rfc3339(), **result}
            if c.running:
                self._record(c, hc, result, started)

    async def _probe(self, c: Container, hc: dict[str, Any]) -> dict[str, Any]:
        cfg = c.rec["Config"]
        cmd = probe_command(cfg)
        assert cmd is not None
        e = self.execs.create(c, {"Cmd": cmd, "User": cfg.get("User") or "",
                                  "WorkingDir": cfg.get("WorkingDir") or ""})
        out = _Output()
        timeout_ns = hc.get("Timeout") or DEFAULT_TIMEOUT
        timeout = timeout_ns / SECOND
        try:
            run = asyncio.ensure_future(self.execs.start(e, out))
            try:
                await asyncio.wait_for(asyncio.shield(run), timeout)
            except TimeoutError:
                if c.shim is not None:
                    with contextlib.suppress(PalletError, OSError):
                        await c.shim.call("kill", signal=_signal.SIGKILL, exec=e.id[:32])
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(run, 10)
                text = out.text()
                msg = f"Health check exceeded timeout ({go_duration(timeout_ns)})"
                return {"ExitCode": -1, "Output": f"{msg}: {text}" if text else msg}
            return {"ExitCode": e.exit_code if e.exit_code is not None else -1,
                    "Output": out.text()}
        finally:
            self.execs.forget(e)

    def _record(self, c: Container, hc: dict[str, Any], result: dict[str, Any],
                started: float) -> None:
        h = c.state["Health"]
        old = h["Status"]
        h["Log"] = [*(h.get("Log") or [])[-(MAX_LOG - 1):], result]
        if result["ExitCode"] == 0:
            h.update(Status=HEALTHY, FailingStreak=0)
        elif not (old == STARTING and started - parse_time(c.state["StartedAt"])
                  < _ns(hc, "StartPeriod", 0)):
            h["FailingStreak"] = int(h.get("FailingStreak") or 0) + 1
            if h["FailingStreak"] >= (hc.get("Retries") or DEFAULT_RETRIES):
                h["Status"] = UNHEALTHY
        if h["Status"] != old:
            self.containers.save(c)
            self.containers.publish(c, f"health_status: {h['Status']}")
