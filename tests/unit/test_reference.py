import pytest

from pallet.errors import InvalidArgument
from pallet.images import reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(("given", "want"), [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("me/app", "docker.io/me/app:latest"),
    ("index.docker.io/me/app:v1", "docker.io/me/app:v1"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t"),
    ("registry.example.com:5000/repo@" + D, "registry.example.com:5000/repo@" + D),
    ("host:5000/repo:tag@" + D, "host:5000/repo:tag@" + D),
    ("quay.io/x/y", "quay.io/x/y:latest"),
    ("[::1]:5000/repo", "[::1]:5000/repo:latest"),
    ("a__b/c-d.e", "docker.io/a__b/c-d.e:latest"),
])
def test_normalize(given, want):
    assert reference.normalize(given) == want


@pytest.mark.parametrize("bad", [
    "", " busybox", "Busybox", "me/App", "busybox:", "busybox:-x", "a//b",
    "repo@sha256:abc", "repo@md5:" + "0" * 32, "-x/y", "x_/y", "a" * 300,
    "bad_domain.com:notaport/x", "busybox:" + "t" * 129,
])
def test_invalid(bad):
    with pytest.raises(InvalidArgument):
        reference.parse(bad)


def test_uppercase_message():
    with pytest.raises(InvalidArgument, match="must be lowercase"):
        reference.parse("Busybox")


def test_familiar_and_parts():
    r = reference.parse("busybox")
    assert (r.domain, r.path, r.tag, r.digest) == ("docker.io", "library/busybox", "latest",
                                                   None)
    assert r.familiar() == "busybox:latest"
    assert reference.parse("me/app:1").familiar() == "me/app:1"
    assert reference.parse("localhost:5000/app").familiar() == "localhost:5000/app:latest"
    assert str(reference.parse("localhost:5000/app@" + D).digest) == D
    assert reference.parse("x").with_tag("v2").familiar() == "x:v2"


def test_parse_named_keeps_missing_tag():
    assert reference.parse_named("busybox").tag is None


def test_tag_only():
    assert reference.is_tag_only("latest") and reference.is_tag_only("v1.0")
    assert not reference.is_tag_only("busybox:latest")
    assert not reference.is_tag_only("me/app")
