"""`pallet registry` as the token service of Debian's docker-registry (distribution 2.8,
`auth: token` trusting pallet's CA through `rootcertbundle`): RS256 tokens with an x5c
chain, accepted by the reference registry; pallet's client and skopeo push and pull
through it; a registry trusting another CA refuses the same tokens."""

import asyncio
import shutil
import subprocess
import textwrap

import pytest

from pallet.images.service import ImageService
from pallet.registry.client.api import Options, pull, push
from pallet.registry.client.credentials import Credentials
from pallet.registry.client.transport import RequestError
from pallet.registry.server.auth import token_ca
from pallet.registry.testing import (
    docker_registry,
    docker_registry_binary,
    pallet_registry,
    write_htpasswd,
)
from pallet.testing import images as timages

pytestmark = pytest.mark.skipif(docker_registry_binary() is None,
                                reason="docker-registry not installed")


@pytest.fixture(scope="module")
def token_service(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    hp = d / "htpasswd"
    write_htpasswd(hp, {"alice": "a-pw"})
    cfg = d / "registry.toml"
    cfg.write_text(textwrap.dedent(f"""
        [auth]
        type = "token"
        htpasswd = "{hp}"
        [auth.token]
        signing = "RS256"
        service = "shared-registry"
        issuer = "pallet-token-service"
        [[auth.token.access]]
        account = "alice"
        name = "*"
        actions = ["pull", "push"]
    """))
    with pallet_registry(str(d), "--config", str(cfg)) as reg:
        yield reg


def _token_section(reg, bundle):
    return {"realm": f"{reg.url}/token", "service": "shared-registry",
            "issuer": "pallet-token-service", "rootcertbundle": bundle}


@pytest.fixture(scope="module")
def distribution(token_service, tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    bundle = f"{token_service.root}/token-ca.crt"
    with docker_registry(str(d), token=_token_section(token_service, bundle)) as reg:
        yield reg


def test_pallet_client_through_docker_registry(distribution, tmp_path):
    layout = timages.make_layout("multi", tmp_path / "layout")
    host = distribution.host
    src = ImageService(str(tmp_path / "src"), "native")
    dst = ImageService(str(tmp_path / "dst"), "native")
    alice = Options(plain_http=True, hosts_dir="", credentials=Credentials("alice", "a-pw"))
    anon = Options(plain_http=True, hosts_dir="", docker_config=str(tmp_path / "none"),
                   retries=0)
    try:
        src.import_(str(layout), base_name=f"{host}/team/app")
        with pytest.raises(RequestError) as e:      # no account: the token grants nothing
            asyncio.run(push(src, f"{host}/team/app", opts=anon))
        assert e.value.status == 401
        pushed = asyncio.run(push(src, f"{host}/team/app", opts=alice))
        assert set(pushed.blobs.values()) == {"pushed"}
        got = asyncio.run(pull(dst, f"{host}/team/app", opts=alice))
        assert got.target.digest == src.get(f"{host}/team/app").target.digest
        dst.unpack_to_dir(f"{host}/team/app", str(tmp_path / "rootfs"))
        assert (tmp_path / "rootfs" / "bin" / "busybox").exists()
    finally:
        src.close()
        dst.close()
    # what docker-registry logged: it verified pallet's tokens, not something else
    with open(distribution.log) as f:
        log = f.read()
    assert "unable to verify certificate chain" not in log and "invalid token" not in log


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_skopeo_through_docker_registry(distribution, tmp_path):
    layout = timages.make_layout("single", tmp_path / "layout")
    ref = f"docker://{distribution.host}/sk/app:v1"
    base = ["skopeo", "--insecure-policy"]
    subprocess.run([*base, "copy", "--dest-tls-verify=false", "--dest-creds", "alice:a-pw",
                    f"oci:{layout}:latest", ref], check=True, capture_output=True, timeout=120)
    r = subprocess.run([*base, "inspect", "--tls-verify=false", "--creds", "alice:a-pw",
                        "--raw", ref], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*base, "inspect", "--tls-verify=false", "--creds", "alice:wrong",
                        "--raw", ref], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0


def test_untrusted_ca_is_refused(token_service, tmp_path):
    other = token_ca(str(tmp_path / "other"))[2]       # a CA docker-registry should not trust
    layout = timages.make_layout("single", tmp_path / "layout")
    with docker_registry(str(tmp_path / "d"), token=_token_section(token_service, other)) as reg:
        src = ImageService(str(tmp_path / "src"), "native")
        try:
            src.import_(str(layout), base_name=f"{reg.host}/x/app")
            with pytest.raises(RequestError) as e:
                asyncio.run(push(src, f"{reg.host}/x/app", opts=Options(
                    plain_http=True, hosts_dir="", retries=0,
                    credentials=Credentials("alice", "a-pw"))))
            assert e.value.status == 401
        finally:
            src.close()
        with open(reg.log) as f:
            log = f.read()
        assert "unable to verify certificate chain" in log   # refused for the chain
