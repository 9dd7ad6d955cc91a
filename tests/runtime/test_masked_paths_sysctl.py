"""maskedPaths, readonlyPaths and sysctl (config-linux.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .support import mount_at, parse_mountinfo


@pytest.mark.parametrize("path", ["/proc/kcore", "/proc/keys", "/proc/timer_list"])
def test_masked_file_reads_empty(runtime, bundle, path):
    """Files in the starter config's maskedPaths: /dev/null is bound over each."""
    if not os.path.exists(path):
        pytest.skip(f"this kernel has no {path} to mask")
    b = bundle(["sh", "-c", f"wc -c < {path}; stat -c '%F %t:%T' {path}"])
    size, kind = runtime.out(b).splitlines()
    assert size.strip() == "0"
    assert kind == "character special file 1:3"


def test_masked_directory_is_empty_readonly(runtime, bundle):
    def edit(cfg):
        cfg["linux"]["maskedPaths"].append("/secret")

    b = bundle(["sh", "-c", "ls -A /secret | wc -l; touch /secret/new 2>&1; "
                            "cat /proc/self/mountinfo"], edit=edit)
    (b / "rootfs/secret").mkdir()
    (b / "rootfs/secret/data").write_text("hidden\n")
    out = runtime.out(b).splitlines()
    assert out[0].strip() == "0"
    assert "Read-only file system" in out[1]
    m = mount_at(parse_mountinfo("\n".join(out[2:])), "/secret")
    assert m.fstype == "tmpfs" and "ro" in m.options
    assert (b / "rootfs/secret/data").read_text() == "hidden\n"


def test_masked_path_that_does_not_exist_is_ignored(runtime, bundle):
    """runc skips masked paths that do not exist (and creates nothing)."""
    b = bundle(["sh", "-c", "test -e /no/such/thing && echo exists || echo absent"],
               edit=lambda c: c["linux"]["maskedPaths"].append("/no/such/thing"))
    assert runtime.out(b) == "absent\n"
    assert not (b / "rootfs/no").exists()


def test_readonly_proc_sys(runtime, bundle):
    """/proc/sys is in the starter config's readonlyPaths: writes fail with EROFS."""
    b = bundle(["sh", "-c", "(echo other > /proc/sys/kernel/hostname) 2>&1; hostname; "
                            "cat /proc/self/mountinfo"])
    out = runtime.out(b).splitlines()
    assert "Read-only file system" in out[0]
    assert out[1] == "pallet"
    assert "ro" in mount_at(parse_mountinfo("\n".join(out[2:])), "/proc/sys").options


def test_readonly_path_in_rootfs(runtime, bundle):
    b = bundle(["sh", "-c", "touch /data/x 2>&1; touch /other/x && echo other-ok"],
               edit=lambda c: c["linux"]["readonlyPaths"].append("/data"))
    for d in ("data", "other"):
        (b / "rootfs" / d).mkdir()
    out = runtime.out(b).splitlines()
    assert "Read-only file system" in out[0]
    assert out[1] == "other-ok"
    assert not (b / "rootfs/data/x").exists()


def test_no_masks_without_masked_paths(runtime, bundle):
    if not os.path.exists("/proc/keys"):
        pytest.skip("this kernel has no /proc/keys")
    b = bundle(["stat", "-c", "%F", "/proc/keys"],
               edit=lambda c: c["linux"].update(maskedPaths=[], readonlyPaths=[]))
    assert runtime.out(b) == "regular empty file\n"


# -- sysctl --------------------------------------------------------------------------------


def test_sysctl_in_container_namespaces(runtime, bundle):
    host_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    host_shmmni = Path("/proc/sys/kernel/shmmni").read_text()
    want_forward = "0" if host_forward.strip() == "1" else "1"
    sysctl = {"net.ipv4.ip_forward": want_forward, "kernel.shmmni": "1234",
              "kernel.msgmax": "12345"}
    b = bundle(["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmni",
                "/proc/sys/kernel/msgmax"],
               edit=lambda c: c["linux"].update(sysctl=sysctl))
    assert runtime.out(b).split() == [want_forward, "1234", "12345"]
    # The host's values are untouched (the keys are per network / IPC namespace).
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forward
    assert Path("/proc/sys/kernel/shmmni").read_text() == host_shmmni


@pytest.mark.parametrize(("key", "value", "drop"), [
    ("net.ipv4.ip_forward", "1", "network"),
    ("kernel.shmmax", "1", "ipc"),
])
def test_sysctl_of_host_namespace_refused(runtime, bundle, key, value, drop):
    """runc refuses a namespaced sysctl when the container shares that namespace with the
    host: 'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'."""
    def edit(cfg):
        cfg["linux"]["sysctl"] = {key: value}
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != drop]

    before = Path("/proc/sys", *key.split(".")).read_text()
    b = bundle(["true"], edit=edit)
    cid = runtime.new_id()
    runtime.run(cid, b).failed(key)
    assert Path("/proc/sys", *key.split(".")).read_text() == before
    runtime.assert_nothing_left(cid, b)


def test_sysctl_not_namespaced_refused(runtime, bundle):
    """runc: 'sysctl "kernel.nosuch" is not in a separate kernel namespace'."""
    b = bundle(["true"], edit=lambda c: c["linux"].update(sysctl={"vm.swappiness": "1"}))
    cid = runtime.new_id()
    runtime.run(cid, b).failed("vm.swappiness")
    runtime.assert_nothing_left(cid, b)
