"""`exec`: a second process joins every namespace and the cgroup of a running container,
with runc's flags."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .support import ConsoleSocket, read_pty, status_field, wait_for

SLEEPER = ["sleep", "1000"]


def running(runtime, bundle, **kw):
    cid = runtime.new_id()
    b = bundle(SLEEPER, **kw)
    runtime.detached("run", "--detach", "--bundle", str(b), cid, tag=cid).ok()
    return cid, runtime.state(cid)


def test_exec_joins_namespaces_and_cgroup(runtime, bundle):
    cid, st = running(runtime, bundle)
    r = runtime("exec", cid, "sh", "-c",
                "hostname; for n in pid net mnt uts ipc; do readlink /proc/self/ns/$n; done; "
                "cat /proc/self/cgroup").ok()
    lines = r.stdout.split()
    init = st["pid"]
    want = [os.readlink(f"/proc/{init}/ns/{n}") for n in ("pid", "net", "mnt", "uts", "ipc")]
    assert lines[1:6] == want
    init_cgroups = Path(f"/proc/{init}/cgroup").read_text().split()
    assert sorted(lines[6:]) == sorted(init_cgroups)


def test_exec_exit_code_and_pid_namespace(runtime, bundle):
    cid, _ = running(runtime, bundle)
    assert runtime("exec", cid, "sh", "-c", "exit 7").returncode == 7
    # Only the sleeper and this shell (and its ps) exist in the container's pid namespace.
    out = runtime("exec", cid, "ps", "-o", "pid,comm").ok().stdout
    comms = [line.split()[1] for line in out.strip().splitlines()[1:]]
    assert sorted(comms) == ["ps", "sleep"], out


def test_exec_user_env_cwd(runtime, bundle):
    cid, _ = running(runtime, bundle)
    r = runtime("exec", "--user", "1000:100", "--additional-gids", "5", "--env", "FOO=bar",
                "--cwd", "/tmp", cid, "sh", "-c", "id -u; id -g; id -G; echo $FOO; pwd").ok()
    uid, gid, groups, foo, cwd = r.stdout.split("\n")[:5]
    assert (uid, gid, foo, cwd) == ("1000", "100", "bar", "/tmp")
    assert "5" in groups.split()


def test_exec_process_json(runtime, bundle, tmp_path):
    cid, _ = running(runtime, bundle)
    proc = {"args": ["sh", "-c", "echo $X; id -u"], "env": ["X=from-json", "PATH=/bin"],
            "cwd": "/", "user": {"uid": 65534, "gid": 65534}}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(proc))
    r = runtime("exec", "--process", str(path), cid).ok()
    assert r.stdout.split() == ["from-json", "65534"]


def test_exec_capabilities_and_no_new_privs(runtime, bundle):
    cid, _ = running(runtime, bundle)
    base = runtime("exec", cid, "cat", "/proc/self/status").ok().stdout
    added = runtime("exec", "--cap", "CAP_SYS_ADMIN", "--no-new-privs", cid, "cat",
                    "/proc/self/status").ok().stdout
    sys_admin = 1 << 21
    assert not int(status_field(base, "CapEff"), 16) & sys_admin
    assert int(status_field(added, "CapEff"), 16) & sys_admin
    assert status_field(added, "NoNewPrivs") == "1"


def test_exec_detach_pid_file(runtime, bundle, tmp_path):
    cid, _ = running(runtime, bundle)
    pid_file = tmp_path / "exec.pid"
    runtime.detached("exec", "--detach", "--pid-file", str(pid_file), cid, "sleep", "30",
                     tag="execd").ok()
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}/cmdline").read_text().split("\0")[0] == "sleep"
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(
        f"/proc/{runtime.state(cid)['pid']}/ns/pid")


def test_exec_tty_console_socket(runtime, bundle, tmp_path):
    cid, _ = running(runtime, bundle)
    sock = ConsoleSocket(tmp_path / "console.sock")
    try:
        import subprocess

        # runc takes a console socket only together with --detach.
        p = subprocess.Popen([*runtime.base(), "exec", "--detach", "--tty",
                              "--console-socket", str(sock.path), cid,
                              "sh", "-c", "test -t 0 && echo is-a-tty"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        master = sock.receive_master()
        assert p.wait(timeout=10) == 0, p.stderr.read()
        out = read_pty(master)
        assert b"is-a-tty" in out
    finally:
        sock.close()


def test_exec_missing_program(runtime, bundle):
    cid, _ = running(runtime, bundle)
    runtime("exec", cid, "/no/such/program").failed("/no/such/program")


def test_exec_stopped_container_fails(runtime, bundle):
    cid = runtime.new_id()
    runtime.create(cid, bundle(["true"])).ok()
    runtime.start(cid).ok()
    runtime.wait_status(cid, "stopped")
    runtime("exec", cid, "true").failed(("stopped", "not running"))


def test_exec_paused_needs_ignore_paused(runtime, bundle):
    cid, _ = running(runtime, bundle)
    runtime("pause", cid).ok()
    try:
        assert runtime("exec", cid, "true").returncode != 0
    finally:
        runtime("resume", cid).ok()
    wait_for(lambda: runtime.state(cid)["status"] == "running", what="resume")
    runtime("exec", cid, "true").ok()
