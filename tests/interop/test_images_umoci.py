"""pallet's unpack against umoci's (Debian's): the same image gives the same tree —
paths, types, modes, owners, link targets, hard links, xattrs, file mtimes."""

import json
import os
import shutil
import subprocess

import pytest

from pallet.images.service import ImageService
from pallet.oci import mediatypes as mt
from pallet.testing import images as timages
from pallet.testing.images import describe_tree

is_root = os.geteuid() == 0
pytestmark = pytest.mark.skipif(shutil.which("umoci") is None,
                                reason="umoci not installed (Debian package umoci)")


def umoci_unpack(layout, tag: str, dest) -> None:
    args = ["umoci", "raw", "unpack"]
    if not is_root:
        args.append("--rootless")
    r = subprocess.run([*args, "--image", f"{layout}:{tag}", str(dest)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def assert_same_tree(a, b) -> None:
    ta, tb = describe_tree(str(a), mtimes=True), describe_tree(str(b), mtimes=True)
    diff = {k: (ta.get(k), tb.get(k)) for k in set(ta) | set(tb) if ta.get(k) != tb.get(k)}
    assert diff == {}
    assert len(ta) > 250  # the busybox tree and its applets really were compared


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    out = {s: timages.make_layout(s, base / s) for s in ("single", "multi", "users")}
    out["multi-zstd"] = timages.make_layout("multi", base / "multi-zstd", compression=mt.ZSTD)
    out["multi-none"] = timages.make_layout("multi", base / "multi-none",
                                            compression=mt.UNCOMPRESSED)
    return out


@pytest.fixture
def svc(tmp_path):
    s = ImageService(str(tmp_path / "root"))
    yield s
    s.close()


@pytest.mark.parametrize("shape", ["single", "multi", "users", "multi-none"])
def test_unpack_equals_umoci(layouts, svc, tmp_path, shape):
    umoci_unpack(layouts[shape], "latest", tmp_path / "umoci")
    svc.import_(str(layouts[shape]), base_name="img")
    svc.unpack_to_dir("img", str(tmp_path / "pallet"))
    assert_same_tree(tmp_path / "umoci", tmp_path / "pallet")


def test_zstd_unpack_equals_umoci_of_gzip(layouts, svc, tmp_path):
    # umoci 0.4.7 has no zstd: the same layers gzip-compressed are the reference
    umoci_unpack(layouts["multi"], "latest", tmp_path / "umoci")
    svc.import_(str(layouts["multi-zstd"]), base_name="img")
    svc.unpack_to_dir("img", str(tmp_path / "pallet"))
    assert_same_tree(tmp_path / "umoci", tmp_path / "pallet")


def test_umoci_unpacks_pallet_export(layouts, svc, tmp_path):
    svc.import_(str(layouts["multi"]), base_name="img")
    svc.export(["img"], str(tmp_path / "out"))
    umoci_unpack(tmp_path / "out", "latest", tmp_path / "umoci")
    svc.unpack_to_dir("img", str(tmp_path / "pallet"))
    assert_same_tree(tmp_path / "umoci", tmp_path / "pallet")


@pytest.mark.root
@pytest.mark.skipif(not is_root, reason="mounting overlay snapshots needs root")
def test_overlay_snapshot_equals_umoci(layouts, tmp_path):
    from pallet.linux import libc
    from pallet.linux.mount import MountOptions, mount_fs

    svc = ImageService(str(tmp_path / "root"), "overlayfs")
    svc.import_(str(layouts["multi"]), base_name="img")
    top = svc.unpack("img")
    m = svc.snapshotter.view("v", top)[0]
    target = tmp_path / "mnt"
    target.mkdir()
    mount_fs("overlay", str(target), "overlay", MountOptions([*m.options, "ro"]))
    try:
        umoci_unpack(layouts["multi"], "latest", tmp_path / "umoci")
        assert_same_tree(tmp_path / "umoci", target)
    finally:
        libc.umount2(str(target))


@pytest.mark.root
@pytest.mark.skipif(not is_root or shutil.which("runc") is None,
                    reason="running a bundle needs root and runc")
def test_runc_runs_pallet_bundle(layouts, svc, tmp_path):
    svc.import_(str(layouts["users"]), base_name="users")
    bundle = tmp_path / "bundle"
    svc.bundle("users", str(bundle))
    cid = f"pallet-test-{os.getpid()}"
    r = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "run", "-b", str(bundle),
                        cid], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "uid=1234(app) gid=2345(appgrp) groups=3000(extra),3001(more)"
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["process"]["cwd"] == "/home/app"


@pytest.mark.root
@pytest.mark.skipif(not is_root or shutil.which("runc") is None,
                    reason="mounting a snapshot and running a bundle need root and runc")
@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_runc_runs_snapshot_bundle(layouts, tmp_path, snapshotter):
    svc = ImageService(str(tmp_path / "root"), snapshotter)
    svc.import_(str(layouts["multi"]), base_name="m")
    bundle = tmp_path / "bundle"
    svc.bundle("m", str(bundle), args=["sh", "-c", "cat /etc/motd; ls /data; echo x > /new"],
               snapshot=True)
    try:
        r = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "run", "-b",
                            str(bundle), f"pallet-snap-{os.getpid()}"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["v2", "a", "b", "c"]
        assert (bundle / "rootfs/new").read_text() == "x\n"
        key = (bundle / "snapshot").read_text()
        # the write went to the container's own snapshot, not to the image's layers
        assert os.path.exists(os.path.join(svc.snapshotter.fs_path(key), "new"))
        top = str(svc.resolve("m").chain_ids[-1])
        assert not os.path.exists(os.path.join(svc.snapshotter.fs_path(top), "new"))
    finally:
        svc.remove_bundle(str(bundle))
    assert not os.path.ismount(bundle / "rootfs")
    assert [i.kind.value for i in svc.snapshotter.walk()] == ["committed"] * 3
