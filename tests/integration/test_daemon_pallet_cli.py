"""The `pallet` CLI as a client of palletd: the docker flows with pallet's words."""

from __future__ import annotations

import json
import os
import time

from daemon_support import VENV_BIN, make_daemon
from test_daemon_docker import _pty_run

palletd = make_daemon()

LOOP = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done"


def test_version_info(palletd):
    out = palletd.pallet("version", check=True).stdout
    assert "Server: pallet" in out and "ApiVersion:" in out
    d = json.loads(palletd.pallet("info", "--format", "json", check=True).stdout)
    assert d["DefaultRuntime"] == "pallet-runtime"
    assert "Containers:" in palletd.pallet("info", check=True).stdout


def test_run_rm(palletd):
    p = palletd.pallet("run", "--rm", "busybox", "echo", "hi", check=True)
    assert p.stdout == "hi\n"
    p = palletd.pallet("run", "--rm", "busybox", "sh", "-c", "echo e >&2; exit 5")
    assert p.returncode == 5 and p.stderr == "e\n"
    p = palletd.pallet("run", "--rm", "-i", "busybox", "cat", input=b"piped\n", check=True)
    assert p.stdout == "piped\n"
    assert palletd.pallet("ps", "-aq", check=True).stdout == ""


def test_lifecycle(palletd):
    cid = palletd.pallet("run", "-d", "--name", "pweb", "-e", "A=1", "--restart", "no",
                         "busybox", "sh", "-c", LOOP, check=True).stdout.strip()
    assert len(cid) == 64
    ps = palletd.pallet("ps", check=True).stdout
    assert "CONTAINER ID" in ps and "pweb" in ps and "Up " in ps
    assert palletd.pallet("ps", "-q", check=True).stdout.strip() == cid[:12]
    rows = [json.loads(x) for x in palletd.pallet("ps", "--format", "json",
                                                  check=True).stdout.splitlines()]
    assert rows[0]["Names"] == "pweb" and rows[0]["State"] == "running"
    assert palletd.pallet("ps", "--format", "{{.Names}} {{.State}}",
                          check=True).stdout == "pweb running\n"
    assert palletd.pallet("ps", "-f", "name=nothing", "-q").stdout == ""
    palletd.wait_for(lambda: "line 3" in palletd.pallet("logs", "pweb").stdout)
    assert len(palletd.pallet("logs", "--tail", "2", "pweb",
                              check=True).stdout.splitlines()) == 2
    assert "Z line" in palletd.pallet("logs", "-t", "--tail", "1", "pweb", check=True).stdout
    assert palletd.pallet("logs", "--since", "1h", "pweb", check=True).stdout.startswith(
        "line 0")
    assert palletd.pallet("exec", "-e", "B=2", "-w", "/tmp", "pweb", "sh", "-c",
                          "echo $A$B $(pwd)", check=True).stdout == "12 /tmp\n"
    assert palletd.pallet("exec", "pweb", "sh", "-c", "exit 9").returncode == 9
    palletd.pallet("exec", "-d", "pweb", "touch", "/tmp/x", check=True)
    info = json.loads(palletd.pallet("inspect", "pweb", check=True).stdout)[0]
    assert info["Id"] == cid and info["State"]["Running"]
    assert palletd.pallet("inspect", "-f", "{{.State.Status}}", "pweb",
                          check=True).stdout == "running\n"
    palletd.pallet("stop", "-t", "1", "pweb", check=True)
    assert palletd.pallet("wait", "pweb", check=True).stdout.strip() == "137"
    palletd.pallet("start", "pweb", check=True)
    palletd.pallet("restart", "-t", "0", "pweb", check=True)
    palletd.pallet("kill", "pweb", check=True)
    assert "Exited (137)" in palletd.pallet("ps", "-a", check=True).stdout
    palletd.pallet("rm", "pweb", check=True)
    p = palletd.pallet("rm", "pweb")
    assert p.returncode == 1 and "No such container" in p.stderr


def test_create_start_attach(palletd):
    palletd.pallet("create", "--name", "pc", "busybox", "sh", "-c", "sleep 0.5; echo done",
                   check=True)
    assert "Created" in palletd.pallet("ps", "-a", check=True).stdout
    p = palletd.pallet("start", "-a", "pc", check=True)
    assert p.stdout == "done\n"
    palletd.pallet("rm", "pc", check=True)
    palletd.pallet("run", "-d", "--name", "pa", "busybox", "sh", "-c",
                   "sleep 1; echo attached; exit 2", check=True)
    p = palletd.pallet("attach", "pa", timeout=20)
    assert p.returncode == 2 and p.stdout == "attached\n"
    palletd.pallet("rm", "pa", check=True)


def test_run_it(palletd):
    rc, out = _pty_run([str(VENV_BIN / "pallet"), "run", "-it", "--rm", "busybox", "sh", "-c",
                        "tty; echo READY; read x; echo got:$x; exit 4"], palletd.env,
                       send=b"xyz\r")
    assert rc == 4, out
    assert b"/dev/pts/0" in out and b"got:xyz" in out


