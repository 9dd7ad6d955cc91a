"""checkpoint/restore through CRIU. Where CRIU cannot work (`criu check` fails, as on this
machine's kernel) the runtime must say so clearly and leave the container running."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def criu_check() -> str | None:
    """None when CRIU works here, else why not."""
    if shutil.which("criu") is None:
        return "criu is not installed"
    p = subprocess.run(["criu", "check"], capture_output=True, text=True, timeout=60)
    if p.returncode == 0:
        return None
    return (p.stderr or p.stdout).strip().splitlines()[-1]


def running(runtime, bundle):
    cid = runtime.new_id()
    b = bundle(["sleep", "1000"])
    runtime.detached("run", "--detach", "--bundle", str(b), cid, tag=cid).ok()
    return cid, b


def test_checkpoint_fails_clearly_without_criu_support(runtime, bundle, tmp_path):
    if criu_check() is None:
        pytest.skip("CRIU works on this machine: the real round trip is tested instead")
    cid, _ = running(runtime, bundle)
    r = runtime("checkpoint", "--image-path", str(tmp_path / "img"), cid)
    r.failed("criu")
    assert runtime.state(cid)["status"] == "running"


def test_checkpoint_restore_round_trip(runtime, bundle, tmp_path):
    why = criu_check()
    if why is not None:
        pytest.skip(f"CRIU cannot work on this machine: {why}")
    cid, b = running(runtime, bundle)
    image = tmp_path / "img"
    runtime("checkpoint", "--image-path", str(image), cid).ok()
    assert runtime("state", cid).returncode != 0 or runtime.state(cid)["status"] == "stopped"
    runtime.delete(cid, "--force")
    new = runtime.new_id()
    runtime.detached("restore", "--detach", "--image-path", str(image), "--bundle", str(b),
                     new, tag=new).ok()
    assert runtime.state(new)["status"] == "running"


def test_restore_needs_an_image(runtime, bundle, tmp_path):
    b = bundle(["true"])
    r = runtime("restore", "--image-path", str(tmp_path / "missing"), "--bundle", str(b),
                runtime.new_id())
    assert r.returncode != 0 and r.stderr.strip()
