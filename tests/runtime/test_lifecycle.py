"""The container lifecycle through the runc-compatible CLI (runtime-spec runtime.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from .support import Runtime, assert_valid, pid_alive, wait_for

# A process that announces it is ready to take signals, records a TERM, and otherwise waits.
# (PID 1 of a PID namespace ignores signals it has no handler for, so TERM needs a trap.)
SIGNAL_WAITER = [
    "sh", "-c",
    "trap 'echo TERM > /got-term; exit 0' TERM; touch /ready; while :; do sleep 0.05; done",
]
SLEEPER = ["sleep", "1000"]


def started(runtime, bundle_dir, cid):
    runtime.create(cid, bundle_dir).ok()
    runtime.start(cid).ok()
    return runtime.state(cid)


# -- create / state ------------------------------------------------------------------------


def test_create_gives_created_state(runtime, bundle):
    b = bundle(SLEEPER)
    cid = runtime.new_id()
    runtime.create(cid, b).ok()
    st = runtime.state(cid)
    assert st["id"] == cid
    assert st["status"] == "created"
    assert st["bundle"] == str(b)
    assert os.path.isabs(st["bundle"])
    assert isinstance(st["ociVersion"], str) and st["ociVersion"]
    # runtime.md State: pid is REQUIRED when created or running on Linux.
    assert isinstance(st["pid"], int) and st["pid"] > 0
    assert pid_alive(st["pid"])
    assert_valid("state-schema.json", st)


def test_state_validates_in_every_status(runtime, bundle):
    b = bundle(["sh", "-c", "while [ ! -e /go ]; do sleep 0.02; done"])
    cid = runtime.new_id()
    runtime.create(cid, b).ok()
    assert_valid("state-schema.json", runtime.state(cid))
    runtime.start(cid).ok()
    st = runtime.state(cid)
    assert st["status"] == "running"
    assert_valid("state-schema.json", st)
    (b / "rootfs/go").touch()
    st = runtime.wait_status(cid, "stopped")
    assert_valid("state-schema.json", st)


def test_process_does_not_run_before_start(runtime, bundle):
    """runtime.md Create: process.args MUST NOT be applied until start (runc's exec FIFO)."""
    b = bundle(["sh", "-c", "touch /started; exec sleep 1000"])
    cid = runtime.new_id()
    runtime.create(cid, b).ok()
    created_pid = runtime.state(cid)["pid"]
    time.sleep(0.3)
    assert not (b / "rootfs/started").exists(), "the process ran before start"
    assert runtime.state(cid)["status"] == "created"
    runtime.start(cid).ok()
    wait_for(lambda: (b / "rootfs/started").exists(), what="the process to run after start")
    st = runtime.state(cid)
    assert st["status"] == "running"
    # The process of `start` is the container process that `create` made (it execs).
    assert st["pid"] == created_pid


def test_start_of_short_process_ends_stopped(runtime, bundle):
    b = bundle(["true"])
    cid = runtime.new_id()
    runtime.create(cid, b).ok()
    runtime.start(cid).ok()
    runtime.wait_status(cid, "stopped")


def test_start_twice_fails_and_leaves_container_alone(runtime, bundle):
    """runtime.md Start: starting a container that is not created MUST error, no effect."""
    cid = runtime.new_id()
    st = started(runtime, bundle(SLEEPER), cid)
    runtime.start(cid).failed("running")
    st2 = runtime.state(cid)
    assert st2["status"] == "running" and st2["pid"] == st["pid"]


def test_start_of_stopped_container_fails(runtime, bundle):
    cid = runtime.new_id()
    started(runtime, bundle(["true"]), cid)
    runtime.wait_status(cid, "stopped")
    runtime.start(cid).failed("stopped")
    assert runtime.state(cid)["status"] == "stopped"


# -- kill ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9"])
def test_kill_with_sigkill(runtime, bundle, sig):
    cid = runtime.new_id()
    st = started(runtime, bundle(SLEEPER), cid)
    runtime.kill(cid, sig).ok()
    runtime.wait_status(cid, "stopped")
    wait_for(lambda: not pid_alive(st["pid"]), what="the container process to die")


@pytest.mark.parametrize("sig", ["TERM", "SIGTERM", "15", None])
def test_kill_with_sigterm(runtime, bundle, sig):
    """None: runc's kill sends SIGTERM when no signal is named."""
    b = bundle(SIGNAL_WAITER)
    cid = runtime.new_id()
    started(runtime, b, cid)
    wait_for(lambda: (b / "rootfs/ready").exists(), what="the trap to be set")
    runtime.kill(cid, sig).ok()
    runtime.wait_status(cid, "stopped")
    assert (b / "rootfs/got-term").read_text() == "TERM\n"


def test_kill_created_container(runtime, bundle):
    """runtime.md Kill: a created container can be signalled; it ends stopped."""
    b = bundle(["sh", "-c", "touch /started"])
    cid = runtime.new_id()
    runtime.create(cid, b).ok()
    runtime.kill(cid, "KILL").ok()
    runtime.wait_status(cid, "stopped")
    assert not (b / "rootfs/started").exists()


def test_kill_all(runtime, bundle):
    b = bundle(["sh", "-c", "sleep 1000 & sleep 1000 & echo $! > /child; wait"])
    cid = runtime.new_id()
    st = started(runtime, b, cid)
    wait_for(lambda: (b / "rootfs/child").exists(), what="the children to start")
    runtime.kill(cid, "KILL", "--all").ok()
    runtime.wait_status(cid, "stopped")
    wait_for(lambda: not pid_alive(st["pid"]), what="init to die")


def test_kill_unknown_signal_fails(runtime, bundle):
    cid = runtime.new_id()
    runtime.create(cid, bundle(SLEEPER)).ok()
    runtime.kill(cid, "NOSUCHSIG").failed("signal")
    assert runtime.state(cid)["status"] == "created"


def test_kill_stopped_container_fails(runtime, bundle):
    """runtime.md Kill: signalling a container that is neither created nor running MUST error."""
    cid = runtime.new_id()
    started(runtime, bundle(["true"]), cid)
    runtime.wait_status(cid, "stopped")
    runtime.kill(cid, "KILL").failed("not running")


# -- delete --------------------------------------------------------------------------------


def test_delete_stopped_container(runtime, bundle):
    cid = runtime.new_id()
    started(runtime, bundle(["true"]), cid)
    runtime.wait_status(cid, "stopped")
    runtime.delete(cid).ok()
    runtime("state", cid).failed("does not exist")
    assert runtime.list_ids() == []
    assert not (runtime.root / cid).exists()


def test_delete_running_fails_without_force(runtime, bundle):
    """runtime.md Delete: deleting a container that is not stopped MUST error, no effect."""
    cid = runtime.new_id()
    st = started(runtime, bundle(SLEEPER), cid)
    runtime.delete(cid).failed("running")
    st2 = runtime.state(cid)
    assert st2["status"] == "running" and st2["pid"] == st["pid"]
    assert pid_alive(st["pid"])
    runtime.delete(cid, "--force").ok()
    runtime("state", cid).failed("does not exist")
    wait_for(lambda: not pid_alive(st["pid"]), what="the container process to die")


def test_delete_created_without_force(runtime, bundle):
    # runtime.md Delete asks for an error on a container that is not stopped; runc deletes
    # (kills) a created container without --force, and containerd's shim depends on that
    # (it deletes never-started tasks without --force). Runc's behaviour is the contract.
    cid = runtime.new_id()
    runtime.create(cid, bundle(SLEEPER)).ok()
    pid = runtime.state(cid)["pid"]
    runtime.delete(cid).ok()
    runtime("state", cid).failed("does not exist")
    wait_for(lambda: not pid_alive(pid), what="the created init to die")


def test_delete_created_with_force(runtime, bundle):
    cid = runtime.new_id()
    b = bundle(["sh", "-c", "touch /started"])
    runtime.create(cid, b).ok()
    pid = runtime.state(cid)["pid"]
    runtime.delete(cid, "--force").ok()
    assert runtime.list_ids() == []
    wait_for(lambda: not pid_alive(pid), what="init to die")
    assert not (b / "rootfs/started").exists()


# -- ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["state", "start", "kill", "delete"])
def test_unknown_id_fails(runtime, verb):
    r = runtime(verb, "no-such-container")
    r.failed("does not exist")
    assert r.stdout == ""


@pytest.mark.parametrize("verb", ["create", "start", "state", "kill", "delete"])
def test_verb_without_id_fails(runtime, verb):
    """runtime.md Operations: each MUST generate an error when not given the container ID."""
    r = runtime(verb)
    assert r.returncode != 0, str(r)
    assert r.stderr.strip()


def test_duplicate_id_refused(runtime, bundle):
    """runtime.md Create: an ID that is not unique MUST error and no container is created."""
    cid = runtime.new_id()
    b1 = bundle(SLEEPER)
    runtime.create(cid, b1).ok()
    pid = runtime.state(cid)["pid"]
    b2 = bundle(["sh", "-c", "touch /second"])
    runtime.create(cid, b2).failed("exists")
    st = runtime.state(cid)
    assert st["pid"] == pid and st["bundle"] == str(b1) and st["status"] == "created"
    assert runtime.list_ids() == [cid]
    runtime.start(cid).ok()
    time.sleep(0.2)
    assert not (b2 / "rootfs/second").exists()


@pytest.mark.parametrize("bad", ["a/b", "..", "x y", "ab:c"])
def test_invalid_id_refused(runtime, bundle, bad):
    """runtime.md Create: an ID that is not valid MUST error (runc: [\\w+-.]+ only)."""
    b = bundle(["true"])
    runtime.create(bad, b).failed("id")
    assert runtime("list", "-q").ok().stdout == ""
    if runtime.root.exists():
        assert [p.name for p in runtime.root.iterdir()] == []


def test_id_with_allowed_punctuation(runtime, bundle):
    cid = "ok_id.with+punct-" + runtime.new_id()
    runtime.created.append(cid)
    runtime.create(cid, bundle(SLEEPER)).ok()
    assert runtime.state(cid)["id"] == cid


# -- run -----------------------------------------------------------------------------------


def test_run_propagates_exit_code(runtime, bundle):
    cid = runtime.new_id()
    r = runtime.run(cid, bundle(["sh", "-c", "echo out; echo err >&2; exit 3"]))
    assert r.returncode == 3, str(r)
    assert r.stdout == "out\n"
    assert "err\n" in r.stderr
    # Without --keep the container is deleted once it has exited.
    runtime("state", cid).failed("does not exist")
    assert runtime.list_ids() == []


def test_run_exit_code_of_signalled_process(runtime, bundle):
    """runc: a container killed by signal N makes `run` exit 128+N."""
    cid = runtime.new_id()
    argv = [*runtime.base(), "run", "--bundle", str(bundle(SLEEPER)), cid]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        wait_for(lambda: runtime("state", cid).returncode == 0
                 and runtime.state(cid)["status"] == "running", what="running")
        runtime.kill(cid, "KILL").ok()
        assert p.wait(timeout=10) == 128 + signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_run_keep(runtime, bundle):
    cid = runtime.new_id()
    r = runtime.run(cid, bundle(["sh", "-c", "exit 5"]), "--keep")
    assert r.returncode == 5, str(r)
    assert runtime.state(cid)["status"] == "stopped"
    runtime.delete(cid).ok()


def test_run_detach(runtime, bundle):
    b = bundle(["sh", "-c", "echo detached-output; exec sleep 1000"])
    cid = runtime.new_id()
    t0 = time.monotonic()
    runtime.detached("run", "--detach", "--bundle", str(b), cid, tag=cid).ok()
    assert time.monotonic() - t0 < 10
    st = runtime.state(cid)
    assert st["status"] == "running"
    assert pid_alive(st["pid"])
    wait_for(lambda: "detached-output" in runtime.container_output(cid),
             what="the container's stdout to reach the file runc was given")


def test_pid_file(runtime, bundle, tmp_path):
    cid = runtime.new_id()
    pid_file = tmp_path / "container.pid"
    runtime.create(cid, bundle(SLEEPER), "--pid-file", str(pid_file)).ok()
    assert int(pid_file.read_text().strip()) == runtime.state(cid)["pid"]


def test_pid_file_relative_to_cwd(runtime, bundle, tmp_path):
    cid = runtime.new_id()
    b = bundle(SLEEPER)
    runtime.detached("create", "--bundle", str(b), "--pid-file", "rel.pid", cid, tag=cid,
                     cwd=tmp_path).ok()
    assert int((tmp_path / "rel.pid").read_text()) == runtime.state(cid)["pid"]


def test_bundle_defaults_to_cwd(runtime, bundle):
    b = bundle(["true"])
    cid = runtime.new_id()
    r = runtime("run", "--keep", cid, cwd=b)
    assert r.returncode == 0, str(r)
    assert runtime.state(cid)["bundle"] == str(b)


# -- list ----------------------------------------------------------------------------------


def test_list_empty(runtime):
    r = runtime("list").ok()
    assert r.stdout.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert runtime("list", "-q").ok().stdout == ""
    # runc prints a JSON null for no containers (Go's nil slice); callers parse it as empty.
    assert json.loads(runtime("list", "--format", "json").ok().stdout) is None


def test_list_formats(runtime, bundle):
    a, b = runtime.new_id(), runtime.new_id()
    ba, bb = bundle(SLEEPER), bundle(SLEEPER)
    runtime.create(a, ba).ok()
    runtime.create(b, bb).ok()
    runtime.start(b).ok()
    pa, pb = runtime.state(a)["pid"], runtime.state(b)["pid"]

    assert sorted(runtime("list", "-q").ok().stdout.split()) == sorted([a, b])

    table = runtime("list").ok().stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) == {a, b}
    assert rows[a][1:4] == [str(pa), "created", str(ba)]
    assert rows[b][1:4] == [str(pb), "running", str(bb)]

    items = json.loads(runtime("list", "--format", "json").ok().stdout)
    by_id = {c["id"]: c for c in items}
    assert set(by_id) == {a, b}
    assert by_id[a]["status"] == "created" and by_id[a]["pid"] == pa
    assert by_id[b]["status"] == "running" and by_id[b]["pid"] == pb
    assert by_id[a]["bundle"] == str(ba)
    for c in items:
        assert_valid("state-schema.json", c)


