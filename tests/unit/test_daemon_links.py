"""pallet.daemon.links: docker's link syntax and environment."""

from __future__ import annotations

import pytest

from pallet.daemon import links
from pallet.errors import InvalidArgument


@pytest.mark.parametrize(("text", "want"), [
    ("db", ("db", "db")),
    ("db:cache", ("db", "cache")),
    ("/db:/web/cache", ("db", "cache")),
])
def test_parse(text, want):
    assert links.parse(text) == want


@pytest.mark.parametrize("bad", ["", ":x", "/"])
def test_parse_refuses(bad):
    with pytest.raises(InvalidArgument, match="invalid link"):
        links.parse(bad)


def test_normalize_to_inspects_form():
    assert links.normalize(["db", "redis:cache"], "web") == ["/db:/web/db",
                                                              "/redis:/web/cache"]
    assert links.normalize(None, "web") is None


def test_environment_in_dockers_shape():
    env = links.environment("web", "my-db", "10.0.0.2", {"8080/tcp": {}, "53/udp": {}},
                            ["PATH=/bin", "HOME=/root", "PASSWORD=x=y", "NOVALUE"])
    assert env == [
        "MY_DB_NAME=/web/my-db",
        "MY_DB_PORT=udp://10.0.0.2:53",  # the lowest port
        "MY_DB_PORT_53_UDP=udp://10.0.0.2:53", "MY_DB_PORT_53_UDP_ADDR=10.0.0.2",
        "MY_DB_PORT_53_UDP_PORT=53", "MY_DB_PORT_53_UDP_PROTO=udp",
        "MY_DB_PORT_8080_TCP=tcp://10.0.0.2:8080", "MY_DB_PORT_8080_TCP_ADDR=10.0.0.2",
        "MY_DB_PORT_8080_TCP_PORT=8080", "MY_DB_PORT_8080_TCP_PROTO=tcp",
        "MY_DB_ENV_PASSWORD=x=y",
    ]
