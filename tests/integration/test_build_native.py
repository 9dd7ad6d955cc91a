"""The builder as a library, without palletd: on the native (copying) snapshotter, whose
layers are tree diffs rather than overlay upperdirs, with pallet-runtime for RUN."""

from __future__ import annotations

import os
import shutil

import pytest
from daemon_support import VENV_BIN, busybox_layout, requirements

from pallet.build.builder import Builder, BuildOptions
from pallet.build.cache import BuildCache
from pallet.build.executor import Executor, Runtime
from pallet.images.service import ImageService


@pytest.fixture
def svc(tmp_path):
    why = requirements()
    if why:
        pytest.skip(why)
    s = ImageService(str(tmp_path / "root"), "native")
    s.import_(busybox_layout(), base_name="docker.io/library/busybox")
    yield s
    s.close()


def build(svc: ImageService, tmp_path, ctx, **opts) -> tuple[str, list[str]]:
    out: list[str] = []
    ex = Executor(svc, str(tmp_path / "work"), Runtime(
        "pallet-runtime", str(VENV_BIN / "pallet-runtime"), str(tmp_path / "rt")))
    cache = BuildCache(svc.root)
    ex.start()
    try:
        res = Builder(ex, cache).build(str(ctx), BuildOptions(**opts), out.append)
    finally:
        ex.release()
        cache.close()
    return res.image_id, out


def test_native_snapshotter_build(svc, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("from the context\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nCOPY a.txt /a.txt\n"
        "RUN rm /usr/bin/wc && echo made > /x && rm -rf /home && mkdir /home && "
        "touch /home/new\nCMD cat /x\n")
    image_id, out = build(svc, tmp_path, ctx, tags=["native:1"])
    assert "Successfully" not in "".join(out)  # the library leaves that to the endpoint
    assert svc.snapshotter_name == "native"
    r = svc.resolve("native:1")
    assert str(r.manifest.config.digest) == image_id
    assert len(r.layers) == 3  # busybox, COPY, RUN
    dest = tmp_path / "unpacked"
    svc.unpack_to_dir("native:1", str(dest))
    assert (dest / "a.txt").read_text() == "from the context\n"
    assert (dest / "x").read_text() == "made\n"
    assert not (dest / "usr" / "bin" / "wc").exists()          # a whiteout
    assert os.listdir(dest / "home") == ["new"]                  # an opaque directory
    assert not (dest / "etc" / "hosts").exists()                 # the step's own, not kept
    # the same build again: every step from the cache, the same image
    again, out = build(svc, tmp_path, ctx, tags=["native:2"])
    assert again == image_id and "".join(out).count("Using cache") == 3
    assert not os.listdir(tmp_path / "work")
    assert [i.name for i in svc.snapshotter.walk() if i.kind != "committed"] == []
    shutil.rmtree(dest)
