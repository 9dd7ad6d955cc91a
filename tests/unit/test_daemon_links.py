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
        "MY_DB_PORT=tcp://10.0.0.2:8080",  # TCP first, as docker sorts them
        "MY_DB_PORT_8080_TCP=tcp://10.0.0.2:8080", "MY_DB_PORT_8080_TCP_ADDR=10.0.0.2",
        "MY_DB_PORT_8080_TCP_PORT=8080", "MY_DB_PORT_8080_TCP_PROTO=tcp",
        "MY_DB_PORT_53_UDP=udp://10.0.0.2:53", "MY_DB_PORT_53_UDP_ADDR=10.0.0.2",
        "MY_DB_PORT_53_UDP_PORT=53", "MY_DB_PORT_53_UDP_PROTO=udp",
        "MY_DB_NAME=/web/my-db",
        "MY_DB_ENV_PASSWORD=x=y",
    ]


def _range_vars(env):
    return [e for e in env if "_START" in e or "_END" in e]


def test_environment_port_ranges():
    """A run of consecutive ports of one protocol also gets docker's _START/_END variables,
    after the port that ends it or the one that breaks it."""
    exposed = {f"{p}/tcp": {} for p in (7000, 7001, 7002, 9000)} | {"7003/udp": {},
                                                                        "7004/udp": {}}
    env = links.environment("web", "db.x", "10.0.0.2", exposed, None)
    assert env[0] == "DB.X_PORT=tcp://10.0.0.2:7000"  # dots stay, as in docker
    assert _range_vars(env) == [
        "DB.X_PORT_7000_TCP_START=tcp://10.0.0.2:7000", "DB.X_PORT_7000_TCP_PORT_START=7000",
        "DB.X_PORT_7000_TCP_END=tcp://10.0.0.2:7002", "DB.X_PORT_7000_TCP_PORT_END=7002",
        "DB.X_PORT_7003_UDP_START=udp://10.0.0.2:7003", "DB.X_PORT_7003_UDP_PORT_START=7003",
        "DB.X_PORT_7003_UDP_END=udp://10.0.0.2:7004", "DB.X_PORT_7003_UDP_PORT_END=7004",
    ]
    # the first run's variables follow 9000's, the port that broke it
    assert env.index("DB.X_PORT_9000_TCP_PROTO=tcp") < env.index(
        "DB.X_PORT_7000_TCP_START=tcp://10.0.0.2:7000")
    assert env[-1] == "DB.X_NAME=/web/db.x"
    assert not _range_vars(links.environment("web", "db", "10.0.0.2",
                                             {"80/tcp": {}, "81/udp": {}}, None))
