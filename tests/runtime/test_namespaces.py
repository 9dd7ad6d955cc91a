"""Namespaces, hostname and domainname (config-linux.md Namespaces, config.md Hostname)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pallet.testing.busybox import make_bundle

from .support import base_config, diverges

NS_FILES = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
            "cgroup": "cgroup", "user": "user", "time": "time"}


def host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{NS_FILES[kind]}")


def inside_ns(runtime, bundle, kinds, edit=None) -> dict[str, str]:
    files = " ".join(f"/proc/self/ns/{NS_FILES[k]}" for k in kinds)
    b = bundle(["sh", "-c", f"for f in {files}; do readlink $f; done"], edit=edit)
    return dict(zip(kinds, runtime.out(b).split(), strict=True))


def set_namespaces(cfg, kinds):
    cfg["linux"]["namespaces"] = [{"type": k} for k in kinds]


def test_hostname(runtime, bundle):
    b = bundle(["sh", "-c", "hostname; cat /proc/sys/kernel/hostname"],
               edit=lambda c: c.update(hostname="box-1"))
    assert runtime.out(b).split() == ["box-1", "box-1"]
    assert os.uname().nodename != "box-1"


def test_domainname(runtime, bundle, request):
    # config.md Domainname (runtime-spec 1.1.0): the container's domainname in its UTS ns.
    diverges(request, runtime, ("runc",),
             "runc 1.1 implements runtime-spec 1.0.2 and ignores domainname")
    b = bundle(["cat", "/proc/sys/kernel/domainname"],
               edit=lambda c: c.update(hostname="box-1", domainname="example.test"))
    assert runtime.out(b) == "example.test\n"


def test_hostname_needs_uts_namespace(runtime, bundle):
    b = bundle(["true"], edit=lambda c: set_namespaces(c, ["pid", "network", "ipc", "mount"]))
    cid = runtime.new_id()
    runtime.run(cid, b).failed("hostname", "uts")
    runtime.assert_nothing_left(cid, b)


def test_pid_namespace(runtime, bundle):
    out = runtime.out(bundle(["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"]))
    pid, count = out.split()
    assert pid == "1"
    # sh and the ls/grep of the pipeline: nothing of the host is visible.
    assert int(count) <= 4


def test_network_namespace_has_only_lo(runtime, bundle):
    out = runtime.out(bundle(["cat", "/proc/net/dev"]))
    ifaces = [line.split(":")[0].strip() for line in out.splitlines()[2:]]
    assert ifaces == ["lo"]


@pytest.mark.parametrize("kind", ["pid", "network", "ipc", "uts", "mount", "cgroup"])
def test_new_namespace(runtime, bundle, kind):
    """config-linux.md: without a path, the runtime MUST create a new namespace."""
    kinds = ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    got = inside_ns(runtime, bundle, [kind], edit=lambda c: set_namespaces(c, kinds))
    assert got[kind] != host_ns(kind)


@pytest.mark.parametrize("kind", ["network", "ipc", "cgroup"])
def test_namespace_not_listed_is_inherited(runtime, bundle, kind):
    """config-linux.md: a namespace type not listed MUST be the runtime's own."""
    kinds = [k for k in ["pid", "network", "ipc", "uts", "mount", "cgroup"] if k != kind]
    got = inside_ns(runtime, bundle, [kind], edit=lambda c: set_namespaces(c, kinds))
    assert got[kind] == host_ns(kind)


def test_cgroup_namespace_root(runtime, bundle):
    b = bundle(["cat", "/proc/self/cgroup"],
               edit=lambda c: c["linux"]["namespaces"].append({"type": "cgroup"}))
    for line in runtime.out(b).splitlines():
        assert line.split(":", 2)[2] == "/", line


def test_duplicate_namespace_fails(runtime, bundle):
    """config-linux.md: duplicated namespace types MUST generate an error."""
    b = bundle(["true"], edit=lambda c: c["linux"]["namespaces"].append({"type": "network"}))
    cid = runtime.new_id()
    runtime.run(cid, b).failed("network")
    runtime.assert_nothing_left(cid, b)


def test_unknown_namespace_type_fails(runtime, bundle):
    b = bundle(["true"], edit=lambda c: c["linux"]["namespaces"].append({"type": "bogus"}))
    cid = runtime.new_id()
    runtime.run(cid, b).failed("bogus")
    runtime.assert_nothing_left(cid, b)


# -- joining a namespace by path -----------------------------------------------------------


