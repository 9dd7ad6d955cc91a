"""Server gaps of the distribution issue, over real HTTP on 127.0.0.1 (server in a thread):
the rate limit (429 TOOMANYREQUESTS), referrers pagination with Link, the token service's
OAuth2 side (refresh/identity tokens) and RS256 tokens with an x5c chain; pallet's client
through each of them."""

import asyncio
import base64
import json
import time
import urllib.parse
import urllib.request

import bcrypt
import jwt
import pytest
from cryptography import x509
from tests.unit.test_registry_server import Client, image, sha

from pallet.images.service import ImageService
from pallet.registry.client.api import Options, pull, push
from pallet.registry.client.credentials import Credentials
from pallet.registry.client.transport import RequestError
from pallet.registry.server import ratelimit
from pallet.registry.server.config import Config, TokenConfig, from_dict
from pallet.registry.server.serve import BackgroundServer
from pallet.registry.testing import free_port
from pallet.testing import images as timages


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return timages.make_layout("single", tmp_path_factory.mktemp("l") / "single")


@pytest.fixture
def svc(tmp_path):
    s = ImageService(str(tmp_path / "client"), "native")
    yield s
    s.close()


def _opts(**kw):
    return Options(plain_http=True, hosts_dir="", backoff=0.01, **kw)


# --- rate limit ----------------------------------------------------------------------------

