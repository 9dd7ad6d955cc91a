"""`pallet image ...` through `main`, on a temporary root."""

import json

import pytest

from pallet.testing import cli
from pallet.testing import images as timages


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return timages.make_layout("users", tmp_path_factory.mktemp("l") / "users")


def run(root, *args, ok=True):
    r = cli.run(["--root", root, *args])
    if ok:
        assert r.exit_code == 0, r
    return r


def test_image_verbs(layout, tmp_path):
    root = tmp_path / "root"
    out = run(root, "image", "import", str(layout), "--name", "app").output
    assert out.startswith("docker.io/library/app:latest sha256:")
    run(root, "image", "tag", "app", "localhost:5000/app:v2")
    assert run(root, "image", "ls", "-q").output.split() == [
        "docker.io/library/app:latest", "localhost:5000/app:v2"]
    table = run(root, "image", "ls").output
    assert "REPOSITORY" in table and "localhost:5000/app" in table and "v2" in table
    doc = json.loads(run(root, "image", "inspect", "app").output)
    assert doc[0]["Config"]["config"]["User"] == "app"
    run(root, "image", "unpack", "app", str(tmp_path / "rootfs"))
    assert (tmp_path / "rootfs/bin/busybox").exists()
    chain = run(root, "image", "unpack", "app").output.strip()
    assert chain == doc[0]["ChainID"]
    run(root, "image", "bundle", "app", str(tmp_path / "b"), "whoami")
    cfg = json.loads((tmp_path / "b/config.json").read_text())
    assert cfg["process"]["args"] == ["/bin/sh", "-c", "whoami"]
    run(root, "image", "export", "app", "-o", str(tmp_path / "save.tar"),
        "--format", "docker-archive")
    assert (tmp_path / "save.tar").stat().st_size > 100_000
    assert run(root, "image", "rm", "app").output.strip() == \
        "Untagged: docker.io/library/app:latest"
    assert run(root, "image", "ls", "-q").output.split() == ["localhost:5000/app:v2"]


def test_errors_exit_nonzero(tmp_path):
    from pallet.cli.pallet.main import main

    with pytest.raises(SystemExit) as ei:
        main(["--root", str(tmp_path), "image", "inspect", "missing"])
    assert ei.value.code == 1
    with pytest.raises(SystemExit) as ei:
        main(["--root", str(tmp_path), "image", "unpack", "x", "--platform", "linux"])
    assert ei.value.code == 2
    with pytest.raises(SystemExit) as ei:
        main(["--root", str(tmp_path), "image", "import", str(tmp_path / "nothing")])
    assert ei.value.code == 1
