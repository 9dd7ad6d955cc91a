"""Containers survive palletd: SIGKILL the daemon, its shims and containers keep running and
logging, a new palletd reconnects; a container that exited meanwhile reports its real exit
code; a killed shim makes its container exited with 137. With pallet-runtime and runc."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest
from daemon_support import Palletd, requirements

COUNTER = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"


@pytest.fixture(scope="module", params=["pallet-runtime", "runc"])
def palletd(request):
    why = requirements()
    if why:
        pytest.skip(why)
    d = Palletd(tempfile.mkdtemp(prefix="pd", dir="/tmp"), request.param)
    try:
        d.import_busybox()
        d.start()
        yield d
    finally:
        d.cleanup()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _ticks(d: Palletd, name: str) -> int:
    out = d.docker("logs", name).stdout
    return out.count("tick ")


def test_survives_daemon_kill(palletd):
    d = palletd
    d.docker("run", "-d", "--name", "counter", "busybox", "sh", "-c", COUNTER, check=True)
    # `short` exits when told, through a bind-mounted directory: once palletd is down
    sig = os.path.join(d.base, "sig")
    os.makedirs(sig)
    d.docker("run", "-d", "--name", "short", "-v", f"{sig}:/sig", "busybox", "sh", "-c",
             "until [ -e /sig/go ]; do sleep 0.05; done; exit 7", check=True)
    d.docker("run", "-d", "--name", "tty1", "-t", "busybox", "sh", "-c", COUNTER, check=True)
    more = [f"more{i}" for i in range(7)]  # ten containers in all
    for name in more:
        d.docker("run", "-d", "--name", name, "busybox", "sh", "-c", COUNTER, check=True)
    d.wait_for(lambda: _ticks(d, "counter") >= 3, what="ticks")
    pid = d.inspect("counter")["State"]["Pid"]
    pids = {n: d.inspect(n)["State"]["Pid"] for n in more}
    shims = d.shim_pids()
    assert len(shims) == 10
    log_path = d.inspect("counter")["LogPath"]

    d.kill(signal.SIGKILL)
    size = os.path.getsize(log_path)
    open(os.path.join(sig, "go"), "w").close()
    time.sleep(1.0)  # `short` exits meanwhile
    assert all(_alive(p) for p in shims) and _alive(pid)
    assert os.path.getsize(log_path) > size, "logs continue without palletd"
    assert len([p for p in d.shim_pids() if _alive(p)]) == 10  # short's shim waits for us
    assert all(_alive(p) for p in pids.values())

    d.start()
    st = d.inspect("counter")["State"]
    assert st["Running"] and st["Pid"] == pid
    short = d.inspect("short")["State"]
    assert short["Status"] == "exited" and short["ExitCode"] == 7
    assert d.inspect("tty1")["State"]["Running"]
    before = _ticks(d, "counter")
    d.wait_for(lambda: _ticks(d, "counter") > before + 2, what="ticks after restart")
    for n in more:
        st = d.inspect(n)["State"]
        assert st["Running"] and st["Pid"] == pids[n]
        seen = _ticks(d, n)
        d.wait_for(lambda n=n, seen=seen: _ticks(d, n) > seen, what=f"{n} logging")
    d.docker("rm", "-f", *more, check=True)
    # attach and exec work against the recovered shim
    assert d.docker("exec", "counter", "echo", "still", check=True).stdout == "still\n"
    d.docker("stop", "-t", "1", "counter", "tty1", check=True)
    assert not d.inspect("counter")["State"]["Running"]
    assert not _alive(pid)
    d.docker("rm", "counter", "short", "tty1", check=True)
    d.wait_for(lambda: not d.shim_pids(), what="shims to exit")


def test_shim_killed(palletd):
    d = palletd
    d.docker("run", "-d", "--name", "victim", "busybox", "sleep", "1000", check=True)
    pid = d.inspect("victim")["State"]["Pid"]
    (shim,) = d.shim_pids()
    os.kill(shim, signal.SIGKILL)
    d.wait_for(lambda: d.inspect("victim")["State"]["Status"] == "exited",
               what="the container to be reported exited")
    st = d.inspect("victim")["State"]
    assert st["ExitCode"] == 137
    d.wait_for(lambda: not _alive(pid), what="the orphaned container to be killed")
    d.docker("rm", "victim", check=True)


def test_restart_policy_across_daemon_restart(palletd):
    d = palletd
    d.docker("run", "-d", "--name", "flaky", "--restart", "always", "busybox", "sh", "-c",
             "sleep 0.5; exit 3", check=True)
    d.kill(signal.SIGKILL)
    time.sleep(1.0)  # it exits while palletd is down
    d.start()
    d.wait_for(lambda: d.inspect("flaky")["RestartCount"] >= 1, what="restart after recovery")
    d.docker("rm", "-f", "flaky", check=True)


def _zygotes(d: Palletd) -> list[int]:
    """The shim zygote: forked shims share its command line until they rename themselves;
    it alone reads palletd's requests on a socket."""
    out = []
    for pid in d.our_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"--zygote" not in f.read():
                    continue
            if os.readlink(f"/proc/{pid}/fd/0").startswith("socket:"):
                out.append(pid)
        except OSError:
            continue
    return out


def test_shims_are_forked_from_the_zygote_and_outlive_it(palletd):
    d = palletd
    d.docker("run", "-d", "--name", "zy", "busybox", "sleep", "600", check=True)
    cid = d.inspect("zy")["Id"]
    (zygote,) = d.wait_for(lambda: _zygotes(d), what="the shim zygote")
    (shim,) = [p for p in d.shim_pids() if cid.encode() in Path(f"/proc/{p}/cmdline").read_bytes()]
    with open(f"/proc/{shim}/stat") as f:
        assert int(f.read().rsplit(") ", 1)[1].split()[1]) == zygote  # ppid
    with open(f"/proc/{shim}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"pallet-shim",
                                             f"{d.exec_root}/shims/{cid}".encode()]
    # a dead zygote costs no start: palletd starts that shim the classic way, and a new one
    os.kill(zygote, signal.SIGKILL)
    d.wait_for(lambda: not _alive(zygote), what="the zygote to die")
    r = d.docker("run", "--rm", "busybox", "echo", "still", check=True)
    assert r.stdout.strip() == "still"
    (again,) = d.wait_for(lambda: _zygotes(d), what="a new zygote")
    assert again != zygote
    # palletd goes: its zygote follows (EOF on its socket); the shims and containers stay
    d.kill(signal.SIGTERM)
    d.wait_for(lambda: not _alive(again), what="the zygote to exit with palletd")
    assert _alive(shim)
    d.start()
    assert d.inspect("zy")["State"]["Running"]
    d.docker("rm", "-f", "zy", check=True)
