"""`pallet registry` endpoint by endpoint, over real HTTP on 127.0.0.1 (the server runs in a
thread of the test process): every endpoint of the distribution-spec and its error cases."""

import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import socket
import string
import urllib.parse

import bcrypt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pallet.oci import mediatypes as mt
from pallet.registry.server.config import Config
from pallet.registry.server.gc import collect
from pallet.registry.server.serve import BackgroundServer
from pallet.registry.server.storage import RegistryStorage


def sha(data: bytes, algo: str = "sha256") -> str:
    return f"{algo}:{hashlib.new(algo, data).hexdigest()}"


class Client:
    def __init__(self, url: str, auth: tuple[str, str] | None = None) -> None:
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.auth = auth

    def req(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = dict(headers or {})
        if self.auth:
            h["Authorization"] = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, r.headers, data

    def code(self, method, path, body=None, headers=None):
        status, _, data = self.req(method, path, body, headers)
        return status, (json.loads(data)["errors"][0]["code"] if data and status >= 400 else None)

    def push_blob(self, repo, data, algo="sha256"):
        d = sha(data, algo)
        s, h, _ = self.req("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", data)
        assert s == 201, s
        assert h["Location"] == f"/v2/{repo}/blobs/{d}" and h["Docker-Content-Digest"] == d
        return d

    def push_manifest(self, repo, ref, doc, media_type=mt.IMAGE_MANIFEST):
        data = json.dumps(doc).encode()
        s, h, body = self.req("PUT", f"/v2/{repo}/manifests/{ref}", data,
                              {"Content-Type": media_type})
        assert s == 201, body
        return h["Docker-Content-Digest"], h


def image(c, repo, layers=(b"layer-one", b"layer-two"), config=b'{"architecture":"amd64"}',
          **extra):
    cfg = c.push_blob(repo, config)
    descs = [{"mediaType": mt.IMAGE_LAYER_GZIP, "digest": c.push_blob(repo, x), "size": len(x)}
             for x in layers]
    return {"schemaVersion": 2, "mediaType": mt.IMAGE_MANIFEST,
            "config": {"mediaType": mt.IMAGE_CONFIG, "digest": cfg, "size": len(config)},
            "layers": descs, **extra}


@pytest.fixture
def server(tmp_path):
    cfg = Config(addr="127.0.0.1:0", root=str(tmp_path / "reg"))
    with BackgroundServer(cfg) as srv:
        yield srv


@pytest.fixture
def c(server):
    return Client(server.url)


def test_base_and_headers(c):
    s, h, _body = c.req("GET", "/v2/")
    assert s == 200 and h["Docker-Distribution-API-Version"] == "registry/2.0"
    assert c.req("HEAD", "/v2/")[0] == 200
    s, h, _ = c.req("GET", "/v2/a/tags/list")
    assert s == 404 and h["Docker-Distribution-API-Version"] == "registry/2.0"


def test_blob_pull_head_range(c):
    data = bytes(range(256)) * 40
    d = c.push_blob("r/a", data)
    s, h, body = c.req("GET", f"/v2/r/a/blobs/{d}")
    assert s == 200 and body == data and h["Docker-Content-Digest"] == d
    s, h, body = c.req("HEAD", f"/v2/r/a/blobs/{d}")
    assert s == 200 and body == b"" and h["Content-Length"] == str(len(data))
    s, h, body = c.req("GET", f"/v2/r/a/blobs/{d}", headers={"Range": "bytes=10-19"})
    assert s == 206 and body == data[10:20] and h["Content-Range"] == f"bytes 10-19/{len(data)}"
    s, h, body = c.req("GET", f"/v2/r/a/blobs/{d}", headers={"Range": "bytes=10000-"})
    assert s == 206 and body == data[10000:]
    s, h, body = c.req("GET", f"/v2/r/a/blobs/{d}", headers={"Range": "bytes=-5"})
    assert s == 206 and body == data[-5:]
    s, h, body = c.req("GET", f"/v2/r/a/blobs/{d}", headers={"Range": f"bytes={len(data)}-"})
    assert s == 416 and h["Content-Range"] == f"bytes */{len(data)}"
    assert c.code("GET", f"/v2/r/a/blobs/{sha(b'other')}") == (404, "BLOB_UNKNOWN")
    assert c.code("GET", "/v2/r/a/blobs/sha256:short") == (400, "DIGEST_INVALID")
    assert c.code("GET", f"/v2/r/b/blobs/{d}") == (404, "BLOB_UNKNOWN")  # other repository
    assert c.req("HEAD", f"/v2/r/a/blobs/{sha(b'x')}")[0] == 404


def test_post_put_and_digest_mismatch(c, server):
    s, h, _ = c.req("POST", "/v2/a/blobs/uploads/", b"", {"Content-Length": "0"})
    assert s == 202 and h["Range"] == "0-0"
    loc = h["Location"]
    assert loc.startswith("/v2/a/blobs/uploads/")
    assert c.code("PUT", f"{loc}?digest={sha(b'not this')}", b"hello") == (400, "DIGEST_INVALID")
    # the session is gone and nothing was committed
    assert c.code("GET", loc) == (404, "BLOB_UPLOAD_UNKNOWN")
    assert c.code("HEAD", f"/v2/a/blobs/{sha(b'hello')}")[0] == 404
    s, h, _ = c.req("POST", "/v2/a/blobs/uploads/")
    s, h, _ = c.req("PUT", f"{h['Location']}?digest={sha(b'hello')}", b"hello")
    assert s == 201 and h["Docker-Content-Digest"] == sha(b"hello")
    assert c.req("GET", f"/v2/a/blobs/{sha(b'hello')}")[2] == b"hello"
    assert c.code("PUT", f"{loc}?digest={sha(b'x')}", b"x") == (404, "BLOB_UPLOAD_UNKNOWN")
    assert c.code("PUT", f"/v2/a/blobs/uploads/nonexistent?digest={sha(b'x')}", b"x") == (
        404, "BLOB_UPLOAD_UNKNOWN")
    s, h, _ = c.req("POST", "/v2/a/blobs/uploads/")
    assert c.code("PUT", h["Location"]) == (400, "DIGEST_INVALID")  # no digest
    assert c.code("POST", "/v2/a/blobs/uploads/?digest=sha256:zz", b"x") == (400, "DIGEST_INVALID")
    assert c.code("POST", "/v2/a/blobs/uploads/?digest-algorithm=md5") == (400, "DIGEST_INVALID")


def test_chunked_upload_order_status_and_resume(c):
    data = os.urandom(3000)
    s, h, _ = c.req("POST", "/v2/c/blobs/uploads/", b"", {"Content-Length": "0"})
    loc = h["Location"]
    s, h, _ = c.req("PATCH", loc, data[:1000], {"Content-Range": "0-999",
                                               "Content-Type": "application/octet-stream"})
    assert s == 202 and h["Range"] == "0-999"
    loc = h["Location"]
    # out of order: 416, and the answer says where the upload stands
    s, h, body = c.req("PATCH", loc, data[1500:2000], {"Content-Range": "1500-1999"})
    assert s == 416 and h["Range"] == "0-999"
    assert json.loads(body)["errors"][0]["code"] == "RANGE_INVALID"
    # a chunk whose length does not match its range is refused and leaves nothing
    assert c.code("PATCH", loc, data[1000:1100], {"Content-Range": "1000-1199"})[0] == 400
    s, h, _ = c.req("GET", loc)
    assert s == 204 and h["Range"] == "0-999" and h["Location"] == loc
    # an interrupted chunk: the connection drops after 500 of 1000 announced bytes
    u = urllib.parse.urlsplit(loc)
    with socket.create_connection((c.host, c.port)) as sock:
        sock.sendall((f"PATCH {u.path} HTTP/1.1\r\nHost: x\r\nContent-Range: 1000-1999\r\n"
                      "Content-Length: 1000\r\n\r\n").encode() + data[1000:1500])
    for _ in range(50):
        s, h, _ = c.req("GET", loc)
        if h["Range"] != "0-999":
            break
    # what arrived stays: the status tells the client to go on from byte 1500
    offset = int(h["Range"].split("-")[1]) + 1
    assert offset == 1500
    s, h, _ = c.req("PATCH", loc, data[offset:2500], {"Content-Range": f"{offset}-2499"})
    assert s == 202 and h["Range"] == "0-2499"
    # the final chunk in the closing PUT
    s, h, _ = c.req("PUT", f"{h['Location']}?digest={sha(data)}", data[2500:],
                    {"Content-Range": "2500-2999"})
    assert s == 201 and h["Location"] == f"/v2/c/blobs/{sha(data)}"
    assert c.req("GET", f"/v2/c/blobs/{sha(data)}")[2] == data


def test_streamed_upload_and_cancel(c, server):
    data = os.urandom(200_000)
    s, h, _ = c.req("POST", "/v2/s/blobs/uploads/")
    loc = h["Location"]
    s, h, _ = c.req("PATCH", loc, data[:150_000])  # no Content-Range: appended
    assert s == 202 and h["Range"] == "0-149999"
    s, h, _ = c.req("PATCH", h["Location"], data[150_000:])
    assert h["Range"] == "0-199999"
    s, h, _ = c.req("PUT", f"{h['Location']}?digest={sha(data)}")
    assert s == 201
    s, h, _ = c.req("POST", "/v2/s/blobs/uploads/")
    loc = h["Location"]
    c.req("PATCH", loc, b"abandoned")
    assert c.req("DELETE", loc)[0] == 204
    assert c.code("GET", loc) == (404, "BLOB_UPLOAD_UNKNOWN")
    assert c.code("DELETE", loc) == (404, "BLOB_UPLOAD_UNKNOWN")
    ingest = os.path.join(server.cfg.root, "content", "ingest")
    assert os.listdir(ingest) == []  # nothing left of either session


def test_sha512(c):
    data = b"sha512 content"
    d512 = sha(data, "sha512")
    s, h, _ = c.req("POST", "/v2/x/blobs/uploads/?digest-algorithm=sha512")
    s, h, _ = c.req("PATCH", h["Location"], data)
    s, h, _ = c.req("PUT", f"{h['Location']}?digest={d512}")
    assert s == 201 and h["Docker-Content-Digest"] == d512
    s, h, body = c.req("GET", f"/v2/x/blobs/{d512}")
    assert body == data and h["Docker-Content-Digest"] == d512
    doc = image(c, "x")
    mdata = json.dumps(doc).encode()
    s, h, _ = c.req("PUT", f"/v2/x/manifests/{sha(mdata, 'sha512')}", mdata,
                    {"Content-Type": mt.IMAGE_MANIFEST})
    assert s == 201 and h["Docker-Content-Digest"] == sha(mdata, "sha512")
    assert c.req("GET", f"/v2/x/manifests/{sha(mdata, 'sha512')}")[2] == mdata


def test_mount(c):
    d = c.push_blob("src/repo", b"shared layer")
    s, h, _ = c.req("POST", f"/v2/dst/blobs/uploads/?mount={d}&from=src/repo")
    assert s == 201 and h["Location"] == f"/v2/dst/blobs/{d}" and h["Docker-Content-Digest"] == d
    assert c.req("GET", f"/v2/dst/blobs/{d}")[2] == b"shared layer"
    # without `from`: discovered in whatever repository has it
    s, h, _ = c.req("POST", f"/v2/other/blobs/uploads/?mount={d}")
    assert s == 201 and c.req("HEAD", f"/v2/other/blobs/{d}")[0] == 200
    # a source without the blob: an upload session starts instead
    s, h, _ = c.req("POST", f"/v2/dst2/blobs/uploads/?mount={d}&from=nothere")
    assert s == 202 and "/blobs/uploads/" in h["Location"]
    s, h, _ = c.req("POST", f"/v2/dst3/blobs/uploads/?mount={sha(b'unknown')}")
    assert s == 202


def test_manifests(c):
    doc = image(c, "app")
    dg, h = c.push_manifest("app", "v1", doc)
    data = json.dumps(doc).encode()
    assert dg == sha(data) and h["Location"] == f"/v2/app/manifests/{dg}"
    for ref in ("v1", dg):
        s, h, body = c.req("GET", f"/v2/app/manifests/{ref}",
                           headers={"Accept": mt.IMAGE_MANIFEST})
        assert s == 200 and body == data and h["Content-Type"] == mt.IMAGE_MANIFEST
        assert h["Docker-Content-Digest"] == dg
        s, h, body = c.req("HEAD", f"/v2/app/manifests/{ref}")
        assert s == 200 and h["Content-Length"] == str(len(data)) and body == b""
    # by digest, with tags as parameters
    s, h, _ = c.req("PUT", f"/v2/app/manifests/{dg}?tag=a&tag=b", data,
                    {"Content-Type": mt.IMAGE_MANIFEST})
    assert s == 201 and h.get_all("OCI-Tag") == ["a", "b"]
    assert c.code("GET", "/v2/app/manifests/nope") == (404, "MANIFEST_UNKNOWN")
    assert c.code("GET", f"/v2/app/manifests/{sha(b'x')}") == (404, "MANIFEST_UNKNOWN")
    assert c.code("GET", "/v2/nothere/manifests/v1") == (404, "MANIFEST_UNKNOWN")
    assert c.code("GET", "/v2/app/manifests/-bad-tag") == (400, "MANIFEST_INVALID")
    # Docker schema 2 is stored and served with its own type
    ddoc = dict(doc, mediaType=mt.DOCKER_MANIFEST)
    ddoc["config"] = dict(doc["config"], mediaType=mt.DOCKER_CONFIG)
    c.push_manifest("app", "docker", ddoc, mt.DOCKER_MANIFEST)
    assert c.req("GET", "/v2/app/manifests/docker")[1]["Content-Type"] == mt.DOCKER_MANIFEST
    # an index of what is there
    idx = {"schemaVersion": 2, "mediaType": mt.IMAGE_INDEX, "manifests": [
        {"mediaType": mt.IMAGE_MANIFEST, "digest": dg, "size": len(data),
         "platform": {"os": "linux", "architecture": "amd64"}}]}
    c.push_manifest("app", "multi", idx, mt.IMAGE_INDEX)
    assert c.req("GET", "/v2/app/manifests/multi")[1]["Content-Type"] == mt.IMAGE_INDEX


@pytest.mark.parametrize("mutate,ctype,code", [
    (lambda d: b"not json", mt.IMAGE_MANIFEST, "MANIFEST_INVALID"),
    (lambda d: b"[]", mt.IMAGE_MANIFEST, "MANIFEST_INVALID"),
    (lambda d: json.dumps(dict(d, schemaVersion=1)).encode(), mt.IMAGE_MANIFEST,
     "MANIFEST_INVALID"),
    (lambda d: json.dumps(d).encode(), mt.DOCKER_MANIFEST, "MANIFEST_INVALID"),  # type clash
    (lambda d: json.dumps(dict(d, mediaType="application/x-other")).encode(),
     "application/x-other", "MANIFEST_INVALID"),
    (lambda d: json.dumps(dict(d, layers=[{"mediaType": mt.IMAGE_LAYER, "digest": sha(b"gone"),
                                           "size": 4}])).encode(),
     mt.IMAGE_MANIFEST, "MANIFEST_BLOB_UNKNOWN"),
    (lambda d: json.dumps(dict(d, config=dict(d["config"], digest="sha256:bad"))).encode(),
     mt.IMAGE_MANIFEST, "MANIFEST_INVALID"),
])
def test_manifest_put_invalid(c, mutate, ctype, code):
    doc = image(c, "inv")
    assert c.code("PUT", "/v2/inv/manifests/v1", mutate(doc), {"Content-Type": ctype}) == (
        400, code)
    assert c.code("GET", "/v2/inv/manifests/v1") == (404, "MANIFEST_UNKNOWN")


def test_manifest_put_digest_and_size(c, server):
    doc = image(c, "m")
    data = json.dumps(doc).encode()
    assert c.code("PUT", f"/v2/m/manifests/{sha(b'other')}", data,
                  {"Content-Type": mt.IMAGE_MANIFEST}) == (400, "DIGEST_INVALID")
    big = json.dumps(dict(doc, annotations={"x": "y" * server.cfg.max_manifest_size})).encode()
    assert c.code("PUT", "/v2/m/manifests/big", big, {"Content-Type": mt.IMAGE_MANIFEST}) == (
        413, "SIZE_INVALID")
    # an index referencing a manifest the repository does not have
    idx = {"schemaVersion": 2, "mediaType": mt.IMAGE_INDEX, "manifests": [
        {"mediaType": mt.IMAGE_MANIFEST, "digest": sha(b"m"), "size": 1}]}
    assert c.code("PUT", "/v2/m/manifests/i", json.dumps(idx).encode(),
                  {"Content-Type": mt.IMAGE_INDEX}) == (400, "MANIFEST_BLOB_UNKNOWN")
    # nondistributable layers need not be there
    nd = dict(doc, layers=[{"mediaType": mt.IMAGE_LAYER_NONDISTRIBUTABLE_GZIP,
                            "digest": sha(b"foreign"), "size": 7,
                            "urls": ["https://example.com/layer"]}])
    c.push_manifest("m", "nd", nd)


def test_tags_pagination(c):
    doc = image(c, "t")
    tags = ["v10", "v2", "latest", "A", "b", "v1"]
    for t in tags:
        c.push_manifest("t", t, doc)
    s, h, body = c.req("GET", "/v2/t/tags/list")
    assert s == 200
    assert json.loads(body) == {"name": "t", "tags": sorted(tags)} and "Link" not in h
    got, path = [], "/v2/t/tags/list?n=4"
    while path:
        _, h, body = c.req("GET", path)
        page = json.loads(body)["tags"]
        assert len(page) <= 4
        got += page
        link = h.get("Link")
        path = link[1:link.index(">")] if link else None
        if link:
            assert link.endswith('; rel="next"')
    assert got == sorted(tags)
    assert json.loads(c.req("GET", "/v2/t/tags/list?n=0")[2])["tags"] == []
    assert "Link" not in c.req("GET", "/v2/t/tags/list?n=0")[1]
    assert json.loads(c.req("GET", "/v2/t/tags/list?last=v10")[2])["tags"] == ["v2"]
    assert json.loads(c.req("GET", "/v2/t/tags/list?n=2&last=b")[2])["tags"] == ["latest", "v1"]
    assert c.code("GET", "/v2/t/tags/list?n=-3")[0] == 400
    assert c.code("GET", "/v2/none/tags/list") == (404, "NAME_UNKNOWN")
    _s, h, body = c.req("GET", "/v2/_catalog?n=1")
    assert json.loads(body)["repositories"] == ["t"] and "Link" not in h


def test_deletes(c):
    doc = image(c, "d")
    dg, _ = c.push_manifest("d", "v1", doc)
    c.push_manifest("d", "v2", doc)
    assert c.req("DELETE", "/v2/d/manifests/v1")[0] == 202
    assert c.code("GET", "/v2/d/manifests/v1") == (404, "MANIFEST_UNKNOWN")
    assert c.req("GET", "/v2/d/manifests/v2")[0] == 200
    assert c.code("DELETE", "/v2/d/manifests/v1") == (404, "MANIFEST_UNKNOWN")
    assert c.req("DELETE", f"/v2/d/manifests/{dg}")[0] == 202
    for ref in ("v2", dg):
        assert c.code("GET", f"/v2/d/manifests/{ref}") == (404, "MANIFEST_UNKNOWN")
    layer = doc["layers"][0]["digest"]
    assert c.req("DELETE", f"/v2/d/blobs/{layer}")[0] == 202
    assert c.code("GET", f"/v2/d/blobs/{layer}") == (404, "BLOB_UNKNOWN")
    assert c.code("DELETE", f"/v2/d/blobs/{layer}") == (404, "BLOB_UNKNOWN")


def test_deletes_disabled(tmp_path):
    cfg = Config(addr="127.0.0.1:0", root=str(tmp_path / "reg"), delete=False)
    with BackgroundServer(cfg) as srv:
        c = Client(srv.url)
        doc = image(c, "d")
        dg, _ = c.push_manifest("d", "v1", doc)
        for path in ("/v2/d/manifests/v1", f"/v2/d/manifests/{dg}",
                     f"/v2/d/blobs/{doc['config']['digest']}"):
            assert c.code("DELETE", path) == (405, "UNSUPPORTED")
        assert c.req("GET", "/v2/d/manifests/v1")[0] == 200


def test_referrers(c):
    doc = image(c, "ref")
    subject, _ = c.push_manifest("ref", "v1", doc)
    sdata = json.dumps(doc).encode()
    empty = c.push_blob("ref", b"{}")
    subj = {"mediaType": mt.IMAGE_MANIFEST, "digest": subject, "size": len(sdata)}

    def artifact(kind, note):
        return {"schemaVersion": 2, "mediaType": mt.IMAGE_MANIFEST, "artifactType": kind,
                "config": {"mediaType": mt.EMPTY_JSON, "digest": empty, "size": 2},
                "layers": [], "subject": subj, "annotations": {"note": note}}

    sig, h = c.push_manifest("ref", sha(json.dumps(artifact("application/x-sig", "s")).encode()),
                             artifact("application/x-sig", "s"))
    assert h["OCI-Subject"] == subject
    sbom, _ = c.push_manifest("ref", "sbom", artifact("application/x-sbom", "b"))
    # a referrer whose artifactType comes from its config
    plain = dict(image(c, "ref", layers=(b"l3",), config=b"{}"), subject=subj)
    plain["config"]["mediaType"] = "application/x-config"
    plain_dg, _ = c.push_manifest("ref", "plain", plain)
    s, h, body = c.req("GET", f"/v2/ref/referrers/{subject}")
    assert s == 200 and h["Content-Type"] == mt.IMAGE_INDEX
    idx = json.loads(body)
    assert idx["mediaType"] == mt.IMAGE_INDEX and idx["schemaVersion"] == 2
    by = {m["digest"]: m for m in idx["manifests"]}
    assert set(by) == {sig, sbom, plain_dg}
    assert by[sig]["artifactType"] == "application/x-sig"
    assert by[sig]["annotations"] == {"note": "s"}
    assert by[plain_dg]["artifactType"] == "application/x-config"
    s, h, body = c.req("GET", f"/v2/ref/referrers/{subject}?artifactType=application/x-sbom")
    assert h["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in json.loads(body)["manifests"]] == [sbom]
    # no referrers, or no such repository: an empty index, never 404
    for path in (f"/v2/ref/referrers/{sbom}", f"/v2/none/referrers/{subject}"):
        s, _, body = c.req("GET", path)
        assert s == 200 and json.loads(body)["manifests"] == []
    assert c.code("GET", "/v2/ref/referrers/sha256:nope")[0] == 400
    # a referrer may come before its subject
    missing = dict(artifact("application/x-sig", "m"),
                   subject=dict(subj, digest=sha(b"later")))
    c.push_manifest("ref", "early", missing)
    assert len(json.loads(c.req("GET", f"/v2/ref/referrers/{sha(b'later')}")[2])["manifests"]) == 1
    # deleting a referrer takes it out of the list
    c.req("DELETE", f"/v2/ref/manifests/{sbom}")
    assert {m["digest"] for m in json.loads(c.req(
        "GET", f"/v2/ref/referrers/{subject}")[2])["manifests"]} == {sig, plain_dg}


def test_concurrent_pushes_of_one_blob(c, server):
    data = os.urandom(2_000_000)

    def push(i):
        _, h, _ = c.req("POST", f"/v2/con{i % 3}/blobs/uploads/")
        _s, h, _ = c.req("PATCH", h["Location"], data)
        return c.req("PUT", f"{h['Location']}?digest={sha(data)}")[0]

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        assert list(ex.map(push, range(8))) == [201] * 8
    for i in range(3):
        assert c.req("GET", f"/v2/con{i}/blobs/{sha(data)}")[2] == data
    assert os.listdir(os.path.join(server.cfg.root, "content", "ingest")) == []


def test_gc(c, server):
    keep = image(c, "g", layers=(b"kept",))
    c.push_manifest("g", "v1", keep)
    gone = image(c, "g", layers=(b"dropped",), config=b'{"x":1}')
    gone_dg, _ = c.push_manifest("g", "v2", gone)
    c.req("DELETE", f"/v2/g/manifests/{gone_dg}")
    stray = c.push_blob("g", b"never referenced")
    storage = RegistryStorage(server.cfg.root)
    try:
        res = collect(storage, dry_run=True)
        assert sha(b"dropped") in res.deleted_blobs and stray in res.deleted_blobs
        assert storage.content.exists(sha(b"dropped"))  # a dry run deletes nothing
        res = collect(storage)
        assert set(res.deleted_blobs) == {sha(b"dropped"), sha(b'{"x":1}'), stray, gone_dg}
        assert not storage.content.exists(sha(b"dropped"))
        assert storage.content.exists(sha(b"kept"))
    finally:
        storage.close()
    assert c.req("GET", "/v2/g/manifests/v1")[0] == 200
    assert c.req("GET", f"/v2/g/blobs/{sha(b'kept')}")[2] == b"kept"
    assert c.code("GET", f"/v2/g/blobs/{stray}") == (404, "BLOB_UNKNOWN")


def test_gc_delete_untagged(c, server):
    doc = image(c, "u", layers=(b"untagged layer",))
    data = json.dumps(doc).encode()
    c.push_manifest("u", sha(data), doc)  # by digest only
    tagged = image(c, "u", layers=(b"tagged layer",))
    c.push_manifest("u", "v1", tagged)
    storage = RegistryStorage(server.cfg.root)
    try:
        assert collect(storage).deleted_blobs == []  # untagged is still referenced
        res = collect(storage, delete_untagged=True)
        assert res.deleted_manifests == [("u", sha(data))]
        assert sha(b"untagged layer") in res.deleted_blobs
        assert storage.content.exists(sha(b"tagged layer"))
    finally:
        storage.close()


@pytest.fixture
def htpasswd_server(tmp_path):
    hp = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$")
    hp.write_text(f"alice:{hashed}\n")
    cfg = Config(addr="127.0.0.1:0", root=str(tmp_path / "reg"), auth="htpasswd",
                 htpasswd=str(hp), anonymous_read=True)
    with BackgroundServer(cfg) as srv:
        yield srv


def test_htpasswd(htpasswd_server):
    anon = Client(htpasswd_server.url)
    alice = Client(htpasswd_server.url, ("alice", "secret"))
    wrong = Client(htpasswd_server.url, ("alice", "guess"))
    s, h, body = anon.req("POST", "/v2/p/blobs/uploads/?digest=" + sha(b"x"), b"x")
    assert s == 401 and h["WWW-Authenticate"] == 'Basic realm="pallet-registry"'
    assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
    assert wrong.code("POST", "/v2/p/blobs/uploads/") == (401, "UNAUTHORIZED")
    d = alice.push_blob("p", b"x")
    assert anon.req("GET", f"/v2/p/blobs/{d}")[2] == b"x"  # anonymous read is on
    assert anon.code("DELETE", f"/v2/p/blobs/{d}") == (401, "UNAUTHORIZED")


def test_token_auth_server(tmp_path):
    hp = tmp_path / "htpasswd"
    hp.write_text("bob:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode() + "\n")
    cfg = Config(addr="127.0.0.1:0", root=str(tmp_path / "reg"), auth="token",
                 htpasswd=str(hp))
    with BackgroundServer(cfg) as srv:
        c = Client(srv.url)
        s, h, _ = c.req("GET", "/v2/")
        assert s == 401 and h["WWW-Authenticate"].startswith("Bearer realm=")
        s, h, _ = c.req("GET", "/v2/app/tags/list")
        assert 'scope="repository:app:pull"' in h["WWW-Authenticate"]
        # anonymous tokens carry no access here (anonymous_read is off)
        s, _, body = c.req("GET", "/token?service=pallet-registry&scope=repository:app:pull")
        tok = json.loads(body)["token"]
        assert c.code("GET", "/v2/app/tags/list", headers={"Authorization": f"Bearer {tok}"}) \
            == (401, "UNAUTHORIZED")
        assert Client(srv.url, ("bob", "nope")).code(
            "GET", "/token?scope=repository:app:pull")[0] == 401
        s, _, body = Client(srv.url, ("bob", "pw")).req(
            "GET", "/token?service=pallet-registry&scope=repository:app:pull,push")
        tok = json.loads(body)["token"]
        auth = {"Authorization": f"Bearer {tok}"}
        s, h, _ = c.req("POST", f"/v2/app/blobs/uploads/?digest={sha(b'z')}", b"z", auth)
        assert s == 201
        assert c.req("GET", f"/v2/app/blobs/{sha(b'z')}", headers=auth)[2] == b"z"
        # the token is for `app` only
        assert c.code("GET", f"/v2/other/blobs/{sha(b'z')}", headers=auth) == (
            401, "UNAUTHORIZED")


# --- fuzzed request paths: the right code, never a 500, nothing left behind -----------------

_name_chars = string.ascii_letters + string.digits + "._-/:@%"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(_name_chars, min_size=1, max_size=40),
       kind=st.sampled_from(["manifests/latest", "blobs/uploads/", "tags/list",
                             "blobs/sha256:" + "0" * 64]))
def test_fuzzed_paths(server, name, kind):
    c = Client(server.url)
    path = "/v2/" + urllib.parse.quote(name, safe="/") + "/" + kind
    method = "POST" if kind == "blobs/uploads/" else "GET"
    s, _h, body = c.req(method, path)
    assert s < 500, body
    from pallet.registry import names
    parsed = urllib.parse.unquote(path)
    r = names.route(parsed)
    if r is not None and not names.valid_name(r.name):
        assert s == 400 and json.loads(body)["errors"][0]["code"] == "NAME_INVALID"
    if s >= 400 and body:
        assert json.loads(body)["errors"][0]["code"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                        lambda kids: st.lists(kids, max_size=3) |
                        st.dictionaries(st.sampled_from(["schemaVersion", "mediaType", "config",
                                                         "layers", "manifests", "digest",
                                                         "size", "subject"]), kids, max_size=5),
                        max_leaves=12),
       ctype=st.sampled_from([mt.IMAGE_MANIFEST, mt.IMAGE_INDEX, mt.DOCKER_MANIFEST, ""]))
def test_fuzzed_manifests(server, doc, ctype):
    c = Client(server.url)
    s, _, body = c.req("PUT", "/v2/fuzz/manifests/t", json.dumps(doc).encode(),
                       {"Content-Type": ctype} if ctype else {})
    assert s == 400, body
    assert json.loads(body)["errors"][0]["code"] in ("MANIFEST_INVALID", "MANIFEST_BLOB_UNKNOWN")
    assert c.req("GET", "/v2/fuzz/manifests/t")[0] == 404
