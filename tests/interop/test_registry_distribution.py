"""pallet's registry client against Debian's docker-registry (CNCF distribution 2.8): push,
pull back, chunked uploads, mounts, platforms, basic auth with `pallet login`, and a pull
that resumes with Range after the connection breaks mid-layer."""

import asyncio
import json
import os
import shutil
import subprocess
import sys

import bcrypt
import pytest

from pallet.images.service import ImageService
from pallet.oci.image import Platform
from pallet.registry.client.api import Options, pull, push
from pallet.registry.client.transport import RequestError
from pallet.registry.testing import BreakingProxy, docker_registry, docker_registry_binary
from pallet.testing import cli
from pallet.testing import images as timages
from pallet.testing.images import describe_tree

pytestmark = pytest.mark.skipif(docker_registry_binary() is None,
                                reason="docker-registry not installed (Debian package "
                                       "docker-registry)")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    return {"multi": timages.make_layout("multi", base / "multi"),
            "mp": timages.make_layout("multiplatform", base / "mp")}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with docker_registry(str(tmp_path_factory.mktemp("dr"))) as reg:
        yield reg


def service(path):
    return ImageService(str(path))


@pytest.fixture
def src(tmp_path, layouts, registry):
    svc = service(tmp_path / "src")
    svc.import_(str(layouts["multi"]), base_name=f"{registry.host}/pallet/multi")
    svc.import_(str(layouts["mp"]), base_name=f"{registry.host}/pallet/mp")
    yield svc
    svc.close()


PLAIN = Options(plain_http=True, hosts_dir="", backoff=0.01)


def test_push_and_pull_back(src, registry, tmp_path):
    name = f"{registry.host}/pallet/multi:latest"
    pushed = asyncio.run(push(src, name, opts=PLAIN))
    assert set(pushed.blobs.values()) == {"pushed"}
    again = asyncio.run(push(src, name, opts=PLAIN))
    assert set(again.blobs.values()) == {"exists"}
    # chunked, to another repository, no mounts: every byte goes again, in 64 KiB PATCHes
    asyncio.run(push(src, name, f"{registry.host}/pallet/chunked:v1", opts=PLAIN,
                     chunk_size=65536, mount=False))
    # a third party reads what pallet pushed
    info = json.loads(subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/pallet/chunked:v1"],
        capture_output=True, text=True, check=True).stdout) if shutil.which("skopeo") else None
    want = src.resolve(name)
    if info is not None:
        assert info["Digest"] == str(want.manifest_desc.digest)
        assert info["Layers"] == [str(x.digest) for x in want.layers]
    dst = service(tmp_path / "dst")
    try:
        got = asyncio.run(pull(dst, f"{registry.host}/pallet/chunked:v1", opts=PLAIN))
        assert got.target.digest == want.manifest_desc.digest
        r = dst.resolve(f"{registry.host}/pallet/chunked:v1")
        assert [x.digest for x in r.layers] == [x.digest for x in want.layers]
        dst.unpack_to_dir(f"{registry.host}/pallet/chunked:v1", str(tmp_path / "a"))
        src.unpack_to_dir(name, str(tmp_path / "b"))
        assert describe_tree(str(tmp_path / "a")) == describe_tree(str(tmp_path / "b"))
        # the pulled blobs remember their source: a push to another repository mounts them
        moved = asyncio.run(push(dst, f"{registry.host}/pallet/chunked:v1",
                                 f"{registry.host}/pallet/moved:v1", opts=PLAIN))
        assert set(moved.blobs.values()) == {"mounted"}
    finally:
        dst.close()


def test_platforms(src, registry, tmp_path):
    name = f"{registry.host}/pallet/mp:latest"
    asyncio.run(push(src, name, opts=PLAIN))
    index_digest = src.get(name).target.digest
    for plat in ("linux/arm64", "linux/amd64"):
        dst = service(tmp_path / plat.replace("/", "-"))
        try:
            got = asyncio.run(pull(dst, name, opts=PLAIN, platform=Platform.parse(plat)))
            assert got.target.digest == index_digest
            r = dst.resolve(name, Platform.parse(plat))
            assert r.config.architecture == plat.split("/")[1]
            # only that platform's layers came
            other = "linux/amd64" if plat == "linux/arm64" else "linux/arm64"
            with pytest.raises(Exception, match="not found"):
                dst.resolve(name, Platform.parse(other))
        finally:
            dst.close()
    # by digest: the index itself
    dst = service(tmp_path / "bydigest")
    try:
        got = asyncio.run(pull(dst, f"{registry.host}/pallet/mp@{index_digest}", opts=PLAIN,
                               all_platforms=True))
        assert got.target.digest == index_digest
        for plat in ("linux/arm64", "linux/amd64"):
            dst.resolve(got.name, Platform.parse(plat))
    finally:
        dst.close()