def test_token_buckets():
    now = [0.0]
    b = ratelimit.TokenBuckets(2.0, 3, clock=lambda: now[0])
    assert [b.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("a") == pytest.approx(0.5)         # empty: one token takes 1/rate
    assert b.take("b") == 0.0                         # another client has its own bucket
    now[0] += 0.5
    assert b.take("a") == 0.0 and b.take("a") > 0
    now[0] += 100
    assert [b.take("a") for _ in range(4)][:3] == [0.0] * 3   # refills up to the burst only
    assert ratelimit.TokenBuckets(5.0).burst == 10


def test_config_rate_limit_keys():
    cfg = from_dict({"http": {"rate_limit": 5, "rate_burst": 7, "referrers_page_size": 3}})
    assert (cfg.rate_limit, cfg.rate_burst, cfg.referrers_page_size) == (5.0, 7, 3)
    with pytest.raises(Exception, match="rate_limit"):
        from_dict({"http": {"rate_limit": -1}})


def test_429_too_many_requests(tmp_path, layout, svc, monkeypatch):
    refused = []
    real = ratelimit.TokenBuckets.take

    def counting(self, client):
        wait = real(self, client)
        if wait:
            refused.append(client)
        return wait

    monkeypatch.setattr(ratelimit.TokenBuckets, "take", counting)
    cfg = Config(addr="127.0.0.1:0", root=str(tmp_path / "reg"), rate_limit=4, rate_burst=4)
    with BackgroundServer(cfg) as srv:
        c = Client(srv.url)
        statuses = [c.req("GET", "/v2/")[0] for _ in range(8)]
        assert statuses[:4] == [200] * 4 and 429 in statuses[4:]
        s, h, body = c.req("GET", "/v2/")
        assert s == 429
        assert json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert int(h["Retry-After"]) >= 1
        s, h, body = c.req("HEAD", "/v2/")
        assert s == 429 and body == b""
        time.sleep(1.1)
        assert c.req("GET", "/v2/")[0] == 200
        # pallet's client waits as Retry-After says, and gets through
        host = srv.url.split("://")[1]
        svc.import_(str(layout), base_name=f"{host}/rl/app")
        before = len(refused)
        asyncio.run(push(svc, f"{host}/rl/app", opts=_opts(retries=20)))
        dst = ImageService(str(tmp_path / "dst"), "native")
        try:
            got = asyncio.run(pull(dst, f"{host}/rl/app", opts=_opts(retries=20)))
            assert got.target.digest == svc.get(f"{host}/rl/app").target.digest
        finally:
            dst.close()
        assert len(refused) > before          # it was throttled on the way
        assert set(refused) == {"127.0.0.1"}


def test_unlimited_by_default(tmp_path):
    with BackgroundServer(Config(addr="127.0.0.1:0", root=str(tmp_path / "reg"))) as srv:
        c = Client(srv.url)
        assert {c.req("GET", "/v2/")[0] for _ in range(50)} == {200}


# --- referrers pagination ------------------------------------------------------------------

def test_referrers_pages_with_link(tmp_path):
    cfg = Config(addr="127.0.0.1:0", root=str(tmp_path / "reg"), referrers_page_size=2)
    with BackgroundServer(cfg) as srv:
        c = Client(srv.url)
        doc = image(c, "r")
        subject, _ = c.push_manifest("r", "v1", doc)
        empty = c.push_blob("r", b"{}")
        subj = {"mediaType": doc["mediaType"], "digest": subject,
                "size": len(json.dumps(doc).encode())}
        made = {}
        for i in range(5):
            kind = "application/x-sig" if i % 2 else "application/x-sbom"
            art = {"schemaVersion": 2, "mediaType": doc["mediaType"], "artifactType": kind,
                   "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                              "digest": empty, "size": 2},
                   "layers": [], "subject": subj, "annotations": {"i": str(i)}}
            dg, _ = c.push_manifest("r", sha(json.dumps(art).encode()), art)
            made[dg] = kind

        def walk(path):
            seen, pages = [], 0
            while path:
                s, h, body = c.req("GET", path)
                assert s == 200
                got = [m["digest"] for m in json.loads(body)["manifests"]]
                assert len(got) <= 2
                seen += got
                pages += 1
                link = h.get("Link")
                path = link[1:link.index(">")] if link else None
                if link:
                    assert link.endswith('rel="next"')
            return seen, pages

        seen, pages = walk(f"/v2/r/referrers/{subject}")
        assert seen == sorted(made) and pages == 3
        sigs, pages = walk(f"/v2/r/referrers/{subject}?artifactType=application/x-sig")
        assert sigs == sorted(d for d, k in made.items() if k == "application/x-sig")
        assert pages == 1
        sboms, pages = walk(f"/v2/r/referrers/{subject}?artifactType=application/x-sbom")
        assert len(sboms) == 3 and pages == 2       # the filter is kept in the next link
        one, pages = walk(f"/v2/r/referrers/{subject}?n=1")
        assert one == sorted(made) and pages == 5
        assert c.code("GET", f"/v2/r/referrers/{subject}?n=x") == (
            400, "PAGINATION_NUMBER_INVALID")


# --- token service: refresh (identity) tokens, RS256 ---------------------------------------

def _token_cfg(tmp_path, **tok):
    hp = tmp_path / "htpasswd"
    hp.write_text("alice:" + bcrypt.hashpw(b"a-pw", bcrypt.gensalt(rounds=4)).decode() + "\n")
    # a fixed port: the challenge's default realm is this server's own /token
    return Config(addr=f"127.0.0.1:{free_port()}", root=str(tmp_path / "reg"), auth="token",
                  htpasswd=str(hp), token=TokenConfig(**tok))


def _get(url, headers=None, data=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _basic(user, pw):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def test_refresh_tokens(tmp_path, layout, svc):
    with BackgroundServer(_token_cfg(tmp_path)) as srv:
        tok = srv.url + "/token"
        q = "service=pallet-registry&scope=repository:x/app:pull,push"
        s, doc = _get(f"{tok}?{q}", _basic("alice", "a-pw"))
        assert s == 200 and "refresh_token" not in doc
        s, doc = _get(f"{tok}?{q}&offline_token=true", _basic("alice", "a-pw"))
        refresh = doc["refresh_token"]
        # the refresh token itself is no access token
        s, _ = _get(srv.url + "/v2/x/app/tags/list", {"Authorization": f"Bearer {refresh}"})
        assert s == 401
        form = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": refresh,
                                       "service": "pallet-registry", "client_id": "t",
                                       "scope": "repository:x/app:pull"}).encode()
        s, doc = _get(tok, data=form)
        assert s == 200
        claims = jwt.decode(doc["access_token"], options={"verify_signature": False})
        assert claims["sub"] == "alice"
        assert claims["access"] == [{"type": "repository", "name": "x/app",
                                     "actions": ["pull"]}]
        bad = form.replace(refresh[-8:].encode(), b"AAAAAAAA")
        assert _get(tok, data=bad)[0] == 401
        # OAuth2 password grant, offline: what `docker login` does to get an identity token
        pw = urllib.parse.urlencode({"grant_type": "password", "username": "alice",
                                     "password": "a-pw", "access_type": "offline",
                                     "service": "pallet-registry", "client_id": "t"}).encode()
        s, doc = _get(tok, data=pw)
        assert s == 200 and doc["refresh_token"]
        assert _get(tok, data=pw.replace(b"a-pw", b"nope"))[0] == 401

        # pallet's client with an identity token in Docker's config.json
        host = srv.url.split("://")[1]
        conf = tmp_path / "docker"
        conf.mkdir()
        (conf / "config.json").write_text(json.dumps(
            {"auths": {host: {"identitytoken": doc["refresh_token"]}}}))
        svc.import_(str(layout), base_name=f"{host}/x/app")
        asyncio.run(push(svc, f"{host}/x/app", opts=_opts(docker_config=str(conf))))
        dst = ImageService(str(tmp_path / "dst"), "native")
        try:
            got = asyncio.run(pull(dst, f"{host}/x/app", opts=_opts(docker_config=str(conf))))
            assert got.target.digest == svc.get(f"{host}/x/app").target.digest
            with pytest.raises(RequestError) as e:   # a forged identity token gets nothing
                asyncio.run(pull(dst, f"{host}/x/app", opts=_opts(
                    credentials=Credentials("<token>", "not-a-token"), retries=0)))
            assert e.value.status == 401
        finally:
            dst.close()


