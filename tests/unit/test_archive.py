"""The pieces of `docker cp/commit/diff/import` that need no daemon: container paths and
their stat, the archive options of the layer applier, `--change` instructions, and the
changes of a (native) snapshot."""

from __future__ import annotations

import io
import os
import stat
import types

import pytest

from pallet.daemon.archive import SnapshotChanges, apply_changes
from pallet.daemon.cp_helper import ContainerPath, go_mode, go_time, stat_path
from pallet.errors import InvalidArgument, NotFound
from pallet.images.apply import ApplyOptions, LayerError, apply_layer
from pallet.oci.image import ContainerConfig
from pallet.snapshots import NativeSnapshotter
from pallet.testing.images import entry, make_tar


@pytest.mark.parametrize("path,want", [
    ("/etc/passwd", ("/etc/passwd", "/etc", "passwd", "passwd")),
    ("etc/passwd", ("/etc/passwd", "/etc", "passwd", "passwd")),
    ("/etc/", ("/etc", "/etc", "", "etc")),
    ("/etc/.", ("/etc", "/etc", "", ".")),
    ("/", ("/", "/", "", "/")),
    ("/a/../b//c", ("/b/c", "/b", "c", "c")),
    ("/../../x", ("/x", "/", "x", "x")),
])
def test_container_path(path, want):
    p = ContainerPath.parse(path)
    assert (p.abs, p.dir, p.base, p.name) == want


def test_container_path_empty():
    with pytest.raises(InvalidArgument):
        ContainerPath.parse("")


def test_go_mode_and_time():
    assert go_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert go_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert go_mode(stat.S_IFCHR | 0o666) == (1 << 26) | (1 << 21) | 0o666
    assert go_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755
    assert go_mode(stat.S_IFDIR | stat.S_ISVTX | 0o777) == (1 << 31) | (1 << 20) | 0o777
    assert go_time(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"
    assert go_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


@pytest.fixture
def tree(tmp_path):
    """A container root with symlinks that point out of it every way they can."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "marker").write_text("inside\n")
    (root / "tmp").mkdir()
    os.symlink("/etc", root / "tmp" / "abs")
    os.symlink("../../../../../etc", root / "tmp" / "rel")
    os.symlink(str(tmp_path), root / "tmp" / "host")
    (tmp_path / "outside.txt").write_text("host\n")
    return root


def test_stat_path_stays_in_root(tree, tmp_path):
    for p in ("/tmp/abs/marker", "/tmp/rel/marker", "/etc/marker"):
        st = stat_path(str(tree), p)
        assert st["name"] == "marker" and st["size"] == len("inside\n")
    with pytest.raises(NotFound):
        stat_path(str(tree), "/tmp/host/outside.txt")
    link = stat_path(str(tree), "/tmp/rel")
    assert link["mode"] & (1 << 27) and link["linkTarget"] == "/etc"
    # with a trailing slash the last element is followed too
    assert stat_path(str(tree), "/tmp/abs/")["mode"] & (1 << 31)
    with pytest.raises(NotFound):
        stat_path(str(tree), "/nope/x")


def _apply(target, entries, **opts):
    return apply_layer(io.BytesIO(make_tar(entries)), str(target),
                       options=ApplyOptions(chown=False, **opts))


def test_archive_options_of_the_applier(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    os.chmod(dest, 0o1777)
    (dest / "victim").write_text("stays\n")
    (dest / "dir").mkdir()
    _apply(dest, [entry("./", "dir", mode=0o700), entry(".wh.victim", "file", b"plain")],
           whiteouts=False, root_meta=False)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o1777
    assert (dest / "victim").read_text() == "stays\n"
    assert (dest / ".wh.victim").read_bytes() == b"plain"
    with pytest.raises(LayerError, match="cannot overwrite directory"):
        _apply(dest, [entry("dir", "file", b"x")], no_overwrite_dir_non_dir=True)
    with pytest.raises(LayerError, match="cannot overwrite non-directory"):
        _apply(dest, [entry("victim", "dir")], no_overwrite_dir_non_dir=True)
    # without the option the same entries replace what is there, as in a layer
    _apply(dest, [entry("dir", "file", b"x")])
    assert (dest / "dir").read_bytes() == b"x"


def test_apply_changes():
    cfg = ContainerConfig(Env=["PATH=/bin", "A=old"], WorkingDir="/app")
    apply_changes(cfg, ['CMD ["echo", "hi"]', "ENTRYPOINT exec me",
                        "ENV A=new B=\"two words\"", "ENV C three four",
                        "LABEL x=1 y=\"a b\"", "EXPOSE 80 53/udp", "USER nobody",
                        "WORKDIR sub", "VOLUME /data", "STOPSIGNAL SIGINT\nLABEL z=2"])
    assert cfg.Cmd == ["echo", "hi"]
    assert cfg.Entrypoint == ["/bin/sh", "-c", "exec me"]
    assert cfg.Env == ["PATH=/bin", "A=new", "B=two words", "C=three four"]
    assert cfg.Labels == {"x": "1", "y": "a b", "z": "2"}
    assert cfg.ExposedPorts == {"80/tcp": {}, "53/udp": {}}
    assert (cfg.User, cfg.WorkingDir, cfg.StopSignal) == ("nobody", "/app/sub", "SIGINT")
    assert cfg.Volumes == {"/data": {}}
    with pytest.raises(InvalidArgument, match="RUN is not a valid change"):
        apply_changes(cfg, ["RUN rm -rf /"])


def test_snapshot_changes_native(tmp_path):
    sn = NativeSnapshotter(tmp_path / "sn")
    try:
        base = sn.prepare("base-active")[0].source
        for d in ("etc", "bin", "tmp", "proc"):
            os.mkdir(os.path.join(base, d))
        for f, data in (("etc/group", "root:x:0:\n"), ("bin/ls", "ls"), ("bin/sh", "sh")):
            with open(os.path.join(base, f), "w") as fh:
                fh.write(data)
        sn.commit("base", "base-active")
        top = sn.prepare("ctr", "base")[0].source
        with open(os.path.join(top, "etc/group"), "a") as fh:
            fh.write("more:x:1:\n")
        os.unlink(os.path.join(top, "bin/ls"))
        os.makedirs(os.path.join(top, "new/deep"))
        open(os.path.join(top, "etc/hostname"), "w").close()  # a runtime mountpoint
        ch = SnapshotChanges(types.SimpleNamespace(snapshotter=sn), "ctr",
                             {"etc/hostname", "proc"})
        got = [(c["Kind"], c["Path"]) for c in ch.list()]
        assert got == [(0, "/bin"), (2, "/bin/ls"), (0, "/etc"), (0, "/etc/group"),
                       (1, "/new"), (1, "/new/deep")]
    finally:
        sn.close()
