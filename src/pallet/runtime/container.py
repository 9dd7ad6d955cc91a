"""The operations on an existing container (runtime.md#operations): state, start, kill,
delete, and the wait that `run` needs."""

from __future__ import annotations

import _signal
import os
import select
import time

from pallet import errors
from pallet.cgroups import Manager
from pallet.runtime import hooks
from pallet.runtime.lite import suppress
from pallet.runtime.state import (
    CREATED,
    PAUSED,
    RUNNING,
    STOPPED,
    ContainerState,
    remove_state_dir,
)

# From _signal rather than signal: the enum module costs ms on every runtime call.
SIGNALS = {n: getattr(_signal, n) for n in dir(_signal)
           if n.startswith("SIG") and not n.startswith("SIG_")}


def parse_signal(text: str) -> int:
    """"KILL", "SIGKILL", "9" -> 9 (runc accepts all three)."""
    if text.isdigit():
        num = int(text)
        if num <= 0 or num >= _signal.NSIG:
            raise errors.InvalidArgument(f"invalid signal {text!r}")
        return num
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in SIGNALS:
        raise errors.InvalidArgument(f"unknown signal {text!r}")
    return SIGNALS[name]


def start(st: ContainerState) -> None:
    status = st.status()
    if status != CREATED:
        raise errors.FailedPrecondition(
            f"cannot start container {st.id}: it is {status}, not created")
    try:
        fd = os.open(st.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise errors.FailedPrecondition(f"cannot start container {st.id}: already started") \
            from None
    try:
        outcome = _read_outcome(st, fd)
    finally:
        os.close(fd)
    with suppress(FileNotFoundError):
        os.unlink(st.fifo)
    if outcome[:1] != b"0":
        detail = outcome[1:].decode(errors="replace") or "its init exited"
        raise errors.FailedPrecondition(f"cannot start container {st.id}: {detail}")
    public = st.public()
    try:
        hooks.run_hooks(st.config, "poststart", public)
    except errors.PalletError as e:
        # runtime.md lifecycle step 9: a failed poststart hook stops the container.
        with suppress(ProcessLookupError):
            os.kill(st.pid, _signal.SIGKILL)
        raise e.wrap(f"start {st.id}") from None


def _read_outcome(st: ContainerState, fd: int) -> bytes:
    """What the init writes on the FIFO once it is released, up to its end. Waiting in
    slices lets us notice an init that died instead."""
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            data = os.read(fd, 4096)
            if data:
                out += data
                continue
            if out:
                return out
            # No writer yet (EOF on a FIFO nobody opened): keep waiting while init lives.
            if not st.alive():
                return out
            time.sleep(0.001)
        elif not st.alive():
            return out


def kill(st: ContainerState, sig: int, all_processes: bool = False) -> None:
    status = st.status()
    if status not in (CREATED, RUNNING, PAUSED):
        raise errors.FailedPrecondition(f"container {st.id} is not running")
    if all_processes:
        for pid in Manager(st.record.get("cgroupPaths", {})).pids():
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        return
    try:
        os.kill(st.pid, sig)
    except ProcessLookupError:
        raise errors.FailedPrecondition(f"container {st.id} is not running") from None


def _wait_gone(st: ContainerState, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while st.alive():
        if time.monotonic() > deadline:
            raise errors.Unavailable(f"container {st.id}: init did not exit after SIGKILL")
        time.sleep(0.002)


def delete(st: ContainerState, force: bool = False) -> None:
    status = st.status()
    # runtime.md asks for an error when deleting any container that is not stopped; runc
    # kills and deletes a *created* one, and containerd's shim relies on it (it deletes a
    # task that was never started without --force), so pallet-runtime does what runc does.
    if status in (RUNNING, PAUSED) and not force:
        raise errors.FailedPrecondition(
            f"cannot delete container {st.id} that is not stopped: {status}")
    cg = Manager(st.record.get("cgroupPaths", {}))
    if status != STOPPED:
        if status == PAUSED:
            _thaw(st)
        with suppress(ProcessLookupError):
            os.kill(st.pid, _signal.SIGKILL)
        _wait_gone(st)
    # Without a pid namespace the init's death does not take its descendants along.
    for pid in cg.pids():
        with suppress(ProcessLookupError):
            os.kill(pid, _signal.SIGKILL)
    try:
        cg.destroy()
    except OSError as e:
        raise errors.Unavailable(f"delete {st.id}: {e}") from None
    public = st.public()
    remove_state_dir(st.dir)
    hooks.run_poststop(st.config, public)


def _thaw(st: ContainerState) -> None:
    with suppress(OSError):
        Manager(st.record.get("cgroupPaths", {})).freeze(False)


def pids(st: ContainerState) -> list[int]:
    """Every process of the container (its cgroup), or only the init without one."""
    found = Manager(st.record.get("cgroupPaths", {})).pids()
    if not found and st.alive():
        found = [st.pid]
    return found


def pause(st: ContainerState) -> None:
    status = st.status()
    if status != RUNNING:
        raise errors.FailedPrecondition(f"cannot pause container {st.id}: it is {status}")
    try:
        Manager(st.record.get("cgroupPaths", {})).freeze(True)
    except OSError as e:
        raise errors.Unavailable(f"pause {st.id}: {e}") from None


def resume(st: ContainerState) -> None:
    status = st.status()
    if status != PAUSED:
        raise errors.FailedPrecondition(f"cannot resume container {st.id}: it is {status}")
    try:
        Manager(st.record.get("cgroupPaths", {})).freeze(False)
    except OSError as e:
        raise errors.Unavailable(f"resume {st.id}: {e}") from None
