"""pallet-runtime in place of runc under the real high-level runtimes: podman (through
conmon), containerd (its runc v2 shim with another binary) and dockerd (`--add-runtime`).

Each peer runs on temporary roots inside the test's private mount namespace; every case runs
with runc first (the reference) and then pallet-runtime, with each peer's own default
seccomp profile.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from pallet.testing.images import make_layout

from . import peers
from .peers import sh

pytestmark = pytest.mark.root

# this checkout's pallet-runtime (the venv's entry point), not whichever is on PATH
RUNTIMES = {"runc": shutil.which("runc"),
            "pallet-runtime": str(Path(sys.executable).with_name("pallet-runtime"))}
PALLET = str(Path(sys.executable).with_name("pallet"))
# This machine's hard nofile limit is 20000 (and nproc is capped too): the peers' default
# rlimits (1048576) are refused by any runtime, runc included.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def need(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"{t} is not installed (Debian package)")


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    return make_layout("single", tmp_path_factory.mktemp("img") / "layout")


@pytest.fixture(params=list(RUNTIMES))
def runtime_path(request) -> str:
    path = RUNTIMES[request.param]
    if path is None:
        pytest.skip(f"{request.param} not installed")
    return path


# --- podman ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def podman(tmp_path_factory, layout):
    need("podman", "conmon")
    base = tmp_path_factory.mktemp("podman")
    argv = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
            "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--storage-driver", "vfs", "--tmpdir", str(base / "tmp")]
    image_id = sh(*argv, "pull", f"oci:{layout}:latest").stdout.split()[-1]
    sh(*argv, "tag", image_id, "localhost/busybox:latest")
    yield argv
    sh(*argv, "rm", "--all", "--force", check=False)


def test_podman_run(podman, runtime_path):
    opts = ["--network", "none", *ULIMITS, "--runtime", runtime_path]
    r = sh(*podman, "run", "--rm", *opts, "localhost/busybox", "sh", "-c",
           "echo hello; id -u; hostname; grep '^Seccomp:' /proc/self/status")
    lines = r.stdout.splitlines()
    assert lines[0] == "hello" and lines[1] == "0"
    assert lines[3].split() == ["Seccomp:", "2"]  # podman's default profile is loaded
    assert len(lines[2]) == 12  # podman's hostname: the container id's first 12 digits
    assert sh(*podman, "run", "--rm", *opts, "localhost/busybox", "sh", "-c", "exit 3",
              check=False).returncode == 3


def test_podman_lifecycle(podman, runtime_path):
    opts = ["--network", "none", *ULIMITS, "--runtime", runtime_path]
    name = f"life-{os.path.basename(runtime_path)}"
    sh(*podman, "run", "-d", "--name", name, *opts, "localhost/busybox", "sh", "-c",
       "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done")
    try:
        time.sleep(0.5)
        out = sh(*podman, "exec", name, "sh", "-c", "echo from-exec; ps -o comm").stdout
        assert out.splitlines()[0] == "from-exec" and "sh" in out
        assert "tick 0" in sh(*podman, "logs", name).stdout
        sh(*podman, "pause", name)
        assert sh(*podman, "inspect", "--format", "{{.State.Status}}", name).stdout.strip() \
            == "paused"
        sh(*podman, "unpause", name)
        sh(*podman, "stop", "-t", "1", name)
        status = sh(*podman, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                    name).stdout.split()
        assert status[0] == "exited"
    finally:
        sh(*podman, "rm", "-f", name, check=False)


def test_podman_tty(podman, runtime_path):
    opts = ["--network", "none", *ULIMITS, "--runtime", runtime_path]
    cmd = " ".join([*podman, "run", "--rm", "-t", *opts, "localhost/busybox", "sh", "-c",
                    "'tty; echo tty-ok'"])
    r = sh("script", "-qec", cmd, "/dev/null")
    assert "/dev/pts/0" in r.stdout and "tty-ok" in r.stdout


# --- containerd ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def containerd(tmp_path_factory, layout):
    need("containerd", "ctr", "containerd-shim-runc-v2")
    base = tmp_path_factory.mktemp("ctd")
    with peers.containerd(base) as ctr:
        tar = base / "image.tar"
        sh("tar", "-C", str(layout), "-cf", str(tar), ".")
        sh(*ctr, "images", "import", "--index-name", "docker.io/library/busybox:latest",
           str(tar))
        yield ctr


def test_containerd_run(containerd, runtime_path):
    cid = f"c-{os.path.basename(runtime_path)}"
    r = sh(*containerd, "run", "--rm", "--seccomp", "--runc-binary", runtime_path,
           "docker.io/library/busybox:latest", cid, "sh", "-c",
           "echo hello-ctd; id -u; grep '^Seccomp:' /proc/self/status; "
           "unshare -r true 2>/dev/null || echo denied")
    # containerd's default profile: unshare(CLONE_NEWUSER) is refused for a default container
    assert r.stdout.split() == ["hello-ctd", "0", "Seccomp:", "2", "denied"]


def test_containerd_task_lifecycle(containerd, runtime_path):
    cid = f"t-{os.path.basename(runtime_path)}"
    sh(*containerd, "run", "-d", "--runc-binary", runtime_path,
       "docker.io/library/busybox:latest", cid, "sleep", "1000")
    try:
        out = sh(*containerd, "task", "exec", "--exec-id", "e1", cid, "sh", "-c",
                 "echo in-task; ps -o comm").stdout
        assert out.splitlines()[0] == "in-task" and "sleep" in out
        sh(*containerd, "task", "pause", cid)
        assert "PAUSED" in sh(*containerd, "task", "ls").stdout
        sh(*containerd, "task", "resume", cid)
        assert len(sh(*containerd, "task", "ps", cid).stdout.splitlines()) == 2
        sh(*containerd, "task", "kill", "-s", "SIGKILL", cid)
        deadline = time.monotonic() + 10
        while "STOPPED" not in sh(*containerd, "task", "ls").stdout:
            assert time.monotonic() < deadline, "task did not stop"
            time.sleep(0.1)
        sh(*containerd, "task", "delete", cid)
    finally:
        sh(*containerd, "task", "delete", "--force", cid, check=False)
        sh(*containerd, "container", "delete", cid, check=False)


# --- dockerd -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory, layout):
    need("dockerd", "docker")
    base = tmp_path_factory.mktemp("dk")
    with peers.dockerd(base, "--add-runtime", f"pallet={RUNTIMES['pallet-runtime']}") as env:
        try:
            store = base / "pallet"
            sh(PALLET, "--root", str(store), "image", "import", "--name",
               "docker.io/library/busybox", str(layout))
            archive = base / "busybox.tar"
            sh(PALLET, "--root", str(store), "image", "export", "--format", "docker-archive",
               "-o", str(archive), "docker.io/library/busybox:latest")
            sh("docker", "load", "-i", str(archive), env=env)
            yield env
        finally:
            sh("docker", "rm", "-f", "d-runc", "d-pallet", env=env, check=False)


def test_dockerd_run_exec_stop(dockerd, runtime_path):
    rt = "runc" if runtime_path.endswith("/runc") else "pallet"
    opts = ["--runtime", rt, "--network", "none"]
    r = sh("docker", "run", "--rm", *opts, "busybox", "sh", "-c",
           "echo hello-docker; id -u; grep '^Seccomp:' /proc/self/status", env=dockerd)
    assert r.stdout.split() == ["hello-docker", "0", "Seccomp:", "2"]
    name = f"d-{rt}"
    sh("docker", "run", "-d", "--name", name, *opts, "busybox", "sleep", "1000", env=dockerd)
    assert sh("docker", "exec", name, "echo", "in-exec", env=dockerd).stdout.strip() == "in-exec"
    assert "sleep" in sh("docker", "top", name, env=dockerd).stdout
    sh("docker", "stop", "-t", "1", name, env=dockerd)
    code = sh("docker", "inspect", "--format", "{{.State.ExitCode}}", name, env=dockerd)
    assert code.stdout.strip() == "137"
    sh("docker", "rm", name, env=dockerd)
