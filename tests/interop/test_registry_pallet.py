"""pallet's client against `pallet registry serve` (a subprocess, as users run it): push
and pull back, the Docker token flow with per-repository scopes, anonymous tokens, TLS,
mirrors from hosts.toml, resume through a breaking connection, and `pallet registry gc`."""

import asyncio
import os
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from pallet.images.service import ImageService
from pallet.oci.image import Platform
from pallet.registry.client.api import Options, pull, push
from pallet.registry.client.credentials import Credentials
from pallet.registry.client.transport import RequestError
from pallet.registry.testing import (
    BreakingProxy,
    free_port,
    pallet_registry,
    self_signed,
    write_htpasswd,
)
from pallet.testing import images as timages


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    return {"multi": timages.make_layout("multi", base / "multi"),
            "mp": timages.make_layout("multiplatform", base / "mp")}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with pallet_registry(str(tmp_path_factory.mktemp("reg"))) as reg:
        yield reg


@pytest.fixture
def svc(tmp_path):
    s = ImageService(str(tmp_path / "src"))
    yield s
    s.close()


PLAIN = Options(plain_http=True, hosts_dir="", backoff=0.01)


def test_push_pull_round_trip(registry, layouts, svc, tmp_path):
    svc.import_(str(layouts["mp"]), base_name=f"{registry.host}/own/mp")
    name = f"{registry.host}/own/mp:latest"
    pushed = asyncio.run(push(svc, name, opts=PLAIN, chunk_size=100_000, mount=False))
    assert set(pushed.blobs.values()) == {"pushed"} and len(pushed.blobs) == 4
    dst = ImageService(str(tmp_path / "dst"))
    try:
        got = asyncio.run(pull(dst, name, opts=PLAIN, all_platforms=True))
        assert got.target.digest == svc.get(name).target.digest
        for plat in ("linux/amd64", "linux/arm64"):
            a = dst.resolve(name, Platform.parse(plat))
            b = svc.resolve(name, Platform.parse(plat))
            assert a.manifest_desc.digest == b.manifest_desc.digest
            for layer in a.layers:
                assert dst.content.read_blob(layer.digest) == svc.content.read_blob(layer.digest)
    finally:
        dst.close()


def test_resume_through_broken_connection(registry, layouts, svc, tmp_path):
    svc.import_(str(layouts["multi"]), base_name=f"{registry.host}/own/multi")
    name = f"{registry.host}/own/multi:latest"
    asyncio.run(push(svc, name, opts=PLAIN))
    big = max(svc.resolve(name).layers, key=lambda x: x.size)
    host, port = registry.host.split(":")
    # two breaks in a row: the client backs off and resumes twice
    with BreakingProxy((host, int(port)), match=f"/blobs/{big.digest}", after=200_000,
                       breaks=2) as px:
        dst = ImageService(str(tmp_path / "dst"))
        try:
            asyncio.run(pull(dst, f"127.0.0.1:{px.port}/own/multi:latest", opts=PLAIN))
            assert dst.content.exists(big.digest)
        finally:
            dst.close()
    gets = [r for r in px.requests if f"/blobs/{big.digest}" in r.split("\r\n")[0]]
    ranges = [ln for r in gets for ln in r.split("\r\n") if ln.lower().startswith("range:")]
    assert len(gets) == 3 and len(ranges) == 2
    offsets = [int(x.split("=")[1].rstrip("-")) for x in ranges]
    assert 0 < offsets[0] < offsets[1]


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    d = tmp_path_factory.mktemp("tokreg")
    hp = d / "htpasswd"
    write_htpasswd(hp, {"alice": "a-pw", "bob": "b-pw"})
    cfg = d / "registry.toml"
    cfg.write_text(textwrap.dedent(f"""
        [auth]
        type = "token"
        htpasswd = "{hp}"
        [[auth.token.access]]
        account = "alice"
        name = "*"
        actions = ["pull", "push"]
        [[auth.token.access]]
        account = "bob"
        name = "*"
        actions = ["pull"]
        [[auth.token.access]]
        account = ""
        name = "public/*"
        actions = ["pull"]
    """))
    with pallet_registry(str(d), "--config", str(cfg)) as reg:
        yield reg