def test_run_it_detach_keys(palletd):
    rc, out = _pty_run([str(VENV_BIN / "pallet"), "run", "-it", "--name", "det", "busybox",
                        "sh", "-c", "echo READY; sleep 30"], palletd.env, send=b"\x10\x11")
    assert rc == 0, out
    assert palletd.inspect("det")["State"]["Running"]
    rc, out = _pty_run([str(VENV_BIN / "pallet"), "exec", "-it", "det", "sh", "-c",
                        "stty size; echo READY; read y; echo y=$y"], palletd.env,
                       send=b"ok\r")
    assert b"y=ok" in out, out
    assert b"40 120" in out  # exec -t resized to the caller's terminal
    palletd.pallet("rm", "-f", "det", check=True)


def test_run_flags(palletd):
    env_file = os.path.join(palletd.base, "env")
    with open(env_file, "w") as f:
        f.write("# comment\nFROMFILE=yes\n")
    p = palletd.pallet("run", "--rm", "--env-file", env_file, "-u", "1000", "-w", "/w",
                       "-h", "hn", "--read-only", "--memory", "64m", "--cpus", "1",
                       "--pids-limit", "20", "--ulimit", "nofile=99:99", "--cap-drop", "ALL",
                       "--security-opt", "no-new-privileges", "--init", "--runtime", "runc",
                       "--entrypoint", "sh", "busybox", "-c",
                       "echo $FROMFILE $(id -u) $(pwd) $(hostname) $(ulimit -n)",
                       check=True)
    assert p.stdout == "yes 1000 /w hn 99\n"
    p = palletd.pallet("run", "--rm", "--pull", "never", "nosuch:1", "true")
    assert p.returncode != 0 and "No such image" in p.stderr
    palletd.pallet("run", "-d", "--name", "rot", "--log-opt", "max-size=1k", "--log-opt",
                   "max-file=2", "busybox", "sh", "-c",
                   "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done; sleep 60",
                   check=True)
    try:
        log = palletd.inspect("rot")["LogPath"]
        palletd.wait_for(lambda: "line-399" in palletd.pallet("logs", "rot").stdout,
                         what="the last line")
        assert palletd.inspect("rot")["HostConfig"]["LogConfig"]["Config"] == {
            "max-size": "1k", "max-file": "2"}
        assert os.path.getsize(log) <= 1024 and os.path.exists(log + ".1")
        assert not os.path.exists(log + ".2")
    finally:
        palletd.pallet("rm", "-f", "rot")


def test_images_tag_rmi_system(palletd):
    out = palletd.pallet("images", check=True).stdout
    assert "REPOSITORY" in out and "busybox" in out
    palletd.pallet("tag", "busybox", "mine/bb:2", check=True)
    assert "mine/bb" in palletd.pallet("images", check=True).stdout
    assert len(palletd.pallet("images", "-q", check=True).stdout.split()) == 1
    assert "Untagged: mine/bb:2" in palletd.pallet("rmi", "mine/bb:2", check=True).stdout
    since = str(time.time() - 1)
    palletd.pallet("run", "--name", "ev1", "busybox", "true", check=True)
    ev = palletd.pallet("events", "--since", since, "--until", str(time.time() + 0.5),
                        "--format", "{{.Action}}", "-f", "container=ev1",
                        check=True).stdout.split()
    assert "start" in ev and "die" in ev
    assert "Images" in palletd.pallet("system", "df", check=True).stdout
    out = palletd.pallet("system", "prune", "-f", check=True).stdout
    assert "Total reclaimed space" in out
    assert palletd.pallet("ps", "-aq").stdout == ""


def test_autostart(palletd):
    """With nothing on the socket, `pallet` starts palletd itself and says so."""
    import re
    import tempfile

    from daemon_support import Palletd

    other = Palletd(tempfile.mkdtemp(prefix="pd", dir="/tmp"))
    try:
        other.import_busybox()
        env = {**other.env, "PALLET_AUTOSTART": "1"}
        import subprocess

        p = subprocess.run([str(VENV_BIN / "pallet"), "--root", other.root, "run", "--rm",
                            "busybox", "echo", "auto"], capture_output=True, text=True,
                           env=env, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stdout == "auto\n"
        assert re.search(r"palletd was not running; started it \(pid \d+", p.stderr)
        assert other.api("GET", "/_ping")[0] == 200
    finally:
        other.cleanup()


def test_system_prune_with_filters(palletd):
    """`pallet system prune --filter`: containers, networks and images as docker's, the
    filters passed to each."""
    palletd.pallet("create", "--name", "sp-tmp", "-l", "tmp=1", "busybox", check=True)
    palletd.pallet("create", "--name", "sp-keep", "busybox", check=True)
    palletd.docker("network", "create", "--label", "tmp=1", "sp-net", check=True)
    palletd.docker("network", "create", "sp-net2", check=True)
    try:
        out = palletd.pallet("system", "prune", "-f", "--filter", "label=tmp=1",
                             check=True).stdout
        assert "Deleted Containers:" in out and "Deleted Networks:" in out and "sp-net" in out
        names = palletd.docker("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split()
        assert "sp-tmp" not in names and "sp-keep" in names
        assert palletd.docker("network", "inspect", "sp-net2").returncode == 0
        out = palletd.pallet("network", "prune", "-f", "--filter", "until=1h",
                             check=True).stdout
        assert "sp-net2" not in out  # younger than an hour
        palletd.pallet("network", "prune", "-f", check=True)
        assert palletd.docker("network", "inspect", "sp-net2").returncode != 0
    finally:
        palletd.docker("rm", "-f", "sp-tmp", "sp-keep")
        palletd.docker("network", "rm", "sp-net", "sp-net2")
