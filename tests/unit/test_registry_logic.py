"""Pure logic of the registry, both sides: ranges, routes, pagination, error bodies, token
scopes and challenges, server config, hosts.toml, docker credentials."""

import base64
import json
import os
import stat
import textwrap

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pallet.errors import InvalidArgument, NotFound
from pallet.registry import names, ranges
from pallet.registry.client import hosts
from pallet.registry.client.credentials import Credentials, DockerConfig, server_key
from pallet.registry.client.push import with_query
from pallet.registry.errors import RegistryError, error_body, parse_error_body
from pallet.registry.scopes import (
    format_challenge,
    merge,
    parse_challenges,
    parse_scope,
    parse_scopes,
    repository,
)
from pallet.registry.server import config as cfgmod
from pallet.registry.server.auth import Identity, TokenAuth, TokenIssuer
from pallet.registry.server.discovery import next_link, paginate, parse_n

D = "sha256:" + "a" * 64

# --- ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize("value,want", [("0-99", (0, 99)), ("100-100", (100, 100)),
                                        ("bytes 5-9/10", (5, 9)), ("bytes=0-0", (0, 0)),
                                        ("3-7/*", (3, 7))])
def test_content_range(value, want):
    assert ranges.parse_content_range(value) == want


@pytest.mark.parametrize("value", ["", "5", "-5", "9-5", "a-b", "0-1,3-4", "bytes */10"])
def test_content_range_invalid(value):
    with pytest.raises(ranges.RangeError):
        ranges.parse_content_range(value)


def test_upload_range_round_trip():
    assert ranges.upload_range(0) == "0-0"
    assert ranges.upload_range(1) == "0-0"
    assert ranges.upload_range(100) == "0-99"
    assert ranges.parse_upload_range("0-99") == 100


@pytest.mark.parametrize("value,size,want", [
    ("bytes=0-9", 100, (0, 9)), ("bytes=90-", 100, (90, 99)), ("bytes=-10", 100, (90, 99)),
    ("bytes=50-500", 100, (50, 99)), ("bytes=-500", 100, (0, 99)), ("bytes=99-99", 100, (99, 99)),
])
def test_byte_range(value, size, want):
    assert ranges.parse_byte_range(value, size) == want


@pytest.mark.parametrize("value,size", [("bytes=100-", 100), ("bytes=200-300", 100),
                                        ("bytes=-0", 100), ("bytes=5-1", 100), ("bytes=-", 10),
                                        ("bytes=0-1,5-6", 100), ("items=0-1", 100),
                                        ("bytes=0-", 0)])
def test_byte_range_unsatisfiable(value, size):
    with pytest.raises(ranges.RangeError):
        ranges.parse_byte_range(value, size)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6))
def test_byte_range_within_size(a, b, size):
    try:
        start, end = ranges.parse_byte_range(f"bytes={a}-{b}", size)
    except ranges.RangeError:
        assert a >= size or b < a
        return
    assert 0 <= start <= end < size and start == a


# --- names and routes ------------------------------------------------------------------------

@pytest.mark.parametrize("name,ok", [("a", True), ("library/busybox", True),
                                     ("a.b_c__d-e--f", True),
                                     ("a/b/c/d", True), ("A", False), ("a//b", False),
                                     ("-a", False), ("a_", False), ("a___b", False), ("", False),
                                     ("a/" * 200 + "a", False)])
def test_names(name, ok):
    assert names.valid_name(name) is ok


@pytest.mark.parametrize("tag,ok", [("latest", True), ("v1.0-rc_2", True), ("_x", True),
                                    (".x", False), ("-x", False), ("a" * 128, True),
                                    ("a" * 129, False), ("a:b", False)])
def test_tags(tag, ok):
    assert names.valid_tag(tag) is ok


