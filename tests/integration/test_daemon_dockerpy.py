"""docker-py (PyPI `docker`), the Python client of the Docker Engine API, against palletd —
with pallet-runtime and with runc underneath."""

from __future__ import annotations

import time

import pytest
from daemon_support import make_daemon

docker = pytest.importorskip("docker", reason="docker-py (PyPI `docker`) is not installed")

palletd = make_daemon()
palletd_runc = make_daemon("runc")


@pytest.fixture(params=["pallet-runtime", "runc"])
def client(request):
    daemon = request.getfixturevalue("palletd" if request.param == "pallet-runtime"
                                     else "palletd_runc")
    c = docker.DockerClient(base_url=f"unix://{daemon.sock}", version="auto")
    yield c
    for ct in c.containers.list(all=True):
        ct.remove(force=True)
    c.close()


def test_version_and_images(client):
    assert client.version()["ApiVersion"] == "1.41"
    assert ["busybox:latest"] in [i.tags for i in client.images.list()]
    assert client.images.get("busybox").attrs["Config"]["Cmd"] == ["sh"]


def test_run_and_remove(client):
    assert client.containers.run("busybox", ["echo", "hi"], remove=True) == b"hi\n"
    assert client.containers.list(all=True) == []
    with pytest.raises(docker.errors.ContainerError) as err:
        client.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 3"], remove=True)
    assert err.value.exit_status == 3


def test_detached_logs_exec_stop(client):
    ct = client.containers.run("busybox", ["sh", "-c", "echo started; sleep 100"],
                               detach=True, name="dpy", environment={"FOO": "bar"})
    deadline = time.monotonic() + 10
    while b"started" not in ct.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ct.logs() == b"started\n"
    assert [c.name for c in client.containers.list()] == ["dpy"]
    code, out = ct.exec_run(["sh", "-c", "echo $FOO $((1+2))"])
    assert (code, out) == (0, b"bar 3\n")
    ct.stop(timeout=1)
    ct.reload()
    assert ct.status == "exited" and ct.attrs["State"]["ExitCode"] == 137
    ct.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("dpy")


def test_errors(client):
    # docker-py then tries a pull, which cannot reach a registry from here: an API error
    # naming the image either way, and no container left behind.
    with pytest.raises(docker.errors.APIError, match="no-such-image"):
        client.containers.run("no-such-image:v0", ["true"])
    assert client.containers.list(all=True) == []
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("nothing-here")
