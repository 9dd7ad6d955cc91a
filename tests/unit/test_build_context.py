"""The build context: unpacking a client's tar, finding COPY sources, writing into a rootfs
(no daemon; ownership is only applied as root)."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from pallet.build.context import Context, copy_into, extract_tar, is_archive, make_tar
from pallet.errors import InvalidArgument, NotFound


def tar_of(*entries: tuple[str, dict]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kw in entries:
            data = kw.pop("data", b"")
            ti = tarfile.TarInfo(name)
            for k, v in kw.items():
                setattr(ti, k, v)
            if ti.type == tarfile.REGTYPE:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    return buf


def files_below(path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), path)
                  for d, dirs, fs in os.walk(path) for f in fs + dirs)


def test_extract_keeps_hostile_entries_inside(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    src = tar_of(("../outside/dotdot", {"data": b"x"}),
                 ("abs", {"type": tarfile.SYMTYPE, "linkname": str(outside)}),
                 ("abs/through", {"data": b"x"}),
                 ("rel", {"type": tarfile.SYMTYPE, "linkname": "../outside"}),
                 ("rel/through", {"data": b"x"}),
                 ("dir/", {"type": tarfile.DIRTYPE, "mode": 0o750}),
                 ("dir/f", {"data": b"hello", "mode": 0o640, "mtime": 1234567}))
    extract_tar(src, str(root))
    assert list(outside.iterdir()) == []
    assert (root / "outside" / "dotdot").read_bytes() == b"x"   # `..` stops at the root
    assert (root / str(outside).lstrip("/") / "through").exists()
    assert os.readlink(root / "abs") == str(outside)            # symlinks stay as data
    assert (root / "dir" / "f").read_bytes() == b"hello"
    st = os.stat(root / "dir" / "f")
    assert (st.st_mode & 0o777, int(st.st_mtime)) == (0o640, 1234567)
    assert os.stat(root / "dir").st_mode & 0o777 == 0o750


def test_extract_refuses_hard_links_out_and_bad_tars(tmp_path):
    with pytest.raises(InvalidArgument, match="hard link target"):
        extract_tar(tar_of(("h", {"type": tarfile.LNKTYPE,
                                  "linkname": "../../../etc/hostname"})), str(tmp_path))
    with pytest.raises(InvalidArgument):
        extract_tar(io.BytesIO(b"not a tar at all" * 100), str(tmp_path))
    extract_tar(tar_of(("a", {"data": b"1"}), ("b", {"type": tarfile.LNKTYPE,
                                                      "linkname": "a"})), str(tmp_path))
    assert os.stat(tmp_path / "a").st_ino == os.stat(tmp_path / "b").st_ino


def test_extract_takes_a_tar_without_end_blocks_but_not_a_cut_file(tmp_path):
    whole = tar_of(("a", {"data": b"1" * 10}), ("b", {"data": b"2" * 47})).getvalue()
    # what the docker CLI sends for `-f -`: the last file's data, then nothing
    cut = whole[:512 * 3 + 47]
    assert extract_tar(io.BytesIO(cut), str(tmp_path / "x")) == 2
    assert (tmp_path / "x" / "b").read_bytes() == b"2" * 47
    with pytest.raises(InvalidArgument, match="invalid tar archive"):
        extract_tar(io.BytesIO(whole[:512 * 3 + 20]), str(tmp_path / "y"))


def make_ctx(tmp_path) -> Context:
    root = tmp_path / "ctx"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("a")
    (root / "sub" / "deep" / "b.txt").write_text("b")
    (root / "top.txt").write_text("t")
    (root / "secret.key").write_text("s")
    (root / ".dockerignore").write_text("*.key\n")
    (root / "Dockerfile").write_text("FROM x\n")
    os.symlink("sub/a.txt", root / "inside")
    os.symlink("../outside", root / "up")
    os.symlink("/etc/passwd", root / "abs")
    return Context.with_dockerignore(str(root))


def test_sources(tmp_path):
    ctx = make_ctx(tmp_path)
    assert ctx.sources("top.txt", "COPY") == [("top.txt", f"{ctx.root}/top.txt", "top.txt")]
    assert ctx.sources("./sub/../top.txt", "COPY")[0].rel == "top.txt"
    # a symlink is followed, and keeps its own name in a destination directory
    assert ctx.sources("inside", "COPY") == [("sub/a.txt", f"{ctx.root}/sub/a.txt", "inside")]
    assert ctx.sources(".", "COPY") == [("", ctx.root, "")]
    assert [x.rel for x in ctx.sources("sub/*.txt", "COPY")] == ["sub/a.txt"]
    assert [x.rel for x in ctx.sources("*", "COPY")] == [
        ".dockerignore", "Dockerfile", "abs", "inside", "sub", "top.txt", "up"]
    for bad in ("../x", "up", "abs", "sub/../../x"):
        with pytest.raises(InvalidArgument, match="outside the build context"):
            ctx.sources(bad, "COPY")
    with pytest.raises(NotFound, match="file not found in build context or excluded"):
        ctx.sources("nope", "COPY")
    with pytest.raises(NotFound, match=r"excluded by \.dockerignore"):
        ctx.sources("secret.key", "COPY")
    with pytest.raises(NotFound, match="no source files"):
        ctx.sources("*.none", "COPY")


def test_digest_follows_content(tmp_path):
    ctx = make_ctx(tmp_path)
    src = ctx.sources("sub", "COPY")
    before = ctx.digest(src)
    assert ctx.digest(src) == before
    (tmp_path / "ctx" / "sub" / "deep" / "b.txt").write_text("changed")
    assert ctx.digest(src) != before


def test_copy_into_a_rootfs_with_hostile_symlinks(tmp_path):
    ctx = make_ctx(tmp_path)
    rootfs, host = tmp_path / "rootfs", tmp_path / "host"
    rootfs.mkdir()
    host.mkdir()
    os.symlink(str(host), rootfs / "target")          # an image's absolute symlink
    os.symlink("../../host", rootfs / "rel")          # and a relative one climbing out
    for dest in ("/target/x.txt", "/rel/y.txt"):
        (rel, src, _), = ctx.sources("top.txt", "COPY")
        copy_into(ctx, rel, src, str(rootfs), dest, None)
    (rel, src, _), = ctx.sources("sub", "COPY")
    copy_into(ctx, rel, src, str(rootfs), "/target/tree", None)
    assert list(host.iterdir()) == []
    assert (rootfs / str(host).lstrip("/") / "x.txt").read_text() == "t"
    assert (rootfs / "host" / "y.txt").read_text() == "t"
    assert files_below(rootfs / str(host).lstrip("/") / "tree") == [
        "a.txt", "deep", "deep/b.txt"]


def test_make_tar_and_archives(tmp_path):
    ctx = make_ctx(tmp_path)
    (tmp_path / "ctx" / ".dockerignore").write_text("*.key\nDockerfile\n")
    buf = io.BytesIO()
    make_tar(ctx.root, "Dockerfile", buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        names = sorted(tf.getnames())
    # the Dockerfile and .dockerignore always travel; what .dockerignore names does not
    assert names == [".dockerignore", "Dockerfile", "abs", "inside", "sub", "sub/a.txt",
                     "sub/deep", "sub/deep/b.txt", "top.txt", "up"]
    # ...but COPY does not see an excluded Dockerfile (docker's removeDockerfile)
    daemon_view = Context.with_dockerignore(ctx.root)
    assert daemon_view.excluded("Dockerfile") and not ctx.excluded("Dockerfile")
    (tmp_path / "a.tgz").write_bytes(b"")
    assert not is_archive(str(tmp_path / "a.tgz"))
    with tarfile.open(tmp_path / "b.tgz", "w:gz") as tf:
        tf.add(tmp_path / "ctx" / "top.txt", "top.txt")
    assert is_archive(str(tmp_path / "b.tgz"))
    assert not is_archive(str(tmp_path / "ctx" / "top.txt"))