@pytest.mark.parametrize("path,want", [
    ("/v2/", names.Route(names.BASE)),
    ("/v2/_catalog", names.Route(names.CATALOG)),
    ("/v2/a/b/manifests/latest", names.Route(names.MANIFEST, "a/b", "latest")),
    (f"/v2/a/blobs/{D}", names.Route(names.BLOB, "a", D)),
    ("/v2/a/blobs/uploads/", names.Route(names.UPLOADS, "a", "")),
    ("/v2/a/blobs/uploads/123-x", names.Route(names.UPLOAD, "a", "123-x")),
    ("/v2/a/tags/list", names.Route(names.TAGS, "a", "")),
    (f"/v2/a/referrers/{D}", names.Route(names.REFERRERS, "a", D)),
    # a repository may have components named like endpoints: the last one is the endpoint
    ("/v2/x/manifests/y/manifests/v1", names.Route(names.MANIFEST, "x/manifests/y", "v1")),
    ("/v2/blobs/blobs/uploads/", names.Route(names.UPLOADS, "blobs", "")),
    ("/v2/Bad/tags/list", names.Route(names.TAGS, "Bad", "")),
])
def test_route(path, want):
    assert names.route(path) == want


@pytest.mark.parametrize("path", ["/v2/a", "/v2/a/manifests/", "/v2/a/nothing/x", "/other"])
def test_route_none(path):
    assert names.route(path) is None


# --- pagination ------------------------------------------------------------------------------

TAGS = sorted(["a", "b", "B", "c", "latest", "v1", "v10", "v2"])


def test_paginate():
    assert paginate(TAGS, None, None) == (TAGS, False)
    assert paginate(TAGS, 3, None) == (TAGS[:3], True)
    assert paginate(TAGS, 0, None) == ([], False)
    assert paginate(TAGS, 2, "b") == (["c", "latest"], True)
    assert paginate(TAGS, 100, "v10") == (["v2"], False)
    assert paginate(TAGS, None, "latest") == (["v1", "v10", "v2"], False)
    assert paginate(TAGS, 3, "zzz") == ([], False)
    assert paginate(TAGS, 8, None) == (TAGS, False)
    # `last` need not be a present tag: it is a position in the order
    assert paginate(TAGS, 1, "bb") == (["c"], True)


@given(st.lists(st.text("abcxyz019._-", min_size=1, max_size=5), unique=True),
       st.integers(1, 5))
def test_paginate_walks_everything_once(tags, n):
    tags = sorted(tags)
    seen, last, more = [], None, True
    while more:
        page, more = paginate(tags, n, last)
        seen += page
        if page:
            last = page[-1]
    assert seen == tags


def test_parse_n_and_link():
    assert parse_n(None) is None and parse_n("") is None and parse_n("5") == 5
    for bad in ("-1", "x", "1.5"):
        with pytest.raises(RegistryError) as e:
            parse_n(bad)
        assert e.value.status == 400
    assert next_link("/v2/a/tags/list", 2, "v1") == '</v2/a/tags/list?n=2&last=v1>; rel="next"'


# --- error bodies ------------------------------------------------------------------------------

def test_error_body_round_trip():
    e = RegistryError("BLOB_UNKNOWN", {"digest": D})
    doc = json.loads(e.body())
    assert doc == {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry",
                               "detail": {"digest": D}}]}
    back = parse_error_body(404, e.body())
    assert [(x.code, x.status, x.detail) for x in back] == [("BLOB_UNKNOWN", 404, {"digest": D})]


@pytest.mark.parametrize("code,status", [("BLOB_UNKNOWN", 404), ("BLOB_UPLOAD_INVALID", 400),
                                         ("BLOB_UPLOAD_UNKNOWN", 404), ("DIGEST_INVALID", 400),
                                         ("MANIFEST_BLOB_UNKNOWN", 400), ("MANIFEST_INVALID", 400),
                                         ("MANIFEST_UNKNOWN", 404), ("NAME_INVALID", 400),
                                         ("NAME_UNKNOWN", 404), ("SIZE_INVALID", 400),
                                         ("UNAUTHORIZED", 401), ("DENIED", 403),
                                         ("UNSUPPORTED", 405), ("TOOMANYREQUESTS", 429)])
def test_error_statuses(code, status):
    assert RegistryError(code).status == status
    assert code.replace("_", "").isalpha() and code.isupper()


def test_error_body_not_json():
    errs = parse_error_body(502, b"<html>bad gateway</html>")
    assert errs[0].code == "UNKNOWN" and errs[0].status == 502
    assert parse_error_body(401, b"")[0].code == "UNAUTHORIZED"
    assert parse_error_body(400, json.dumps({"errors": [{"code": "NOPE"}]}).encode()
                            )[0].code == "UNKNOWN"
    with pytest.raises(ValueError):
        RegistryError("NOT_A_CODE")
    assert json.loads(error_body([RegistryError("DENIED"), RegistryError("UNAUTHORIZED")])
                      )["errors"][1]["code"] == "UNAUTHORIZED"


