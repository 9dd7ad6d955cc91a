"""Layer apply: file types and attributes, whiteouts, and the safety rules."""

import io
import os
import stat

import pytest

from pallet.images.apply import ApplyOptions, LayerError, LayerMismatch, apply_layer
from pallet.oci import digest
from pallet.oci import mediatypes as mt
from pallet.testing.images import describe_tree, entry, layer

is_root = os.geteuid() == 0


def apply(target, entries, how=mt.UNCOMPRESSED, **kw):
    blob, desc, diff_id = layer(entries, how)
    return apply_layer(io.BytesIO(blob), str(target), desc=desc, diff_id=diff_id, **kw)


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "rootfs"
    r.mkdir()
    return r


@pytest.fixture
def outside(tmp_path):
    o = tmp_path / "outside"
    o.mkdir()
    (o / "victim").write_text("original")
    return o


@pytest.mark.parametrize("how", [mt.UNCOMPRESSED, mt.GZIP, mt.ZSTD])
def test_file_types_and_attributes(root, how):
    res = apply(root, [
        entry("etc/", "dir", mode=0o750, uid=1, gid=2),
        entry("etc/conf", "file", b"hello", mode=0o640, uid=1000, gid=100,
              pax={"mtime": "1600000000.123456789", "SCHILY.xattr.user.k": "v"}),
        entry("bin/tool", "file", b"#!", mode=0o4755),
        entry("bin/alias", "hardlink", link="bin/tool"),
        entry("lnk", "symlink", link="/etc/conf"),
        entry("pipe", "fifo", mode=0o600),
    ], how)
    assert res.compression == how
    conf = root / "etc/conf"
    st = conf.stat()
    assert conf.read_bytes() == b"hello"
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime_ns == 1600000000_123456789
    assert os.getxattr(conf, "user.k") == b"v"
    assert stat.S_IMODE((root / "etc").stat().st_mode) == 0o750
    assert stat.S_IMODE((root / "bin/tool").stat().st_mode) == 0o4755
    assert (root / "bin/alias").stat().st_ino == (root / "bin/tool").stat().st_ino
    assert os.readlink(root / "lnk") == "/etc/conf"
    assert stat.S_ISFIFO((root / "pipe").lstat().st_mode)
    if is_root:
        assert (st.st_uid, st.st_gid) == (1000, 100)
        assert ((root / "etc").stat().st_uid, (root / "etc").stat().st_gid) == (1, 2)


@pytest.mark.root
@pytest.mark.skipif(not is_root, reason="device nodes need root")
def test_devices(root):
    apply(root, [entry("dev/null", "char", mode=0o666, dev=(1, 3)),
                 entry("dev/loop0", "block", mode=0o660, dev=(7, 0))])
    st = (root / "dev/null").lstat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_ISBLK((root / "dev/loop0").lstat().st_mode)


def test_directory_mtime_survives_children(root):
    apply(root, [entry("d/", "dir", mtime=1000), entry("d/f", "file", b"x", mtime=2000)])
    assert (root / "d").stat().st_mtime == 1000
    # a later layer adding to d keeps d's mtime (as umoci and tar do)
    apply(root, [entry("d/g", "file", b"y")])
    assert (root / "d").stat().st_mtime == 1000


def test_whiteouts_and_opaque(root):
    apply(root, [
        entry("a/", "dir"), entry("a/b", "file", b"b"), entry("a/c", "file", b"c"),
        entry("d/", "dir"), entry("d/old", "file", b"old"), entry("d/sub/", "dir"),
        entry("d/sub/deep", "file", b"deep"), entry("gone/", "dir"), entry("gone/x", "file"),
    ])
    apply(root, [
        entry("a/.wh.b", "file"),
        entry(".wh.gone", "file"),
        entry("d/", "dir"),
        entry("d/new", "file", b"new"),       # before the marker: this layer's, kept
        entry("d/.wh..wh..opq", "file"),
        entry("d/later", "file", b"later"),
    ])
    assert sorted(os.listdir(root / "a")) == ["c"]
    assert not (root / "gone").exists()
    assert sorted(os.listdir(root / "d")) == ["later", "new"]
    # no whiteout file is ever materialised in a full tree
    assert not any(n.startswith(".wh.") for _, _, fs in os.walk(root) for n in fs)


def test_whiteout_does_not_hide_same_layer_entry(root):
    apply(root, [entry("keep", "file", b"k"), entry(".wh.keep", "file")])
    assert (root / "keep").read_bytes() == b"k"


def test_replacing_types(root):
    apply(root, [entry("x/", "dir"), entry("x/inner", "file"), entry("y", "file", b"y")])
    apply(root, [entry("x", "file", b"now a file"), entry("y/", "dir")])
    assert (root / "x").read_bytes() == b"now a file"
    assert (root / "y").is_dir()


# --- safety -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "./../evil"])
def test_dotdot_refused(root, outside, name):
    with pytest.raises(LayerError, match="escape"):
        apply(root, [entry(name, "file", b"pwned")])
    assert not (root.parent / "evil").exists()
    assert not (outside.parent / "evil").exists()


def test_absolute_names_land_inside(root, outside):
    apply(root, [entry(str(outside / "victim"), "file", b"pwned")])
    assert (outside / "victim").read_text() == "original"
    assert (root / str(outside).lstrip("/") / "victim").read_bytes() == b"pwned"


