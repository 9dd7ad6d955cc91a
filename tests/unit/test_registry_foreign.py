"""Non-distributable (foreign) layers: not pushed, not in the registry; pulled from the
`urls` of their descriptors only when the client is told to (Options.foreign_layers,
`pallet pull --allow-nondistributable`), from a small HTTP server on 127.0.0.1, without the
registry's credentials, verified like any blob."""

import asyncio
import base64
import http.server
import json
import threading
from dataclasses import replace

import bcrypt
import pytest

from pallet.errors import InvalidArgument, NotFound
from pallet.images.diff import tar_dir
from pallet.images.service import ImageService
from pallet.oci import mediatypes as mt
from pallet.oci.image import ContainerConfig
from pallet.registry.client.api import Options, pull, push
from pallet.registry.client.credentials import Credentials
from pallet.registry.server.config import Config
from pallet.registry.server.serve import BackgroundServer
from pallet.testing.images import LayoutWriter


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    seen: list[tuple[str, str | None]] = []

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def files_server():
    _Files.files, _Files.seen = {}, []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", _Files
    srv.shutdown()
    srv.server_close()
    t.join(5)


class _Foreign:
    """A LayerInfo whose descriptor is non-distributable, with `urls`."""

    def __init__(self, info, urls):
        self.info, self.urls, self.diff_id = info, urls, info.diff_id

    def descriptor(self):
        return replace(self.info.descriptor(), media_type=mt.IMAGE_LAYER_NONDISTRIBUTABLE_GZIP,
                       urls=self.urls)


def _layout(tmp_path, urls_for):
    w = LayoutWriter(tmp_path / "layout")
    layers = []
    for name in ("base", "foreign"):
        root = tmp_path / f"src-{name}"
        (root / "etc").mkdir(parents=True)
        (root / "etc" / f"{name}.txt").write_text(f"{name} layer\n")
        layers.append(w.layer(lambda tw, r=root: tar_dir(str(r), tw), mt.GZIP))
    base, foreign = layers
    blob = (tmp_path / "layout/blobs/sha256" / foreign.digest.encoded).read_bytes()
    w.image([base, _Foreign(foreign, urls_for(foreign))], ContainerConfig(Cmd=["sh"]),
            ref_name="latest")
    w.close()
    return foreign, blob


@pytest.fixture
def registry(tmp_path):
    hp = tmp_path / "htpasswd"
    hp.write_text("u:" + bcrypt.hashpw(b"p", bcrypt.gensalt(rounds=4)).decode() + "\n")
    cfg = Config(addr="127.0.0.1:0", root=str(tmp_path / "reg"), auth="htpasswd",
                 htpasswd=str(hp))
    with BackgroundServer(cfg) as srv:
        yield srv.url.split("://")[1]


def _opts(**kw):
    return Options(plain_http=True, hosts_dir="", backoff=0.01, retries=1,
                   credentials=Credentials("u", "p"), **kw)


def _push(tmp_path, host):
    src = ImageService(str(tmp_path / "src"), "native")
    src.import_(str(tmp_path / "layout"), base_name=f"{host}/f/app")
    pushed = asyncio.run(push(src, f"{host}/f/app", opts=_opts()))
    src.close()
    return pushed


def test_foreign_layer_from_its_urls(tmp_path, registry, files_server):
    base_url, handler = files_server
    foreign, blob = _layout(tmp_path, lambda f: [f"{base_url}/missing",
                                                 f"{base_url}/layers/{f.digest.encoded}"])
    handler.files[f"/layers/{foreign.digest.encoded}"] = blob
    pushed = _push(tmp_path, registry)
    assert str(foreign.digest) not in pushed.blobs          # never uploaded to a registry
    # by default it is left out, and the image cannot be unpacked
    dst = ImageService(str(tmp_path / "dst"), "native")
    try:
        asyncio.run(pull(dst, f"{registry}/f/app", opts=_opts()))
        assert not dst.content.exists(foreign.digest)
        assert handler.seen == []
        with pytest.raises(NotFound):
            dst.unpack_to_dir(f"{registry}/f/app", str(tmp_path / "no"))
        # allowed: the first URL fails (404), the second serves it
        asyncio.run(pull(dst, f"{registry}/f/app", opts=_opts(foreign_layers=True)))
        assert dst.content.read_blob(foreign.digest) == blob
        assert [p for p, _ in handler.seen] == ["/missing", f"/layers/{foreign.digest.encoded}"]
        assert {a for _, a in handler.seen} == {None}     # the registry's password stays home
        dst.unpack_to_dir(f"{registry}/f/app", str(tmp_path / "rootfs"))
        assert (tmp_path / "rootfs/etc/foreign.txt").read_text() == "foreign layer\n"
        assert (tmp_path / "rootfs/etc/base.txt").read_text() == "base layer\n"
    finally:
        dst.close()


def test_foreign_layer_with_wrong_content_is_refused(tmp_path, registry, files_server):
    base_url, handler = files_server
    foreign, blob = _layout(tmp_path, lambda f: [f"{base_url}/evil"])
    handler.files["/evil"] = bytes(b ^ 0x5A for b in blob)    # the right size, wrong bytes
    _push(tmp_path, registry)
    dst = ImageService(str(tmp_path / "dst"), "native")
    try:
        with pytest.raises(InvalidArgument, match=str(foreign.digest)):
            asyncio.run(pull(dst, f"{registry}/f/app", opts=_opts(foreign_layers=True)))
        assert not dst.content.exists(foreign.digest)
        assert dst.list() == []
    finally:
        dst.close()


def test_cli_flag(tmp_path, registry, files_server, monkeypatch):
    from pallet.testing import cli

    base_url, handler = files_server
    foreign, blob = _layout(tmp_path, lambda f: [f"{base_url}/l"])
    handler.files["/l"] = blob
    _push(tmp_path, registry)
    conf = tmp_path / "docker"
    conf.mkdir()
    (conf / "config.json").write_text(json.dumps(
        {"auths": {registry: {"auth": base64.b64encode(b"u:p").decode()}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(conf))
    r = cli.run([
        "--root", str(tmp_path / "cli"), "--snapshotter", "native", "pull", "-q",
        "--plain-http", "--hosts-dir", "", "--allow-nondistributable", f"{registry}/f/app"])
    assert r.exit_code == 0, r
    svc = ImageService(str(tmp_path / "cli"), "native")
    try:
        assert svc.content.read_blob(foreign.digest) == blob
    finally:
        svc.close()