# --- scopes and challenges --------------------------------------------------------------------

def test_scopes():
    s = parse_scope("repository:localhost:5000/app:pull,push")
    assert (s.type, s.name, s.actions) == ("repository", "localhost:5000/app", ("pull", "push"))
    assert str(s) == "repository:localhost:5000/app:pull,push"
    assert parse_scope("registry:catalog:*").actions == ("*",)
    assert parse_scopes(["repository:a:pull repository:b:push", "repository:a:push"]) == [
        repository("a", "pull"), repository("b", "push"), repository("a", "push")]
    assert merge(parse_scopes(["repository:a:pull repository:b:push repository:a:push,pull"])
                 ) == [repository("a", "pull", "push"), repository("b", "push")]
    for bad in ("repository", "repository:a", ":a:pull"):
        with pytest.raises(ValueError):
            parse_scope(bad)


def test_challenges():
    h = ('Bearer realm="https://auth.example/token",service="registry.example",'
         'scope="repository:a/b:pull,push"')
    [c] = parse_challenges(h)
    assert c.scheme == "bearer" and c.params == {
        "realm": "https://auth.example/token", "service": "registry.example",
        "scope": "repository:a/b:pull,push"}
    two = parse_challenges('Basic realm="x y", Bearer realm="r",error="insufficient_scope"')
    assert [c.scheme for c in two] == ["basic", "bearer"]
    assert two[0].params == {"realm": "x y"} and two[1].params["error"] == "insufficient_scope"
    assert parse_challenges('Basic realm="a \\"quoted\\" realm"')[0].params["realm"] == \
        'a "quoted" realm'
    params = {"realm": 'we "quote"', "service": "s"}
    assert parse_challenges(format_challenge("Bearer", params))[0].params == params


# --- token issue and verification ----------------------------------------------------------------

def _cfg(**kw):
    c = cfgmod.Config(auth="token", root="/nonexistent", **kw)
    return c


def test_token_scopes_by_rule():
    rules = [cfgmod.AccessRule("alice", "alice/*", ["pull", "push"]),
             cfgmod.AccessRule("*", "shared/*", ["pull"]),
             cfgmod.AccessRule("", "public/*", ["pull"])]
    cfg = _cfg()
    cfg.token.access = rules
    issuer = TokenIssuer(cfg, b"k" * 32, None)
    assert issuer.allowed_actions("alice", repository("alice/app", "pull", "push")) == [
        "pull", "push"]
    assert issuer.allowed_actions("bob", repository("alice/app", "pull")) == []
    assert issuer.allowed_actions("bob", repository("shared/x", "pull", "push")) == ["pull"]
    assert issuer.allowed_actions("", repository("shared/x", "pull")) == []
    assert issuer.allowed_actions("", repository("public/x", "pull", "push")) == ["pull"]
    tok = issuer.issue("bob", cfg.token.service, [repository("shared/x", "pull", "push")])
    claims = jwt.decode(tok["token"], b"k" * 32, algorithms=["HS256"],
                        audience=cfg.token.service)
    assert claims["sub"] == "bob" and claims["access"] == [
        {"type": "repository", "name": "shared/x", "actions": ["pull"]}]
    verifier = TokenAuth(cfg, b"k" * 32, "http://127.0.0.1/token")
    ident = verifier.authorize({"Authorization": f"Bearer {tok['token']}"},
                               [repository("shared/x", "pull")])
    assert ident.account == "bob"
    with pytest.raises(RegistryError) as e:  # push was not granted
        verifier.authorize({"Authorization": f"Bearer {tok['token']}"},
                           [repository("shared/x", "pull", "push")])
    assert e.value.status == 401 and 'error="insufficient_scope"' in \
        e.value.headers["WWW-Authenticate"]
    with pytest.raises(RegistryError) as e:  # signed with another key
        TokenAuth(cfg, b"x" * 32, "r").authorize({"Authorization": f"Bearer {tok['token']}"},
                                                 [repository("shared/x", "pull")])
    assert 'error="invalid_token"' in e.value.headers["WWW-Authenticate"]
    with pytest.raises(RegistryError) as e:  # none at all: the challenge names the scope
        verifier.authorize({}, [repository("shared/x", "pull")])
    assert 'scope="repository:shared/x:pull"' in e.value.headers["WWW-Authenticate"]
    assert 'realm="http://127.0.0.1/token"' in e.value.headers["WWW-Authenticate"]


