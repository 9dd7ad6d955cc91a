"""The snapshotter suite, run against every snapshotter (containerd's model)."""

import os

import pytest

from pallet.errors import AlreadyExists, FailedPrecondition, NotFound
from pallet.snapshots import Kind, NativeSnapshotter, OverlaySnapshotter

is_root = os.geteuid() == 0


@pytest.fixture(params=["overlayfs", "native"])
def sn(request, tmp_path):
    cls = OverlaySnapshotter if request.param == "overlayfs" else NativeSnapshotter
    s = cls(tmp_path / request.param)
    yield s
    s.close()


def write(mounts, rel, data):
    m = mounts[0]
    base = m.source if m.type == "bind" else m.option("upperdir")
    path = os.path.join(base, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(data)


def test_prepare_commit_chain(sn):
    m = sn.prepare("a-active")
    assert m[0].type == "bind" and "rw" in m[0].options
    write(m, "base.txt", "base")
    sn.commit("a", "a-active", {"k": "v"})
    info = sn.stat("a")
    assert info.kind == Kind.COMMITTED and info.parent is None and info.labels == {"k": "v"}
    with pytest.raises(NotFound):
        sn.stat("a-active")
    m2 = sn.prepare("b-active", "a")
    if sn.name == "overlayfs":
        assert m2[0].type == "overlay"
        assert m2[0].option("lowerdir") == sn.fs_path("a")
        assert m2[0].option("upperdir") == sn.fs_path("b-active")
        assert os.path.isdir(m2[0].option("workdir"))
    else:
        # native: the new snapshot is a full copy of its parent
        assert m2[0].type == "bind"
        with open(os.path.join(m2[0].source, "base.txt")) as f:
            assert f.read() == "base"
    write(m2, "b.txt", "b")
    sn.commit("b", "b-active")
    assert sn.stat("b").parent == "a"
    m3 = sn.prepare("c-active", "b")
    if sn.name == "overlayfs":
        assert m3[0].option("lowerdir") == f"{sn.fs_path('b')}:{sn.fs_path('a')}"


def test_views(sn):
    sn.prepare("x")
    sn.commit("base", "x")
    v = sn.view("v1", "base")
    assert v[0].type == "bind" and "ro" in v[0].options
    assert sn.stat("v1").kind == Kind.VIEW
    with pytest.raises(FailedPrecondition, match="only an active"):
        sn.commit("nope", "v1")
    sn.prepare("y", "base")
    sn.commit("top", "y")
    v2 = sn.view("v2", "top")
    if sn.name == "overlayfs":
        assert v2[0].type == "overlay" and v2[0].option("upperdir") is None
    else:
        assert "ro" in v2[0].options


def test_errors(sn):
    with pytest.raises(NotFound):
        sn.prepare("k", "missing-parent")
    sn.prepare("active")
    with pytest.raises(FailedPrecondition, match="not committed"):
        sn.prepare("child", "active")
    with pytest.raises(AlreadyExists):
        sn.prepare("active")
    sn.commit("done", "active")
    sn.prepare("child", "done")
    with pytest.raises(FailedPrecondition, match="has children"):
        sn.remove("done")
    with pytest.raises(NotFound):
        sn.remove("nothing")
    sn.prepare("other")
    with pytest.raises(AlreadyExists):
        sn.commit("done", "other")
    # the failed prepare did not leave a directory or metadata behind
    assert {i.name for i in sn.walk()} == {"done", "child", "other"}


def test_remove_deletes_files(sn):
    m = sn.prepare("gone")
    write(m, "f", "x")
    path = sn.fs_path("gone")
    assert os.path.exists(path)
    sn.remove("gone")
    assert not os.path.exists(path)
    with pytest.raises(NotFound):
        sn.stat("gone")
    assert sn.walk() == []


def test_usage_and_update_and_walk(sn):
    m = sn.prepare("u")
    write(m, "big", "x" * 100_000)
    os.link(os.path.join(sn.fs_path("u"), "big"), os.path.join(sn.fs_path("u"), "big2"))
    u = sn.usage("u")
    assert 100_000 <= u.size < 200_000   # the hard link counted once
    assert u.inodes == 2  # the root dir and the one inode
    assert sn.update("u", {"a": "1"}).labels == {"a": "1"}
    assert sn.update("u", {"a": None}).labels == {}
    seen = []
    sn.walk(seen.append)
    assert [i.name for i in seen] == ["u"]


def test_metadata_survives_reopen(tmp_path):
    s = OverlaySnapshotter(tmp_path / "o")
    s.prepare("a")
    s.commit("c", "a")
    s.close()
    s2 = OverlaySnapshotter(tmp_path / "o")
    assert s2.stat("c").kind == Kind.COMMITTED
    assert os.path.exists(os.path.join(s2.root, "metadata.db-wal")) or \
        os.path.exists(os.path.join(s2.root, "metadata.db"))
