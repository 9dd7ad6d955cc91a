"""Hooks (config.md POSIX-platform Hooks, runtime.md Lifecycle).

Every hook is the same small script: it appends its name to `order`, and writes its argv,
environment and stdin (the container state) to files named after it. Hooks run in the
runtime namespace use the host's /bin/sh; startContainer runs in the container, so its
script lives in the rootfs and runs with busybox sh. All of them write into
<rootfs>/hooks, which is /hooks inside the container: one log, in order.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pallet.testing.busybox import write_config

from .support import diverges, wait_for

HOOK_SCRIPT = """#!/bin/sh
name=$1
shift
echo "$name" >> {dir}/order
echo "$@" > {dir}/$name.args
/usr/bin/env > {dir}/$name.env
/bin/cat > {dir}/$name.stdin
"""
HOST_HOOKS = ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
ALL_HOOKS = [*HOST_HOOKS, "startContainer"]


class Hooked:
    def __init__(self, bundle_dir):
        self.bundle = bundle_dir
        self.dir = bundle_dir / "rootfs/hooks"

    def order(self) -> list[str]:
        p = self.dir / "order"
        return p.read_text().split() if p.exists() else []

    def state(self, name) -> dict:
        return json.loads((self.dir / f"{name}.stdin").read_text())

    def env(self, name) -> list[str]:
        return (self.dir / f"{name}.env").read_text().splitlines()

    def args(self, name) -> str:
        return (self.dir / f"{name}.args").read_text().strip()


@pytest.fixture
def hooked(bundle):
    """`hooked(args, change=None)` → a bundle with every hook installed."""

    def make(args, change=None, edit=None):
        b = bundle(args, edit=edit)
        h = Hooked(b)
        h.dir.mkdir()
        host_script = b / "hook.sh"
        host_script.write_text(HOOK_SCRIPT.format(dir=h.dir))
        host_script.chmod(0o755)
        inner_script = b / "rootfs/hook.sh"
        inner_script.write_text(HOOK_SCRIPT.format(dir="/hooks"))
        inner_script.chmod(0o755)
        cfg = json.loads((b / "config.json").read_text())

        def hook(name, path):
            return {"path": path, "args": ["hook.sh", name, "a1", "a 2"],
                    "env": [f"HOOK_NAME={name}", "HOOK_EXTRA=x y"]}

        cfg["hooks"] = {n: [hook(n, str(host_script))] for n in HOST_HOOKS}
        cfg["hooks"]["startContainer"] = [hook("startContainer", "/hook.sh")]
        if change is not None:
            change(cfg["hooks"])
        write_config(b, cfg)
        return h

    return make


def marker_process(tail="exec sleep 1000"):
    return ["sh", "-c", f"echo process >> /hooks/order; {tail}"]


def failing(path="/bin/sh", code=4):
    return {"path": path, "args": ["sh", "-c", f"exit {code}"]}


def test_create_hooks_run_in_order(runtime, hooked):
    h = hooked(marker_process())
    cid = runtime.new_id()
    runtime.create(cid, h.bundle).ok()
    order = h.order()
    # config.md: prestart before createRuntime before createContainer, all during create.
    assert order[:3] == ["prestart", "createRuntime", "createContainer"], order
    assert "startContainer" not in order and "process" not in order
    runtime.start(cid).ok()
    wait_for(lambda: "process" in h.order(), what="the process to start")
    order = h.order()
    assert order.index("startContainer") < order.index("process"), order
    runtime.kill(cid, "KILL").ok()
    runtime.wait_status(cid, "stopped")
    assert "poststop" not in h.order()
    runtime.delete(cid).ok()
    assert h.order()[-1] == "poststop"
    assert sorted(h.order()) == sorted([*ALL_HOOKS, "process"])


def test_poststart_runs_after_start(runtime, hooked, request):
    # config.md Poststart: called after the user-specified process is executed, before
    # `start` returns (runtime.md Lifecycle step 9).
    diverges(request, runtime, ("runc",), "runc 1.1 runs poststart hooks during create")
    h = hooked(marker_process())
    cid = runtime.new_id()
    runtime.create(cid, h.bundle).ok()
    assert "poststart" not in h.order()
    runtime.start(cid).ok()
    order = h.order()
    assert "poststart" in order, "poststart must have run when start returns"
    assert order.index("startContainer") < order.index("poststart")
    assert h.state("poststart")["status"] == "running"


def test_hook_state_on_stdin(runtime, hooked):
    h = hooked(marker_process("exit 0"))
    cid = runtime.new_id()
    runtime.create(cid, h.bundle).ok()
    pid = runtime.state(cid)["pid"]
    runtime.start(cid).ok()
    runtime.wait_status(cid, "stopped")
    runtime.delete(cid).ok()
    for name in ALL_HOOKS:
        st = h.state(name)
        assert st["id"] == cid, name
        assert st["bundle"] == str(h.bundle), name
        assert st["ociVersion"], name
    # runc's statuses; the spec only defines them (runtime.md State).
    assert h.state("prestart")["status"] == "creating"
    assert h.state("createRuntime")["status"] == "creating"
    assert h.state("createContainer")["status"] == "creating"
    assert h.state("startContainer")["status"] == "created"
    assert h.state("poststop")["status"] == "stopped"
    # runtime.md State: pid as seen by the runtime for hooks in the runtime namespace...
    assert h.state("prestart")["pid"] == pid
    assert h.state("createRuntime")["pid"] == pid
    # ...and as seen by the container for hooks in the container namespace (its PID 1).
    assert h.state("createContainer")["pid"] == 1
    assert h.state("startContainer")["pid"] == 1


def test_hook_args_and_env(runtime, hooked):
    h = hooked(marker_process("exit 0"))
    cid = runtime.new_id()
    runtime.run(cid, h.bundle).ok()
    # `run` without --keep deletes the container at exit: poststop has run too.
    for name in ALL_HOOKS:
        assert h.args(name) == "a1 a 2", name
        env = h.env(name)
        assert f"HOOK_NAME={name}" in env, (name, env)
        assert "HOOK_EXTRA=x y" in env, (name, env)
        # Only the hook's env: nothing of the runtime's own environment leaks in.
        assert not [e for e in env if e.startswith(("PYTEST_", "VIRTUAL_ENV=", "HOME="))], env


def test_createcontainer_hook_runs_in_container_namespaces(runtime, hooked):
    """config.md: createContainer runs in the container namespace (its path resolved in the
    runtime namespace: before pivot_root), createRuntime in the runtime namespace."""
    h = hooked(["true"])
    # A file in the bundle is reachable from the host and from the container's mount
    # namespace before pivot_root.
    probe = h.bundle / "probe"

    def readlinks(out):
        return {"path": "/bin/sh", "args": [
            "sh", "-c", f"readlink /proc/self/ns/uts /proc/self/ns/mnt > {out}"]}

    cfg = json.loads((h.bundle / "config.json").read_text())
    cfg["hooks"]["createContainer"] = [readlinks(f"{probe}.cc")]
    cfg["hooks"]["createRuntime"] = [readlinks(f"{probe}.rt")]
    write_config(h.bundle, cfg)
    cid = runtime.new_id()
    runtime.create(cid, h.bundle).ok()
    pid = runtime.state(cid)["pid"]
    container = [os.readlink(f"/proc/{pid}/ns/uts"), os.readlink(f"/proc/{pid}/ns/mnt")]
    host = [os.readlink("/proc/self/ns/uts"), os.readlink("/proc/self/ns/mnt")]
    assert Path(f"{probe}.cc").read_text().split() == container
    assert Path(f"{probe}.rt").read_text().split() == host


def test_hook_timeout_fails_create(runtime, hooked):
    def change(hooks):
        hooks["createRuntime"] = [{"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 20"],
                                   "timeout": 1}]

    h = hooked(marker_process(), change=change)
    cid = runtime.new_id()
    t0 = time.monotonic()
    runtime.create(cid, h.bundle).failed("timeout")
    assert time.monotonic() - t0 < 15
    runtime.assert_nothing_left(cid, h.bundle)


@pytest.mark.parametrize("which", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create(runtime, hooked, which):
    """runtime.md Lifecycle steps 3-5: a failing hook MUST generate an error, stop the
    container and continue at step 12 (destroy), then 13 (poststop hooks)."""
    h = hooked(marker_process(), change=lambda hooks: hooks.update({which: [failing()]}))
    cid = runtime.new_id()
    runtime.create(cid, h.bundle).failed("hook")
    runtime.assert_nothing_left(cid, h.bundle)
    assert "process" not in h.order()
    assert h.order()[-1] == "poststop", h.order()


def test_failing_start_container_hook_fails_start(runtime, hooked, request):
    # runtime.md Lifecycle step 7: if a startContainer hook fails, the runtime MUST generate
    # an error and stop the container.
    diverges(request, runtime, ("runc",),
             "runc's start exits 0 although the startContainer hook failed in init")
    h = hooked(marker_process(), change=lambda hooks: hooks.update(
        startContainer=[failing("/bin/sh")]))
    cid = runtime.new_id()
    runtime.create(cid, h.bundle).ok()
    r = runtime.start(cid)
    time.sleep(0.3)
    assert "process" not in h.order()
    r.failed("hook")


def test_failing_start_container_hook_stops_process(runtime, hooked):
    h = hooked(marker_process(), change=lambda hooks: hooks.update(
        startContainer=[failing("/bin/sh")]))
    cid = runtime.new_id()
    runtime.create(cid, h.bundle).ok()
    runtime.start(cid)
    wait_for(lambda: runtime("state", cid).returncode != 0
             or runtime.state(cid)["status"] == "stopped", what="the container to stop")
    assert "process" not in h.order()


def test_failing_poststart_hook_fails_start(runtime, hooked, request):
    # runtime.md Lifecycle step 9: a failing poststart hook MUST generate an error and stop
    # the container.
    diverges(request, runtime, ("runc",), "runc 1.1 runs poststart hooks during create")
    h = hooked(marker_process(), change=lambda hooks: hooks.update(poststart=[failing()]))
    cid = runtime.new_id()
    runtime.create(cid, h.bundle).ok()
    runtime.start(cid).failed("hook")
    wait_for(lambda: runtime("state", cid).returncode != 0
             or runtime.state(cid)["status"] == "stopped", what="the container to stop")


def test_failing_poststop_hook_is_a_warning(runtime, hooked):
    """runtime.md Lifecycle step 13: a failing poststop hook is logged as a warning and
    delete succeeds."""
    h = hooked(marker_process("exit 0"), change=lambda hooks: hooks.update(
        poststop=[failing()]))
    cid = runtime.new_id()
    runtime.create(cid, h.bundle).ok()
    runtime.start(cid).ok()
    runtime.wait_status(cid, "stopped")
    r = runtime.delete(cid).ok()
    assert "hook" in r.stderr.lower()
    runtime("state", cid).failed("does not exist")


def test_failing_poststop_hook_does_not_stop_later_hooks(runtime, hooked, request):
    # runtime.md Lifecycle step 13: "the remaining hooks and lifecycle continue as if the
    # hook had succeeded".
    diverges(request, runtime, ("runc",), "runc stops at the first failing poststop hook")
    h = hooked(marker_process("exit 0"))
    cfg = json.loads((h.bundle / "config.json").read_text())
    cfg["hooks"]["poststop"].insert(0, failing())
    write_config(h.bundle, cfg)
    cid = runtime.new_id()
    runtime.create(cid, h.bundle).ok()
    runtime.start(cid).ok()
    runtime.wait_status(cid, "stopped")
    runtime.delete(cid).ok()
    assert h.order()[-1] == "poststop"


def test_hook_path_missing_fails(runtime, hooked, tmp_path):
    missing = str(tmp_path / "no-such-hook")
    h = hooked(marker_process(), change=lambda hooks: hooks.update(
        createRuntime=[{"path": missing}]))
    cid = runtime.new_id()
    runtime.create(cid, h.bundle).failed("no-such-hook")
    runtime.assert_nothing_left(cid, h.bundle)