def test_token_flow(token_registry, layouts, svc, tmp_path):
    host = token_registry.host
    svc.import_(str(layouts["multi"]), base_name=f"{host}/team/app")
    svc.tag(f"{host}/team/app", f"{host}/public/app")
    alice = Options(plain_http=True, hosts_dir="", credentials=Credentials("alice", "a-pw"))
    bob = Options(plain_http=True, hosts_dir="", credentials=Credentials("bob", "b-pw"))
    anon = Options(plain_http=True, hosts_dir="", docker_config=str(tmp_path / "nodocker"))
    wrong = Options(plain_http=True, hosts_dir="", credentials=Credentials("alice", "nope"))
    for opts, status in ((anon, 401), (bob, 401), (wrong, 401)):
        with pytest.raises(RequestError) as e:
            asyncio.run(push(svc, f"{host}/team/app", opts=opts))
        assert e.value.status == status
        assert e.value.code == "UNAUTHORIZED"
    asyncio.run(push(svc, f"{host}/team/app", opts=alice))
    asyncio.run(push(svc, f"{host}/public/app", opts=alice))
    want = svc.get(f"{host}/team/app").target.digest
    for opts, ref in ((bob, "team/app"), (alice, "team/app"), (anon, "public/app")):
        dst = ImageService(str(tmp_path / f"dst-{id(opts)}-{ref.replace('/', '-')}"))
        try:
            assert asyncio.run(pull(dst, f"{host}/{ref}", opts=opts)).target.digest == want
        finally:
            dst.close()
    dst = ImageService(str(tmp_path / "anon-private"))
    try:
        with pytest.raises(RequestError) as e:  # an anonymous token has no access to team/
            asyncio.run(pull(dst, f"{host}/team/app", opts=anon))
        assert e.value.status == 401
    finally:
        dst.close()


def test_tls_insecure_and_ca(layouts, svc, tmp_path):
    crt, key = self_signed(str(tmp_path / "tls"))
    with pallet_registry(str(tmp_path / "reg"), tls=(crt, key)) as reg:
        svc.import_(str(layouts["multi"]), base_name=f"{reg.host}/tls/app")
        name = f"{reg.host}/tls/app:latest"
        with pytest.raises(RequestError, match="certificate"):
            asyncio.run(push(svc, name, opts=Options(hosts_dir="", retries=0)))
        asyncio.run(push(svc, name, opts=Options(hosts_dir="", insecure=True)))
        # trusted through hosts.toml's `ca`, verified for real
        hosts = tmp_path / "hosts" / reg.host
        hosts.mkdir(parents=True)
        (hosts / "hosts.toml").write_text(f'server = "https://{reg.host}"\nca = "{crt}"\n')
        dst = ImageService(str(tmp_path / "dst"))
        try:
            got = asyncio.run(pull(dst, name, opts=Options(hosts_dir=str(tmp_path / "hosts"))))
            assert got.target.digest == svc.get(name).target.digest
        finally:
            dst.close()


def test_mirror_from_hosts_toml(registry, layouts, svc, tmp_path):
    """docker.io/library/mirrored is served by a mirror; the upstream is unreachable."""
    svc.import_(str(layouts["multi"]), base_name=f"{registry.host}/library/mirrored")
    asyncio.run(push(svc, f"{registry.host}/library/mirrored", opts=PLAIN))
    hosts = tmp_path / "hosts" / "docker.io"
    hosts.mkdir(parents=True)
    dead = free_port()
    (hosts / "hosts.toml").write_text(textwrap.dedent(f"""
        server = "http://127.0.0.1:{dead}"
        [host."http://{registry.host}"]
          capabilities = ["pull", "resolve"]
    """))
    dst = ImageService(str(tmp_path / "dst"))
    try:
        opts = Options(hosts_dir=str(tmp_path / "hosts"), retries=0)
        got = asyncio.run(pull(dst, "mirrored", opts=opts))
        assert got.name == "docker.io/library/mirrored:latest"
        assert got.endpoint == f"http://{registry.host}/v2"
        # a push never goes to a pull-only mirror: the (dead) upstream refuses to connect
        with pytest.raises(RequestError):
            asyncio.run(push(dst, "mirrored", opts=opts))
    finally:
        dst.close()


def test_gc_command(layouts, svc, tmp_path):
    with pallet_registry(str(tmp_path / "reg")) as reg:
        svc.import_(str(layouts["multi"]), base_name=f"{reg.host}/gc/app")
        name = f"{reg.host}/gc/app:latest"
        asyncio.run(push(svc, name, opts=PLAIN))
        manifest = svc.resolve(name).manifest_desc.digest
        urllib.request.urlopen(urllib.request.Request(
            f"{reg.url}/v2/gc/app/manifests/{manifest}", method="DELETE"))
        root = reg.root
    # the server is stopped: collect
    cmd = [sys.executable, "-m", "pallet.cli.pallet.main", "registry", "gc", "--storage", root]
    dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, check=True)
    assert f"would delete blob {manifest}" in dry.stdout
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    n_blobs = len(svc.resolve(name).layers) + 2  # layers, config, manifest
    assert f"0 blobs marked, {n_blobs} deleted" in out
    assert os.listdir(os.path.join(root, "content", "blobs", "sha256")) == []
    again = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "0 deleted" in again
