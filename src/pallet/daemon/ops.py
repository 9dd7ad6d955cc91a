"""Operations on a container beside its lifecycle: pause/unpause, rename, update of its
resources and restart policy, and `top`.

pause, unpause and update go through the container's OCI runtime CLI (`pause`, `resume`,
`update --resources`), which runc and pallet-runtime both implement, so that the runtime's
own state (runc's state.json, pallet-runtime's record) stays in step with the cgroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import signal as _signal
import time
from typing import TYPE_CHECKING, Any

from pallet.cgroups import Manager
from pallet.daemon.spec import MIN_MEMORY, linux_resources
from pallet.daemon.stats import cgroup_paths
from pallet.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    SystemError_,
)

if TYPE_CHECKING:
    from pallet.daemon.containers import Container, Containers



async def _runtime(cs: Containers, c: Container, *argv: str) -> None:
    rc, _, err = await cs.runtime(c, *argv)
    if rc != 0:
        raise SystemError_(err.strip().splitlines()[-1] if err.strip() else
                           f"{argv[0]}: exit status {rc}")


def _require_running(c: Container) -> None:
    if not c.running:
        raise FailedPrecondition(f"Container {c.id} is not running")
    if c.state["Restarting"]:
        raise FailedPrecondition(f"Container {c.id} is restarting, wait until the "
                                 "container is running")


# --- pause ------------------------------------------------------------------------------


async def pause(cs: Containers, c: Container) -> None:
    async with c.lock:
        _require_running(c)
        if c.state["Paused"]:
            raise FailedPrecondition(f"Container {c.id} is already paused")
        await _runtime(cs, c, "pause", c.id)
        c.state.update(Paused=True, Status="paused")
        if cs.health is not None:
            cs.health.paused(c)
        cs.save(c)
        cs.publish(c, "pause")


async def unpause(cs: Containers, c: Container) -> None:
    async with c.lock:
        if not c.running or not c.state["Paused"]:
            raise FailedPrecondition(f"Container {c.id} is not paused")
        await _runtime(cs, c, "resume", c.id)
        _thawed(cs, c)


def _thawed(cs: Containers, c: Container) -> None:
    c.state.update(Paused=False, Status="running" if c.running else c.state["Status"])
    cs.save(c)
    cs.publish(c, "unpause")


async def thaw_after_signal(cs: Containers, c: Container, signum: int) -> None:
    """A frozen process takes no signal: as dockerd does, a paused container that was sent
    its stop signal (any signal when it has none configured) or SIGKILL is resumed, so that
    the signal is delivered."""
    if not c.state.get("Paused"):
        return
    stop = c.rec["Config"].get("StopSignal")
    if stop and signum != _signal.SIGKILL:
        from pallet.daemon.containers import signal_number

        if signal_number(stop) != signum:
            return
    rc, _, _ = await cs.runtime(c, "resume", c.id)
    # a runtime whose `kill --all` thaws on its own (runc) has nothing left to resume
    if rc == 0 or not Manager(cgroup_paths(c.rec)).frozen():
        _thawed(cs, c)


def recovered_paused(c: Container) -> bool:
    """Whether a running container found by a restarted palletd is frozen."""
    return Manager(cgroup_paths(c.rec)).frozen()


# --- rename -----------------------------------------------------------------------------


def rename(cs: Containers, c: Container, new: str) -> None:
    old = c.name
    if not new:
        raise InvalidArgument("Neither old nor new names may be empty")
    if new.lstrip("/") == old:
        raise InvalidArgument("Renaming a container with the same name as its current name")
    try:
        new = cs.free_name(new)
    except AlreadyExists as e:
        raise AlreadyExists(f"Error when allocating new name: {e}") from None
    c.rec["Name"] = "/" + new
    cs.save(c)
    cs.publish(c, "rename", oldName="/" + old)


# --- update -----------------------------------------------------------------------------

_UPDATABLE = ("CpuShares", "Memory", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus",
              "CpusetMems", "MemoryReservation", "MemorySwap", "PidsLimit", "BlkioWeight",
              "CpuRealtimePeriod", "CpuRealtimeRuntime")


def _check_update(host: dict[str, Any], u: dict[str, Any]) -> None:
    """dockerd's checks of an update against what the container already has."""
    if u.get("Memory") and 0 < u["Memory"] < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    cur_swap = int(host.get("MemorySwap") or 0)
    if u.get("Memory", 0) > 0 and not u.get("MemorySwap") and cur_swap > 0 \
            and u["Memory"] > cur_swap:
        raise FailedPrecondition("Memory limit should be smaller than already set memoryswap "
                                 "limit, update the memoryswap at the same time")
    if u.get("NanoCpus"):
        if host.get("CpuPeriod") or u.get("CpuPeriod"):
            raise InvalidArgument("Conflicting options: Nano CPUs cannot be updated as CPU "
                                  "Period has already been set")
        if host.get("CpuQuota") or u.get("CpuQuota"):
            raise InvalidArgument("Conflicting options: Nano CPUs cannot be updated as CPU "
                                  "Quota has already been set")
    if (u.get("CpuPeriod") or u.get("CpuQuota")) and host.get("NanoCpus") \
            and not u.get("NanoCpus"):
        raise InvalidArgument("Conflicting options: CPU Quota or CPU Period cannot be updated "
                              "as NanoCPUs has already been set")
    nano = u.get("NanoCpus") or 0
    if nano and not 0 < nano <= os.cpu_count() * 1_000_000_000:  # type: ignore[operator]
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {os.cpu_count()}.00, as there "
                              f"are only {os.cpu_count()} CPUs available")