def test_token_default_rules():
    issuer = TokenIssuer(_cfg(anonymous_read=True), b"k" * 32, None)
    assert issuer.allowed_actions("", repository("a", "pull", "push")) == ["pull"]
    assert issuer.allowed_actions("joe", repository("a", "pull", "push", "delete")) == [
        "pull", "push", "delete"]
    closed = TokenIssuer(_cfg(), b"k" * 32, None)
    assert closed.allowed_actions("", repository("a", "pull")) == []


def test_identity_allows():
    ident = Identity("x", [repository("a", "pull"), repository("b", "*")])
    assert ident.allows(repository("a", "pull"))
    assert not ident.allows(repository("a", "push"))
    assert ident.allows(repository("b", "push", "delete"))
    assert not ident.allows(repository("c", "pull"))
    assert Identity("", None).allows(repository("anything", "push"))


# --- server configuration ------------------------------------------------------------------------

def test_config_file(tmp_path):
    p = tmp_path / "registry.toml"
    p.write_text(textwrap.dedent("""
        [http]
        addr = "127.0.0.1:5555"
        [storage]
        root = "/srv/reg"
        delete = false
        [auth]
        type = "token"
        htpasswd = "/etc/htpasswd"
        anonymous_read = true
        [auth.token]
        service = "svc"
        expiration = 60
        [[auth.token.access]]
        account = "ci"
        name = "ci/*"
        actions = ["pull", "push"]
    """))
    c = cfgmod.load(p)
    assert c.host_port == ("127.0.0.1", 5555) and c.root == "/srv/reg" and not c.delete
    assert c.auth == "token" and c.anonymous_read and c.token.service == "svc"
    assert c.token.expiration == 60
    assert c.token.access == [cfgmod.AccessRule("ci", "ci/*", ["pull", "push"])]
    assert cfgmod.load(None) == cfgmod.Config()


@pytest.mark.parametrize("text,msg", [
    ("[http]\naddr = 'nope'", "host:port"),
    ("[storage]\ndelete = 'yes'", "must be bool"),
    ("[storage]\nmax_manifest_size = true", "must be int"),
    ("[auth]\ntype = 'ldap'", "auth.type"),
    ("[auth]\ntype = 'htpasswd'", "needs auth.htpasswd"),
    ("[http]\ntls_cert = '/c'", "go together"),
    ("[bogus]\nx = 1", "unknown section"),
    ("[http]\nadress = '1:2'", "unknown keys"),
    ("[auth.token]\naccess = [{actions = ['fly']}]", "unknown actions"),
    ("[http\n", "config"),
])
def test_config_invalid(tmp_path, text, msg):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(InvalidArgument, match=msg):
        cfgmod.load(p)


# --- hosts.toml ---------------------------------------------------------------------------------

def test_hosts_default_and_flags(tmp_path):
    [ep] = hosts.endpoints("docker.io", hosts_dir=str(tmp_path))
    assert ep.base == "https://registry-1.docker.io/v2" and not ep.mirror
    [ep] = hosts.endpoints("localhost:5000", hosts_dir=str(tmp_path), plain_http=True)
    assert ep.base == "http://localhost:5000/v2"
    [ep] = hosts.endpoints("r.example", hosts_dir=str(tmp_path), insecure=True)
    assert ep.scheme == "https" and ep.skip_verify and ep.http_fallback


def test_hosts_toml(tmp_path):
    d = tmp_path / "docker.io"
    d.mkdir()
    (d / "hosts.toml").write_text(textwrap.dedent("""
        server = "https://registry-1.docker.io"
        [host."http://127.0.0.1:5001"]
          capabilities = ["pull", "resolve"]
        [host."https://mirror.example/prefix"]
          capabilities = ["pull"]
          skip_verify = true
          ca = "/etc/ca.pem"
          override_path = true
          [host."https://mirror.example/prefix".header]
            x-token = "abc"
    """))
    eps = hosts.endpoints("docker.io", hosts_dir=str(tmp_path))
    assert [e.base for e in eps] == ["http://127.0.0.1:5001/v2", "https://mirror.example/prefix",
                                     "https://registry-1.docker.io/v2"]
    assert [e.mirror for e in eps] == [True, True, False]
    assert eps[0].can("resolve") and not eps[0].can("push") and eps[2].can("push")
    assert eps[1].skip_verify and eps[1].ca == ["/etc/ca.pem"] and eps[1].header == {
        "x-token": "abc"}
    (d / "hosts.toml").write_text('[host."ftp://x"]\n')
    with pytest.raises(InvalidArgument, match="scheme"):
        hosts.endpoints("docker.io", hosts_dir=str(tmp_path))
    (d / "hosts.toml").write_text('[host."https://x"]\ncapabilities = ["fly"]\n')
    with pytest.raises(InvalidArgument, match="capabilities"):
        hosts.endpoints("docker.io", hosts_dir=str(tmp_path))


