"""cgroup v2 specifics (run in the pure-v2 VM: scripts/test-cgroup2): runc's conversions of
the v1-shaped fields, `unified` key/values, and a cgroup namespace's view."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from .support import wait_for

ROOT = Path("/sys/fs/cgroup")

pytestmark = pytest.mark.skipif(
    not (ROOT / "cgroup.controllers").exists(),
    reason="needs a pure cgroup v2 host (run scripts/test-cgroup2)")


def running(runtime, bundle, **kw):
    cid = runtime.new_id()
    b = bundle(["sleep", "1000"], **kw)
    runtime.detached("run", "--detach", "--bundle", str(b), cid, tag=cid).ok()
    return cid


def read(path: Path, name: str) -> str:
    return (path / name).read_text().strip()


def test_resources_converted_for_v2(runtime, bundle):
    name = f"pallet-v2-{uuid.uuid4().hex[:8]}"
    resources = {
        "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
        "pids": {"limit": 42},
        "unified": {"memory.high": str(60 << 20)},
    }
    running(runtime, bundle, edit=lambda c: (c["linux"].update(cgroupsPath=f"/{name}"),
                                             c["linux"]["resources"].update(resources)))
    cg = ROOT / name
    assert read(cg, "memory.max") == str(64 << 20)
    assert read(cg, "memory.swap.max") == str(32 << 20)  # v1's memsw minus the limit
    assert read(cg, "memory.low") == str(32 << 20)
    assert read(cg, "memory.high") == str(60 << 20)
    assert read(cg, "cpu.weight") == "39"  # 1 + (1024 - 2) * 9999 / 262142
    assert read(cg, "cpu.max") == "50000 100000"
    assert read(cg, "pids.max") == "42"


def test_cgroup_namespace_sees_its_own_root(runtime, bundle):
    b = bundle(["sh", "-c", "cat /proc/self/cgroup; ls /sys/fs/cgroup"],
               edit=lambda c: c["linux"]["namespaces"].append({"type": "cgroup"}))
    out = runtime.out(b).split()
    assert out[0] == "0::/"
    assert "cgroup.procs" in out


def test_freeze_uses_cgroup_freeze(runtime, bundle):
    name = f"pallet-v2-{uuid.uuid4().hex[:8]}"
    cid = running(runtime, bundle, edit=lambda c: c["linux"].update(cgroupsPath=f"/{name}"))
    runtime("pause", cid).ok()
    assert read(ROOT / name, "cgroup.freeze") == "1"
    wait_for(lambda: "frozen 1" in read(ROOT / name, "cgroup.events"), what="frozen")
    runtime("resume", cid).ok()
    assert read(ROOT / name, "cgroup.freeze") == "0"
    runtime.delete(cid, "--force").ok()
    assert not os.path.exists(ROOT / name)