async def update(cs: Containers, c: Container, body: dict[str, Any]) -> list[str]:
    # The CLI sends every Resources field, zero when not asked for: as dockerd, a zero
    # leaves the value as it is (PidsLimit, a pointer in Go, is null when not asked for).
    u = {k: body[k] for k in _UPDATABLE if body.get(k)}
    if body.get("PidsLimit") is not None:
        u["PidsLimit"] = body["PidsLimit"]
    policy = body.get("RestartPolicy") or {}
    async with c.lock:
        host = c.rec["HostConfig"]
        if c.state["Restarting"]:
            raise FailedPrecondition(f"Cannot update container {c.id}: container is "
                                     "restarting")
        if policy.get("Name"):
            if host.get("AutoRemove"):
                raise InvalidArgument("Restart policy cannot be updated because AutoRemove "
                                      "is enabled for the container")
            if policy["Name"] not in ("no", "always", "on-failure", "unless-stopped"):
                raise InvalidArgument(f"invalid restart policy {policy['Name']!r}")
            if policy["Name"] != "on-failure" and policy.get("MaximumRetryCount"):
                raise InvalidArgument("maximum retry count cannot be used with restart "
                                      f"policy '{policy['Name']}'")
        _check_update(host, u)
        res = linux_resources(u)
        if res and c.running:
            path = os.path.join(cs.cfg.container_dir(c.id), "update-resources.json")
            with open(path, "w") as f:
                json.dump(res, f)
            try:
                await _runtime(cs, c, "update", "--resources", path, c.id)
            except SystemError_ as e:
                raise SystemError_(f"Cannot update container {c.id}: {e}") from None
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        if "PidsLimit" in u and int(u["PidsLimit"]) <= 0:
            u["PidsLimit"] = 0
        host.update(u)
        if policy.get("Name"):
            host["RestartPolicy"] = {"Name": policy["Name"],
                                     "MaximumRetryCount": int(
                                         policy.get("MaximumRetryCount") or 0)}
        cs.save(c)
        cs.publish(c, "update")
    return []


# --- top --------------------------------------------------------------------------------

PS_EF_TITLES = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
_HZ = os.sysconf("SC_CLK_TCK")


def container_pids(rec: dict[str, Any]) -> list[int]:
    """The processes of the container's cgroup: the v1 pids (or another v1) hierarchy when
    there is one (runtimes need not join the unified one of a hybrid host, nor named
    hierarchies), else the v2 tree."""
    paths = cgroup_paths(rec)
    for name in sorted(paths, key=lambda n: (n == "", "pids" not in n.split(","),
                                             n.startswith("name="))):
        try:
            with open(os.path.join(paths[name], "cgroup.procs")) as f:
                return sorted(int(x) for x in f.read().split())
        except FileNotFoundError:
            continue
    return []


def _boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _tty(nr: int) -> str:
    major, minor = (nr >> 8) & 0xFFF, (nr & 0xFF) | ((nr >> 12) & 0xFFF00)
    if nr == 0:
        return "?"
    if 136 <= major <= 143:
        return f"pts/{(major - 136) * 256 + minor}"
    if major == 4:
        return f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    return "?"


def _cputime(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{days}-" if days else "") + f"{h:02d}:{m:02d}:{s:02d}"


def _stime(started: float, now: float) -> str:
    t = time.localtime(started)
    if now - started < 86400:
        return time.strftime("%H:%M", t)
    if t.tm_year == time.localtime(now).tm_year:
        return time.strftime("%b%d", t)
    return str(t.tm_year)


def ps_ef_row(pid: int, boot: float, now: float) -> list[str] | None:
    """One `ps -ef` line from /proc/<pid> (procps's columns and formats)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None  # exited meanwhile
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 of proc(5): state; ppid 4, tty_nr 7, utime 14, stime 15,
    # starttime 22
    ppid, tty_nr = int(fields[1]), int(fields[4])
    cpu_ticks = int(fields[11]) + int(fields[12])
    started = boot + int(fields[19]) / _HZ
    elapsed = max(now - started, 0.0)
    c = min(int(cpu_ticks / _HZ * 100 / elapsed), 99) if elapsed >= 1 else 0
    cmd = cmdline.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace") or f"[{comm}]"
    return [_user(uid), str(pid), str(ppid), str(c), _stime(started, now), _tty(tty_nr),
            _cputime(cpu_ticks // _HZ), cmd]


async def top(cs: Containers, c: Container, ps_args: str) -> dict[str, Any]:
    if not c.running:
        raise FailedPrecondition(f"Container {c.id} is not running")
    pids = container_pids(c.rec)
    if ps_args.strip() in ("", "-ef"):
        boot, now = _boot_time(), time.time()
        rows = [r for r in (ps_ef_row(p, boot, now) for p in pids) if r is not None]
        return {"Titles": PS_EF_TITLES, "Processes": rows}
    return await _host_ps(ps_args, pids)


async def _host_ps(ps_args: str, pids: list[int]) -> dict[str, Any]:
    """Other ps_args: dockerd runs the host's `ps` with them and keeps the lines of the
    container's pids, found by the PID column."""
    p = await asyncio.create_subprocess_exec(
        "ps", *ps_args.split(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await p.communicate()
    text = out.decode(errors="replace")
    if p.returncode != 0:
        raise SystemError_(f"Error running ps: exit status {p.returncode}: {text.strip()}")
    lines = text.splitlines()
    titles = lines[0].split() if lines else []
    if "PID" not in titles:
        raise SystemError_("Couldn't find PID field in ps output")
    col = titles.index("PID")
    wanted = set(pids)
    procs = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= col or not fields[col].isdigit() or int(fields[col]) not in wanted:
            continue
        # the last title (CMD, COMMAND) takes the rest of the line, spaces included
        procs.append([*fields[:len(titles) - 1], " ".join(fields[len(titles) - 1:])])
    return {"Titles": titles, "Processes": procs}