def test_with_query():
    assert with_query("/v2/a/blobs/uploads/1", digest=D) == f"/v2/a/blobs/uploads/1?digest={D}"
    assert with_query("http://h/up?_state=x&y=1", digest=D) == \
        f"http://h/up?_state=x&y=1&digest={D}"


# --- docker credentials ---------------------------------------------------------------------

def test_docker_config_auths(tmp_path):
    cfg = DockerConfig(str(tmp_path))
    assert cfg.get("localhost:5000") is None
    cfg.store("localhost:5000", Credentials("me", "pw:with:colons"))
    cfg.store("docker.io", Credentials("hub", "h"))
    doc = json.loads((tmp_path / "config.json").read_text())
    assert base64.b64decode(doc["auths"]["localhost:5000"]["auth"]) == b"me:pw:with:colons"
    assert "https://index.docker.io/v1/" in doc["auths"]
    assert stat.S_IMODE(os.stat(tmp_path / "config.json").st_mode) == 0o600
    again = DockerConfig(str(tmp_path))
    assert again.get("localhost:5000") == Credentials("me", "pw:with:colons")
    assert again.get("index.docker.io") == Credentials("hub", "h")
    assert again.get("https://localhost:5000/") == Credentials("me", "pw:with:colons")
    again.erase("localhost:5000")
    assert DockerConfig(str(tmp_path)).get("localhost:5000") is None
    with pytest.raises(NotFound):
        again.erase("localhost:5000")
    assert server_key("registry-1.docker.io") == "https://index.docker.io/v1/"


HELPER = """#!/bin/sh
# docker-credential-<name> protocol, state in $STORE (one file per server)
set -e
verb="$1"
input=$(cat)
case "$verb" in
get)
  f="$STORE/$(printf %s "$input" | tr '/:' '__')"
  if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store)
  server=$(printf %s "$input" | sed 's/.*"ServerURL": *"\\([^"]*\\)".*/\\1/')
  printf %s "$input" > "$STORE/$(printf %s "$server" | tr '/:' '__')" ;;
erase)
  rm -f "$STORE/$(printf %s "$input" | tr '/:' '__')" ;;
esac
"""


def test_credential_helper(tmp_path, monkeypatch):
    bindir, store = tmp_path / "bin", tmp_path / "store"
    bindir.mkdir()
    store.mkdir()
    helper = bindir / "docker-credential-testing"
    helper.write_text(HELPER)
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("STORE", str(store))
    cfgdir = tmp_path / "docker"
    cfgdir.mkdir()
    (cfgdir / "config.json").write_text(json.dumps({"credHelpers": {"r.example:5000": "testing"}}))
    cfg = DockerConfig(str(cfgdir))
    assert cfg.get("r.example:5000") is None
    cfg.store("r.example:5000", Credentials("u", "s3cret"))
    doc = json.loads((cfgdir / "config.json").read_text())
    assert doc["auths"]["r.example:5000"] == {}  # no secret in the file
    assert "s3cret" not in (cfgdir / "config.json").read_text()
    assert list(os.listdir(store)) == ["r.example_5000"]
    assert DockerConfig(str(cfgdir)).get("r.example:5000") == Credentials("u", "s3cret")
    DockerConfig(str(cfgdir)).erase("r.example:5000")
    assert list(os.listdir(store)) == []
    # credsStore applies to every other registry; a missing helper is a clear error
    (cfgdir / "config.json").write_text(json.dumps({"credsStore": "absent"}))
    with pytest.raises(NotFound, match="docker-credential-absent"):
        DockerConfig(str(cfgdir)).get("other.example")