def test_missing(registry, tmp_path):
    dst = service(tmp_path / "dst")
    try:
        with pytest.raises(RequestError) as e:
            asyncio.run(pull(dst, f"{registry.host}/pallet/nothing:v1", opts=PLAIN))
        assert e.value.status == 404 and e.value.code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")
    finally:
        dst.close()


def test_resume_after_broken_connection(src, registry, tmp_path):
    name = f"{registry.host}/pallet/multi:latest"
    asyncio.run(push(src, name, opts=PLAIN))
    big = max(src.resolve(name).layers, key=lambda x: x.size)
    host, port = registry.host.split(":")
    with BreakingProxy((host, int(port)), match=f"/blobs/{big.digest}", after=300_000) as px:
        dst = service(tmp_path / "dst")
        try:
            proxied = f"127.0.0.1:{px.port}/pallet/multi:latest"
            got = asyncio.run(pull(dst, proxied, opts=PLAIN))
            assert dst.content.exists(big.digest)
            assert got.target.digest == src.resolve(name).manifest_desc.digest
        finally:
            dst.close()
    blob_gets = [r for r in px.requests if f"/blobs/{big.digest}" in r.split("\r\n")[0]]
    assert len(blob_gets) == 2
    # the second GET asks for the rest only: the headers the proxy let through are
    # < 300000 bytes, so the resumed offset is a little below that
    rng = [ln for ln in blob_gets[1].split("\r\n") if ln.lower().startswith("range:")]
    assert rng, blob_gets[1]
    offset = int(rng[0].split("=")[1].rstrip("-"))
    assert 250_000 < offset < 300_000


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    d = tmp_path_factory.mktemp("drauth")
    hp = d / "htpasswd"
    hp.write_text("carol:" + bcrypt.hashpw(b"pw123", bcrypt.gensalt(rounds=5)).decode() + "\n")
    with docker_registry(str(d), htpasswd=str(hp)) as reg:
        yield reg


def test_basic_auth_with_login(auth_registry, layouts, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    root = tmp_path / "root"
    name = f"{auth_registry.host}/private/app"

    def run(*args, ok=True, input=None):
        r = cli.run(["--root", root, *args], input=input)
        if ok:
            assert r.exit_code == 0, r
        return r

    run("image", "import", str(layouts["multi"]), "--name", name)
    r = run("push", "-q", "--plain-http", name, ok=False)
    assert r.exit_code != 0 and "401" in r.stderr
    r = run("login", "--plain-http", "-u", "carol", "--password-stdin", auth_registry.host,
            input="wrong\n", ok=False)
    assert r.exit_code != 0
    assert not (tmp_path / "docker" / "config.json").exists()
    out = run("login", "--plain-http", "-u", "carol", "--password-stdin", auth_registry.host,
              input="pw123\n").output
    assert "Login Succeeded" in out
    doc = json.loads((tmp_path / "docker" / "config.json").read_text())
    assert auth_registry.host in doc["auths"]
    run("push", "-q", "--plain-http", name)
    root = tmp_path / "root2"
    assert run("pull", "-q", "--plain-http", name).output.startswith(f"{name}:latest sha256:")
    run("logout", auth_registry.host)
    r = run("pull", "-q", "--plain-http", name, ok=False)
    assert r.exit_code != 0


def test_cli_subprocess(src, registry, tmp_path):
    """The installed entry point, as a user runs it, with progress bars on stderr."""
    name = f"{registry.host}/pallet/multi:latest"
    asyncio.run(push(src, name, opts=PLAIN))
    r = subprocess.run([sys.executable, "-m", "pallet.cli.pallet.main", "--root",
                        str(tmp_path / "cli"), "pull", "--plain-http", name],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "120"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [name, str(src.get(name).target.digest)]
    assert "done" in r.stderr  # a finished bar per blob