def test_list_only_sees_its_root(runtime, bundle, tmp_path):
    cid = runtime.new_id()
    runtime.create(cid, bundle(SLEEPER)).ok()
    other = Runtime(runtime.name, runtime.argv, tmp_path / "other-root", runtime.workdir)
    assert other("list", "-q").ok().stdout == ""
    other("state", cid).failed("does not exist")
    assert runtime.list_ids() == [cid]


# -- global flags --------------------------------------------------------------------------


def test_version(runtime):
    r = runtime("--version").ok()
    assert "version" in r.stdout.lower()
    # runc prints the runtime-spec version it implements on a line "spec: X".
    assert any(line.startswith("spec:") for line in r.stdout.splitlines()), r.stdout


def test_log_file_json(runtime, tmp_path):
    log = tmp_path / "runtime.log"
    r = runtime("--log", str(log), "--log-format", "json", "state", "no-such-container")
    assert r.returncode != 0
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    errors = [e for e in entries if e.get("level") == "error"]
    assert errors, entries
    assert "does not exist" in errors[-1]["msg"]
    assert "time" in errors[-1]


def test_log_file_text(runtime, tmp_path):
    log = tmp_path / "runtime.log"
    r = runtime("--log", str(log), "state", "no-such-container")
    assert r.returncode != 0
    text = log.read_text()
    assert "level=error" in text and "does not exist" in text


