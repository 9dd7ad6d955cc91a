"""Mounts, root.readonly and rootfsPropagation (config.md Mounts and Root,
config-linux.md Rootfs Mount Propagation), checked in the container's mountinfo."""

from __future__ import annotations

import os
import subprocess

import pytest

from .support import diverges, mount_at, parse_mountinfo

MOUNTINFO = ["cat", "/proc/self/mountinfo"]


def add_mounts(*mounts):
    def edit(cfg):
        cfg["mounts"].extend(mounts)
    return edit


def mountinfo(runtime, b):
    return parse_mountinfo(runtime.out(b))


@pytest.fixture
def hostdir(tmp_path):
    """A host directory with a file and a tmpfs submount (to tell bind from rbind)."""
    d = tmp_path / "hostdir"
    (d / "sub").mkdir(parents=True)
    (d / "file").write_text("from the host\n")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "hostsub", str(d / "sub")],
                   check=True)
    (d / "sub/inner").write_text("inner\n")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d / "sub")], check=False)


@pytest.fixture
def shared_hostdir(tmp_path):
    """A host directory that is a shared mount (the test runs in a private mount ns, so
    propagation to a slave can only be seen from a shared source)."""
    d = tmp_path / "shared"
    d.mkdir()
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
    subprocess.run(["mount", "--make-shared", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_default_mounts(runtime, bundle):
    mounts = mountinfo(runtime, bundle(MOUNTINFO))
    want = {"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
            "/dev/mqueue": "mqueue", "/sys": "sysfs"}
    for point, fstype in want.items():
        assert mount_at(mounts, point).fstype == fstype, point
    sysfs = mount_at(mounts, "/sys")
    assert "ro" in sysfs.options and {"nosuid", "nodev", "noexec"} <= sysfs.options
    shm = mount_at(mounts, "/dev/shm")
    assert {"nosuid", "nodev", "noexec"} <= shm.options
    assert "size=65536k" in shm.super_options
    pts = mount_at(mounts, "/dev/pts")
    assert {"gid=5", "mode=620", "ptmxmode=666"} <= pts.super_options
    # The cgroup mount of the starter config: each v1 hierarchy (or cgroup2), read-only.
    cg = [m for m in mounts if m.mount_point.startswith("/sys/fs/cgroup")]
    assert any(m.fstype in ("cgroup", "cgroup2") for m in cg), cg
    assert all("ro" in m.options for m in cg if m.fstype in ("cgroup", "cgroup2"))


def test_tmpfs_options(runtime, bundle):
    b = bundle(["sh", "-c", "stat -c %a /t; cat /proc/self/mountinfo"], edit=add_mounts(
        {"destination": "/t", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=1m", "mode=700", "nosuid", "nodev"]}))
    mode, _, info = runtime.out(b).partition("\n")
    assert mode == "700"
    t = mount_at(parse_mountinfo(info), "/t")
    assert t.fstype == "tmpfs"
    assert {"nosuid", "nodev"} <= t.options
    assert "size=1024k" in t.super_options and "mode=700" in t.super_options


def test_tmpfs_size_enforced(runtime, bundle):
    b = bundle(["sh", "-c", "dd if=/dev/zero of=/t/big bs=64k count=32 2>/dev/null "
                            "&& echo fits || echo full"],
               edit=add_mounts({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                "options": ["size=1m"]}))
    assert runtime.out(b) == "full\n"


def test_bind_mount_options(runtime, bundle, hostdir):
    b = bundle(["sh", "-c", "cat /b/file; touch /b/x 2>&1; ls /b/sub | wc -l; "
                            "cat /proc/self/mountinfo"],
               edit=add_mounts({"destination": "/b", "type": "bind", "source": str(hostdir),
                                "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}))
    out = runtime.out(b).splitlines()
    assert out[0] == "from the host"
    assert "Read-only file system" in out[1]
    assert out[2] == "0", "a plain bind must not carry the submount"
    m = mount_at(parse_mountinfo("\n".join(out[3:])), "/b")
    assert {"ro", "nosuid", "nodev", "noexec"} <= m.options
    assert m.root.endswith("/hostdir")
    assert not (hostdir / "x").exists()


def test_rbind_carries_submounts(runtime, bundle, hostdir):
    b = bundle(["sh", "-c", "cat /rb/sub/inner; cat /proc/self/mountinfo"],
               edit=add_mounts({"destination": "/rb", "type": "bind", "source": str(hostdir),
                                "options": ["rbind", "ro"]}))
    first, _, info = runtime.out(b).partition("\n")
    assert first == "inner"
    mounts = parse_mountinfo(info)
    assert "ro" in mount_at(mounts, "/rb").options
    assert mount_at(mounts, "/rb/sub").fstype == "tmpfs"


def test_bind_mount_of_a_file(runtime, bundle, tmp_path):
    f = tmp_path / "hostfile"
    f.write_text("a file\n")
    b = bundle(["sh", "-c", "cat /etc/bound; test -f /etc/bound && echo is-file"],
               edit=add_mounts({"destination": "/etc/bound", "type": "bind",
                                "source": str(f), "options": ["bind", "ro"]}))
    assert runtime.out(b) == "a file\nis-file\n"
    assert (b / "rootfs/etc/bound").is_file()


def test_bind_mount_without_type(runtime, bundle, hostdir):
    """config.md: type may be omitted; "bind" in options makes it a bind mount (runc)."""
    b = bundle(["cat", "/nb/file"], edit=add_mounts(
        {"destination": "/nb", "source": str(hostdir), "options": ["rbind"]}))
    assert runtime.out(b) == "from the host\n"


def test_bind_mount_writable(runtime, bundle, hostdir):
    b = bundle(["sh", "-c", "echo written > /w/new"], edit=add_mounts(
        {"destination": "/w", "type": "bind", "source": str(hostdir), "options": ["bind"]}))
    runtime.out(b)
    assert (hostdir / "new").read_text() == "written\n"


@pytest.mark.parametrize(("option", "tags"), [
    ("rprivate", set()),
    ("rslave", {"master"}),
    ("rshared", {"shared"}),
])
def test_bind_propagation(runtime, bundle, shared_hostdir, option, tags):
    b = bundle(MOUNTINFO, edit=add_mounts(
        {"destination": "/p", "type": "bind", "source": str(shared_hostdir),
         "options": ["rbind", option]}))
    m = mount_at(mountinfo(runtime, b), "/p")
    got = {field.split(":")[0] for field in m.optional}
    if option == "rshared":
        assert "shared" in got, m.optional
    else:
        assert got == tags, m.optional


def test_rslave_receives_host_mounts(runtime, bundle, shared_hostdir):
    """A mount made on the host under an rslave bind appears in the running container."""
    b = bundle(["sh", "-c", "while [ ! -e /p/late/marker ]; do sleep 0.05; done; echo seen"],
               edit=add_mounts({"destination": "/p", "type": "bind",
                                "source": str(shared_hostdir), "options": ["rbind", "rslave"]}))
    (shared_hostdir / "late").mkdir()
    cid = runtime.new_id()
    runtime.create(cid, b).ok()
    runtime.start(cid).ok()
    subprocess.run(["mount", "-t", "tmpfs", "late", str(shared_hostdir / "late")], check=True)
    try:
        (shared_hostdir / "late/marker").touch()
        runtime.wait_status(cid, "stopped")
        assert "seen" in runtime.container_output(cid)
    finally:
        subprocess.run(["umount", "-l", str(shared_hostdir / "late")], check=False)


def test_mounts_in_listed_order(runtime, bundle):
    """config.md: the runtime MUST mount entries in the listed order (later on top)."""
    b = bundle(["sh", "-c", "cat /proc/self/mountinfo"], edit=add_mounts(
        {"destination": "/m", "type": "tmpfs", "source": "first", "options": ["size=1m"]},
        {"destination": "/m", "type": "tmpfs", "source": "second", "options": ["size=2m"]},
        {"destination": "/m/inner", "type": "tmpfs", "source": "third"},
    ))
    mounts = mountinfo(runtime, b)
    top = mount_at(mounts, "/m")
    assert top.source == "second"
    inner = mount_at(mounts, "/m/inner")
    assert inner.parent_id == top.mount_id


def test_root_readonly(runtime, bundle):
    b = bundle(["sh", "-c", "touch /x 2>&1; touch /tmp/y 2>&1; cat /proc/self/mountinfo"],
               readonly=True)
    out = runtime.out(b).splitlines()
    assert "Read-only file system" in out[0]
    assert "Read-only file system" in out[1]
    assert "ro" in mount_at(parse_mountinfo("\n".join(out[2:])), "/").options
    assert not (b / "rootfs/x").exists()


def test_root_writable(runtime, bundle):
    b = bundle(["sh", "-c", "touch /x && cat /proc/self/mountinfo"], readonly=False)
    assert "rw" in mount_at(mountinfo(runtime, b), "/").options
    assert (b / "rootfs/x").exists()


def test_rootfs_propagation_private(runtime, bundle):
    b = bundle(MOUNTINFO, edit=lambda c: c["linux"].update(rootfsPropagation="private"))
    root = mount_at(mountinfo(runtime, b), "/")
    assert not [f for f in root.optional if f.startswith(("shared:", "master:"))], root.optional


def test_rootfs_propagation_shared(runtime, bundle, request):
    # config-linux.md Rootfs Mount Propagation: "shared: the rootfs mount belongs to a new
    # peer group".
    diverges(request, runtime, ("runc",),
             "runc 1.1 leaves the rootfs private (runc#1755, fixed by runc#4724)")
    b = bundle(MOUNTINFO, edit=lambda c: c["linux"].update(rootfsPropagation="shared"))
    root = mount_at(mountinfo(runtime, b), "/")
    assert any(f.startswith("shared:") for f in root.optional), root.optional


def test_rootfs_propagation_unbindable(runtime, bundle, request):
    diverges(request, runtime, ("runc",),
             "runc 1.1 does not apply rootfsPropagation to the rootfs (runc#1755)")
    b = bundle(MOUNTINFO, edit=lambda c: c["linux"].update(rootfsPropagation="unbindable"))
    root = mount_at(mountinfo(runtime, b), "/")
    assert "unbindable" in root.optional, root.optional


# -- destinations that try to leave the rootfs --------------------------------------------


@pytest.mark.parametrize("link_kind", ["absolute", "relative"])
def test_symlinked_destination_stays_in_rootfs(runtime, bundle, tmp_path, link_kind):
    """rootfs/evil -> <host dir>: mounting at /evil/... must resolve the link inside the
    rootfs (as if chrooted), never create or mount anything in the host directory."""
    target = tmp_path / "host-target"
    target.mkdir()
    (target / "keep").write_text("untouched\n")
    before = sorted(os.listdir(target))
    stat_before = os.stat(target)
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("bound\n")
    b = bundle(["sh", "-c", "echo inside > /evil/sub/marker; cat /evil/f; "
                            "cat /proc/self/mountinfo"],
               edit=add_mounts(
                   {"destination": "/evil/sub", "type": "tmpfs", "source": "evil-tmpfs"},
                   {"destination": "/evil/f", "type": "bind", "source": str(hostfile),
                    "options": ["bind"]}))
    link = b / "rootfs/evil"
    if link_kind == "absolute":
        os.symlink(str(target), link)
    else:
        os.symlink("../" * 20 + str(target).lstrip("/"), link)
    first, _, info = runtime.out(b).partition("\n")
    assert first == "bound"
    assert sorted(os.listdir(target)) == before
    assert (target / "keep").read_text() == "untouched\n"
    assert os.stat(target).st_mtime_ns == stat_before.st_mtime_ns
    # Inside, the link resolved to <rootfs>/<host path>: that is where the mounts are.
    inner = "/" + str(target).lstrip("/")
    mounts = parse_mountinfo(info)
    assert mount_at(mounts, inner + "/sub").source == "evil-tmpfs"
    assert mount_at(mounts, inner + "/f").fstype != "tmpfs"
    assert (b / "rootfs" / str(target).lstrip("/") / "f").is_file()


@pytest.mark.parametrize("dest", ["../../escape", "/../../escape", "/a/../../../escape"])
def test_dotdot_destination_stays_in_rootfs(runtime, bundle, dest):
    # config.md Mounts: a relative destination MUST be interpreted relative to "/"; ".." at
    # the root stays at the root. runc clamps all of these to /escape inside the rootfs (and
    # warns that relative destinations are deprecated).
    b = bundle(MOUNTINFO, edit=add_mounts(
        {"destination": dest, "type": "tmpfs", "source": "escape-tmpfs"}))
    m = mount_at(mountinfo(runtime, b), "/escape")
    assert m.source == "escape-tmpfs"
    assert not (b / "escape").exists()
    assert not (b.parent / "escape").exists()
    assert (b / "rootfs/escape").is_dir()


def test_mount_unknown_fstype_fails(runtime, bundle):
    b = bundle(["true"], edit=add_mounts(
        {"destination": "/x", "type": "nosuchfs", "source": "none"}))
    cid = runtime.new_id()
    runtime.run(cid, b).failed("/x")
    runtime.assert_nothing_left(cid, b)


def test_bind_missing_source_fails(runtime, bundle, tmp_path):
    missing = tmp_path / "missing-source"
    b = bundle(["true"], edit=add_mounts(
        {"destination": "/x", "type": "bind", "source": str(missing), "options": ["bind"]}))
    cid = runtime.new_id()
    runtime.run(cid, b).failed(str(missing))
    runtime.assert_nothing_left(cid, b)
