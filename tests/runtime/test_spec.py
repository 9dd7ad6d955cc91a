"""`spec`: the starter config.json a runc-compatible runtime writes."""

from __future__ import annotations

import json
import os
import subprocess

from pallet.testing.busybox import write_config

from .support import assert_valid


def spec(runtime, *flags, cwd):
    return runtime("spec", *flags, cwd=cwd)


def test_spec_writes_valid_config_in_cwd(runtime, tmp_path):
    spec(runtime, cwd=tmp_path).ok()
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert_valid("config-schema.json", cfg)
    # What runc spec writes, and so what tools built on it expect.
    assert cfg["process"]["terminal"] is True
    assert cfg["process"]["args"] == ["sh"]
    assert cfg["process"]["cwd"] == "/"
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    types = [n["type"] for n in cfg["linux"]["namespaces"]]
    assert sorted(types) == ["ipc", "mount", "network", "pid", "uts"]
    assert "/proc/kcore" in cfg["linux"]["maskedPaths"]
    assert "/proc/sys" in cfg["linux"]["readonlyPaths"]
    dests = [m["destination"] for m in cfg["mounts"]]
    for d in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"):
        assert d in dests


def test_spec_rootless(runtime, tmp_path):
    spec(runtime, "--rootless", cwd=tmp_path).ok()
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert_valid("config-schema.json", cfg)
    linux = cfg["linux"]
    types = [n["type"] for n in linux["namespaces"]]
    assert "user" in types
    assert "network" not in types
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert "resources" not in linux
    sysfs = [m for m in cfg["mounts"] if m["destination"] == "/sys"]
    assert len(sysfs) == 1 and "rbind" in sysfs[0]["options"], sysfs


def test_spec_bundle_flag(runtime, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    spec(runtime, "--bundle", str(target), cwd=tmp_path).ok()
    assert (target / "config.json").exists()
    assert not (tmp_path / "config.json").exists()
    assert_valid("config-schema.json", json.loads((target / "config.json").read_text()))


def test_spec_bundle_must_exist(runtime, tmp_path):
    r = spec(runtime, "--bundle", str(tmp_path / "missing"), cwd=tmp_path)
    r.failed(("no such file", "not exist", "missing"))
    assert not (tmp_path / "missing").exists()


def test_spec_refuses_to_overwrite(runtime, tmp_path):
    """runc refuses with "File config.json exists. Remove it first" and leaves it alone."""
    existing = tmp_path / "config.json"
    existing.write_text('{"keep": "me"}')
    spec(runtime, cwd=tmp_path).failed("exists")
    assert existing.read_text() == '{"keep": "me"}'


def test_spec_output_runs(runtime, tmp_path, rootfs):
    """The starter config, with a command and no terminal, runs the busybox rootfs."""
    subprocess.run(["cp", "-a", str(rootfs), str(tmp_path / "rootfs")], check=True)
    spec(runtime, cwd=tmp_path).ok()
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "echo ok; cat /proc/sys/kernel/hostname"]
    write_config(tmp_path, cfg)
    out = runtime.out(tmp_path)
    assert out.splitlines() == ["ok", cfg["hostname"]]
