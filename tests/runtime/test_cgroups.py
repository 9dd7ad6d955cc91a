"""cgroupsPath and a few resources (config-linux.md Cgroups Path, Control groups).

Written for the cgroup v1 hierarchies this machine mounts (/sys/fs/cgroup/<controller>);
on a unified (v2) host the same paths are looked up under /sys/fs/cgroup.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from .support import cgroup_dirs, cgroup_hierarchies, remove_cgroup, wait_for


@pytest.fixture
def cgroup(runtime):
    """An absolute cgroupsPath unique to the test; removed afterwards if a runtime leaves it."""
    path = f"/pallet-test-{uuid.uuid4().hex[:12]}"
    try:
        yield path
    finally:
        runtime.cleanup()
        remove_cgroup(path)


def in_cgroup(path):
    def edit(cfg):
        cfg["linux"]["cgroupsPath"] = path
    return edit


def proc_cgroups(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") or [""]:
            out[c] = path
    return out


def test_cgroups_path_created_and_joined(runtime, bundle, cgroup):
    if not cgroup_hierarchies():
        pytest.skip("no cgroup hierarchy with memory/pids found under /sys/fs/cgroup")
    cid = runtime.new_id()
    runtime.create(cid, bundle(["sleep", "1000"], edit=in_cgroup(cgroup))).ok()
    pid = runtime.state(cid)["pid"]
    dirs = cgroup_dirs(cgroup)
    for d in dirs:
        assert d.is_dir(), d
        assert str(pid) in (d / "cgroup.procs").read_text().split(), d
    joined = proc_cgroups(pid)
    for h in cgroup_hierarchies():
        key = "" if h == Path("/sys/fs/cgroup") else h.name
        assert joined[key] == cgroup, (key, joined)
    runtime.start(cid).ok()
    runtime.kill(cid, "KILL").ok()
    runtime.wait_status(cid, "stopped")
    runtime.delete(cid).ok()
    for d in dirs:
        wait_for(lambda d=d: not d.exists(), timeout=5, what=f"{d} to be removed")


def test_cgroup_removed_by_forced_delete(runtime, bundle, cgroup):
    cid = runtime.new_id()
    runtime.create(cid, bundle(["sleep", "1000"], edit=in_cgroup(cgroup))).ok()
    runtime.start(cid).ok()
    runtime.delete(cid, "--force").ok()
    assert [d for d in cgroup_dirs(cgroup) if d.exists()] == []


def test_same_cgroups_path_for_two_containers(runtime, bundle, cgroup):
    """config-linux.md: the same cgroupsPath MUST attach to the same place."""
    a, b = runtime.new_id(), runtime.new_id()
    runtime.create(a, bundle(["sleep", "1000"], edit=in_cgroup(cgroup))).ok()
    # runc allows a second container in a cgroup that already has processes.
    runtime.create(b, bundle(["sleep", "1000"], edit=in_cgroup(cgroup))).ok()
    pa, pb = runtime.state(a)["pid"], runtime.state(b)["pid"]
    assert proc_cgroups(pa) == proc_cgroups(pb)
    assert proc_cgroups(pa)["pids" if "pids" in proc_cgroups(pa) else ""] == cgroup


def test_memory_and_pids_limits(runtime, bundle, cgroup):
    base = Path("/sys/fs/cgroup")
    v2 = (base / "cgroup.controllers").exists()
    if not v2 and not (base / "memory/tasks").exists():
        pytest.skip("no memory cgroup controller mounted")

    def edit(cfg):
        cfg["linux"]["cgroupsPath"] = cgroup
        cfg["linux"]["resources"].update(memory={"limit": 64 * 1024 * 1024},
                                         pids={"limit": 42})

    cid = runtime.new_id()
    runtime.create(cid, bundle(["sleep", "1000"], edit=edit)).ok()
    rel = cgroup.lstrip("/")
    if v2:
        assert (base / rel / "memory.max").read_text().strip() == str(64 * 1024 * 1024)
        assert (base / rel / "pids.max").read_text().strip() == "42"
    else:
        limit = (base / "memory" / rel / "memory.limit_in_bytes").read_text().strip()
        assert limit == str(64 * 1024 * 1024)
        assert (base / "pids" / rel / "pids.max").read_text().strip() == "42"


@pytest.mark.parametrize(("limit", "fits"), [(3, False), (10, True)])
def test_pids_limit_enforced(runtime, bundle, cgroup, limit, fits):
    def edit(cfg):
        cfg["linux"]["cgroupsPath"] = cgroup
        cfg["linux"]["resources"]["pids"] = {"limit": limit}

    # sh plus four sleepers: five tasks.
    b = bundle(["sh", "-c", "sleep 5 & sleep 5 & sleep 5 & sleep 5 & echo forked-all"],
               edit=edit)
    r = runtime.run(runtime.new_id(), b)
    if fits:
        assert r.returncode == 0 and r.stdout == "forked-all\n", str(r)
    else:
        assert "forked-all" not in r.stdout, str(r)
        assert "fork" in r.stderr, str(r)


# --- how a stage-1 child joins the cgroup (pallet-runtime's Manager.fork) ------------------

# Run in a fresh interpreter: the raw clone3 is for single-threaded callers only
# (Manager.fork falls back to os.fork when other threads run, as they may in pytest).
_FORK_CHILD = """
import json, os, sys
from pallet.cgroups import Manager
from pallet.linux import libc
if sys.argv[2] == "fallback":
    def refused(fd):
        raise OSError(38, "clone3: not here")
    libc.fork_into_cgroup = refused
m = Manager(json.loads(sys.argv[1]))
r, w = os.pipe()
go_r, go_w = os.pipe()
pid, in_v2 = m.fork()
if pid == 0:
    try:
        os.read(go_r, 1)  # as the runtime's stage-1 child waits for "go": after the parent's add
        m.join_v1()
        with open("/proc/self/cgroup", "rb") as f:
            os.write(w, f.read())
    finally:
        os._exit(0)
os.close(w)
if not in_v2:
    m.add(pid, v1=False)  # what the parent does when the clone could not place it
os.write(go_w, b"g")
chunks = []
while chunk := os.read(r, 65536):
    chunks.append(chunk)
os.waitpid(pid, 0)
print(json.dumps({"in_v2": in_v2, "cgroup": b"".join(chunks).decode()}))
"""


@pytest.mark.parametrize("clone3", [True, False], ids=["clone3", "fallback"])
def test_forked_child_lands_in_every_hierarchy(clone3):
    """The child is born in the v2 cgroup (clone3 CLONE_INTO_CGROUP) or put there by the
    parent when the kernel cannot, and moves itself into every v1 hierarchy: the same
    membership as a write of its pid to every cgroup.procs, without the kernel's global
    threadgroup lock (see Manager.fork)."""
    import json
    import os
    import subprocess
    import sys

    from pallet.cgroups import Manager

    name = f"pallet-test-fork-{uuid.uuid4().hex[:12]}"
    m = Manager.for_config("/" + name, name)
    m.create()
    try:
        r = subprocess.run([sys.executable, "-c", _FORK_CHILD, json.dumps(m.paths),
                            "clone3" if clone3 else "fallback"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["in_v2"] is (clone3 and "" in m.paths)
        got = {}
        for line in out["cgroup"].splitlines():
            _, controllers, path = line.split(":", 2)
            got[controllers] = path
        assert set(got) == set(m.paths), (got, m.paths)
        assert all(path == "/" + name for path in got.values()), got
        assert os.path.isdir(m.paths[next(iter(m.paths))])
    finally:
        m.destroy()
