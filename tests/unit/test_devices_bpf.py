"""The cgroup v2 device filter (an eBPF program) against the kernel: a process in a cgroup2
directory with the program attached may open exactly the devices the rules allow. Runs on
any host with a cgroup2 mount (the hybrid hierarchy here, the pure one in the v2 VM)."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from pallet.cgroups import devices_bpf, host_hierarchies
from pallet.errors import InvalidArgument

pytestmark = pytest.mark.root


@pytest.fixture
def cgroup2_dir():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    mount = host_hierarchies().get("")
    if mount is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    path = os.path.join(mount, f"pallet-bpf-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    yield path
    os.rmdir(path)


def opens(cgroup: str, *devices: str) -> list[str]:
    script = f"echo $$ > {cgroup}/cgroup.procs; " + "; ".join(
        # No /dev/null in the script: the rules under test may deny it.
        f"(head -c1 {d} >$T 2>&1 && echo {d}:ok) || echo {d}:denied" for d in devices)
    script = "T=$(mktemp); " + script + "; rm -f $T"
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_deny_all_then_allow_one(cgroup2_dir):
    devices_bpf.attach(cgroup2_dir, [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
    ])
    assert opens(cgroup2_dir, "/dev/zero", "/dev/urandom") == ["/dev/zero:ok",
                                                               "/dev/urandom:denied"]


def test_later_rule_overrides(cgroup2_dir):
    devices_bpf.attach(cgroup2_dir, [
        {"allow": True, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 9, "access": "r"},
    ])
    assert opens(cgroup2_dir, "/dev/zero", "/dev/urandom") == ["/dev/zero:ok",
                                                               "/dev/urandom:denied"]


def test_partial_access_allow_rule_does_not_cover_write(cgroup2_dir):
    devices_bpf.attach(cgroup2_dir, [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
    ])
    script = (f"echo $$ > {cgroup2_dir}/cgroup.procs; "
              "(echo x > /dev/null) 2>/dev/null && echo write-ok || echo write-denied")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "write-denied"


def test_bad_rule_is_refused():
    with pytest.raises(InvalidArgument, match="device type"):
        devices_bpf.program([{"allow": True, "type": "x"}])
    with pytest.raises(InvalidArgument, match="access"):
        devices_bpf.program([{"allow": True, "type": "c", "access": "rwz"}])
