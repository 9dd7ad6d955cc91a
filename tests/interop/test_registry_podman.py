"""podman (Debian's) pulls from and pushes to `pallet registry` over plain http
(`--tls-verify=false`), with its own throwaway storage (vfs, so no mounts are needed)."""

import asyncio
import json
import shutil
import subprocess
import tempfile

import pytest

from pallet.images.service import ImageService
from pallet.registry.client.api import Options, pull, push
from pallet.registry.testing import pallet_registry
from pallet.testing import images as timages

pytestmark = pytest.mark.skipif(shutil.which("podman") is None,
                                reason="podman not installed (Debian package podman)")


@pytest.fixture
def runroot():
    # podman refuses a runroot longer than 50 characters: pytest's tmp_path is longer
    d = tempfile.mkdtemp(prefix="pallet-pm-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def podman(tmp, runroot, *args):
    r = subprocess.run(["podman", "--root", str(tmp / "root"), "--runroot", runroot,
                        "--storage-driver", "vfs", "--events-backend", "none", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"podman {' '.join(args)}: {r.stderr}"
    return r.stdout


def test_podman_pull_and_push(tmp_path, runroot):
    layout = timages.make_layout("users", tmp_path / "layout")
    with pallet_registry(str(tmp_path / "reg")) as reg:
        svc = ImageService(str(tmp_path / "pallet"))
        try:
            svc.import_(str(layout), base_name=f"{reg.host}/pod/users")
            name = f"{reg.host}/pod/users:latest"
            asyncio.run(push(svc, name, opts=Options(plain_http=True, hosts_dir="")))
            want = svc.resolve(name)
            out = podman(tmp_path, runroot, "pull", "--tls-verify=false", name)
            # podman names the image by its config digest
            assert out.strip().splitlines()[-1] == want.manifest.config.digest.encoded
            info = json.loads(podman(tmp_path, runroot, "image", "inspect", name))[0]
            assert info["Config"]["User"] == "app"
            assert info["RootFS"]["Layers"] == [str(d) for d in want.diff_ids]
            podman(tmp_path, runroot, "push", "--tls-verify=false", name,
                   f"{reg.host}/pod/again:v1")
            back = asyncio.run(pull(svc, f"{reg.host}/pod/again:v1",
                                    opts=Options(plain_http=True, hosts_dir="")))
            got = svc.resolve(back.name)
            # podman may recompress, but the image is the same: same config, same diff_ids
            assert got.manifest.config.digest == want.manifest.config.digest
            assert got.diff_ids == want.diff_ids
        finally:
            svc.close()
