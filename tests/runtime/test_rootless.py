"""Rootless: `spec --rootless` and a container run by an unprivileged user, who maps itself
to root in a user namespace (no cgroup, host devices bound, /sys bound)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

USER = 4321  # an unprivileged uid with no other use on this machine


@pytest.fixture
def user_bundle(rootfs):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    # Outside pytest's 0700 temp tree: the user must reach it.
    home = Path(tempfile.mkdtemp(prefix="pallet-rootless-", dir="/tmp"))
    os.chmod(home, 0o755)
    subprocess.run(["cp", "-a", str(rootfs), str(home / "rootfs")], check=True)
    subprocess.run(["chown", "-R", f"{USER}:{USER}", str(home)], check=True)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def as_user(runtime, home, *args):
    argv = ["setpriv", "--reuid", str(USER), "--regid", str(USER), "--clear-groups",
            "env", f"HOME={home}", *runtime.argv, "--root", str(home / "state"), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_rootless_spec_and_run(runtime, user_bundle):
    home = user_bundle
    r = as_user(runtime, home, "spec", "--rootless", "--bundle", str(home))
    assert r.returncode == 0, r.stderr
    cfg = json.loads((home / "config.json").read_text())
    assert {"type": "user"} in cfg["linux"]["namespaces"]
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": USER, "size": 1}]
    cfg["process"]["terminal"] = False
    cfg["root"]["readonly"] = False
    cfg["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; echo x > /dev/null "
                              "&& echo null-ok; touch /tmp/f && ls -n /tmp/f"]
    (home / "config.json").write_text(json.dumps(cfg))
    r = as_user(runtime, home, "run", "--bundle", str(home), "rootless1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(USER), "1"]
    assert lines[2] == "null-ok"
    assert lines[3].split()[2:4] == ["0", "0"]  # root-owned inside
    # The file is the user's on the host.
    assert (home / "rootfs/tmp/f").stat().st_uid == USER
    r = as_user(runtime, home, "list", "-q")
    assert r.returncode == 0 and r.stdout.strip() == ""
