"""containerd and the docker daemon pull from (and docker pushes to) `pallet registry` over
plain HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import pytest

from pallet.images.service import ImageService
from pallet.registry.client.api import Options, push
from pallet.registry.testing import pallet_registry
from pallet.testing import images as timages

from . import peers
from .peers import sh

pytestmark = pytest.mark.root


def need(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"{t} is not installed (Debian package)")


@pytest.fixture
def registry_with_image(tmp_path):
    layout = timages.make_layout("users", tmp_path / "layout")
    with pallet_registry(str(tmp_path / "reg")) as reg:
        svc = ImageService(str(tmp_path / "pallet"))
        try:
            svc.import_(str(layout), base_name=f"{reg.host}/peers/users")
            name = f"{reg.host}/peers/users:latest"
            asyncio.run(push(svc, name, opts=Options(plain_http=True, hosts_dir="")))
            yield reg, name, svc.resolve(name)
        finally:
            svc.close()


def test_containerd_pulls_plain_http(tmp_path, registry_with_image):
    need("containerd", "ctr")
    _, name, want = registry_with_image
    base = tmp_path / "ctd"
    base.mkdir()
    with peers.containerd(base) as ctr:
        sh(*ctr, "images", "pull", "--plain-http", name)
        listed = sh(*ctr, "images", "ls").stdout
        assert name in listed and str(want.manifest_desc.digest) in listed
        # The unpacked image runs: its user comes from the image config.
        out = sh(*ctr, "run", "--rm", name, "peer-run", "id", "-un").stdout.strip()
        assert out == "app"


def test_docker_pulls_and_pushes(tmp_path, registry_with_image):
    need("dockerd", "docker")
    reg, name, want = registry_with_image
    base = tmp_path / "dk"
    base.mkdir()
    # dockerd speaks plain HTTP to registries on 127.0.0.0/8 without being told.
    with peers.dockerd(base) as env:
        sh("docker", "pull", name, env=env)
        info = json.loads(sh("docker", "image", "inspect", name, env=env).stdout)[0]
        assert info["Config"]["User"] == "app"
        assert info["RootFS"]["Layers"] == [str(d) for d in want.diff_ids]
        again = f"{reg.host}/peers/again:v2"
        sh("docker", "tag", name, again, env=env)
        sh("docker", "push", again, env=env)
        tags = sh("curl", "-sf", f"{reg.url}/v2/peers/again/tags/list").stdout
        assert json.loads(tags)["tags"] == ["v2"]
