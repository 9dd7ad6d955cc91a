"""skopeo (Debian's) against `pallet registry`: copies in and out, with and without auth,
over http and TLS; what comes back is what went in, digest for digest."""

import hashlib
import json
import os
import shutil
import subprocess

import bcrypt
import pytest

from pallet.oci import mediatypes as mt
from pallet.registry.testing import pallet_registry, self_signed
from pallet.testing import images as timages

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None,
                                reason="skopeo not installed (Debian package skopeo)")


def skopeo(*args, ok=True):
    r = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True,
                       timeout=120)
    if ok:
        assert r.returncode == 0, f"skopeo {' '.join(args)}: {r.stderr}"
    return r


def layout_manifests(path):
    with open(os.path.join(path, "index.json")) as f:
        return [m["digest"] for m in json.load(f)["manifests"]]


def blobs(path):
    out = {}
    for algo in os.listdir(os.path.join(path, "blobs")):
        for name in os.listdir(os.path.join(path, "blobs", algo)):
            with open(os.path.join(path, "blobs", algo, name), "rb") as f:
                out[f"{algo}:{name}"] = f.read()
    return out


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    return {
        "single": timages.make_layout("single", base / "single"),
        "multi-zstd": timages.make_layout("multi", base / "multi-zstd", compression=mt.ZSTD),
        "mp": timages.make_layout("multiplatform", base / "mp"),
    }


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with pallet_registry(str(tmp_path_factory.mktemp("reg"))) as reg:
        yield reg


@pytest.mark.parametrize("shape", ["single", "multi-zstd", "mp"])
def test_copy_in_and_out(registry, layouts, tmp_path, shape):
    src = str(layouts[shape])
    ref = f"docker://{registry.host}/skopeo/{shape}:v1"
    all_ = ["--all"] if shape == "mp" else []
    skopeo("copy", *all_, "--dest-tls-verify=false", f"oci:{src}:latest", ref)
    raw = skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout.encode()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == layout_manifests(src)[0]
    out = str(tmp_path / "out")
    skopeo("copy", *all_, "--src-tls-verify=false", ref, f"oci:{out}:latest")
    assert layout_manifests(out) == layout_manifests(src)
    assert blobs(out) == blobs(src)
    if shape == "mp":
        info = json.loads(skopeo("inspect", "--tls-verify=false", "--override-arch", "arm64",
                                 ref).stdout)
        assert info["Architecture"] == "arm64"
    tags = json.loads(skopeo("list-tags", "--tls-verify=false",
                             f"docker://{registry.host}/skopeo/{shape}").stdout)
    assert tags["Tags"] == ["v1"]


def test_delete_and_docker_schema2(registry, layouts, tmp_path):
    ref = f"docker://{registry.host}/skopeo/docker:v1"
    # skopeo converts to Docker schema 2 on the way: the registry stores and serves it
    skopeo("copy", "--format", "v2s2", "--dest-tls-verify=false",
           f"oci:{layouts['single']}:latest", ref)
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout)
    assert raw["mediaType"] == mt.DOCKER_MANIFEST
    skopeo("delete", "--tls-verify=false", ref)
    r = skopeo("inspect", "--tls-verify=false", ref, ok=False)
    assert r.returncode != 0 and "manifest unknown" in r.stderr


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    d = tmp_path_factory.mktemp("authreg")
    hp = d / "htpasswd"
    hp.write_text("alice:" + bcrypt.hashpw(b"wonder", bcrypt.gensalt(rounds=5)).decode() + "\n")
    crt, key = self_signed(str(d / "tls"))
    # a directory with only the CA certificate (a *.key there would be a client key)
    (d / "ca").mkdir()
    shutil.copy(crt, d / "ca" / "ca.crt")
    with pallet_registry(str(d), "--auth", "htpasswd", "--htpasswd", str(hp),
                         tls=(crt, key)) as reg:
        yield reg, str(d / "ca")


def test_htpasswd_over_tls(auth_registry, layouts, tmp_path):
    reg, certdir = auth_registry
    ref = f"docker://{reg.host}/private/app:v1"
    src = f"oci:{layouts['single']}:latest"
    # the certificate is checked (skopeo trusts it only through --dest-cert-dir)
    r = skopeo("copy", "--dest-creds", "alice:wonder", src, ref, ok=False)
    assert r.returncode != 0 and "certificate" in r.stderr
    r = skopeo("copy", "--dest-cert-dir", certdir, src, ref, ok=False)
    assert r.returncode != 0 and ("authentication required" in r.stderr
                                  or "unauthorized" in r.stderr.lower())
    r = skopeo("copy", "--dest-cert-dir", certdir, "--dest-creds", "alice:wrong", src, ref,
               ok=False)
    assert r.returncode != 0
    skopeo("copy", "--dest-cert-dir", certdir, "--dest-creds", "alice:wonder", src, ref)
    info = json.loads(skopeo("inspect", "--cert-dir", certdir, "--creds", "alice:wonder",
                             ref).stdout)
    assert info["Digest"] == layout_manifests(layouts["single"])[0]
    assert skopeo("inspect", "--cert-dir", certdir, ref, ok=False).returncode != 0