@pytest.mark.parametrize("link", ["abs", "rel"])
def test_symlink_from_earlier_layer_is_not_written_through(root, outside, link):
    target = str(outside) if link == "abs" else "../" * 20 + str(outside).lstrip("/")
    apply(root, [entry("escape", "symlink", link=target)])
    apply(root, [entry("escape/victim", "file", b"pwned"), entry("escape/new", "file", b"n")])
    assert (outside / "victim").read_text() == "original"
    assert not (outside / "new").exists()
    # it was resolved inside the root instead, as if the root were /
    inside = root / str(outside).lstrip("/")
    assert (inside / "victim").read_bytes() == b"pwned"


def test_symlink_in_same_layer_is_not_written_through(root, outside):
    apply(root, [entry("s", "symlink", link=str(outside)), entry("s/victim", "file", b"p")])
    assert (outside / "victim").read_text() == "original"


def test_final_symlink_is_replaced_not_followed(root, outside):
    apply(root, [entry("f", "symlink", link=str(outside / "victim"))])
    apply(root, [entry("f", "file", b"pwned")])
    assert (outside / "victim").read_text() == "original"
    assert (root / "f").read_bytes() == b"pwned" and not (root / "f").is_symlink()


def test_whiteout_through_symlink_stays_inside(root, outside):
    apply(root, [entry("s", "symlink", link=str(outside))])
    apply(root, [entry("s/.wh.victim", "file")])
    assert (outside / "victim").exists()


def test_hardlink_outside_refused(root, outside):
    with pytest.raises(LayerError, match="escape"):
        apply(root, [entry("h", "hardlink", link="../outside/victim")])
    # an absolute target means the root's path, which does not exist there
    with pytest.raises(LayerError, match="does not exist"):
        apply(root, [entry("h", "hardlink", link=str(outside / "victim"))])
    # nor through a planted symlink
    apply(root, [entry("s", "symlink", link=str(outside))])
    with pytest.raises(LayerError, match="does not exist"):
        apply(root, [entry("h", "hardlink", link="s/victim")])
    assert os.stat(outside / "victim").st_nlink == 1


def test_hardlink_to_symlink_links_the_symlink(root, outside):
    apply(root, [entry("s", "symlink", link=str(outside / "victim")),
                 entry("h", "hardlink", link="s")])
    assert os.readlink(root / "h") == str(outside / "victim")
    assert os.stat(outside / "victim").st_nlink == 1


def test_overlay_xattrs_from_layer_are_dropped(root):
    res = apply(root, [entry("d/", "dir", pax={"SCHILY.xattr.trusted.overlay.opaque": "y"})])
    with pytest.raises(OSError):
        os.getxattr(root / "d", "trusted.overlay.opaque")
    assert any("trusted.overlay.opaque" in s for s in res.skipped)


# --- verification -------------------------------------------------------------------------

def test_digest_mismatch(root):
    blob, desc, diff_id = layer([entry("f", "file", b"x")], mt.GZIP)
    desc.digest = digest.from_bytes(b"something else")
    with pytest.raises(LayerMismatch, match="content digest"):
        apply_layer(io.BytesIO(blob), str(root), desc=desc, diff_id=diff_id)


def test_size_mismatch_stops_early(root):
    blob, desc, _ = layer([entry("f", "file", b"x" * 100000)])
    desc.size = 1000
    with pytest.raises(LayerMismatch, match="more data than its size"):
        apply_layer(io.BytesIO(blob), str(root), desc=desc)
    desc.size = len(blob) + 1
    with pytest.raises(LayerMismatch, match="size"):
        apply_layer(io.BytesIO(blob), str(root), desc=desc)


def test_diff_id_mismatch(root):
    blob, desc, _ = layer([entry("f", "file", b"x")], mt.ZSTD)
    with pytest.raises(LayerMismatch, match="diffID"):
        apply_layer(io.BytesIO(blob), str(root), desc=desc,
                    diff_id=digest.from_bytes(b"not the tar"))


def test_media_type_must_match_data(root):
    blob, desc, _ = layer([entry("f", "file")], mt.GZIP)
    desc.media_type = mt.IMAGE_LAYER_ZSTD
    with pytest.raises(Exception, match="says zstd but the data is gzip"):
        apply_layer(io.BytesIO(blob), str(root), desc=desc)


@pytest.mark.parametrize("how", [mt.UNCOMPRESSED, mt.GZIP, mt.ZSTD])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.99])
def test_truncated_layer(root, how, fraction):
    blob, desc, _ = layer([entry("f", "file", os.urandom(50000))], how)
    with pytest.raises((LayerError, LayerMismatch)):
        apply_layer(io.BytesIO(blob[: int(len(blob) * fraction)]), str(root), desc=desc)


def test_unprivileged_options_skip_devices(root):
    res = apply(root, [entry("dev/null", "char", dev=(1, 3)), entry("f", "file")],
                options=ApplyOptions(chown=False, devices=False))
    assert not (root / "dev/null").exists()
    assert res.skipped == ["/dev/null: device node"]


def test_describe_tree_sees_differences(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for r in (a, b):
        r.mkdir()
        apply(r, [entry("f", "file", b"1"), entry("g", "hardlink", link="f")])
    assert describe_tree(str(a)) == describe_tree(str(b))
    os.chmod(b / "f", 0o600)
    assert describe_tree(str(a)) != describe_tree(str(b))