@pytest.fixture
def netns_file(tmp_path):
    """A persistent network namespace bound at a file (the test's own mount namespace)."""
    path = tmp_path / "netns"
    path.touch()
    subprocess.run(["unshare", f"--net={path}", "true"], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def join(kind, path):
    def edit(cfg):
        for n in cfg["linux"]["namespaces"]:
            if n["type"] == kind:
                n["path"] = str(path)
    return edit


def test_join_network_namespace_by_path(runtime, bundle, netns_file):
    got = inside_ns(runtime, bundle, ["network", "ipc"], edit=join("network", netns_file))
    assert got["network"] == f"net:[{os.stat(netns_file).st_ino}]"
    assert got["ipc"] != host_ns("ipc")


def test_join_namespace_of_running_container(runtime, bundle):
    first = runtime.new_id()
    runtime.create(first, bundle(["sleep", "1000"])).ok()
    pid = runtime.state(first)["pid"]
    want = os.readlink(f"/proc/{pid}/ns/net")
    got = inside_ns(runtime, bundle, ["network"], edit=join("network", f"/proc/{pid}/ns/net"))
    assert got["network"] == want


def test_join_missing_namespace_path_fails(runtime, bundle, tmp_path):
    missing = tmp_path / "no-such-ns"
    b = bundle(["true"], edit=join("network", missing))
    cid = runtime.new_id()
    runtime.run(cid, b).failed(str(missing))
    runtime.assert_nothing_left(cid, b)


def test_join_namespace_of_wrong_type_fails(runtime, bundle):
    """config-linux.md: MUST error if path is not a namespace of type `type`."""
    b = bundle(["true"], edit=join("network", f"/proc/{os.getpid()}/ns/ipc"))
    cid = runtime.new_id()
    runtime.run(cid, b).failed(("namespace", "setns"))
    runtime.assert_nothing_left(cid, b)


# -- user namespace ------------------------------------------------------------------------


@pytest.fixture
def public_bundle(rootfs):
    """Bundles under a directory other uids can traverse: a mapped root (host uid 100000)
    must reach the rootfs, and pytest's tmp_path is mode 0700."""
    top = Path(tempfile.mkdtemp(prefix="pallet-userns-"))
    os.chmod(top, 0o711)

    def make(args, edit=None):
        cfg = base_config(args)
        cfg["root"]["readonly"] = False
        if edit is not None:
            edit(cfg)
        return make_bundle(top / f"b{len(list(top.iterdir()))}", config=cfg,
                           rootfs_from=rootfs)

    try:
        yield make
    finally:
        shutil.rmtree(top, ignore_errors=True)


def userns(cfg):
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]


def test_user_namespace_mappings(runtime, public_bundle):
    b = public_bundle(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; "
                                   "readlink /proc/self/ns/user"], edit=userns)
    lines = runtime.out(b).splitlines()
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "200000", "65536"]
    assert lines[2:4] == ["0", "0"]
    assert lines[4] != host_ns("user")


def test_user_namespace_host_view(runtime, public_bundle):
    """Seen from the host, the container's root is the mapped uid/gid."""
    b = public_bundle(["sleep", "1000"], edit=userns)
    cid = runtime.new_id()
    runtime.create(cid, b).ok()
    pid = runtime.state(cid)["pid"]
    status = Path(f"/proc/{pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    gid_line = next(line for line in status.splitlines() if line.startswith("Gid:"))
    assert uid_line.split()[1:] == ["100000"] * 4
    assert gid_line.split()[1:] == ["200000"] * 4
    assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", "100000", "65536"]


def test_user_namespace_files_of_unmapped_owner(runtime, public_bundle):
    """config-linux.md: the runtime SHOULD NOT chown the rootfs; host root is unmapped."""
    b = public_bundle(["stat", "-c", "%u:%g", "/etc/passwd"], edit=userns)
    assert runtime.out(b) == "65534:65534\n"
    assert os.stat(b / "rootfs/etc/passwd").st_uid == 0


# -- time namespace ------------------------------------------------------------------------


def test_time_namespace(runtime, bundle):
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("the kernel has no time namespaces (/proc/self/ns/time missing)")
    features = runtime.features()
    if features is not None and "time" not in features.get("linux", {}).get("namespaces", []):
        pytest.skip(f"{runtime.name} features: no time namespace "
                    f"(it lists {features['linux'].get('namespaces')})")
    days = 1000

    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "time"})
        cfg["linux"]["timeOffsets"] = {"boottime": {"secs": days * 86400, "nanosecs": 0},
                                       "monotonic": {"secs": days * 86400, "nanosecs": 0}}

    b = bundle(["sh", "-c", "readlink /proc/self/ns/time; cat /proc/uptime"], edit=edit)
    ns, uptime = runtime.out(b).splitlines()
    assert ns != host_ns("time")
    host_uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert float(uptime.split()[0]) >= host_uptime + days * 86400 - 60


def test_no_mount_namespace_chroots_and_leaves_the_callers_root(runtime, bundle):
    """Without a mount namespace the container shares the caller's mount table (this test's
    private one). The runtime must enter the rootfs with chroot: pivot_root would move the
    root of every process sharing the table (runtime-tools linux_ns_itype)."""
    root_before = os.stat("/")
    mounts_before = Path("/proc/self/mountinfo").read_text().splitlines()[0]

    def edit(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]
        c["linux"].pop("maskedPaths", None)
        c["linux"].pop("readonlyPaths", None)
        # /proc only (both runtimes need it); it lands in this test's private mount table.
        c["mounts"] = [m for m in c["mounts"] if m["destination"] == "/proc"]

    b = bundle(["sh", "-c", "ls /; echo chrooted"], edit=edit)
    out = runtime.out(b)
    assert "chrooted" in out and "bin" in out.split()
    after = os.stat("/")
    assert (after.st_dev, after.st_ino) == (root_before.st_dev, root_before.st_ino)
    assert Path("/proc/self/mountinfo").read_text().splitlines()[0] == mounts_before
    assert Path(sys.executable).exists()


def test_no_mount_namespace_refuses_what_would_change_the_callers_mounts(runtime, bundle):
    def edit(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]

    b = bundle(["true"], edit=edit)
    r = runtime.run(runtime.new_id(), b)
    # runc: "unable to restrict sys entries without a private MNT namespace"
    r.failed(("mount namespace", "MNT namespace"))
