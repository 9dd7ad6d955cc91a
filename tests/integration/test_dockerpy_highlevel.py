"""docker-py's high-level API (PyPI `docker`, `DockerClient`) against palletd, as a user
script would use it: containers (run, list with filters, logs, exec_run, wait), images
(push to and pull from a local pallet registry), networks with a service reached by name."""

from __future__ import annotations

import time

import pytest
from daemon_support import make_daemon

docker = pytest.importorskip("docker", reason="docker-py (PyPI `docker`) is not installed")

palletd = make_daemon()


@pytest.fixture
def client(palletd):
    c = docker.DockerClient(base_url=f"unix://{palletd.sock}", version="1.41")
    yield c
    for ct in c.containers.list(all=True):
        ct.remove(force=True)
    for n in c.networks.list():
        if n.name not in ("bridge", "host", "none"):
            n.remove()
    c.close()


def test_containers_run_list_logs_exec_wait(client):
    a = client.containers.run("busybox", ["sh", "-c", "echo one; echo two >&2; sleep 60"],
                              detach=True, labels={"app": "demo", "tier": "a"}, name="svc-a")
    b = client.containers.run("busybox", ["sleep", "60"], detach=True,
                              labels={"app": "demo", "tier": "b"})
    try:
        names = {c.name for c in client.containers.list(filters={"label": "app=demo"})}
        assert names == {"svc-a", b.name}
        assert [c.id for c in client.containers.list(filters={"label": ["app=demo",
                                                                        "tier=b"]})] == [b.id]
        deadline = time.monotonic() + 10
        while b"two" not in a.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert a.logs(stdout=True, stderr=False) == b"one\n"
        assert a.logs(stdout=False, stderr=True) == b"two\n"
        res = a.exec_run(["sh", "-c", "echo $HOSTNAME; exit 4"])
        assert res.exit_code == 4 and res.output.strip() == a.id[:12].encode()
        res = a.exec_run("cat /etc/hostname", user="nobody", workdir="/tmp")
        assert res.exit_code == 0
        b.kill()
        assert b.wait(timeout=10)["StatusCode"] == 137
    finally:
        a.remove(force=True)
        b.remove(force=True)


def test_images_push_and_pull_through_a_local_registry(client, tmp_path):
    from pallet.registry.testing import pallet_registry

    with pallet_registry(str(tmp_path / "reg")) as reg:
        host = reg.url.split("://", 1)[1]
        img = client.images.get("busybox")
        assert img.tag(f"{host}/team/bb", "v1")
        out = list(client.images.push(f"{host}/team/bb", "v1", stream=True, decode=True))
        assert any("Digest" in (o.get("aux") or {}) for o in out), out
        digest = next(o["aux"]["Digest"] for o in out if "Digest" in (o.get("aux") or {}))
        # what the registry holds, asked through palletd without pulling
        rd = client.images.get_registry_data(f"{host}/team/bb:v1")
        assert rd.id == digest
        arch = img.attrs["Architecture"]
        assert rd.has_platform(f"linux/{arch}") and not rd.has_platform("windows/amd64")
        with pytest.raises(docker.errors.NotFound):
            client.images.get_registry_data(f"{host}/team/bb:nosuch")
        client.images.remove(f"{host}/team/bb:v1")
        pulled = client.images.pull(f"{host}/team/bb", tag="v1")
        assert pulled.id == img.id
        assert client.containers.run(f"{host}/team/bb:v1", ["echo", "ok"],
                                     remove=True) == b"ok\n"


def test_login_and_push_to_a_token_registry(client, tmp_path):
    """client.login against `pallet registry` with token auth: palletd answers the
    registry's Bearer challenge with the credentials (POST /auth); push and pull send
    them (X-Registry-Auth)."""
    import textwrap

    from pallet.registry.testing import pallet_registry, write_htpasswd

    hp = tmp_path / "htpasswd"
    write_htpasswd(hp, {"dave": "d-pw"})
    cfg = tmp_path / "registry.toml"
    cfg.write_text(textwrap.dedent(f"""
        [auth]
        type = "token"
        htpasswd = "{hp}"
        [[auth.token.access]]
        account = "dave"
        name = "*"
        actions = ["pull", "push"]
    """))
    with pallet_registry(str(tmp_path / "reg"), "--config", str(cfg)) as reg:
        host = reg.url.split("://", 1)[1]
        client.images.get("busybox").tag(f"{host}/team/bb", "v1")
        out = list(client.images.push(f"{host}/team/bb", "v1", stream=True, decode=True))
        assert "401" in out[-1].get("error", ""), out  # no credentials yet
        client.images.remove(f"{host}/team/bb:v1")
        with pytest.raises(docker.errors.APIError) as e:
            client.login("dave", "nope", registry=host, reauth=True)
        assert e.value.status_code == 401 and host in str(e.value)
        assert client.login("dave", "d-pw", registry=host,
                            reauth=True)["Status"] == "Login Succeeded"
        client.images.get("busybox").tag(f"{host}/team/bb", "v2")
        try:
            out = list(client.images.push(f"{host}/team/bb", "v2", stream=True,
                                          decode=True))
            assert any("Digest" in (o.get("aux") or {}) for o in out), out
            client.images.remove(f"{host}/team/bb:v2")
            assert f"{host}/team/bb:v2" in client.images.pull(f"{host}/team/bb",
                                                              tag="v2").tags
        finally:
            client.images.remove(f"{host}/team/bb:v2")


def test_networks_and_a_service_by_name(client):
    net = client.networks.create("svc", driver="bridge")
    web = client.containers.run(
        "busybox", ["sh", "-c", "mkdir /w && echo pong > /w/index.html && "
                    "exec httpd -f -p 80 -h /w"], detach=True, name="api", network="svc")
    try:
        out = client.containers.run("busybox", ["wget", "-qO-", "http://api/"], remove=True,
                                    network="svc")
        assert out == b"pong\n"
        other = client.containers.run("busybox", ["sleep", "60"], detach=True)
        net.connect(other, aliases=["helper"])
        res = web.exec_run("grep helper /etc/hosts")
        assert res.exit_code == 0, "the peer that joined is not in api's hosts file"
        net.disconnect(other)
        other.remove(force=True)
        net.reload()
        assert [c.name for c in net.containers] == ["api"]
    finally:
        web.remove(force=True)
        net.remove()
    assert "svc" not in [n.name for n in client.networks.list()]


def test_volumes_shared_between_containers(client):
    vol = client.volumes.create("shared", labels={"k": "v"})
    try:
        client.containers.run("busybox", ["sh", "-c", "echo kept > /data/f"], remove=True,
                              volumes={"shared": {"bind": "/data", "mode": "rw"}})
        out = client.containers.run("busybox", ["cat", "/data/f"], remove=True,
                                    volumes=["shared:/data:ro"])
        assert out == b"kept\n"
        assert [v.name for v in client.volumes.list(filters={"label": "k=v"})] == ["shared"]
        with pytest.raises(docker.errors.ContainerError):
            client.containers.run("busybox", ["touch", "/data/g"], remove=True,
                                  volumes=["shared:/data:ro"])
    finally:
        vol.remove()
    assert "shared" not in [v.name for v in client.volumes.list()]