# -- create/run flags ----------------------------------------------------------------------


def test_preserve_fds(runtime, bundle, tmp_path):
    """--preserve-fds N passes the caller's fds 3..3+N-1 to the process, and no others."""
    sink = tmp_path / "fd3.out"
    b = bundle(["sh", "-c", "echo via-fd3 >&3; ls /proc/self/fd"])
    r = runtime.run(runtime.new_id(), b, "--preserve-fds", "1",
                    setup=f"exec 3>>{sink} 4>>{sink}")
    assert r.returncode == 0, str(r)
    assert sink.read_text() == "via-fd3\n"
    # 0-2, the preserved 3, and the directory ls is reading (it gets the lowest free fd, 4).
    assert r.stdout.split() == ["0", "1", "2", "3", "4"]


def test_no_pivot(runtime, bundle):
    b = bundle(["sh", "-c",
                "ls /; if test -e /work -o -e /usr/sbin/runc; then echo host-visible; fi"])
    out = runtime.out(b, "--no-pivot").split()
    assert "linuxrc" in out  # busybox's rootfs
    assert "host-visible" not in out


@pytest.mark.parametrize("flag", [None, "--no-new-keyring"])
def test_session_keyring(runtime, bundle, flag):
    """By default runc joins a new session keyring named after the container (visible in
    /proc/keys); --no-new-keyring keeps the caller's."""
    b = bundle(["cat", "/proc/keys"],
               edit=lambda c: c["linux"]["maskedPaths"].remove("/proc/keys"))
    cid = runtime.new_id()
    r = runtime.run(cid, b, *([flag] if flag else []))
    assert r.returncode == 0, str(r)
    if flag is None:
        assert cid in r.stdout
    else:
        assert cid not in r.stdout