def test_rs256_tokens_carry_a_verifiable_chain(tmp_path, layout, svc):
    cfg = _token_cfg(tmp_path, signing="RS256")
    with BackgroundServer(cfg) as srv:
        s, doc = _get(srv.url + "/token?service=pallet-registry&scope=repository:y/app:pull",
                      _basic("alice", "a-pw"))
        assert s == 200
        header = jwt.get_unverified_header(doc["token"])
        assert header["alg"] == "RS256" and len(header["x5c"]) == 1
        leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
        ca = x509.load_pem_x509_certificate((tmp_path / "reg" / "token-ca.crt").read_bytes())
        leaf.verify_directly_issued_by(ca)                 # the chain ends at the CA
        claims = jwt.decode(doc["token"], leaf.public_key(), algorithms=["RS256"],
                            audience="pallet-registry")
        assert claims["access"][0]["actions"] == ["pull"]
        # an HS256 token (the default's kind) is refused by an RS256 registry
        forged = jwt.encode(dict(claims, access=[{"type": "repository", "name": "y/app",
                                                  "actions": ["pull", "push"]}]),
                            "s" * 32, algorithm="HS256")
        s, _ = _get(srv.url + "/v2/y/app/tags/list", {"Authorization": f"Bearer {forged}"})
        assert s == 401
        host = srv.url.split("://")[1]
        svc.import_(str(layout), base_name=f"{host}/y/app")
        asyncio.run(push(svc, f"{host}/y/app",
                         opts=_opts(credentials=Credentials("alice", "a-pw"))))
    # restarting keeps the same CA (another registry trusts it)
    first = (tmp_path / "reg" / "token-ca.crt").read_bytes()
    with BackgroundServer(cfg):
        assert (tmp_path / "reg" / "token-ca.crt").read_bytes() == first


def test_serve_flags(tmp_path):
    from pallet.registry.testing import pallet_registry

    with pallet_registry(str(tmp_path / "r"), "--rate-limit", "0.5", "--rate-burst", "2",
                         "--auth", "token", "--token-signing", "RS256",
                         "--anonymous-read") as reg:
        c = Client(reg.url)
        # the readiness probe took a token already; the bucket holds 2 and refills slowly
        got = [c.req("GET", "/token")[0] for _ in range(3)]
        assert got[0] == 200 and got[-1] == 429 and set(got) == {200, 429}
    assert (tmp_path / "r" / "storage" / "token-ca.crt").exists()
