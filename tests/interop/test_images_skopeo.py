"""pallet's image layer against skopeo (Debian's): what pallet exports skopeo reads, what
skopeo writes pallet imports and unpacks to the same tree."""

import json
import os
import shutil
import subprocess

import pytest

from pallet.images.service import ImageService
from pallet.oci import mediatypes as mt
from pallet.oci.image import Platform
from pallet.testing import images as timages
from pallet.testing.images import describe_tree

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None,
                                reason="skopeo not installed (Debian package skopeo)")


def skopeo(*args: str) -> str:
    r = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, f"skopeo {' '.join(args)}: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    return {
        "multi": timages.make_layout("multi", base / "multi"),
        "multi-zstd": timages.make_layout("multi", base / "multi-zstd", compression=mt.ZSTD),
        "users": timages.make_layout("users", base / "users"),
        "mp": timages.make_layout("multiplatform", base / "mp"),
    }


@pytest.fixture
def svc(tmp_path):
    s = ImageService(str(tmp_path / "root"))
    yield s
    s.close()


@pytest.mark.parametrize("fmt", ["oci", "oci-archive"])
def test_skopeo_inspects_pallet_export(layouts, svc, tmp_path, fmt):
    svc.import_(str(layouts["users"]), base_name="users")
    dest = tmp_path / ("out" if fmt == "oci" else "out.tar")
    svc.export(["users"], str(dest), fmt=fmt)
    info = json.loads(skopeo("inspect", f"{fmt}:{dest}:latest"))
    r = svc.resolve("users")
    assert info["Digest"] == str(r.manifest_desc.digest)
    assert info["Layers"] == [str(x.digest) for x in r.layers]
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert info["Labels"]["org.example.role"] == "test"
    cfg = json.loads(skopeo("inspect", "--config", f"{fmt}:{dest}:latest"))
    assert cfg["rootfs"]["diff_ids"] == [str(d) for d in r.diff_ids]
    assert cfg["config"]["User"] == "app"


def test_skopeo_copies_pallet_export_to_dir(layouts, svc, tmp_path):
    svc.import_(str(layouts["multi-zstd"]), base_name="m")
    svc.export(["m"], str(tmp_path / "out"))
    skopeo("copy", f"oci:{tmp_path / 'out'}:latest", f"dir:{tmp_path / 'dir'}")
    manifest = json.loads((tmp_path / "dir/manifest.json").read_text())
    r = svc.resolve("m")
    assert [x["digest"] for x in manifest["layers"]] == [str(x.digest) for x in r.layers]
    assert [x["mediaType"] for x in manifest["layers"]] == [mt.IMAGE_LAYER_ZSTD] * 3
    for x in r.layers:  # skopeo verified and wrote every blob
        with open(tmp_path / "dir" / x.digest.encoded, "rb") as f, \
                svc.content.reader(x.digest) as g:
            assert f.read() == g.read()


def test_skopeo_reads_pallet_docker_archive(layouts, svc, tmp_path):
    svc.import_(str(layouts["multi"]), base_name="me/app")
    out = tmp_path / "save.tar"
    svc.export(["me/app"], str(out), fmt="docker-archive")
    # skopeo finds the image by the name in RepoTags, and by no other
    info = json.loads(skopeo("inspect", f"docker-archive:{out}:me/app:latest"))
    assert info["Digest"].startswith("sha256:")
    r = subprocess.run(["skopeo", "inspect", f"docker-archive:{out}:me/other:latest"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    cfg = json.loads(skopeo("inspect", "--config", f"docker-archive:{out}"))
    assert cfg["rootfs"]["diff_ids"] == [str(d) for d in svc.resolve("me/app").diff_ids]
    # and skopeo can turn it into a layout pallet reads back to the same tree
    skopeo("copy", f"docker-archive:{out}", f"oci:{tmp_path / 'back'}:latest")
    svc.import_(str(tmp_path / "back"), base_name="back")
    svc.unpack_to_dir("me/app", str(tmp_path / "a"))
    svc.unpack_to_dir("back", str(tmp_path / "b"))
    assert describe_tree(str(tmp_path / "a")) == describe_tree(str(tmp_path / "b"))


@pytest.mark.parametrize("src", ["multi", "multi-zstd", "users"])
def test_pallet_imports_skopeo_oci_copy(layouts, svc, tmp_path, src):
    dst = tmp_path / "copied"
    skopeo("copy", f"oci:{layouts[src]}:latest", f"oci:{dst}:v1")
    got = svc.import_(str(dst), base_name="copied")
    assert [i.name for i in got] == ["docker.io/library/copied:v1"]
    svc.import_(str(layouts[src]), base_name="orig")
    svc.unpack_to_dir("copied:v1", str(tmp_path / "a"))
    svc.unpack_to_dir("orig", str(tmp_path / "b"))
    assert describe_tree(str(tmp_path / "a"), mtimes=True) == \
        describe_tree(str(tmp_path / "b"), mtimes=True)


def test_pallet_imports_skopeo_docker_archive(layouts, svc, tmp_path):
    out = tmp_path / "skopeo.tar"
    skopeo("copy", f"oci:{layouts['multi']}:latest", f"docker-archive:{out}:busybox:1.0")
    got = svc.import_(str(out))
    assert [i.name for i in got] == ["docker.io/library/busybox:1.0"]
    svc.unpack_to_dir("busybox:1.0", str(tmp_path / "a"))
    svc.import_(str(layouts["multi"]), base_name="orig")
    svc.unpack_to_dir("orig", str(tmp_path / "b"))
    assert describe_tree(str(tmp_path / "a")) == describe_tree(str(tmp_path / "b"))
    # a docker archive's config is the same config, byte for byte
    assert svc.resolve("busybox:1.0").manifest.config.digest == \
        svc.resolve("orig").manifest.config.digest


def test_multi_platform_through_skopeo(layouts, svc, tmp_path):
    skopeo("copy", "--all", f"oci:{layouts['mp']}:latest", f"oci:{tmp_path / 'mp'}:latest")
    svc.import_(str(tmp_path / "mp"), base_name="mp")
    svc.unpack_to_dir("mp", str(tmp_path / "arm"), Platform("linux", "arm64"))
    assert (tmp_path / "arm/etc/platform").read_text() == "linux/arm64"
    svc.export(["mp"], str(tmp_path / "out"))
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{tmp_path / 'out'}:latest"))
    assert raw["mediaType"] == mt.IMAGE_INDEX
    assert sorted(m["platform"]["architecture"] for m in raw["manifests"]) == ["amd64",
                                                                               "arm64"]
    assert os.path.exists(tmp_path / "out/index.json")
