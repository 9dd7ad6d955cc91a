"""Starting the real high-level runtimes for interop tests: containerd and dockerd on
temporary roots, inside the test's own mount namespace, stopped (with everything they
started) when the test is done."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def sh(*argv: str, timeout: float = 60, env: dict | None = None, check: bool = True
       ) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"$ {' '.join(argv)}\nexit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def wait_socket(path: Path, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start (exit {proc.poll()})")
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def containerd(base: Path) -> Iterator[list[str]]:
    """containerd on `base`; yields the `ctr` command line for it."""
    sock = base / "containerd.sock"
    cfg = base / "config.toml"
    cfg.write_text(f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n'
                   f'[grpc]\n  address = "{sock}"\n'
                   '[plugins."io.containerd.grpc.v1.cri"]\n  disable_tcp_service = true\n')
    with open(base / "log", "wb") as log:
        proc = subprocess.Popen(["containerd", "--config", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_socket(sock, proc, "containerd")
        yield ["ctr", "--address", str(sock)]
    finally:
        stop(proc)


@contextlib.contextmanager
def dockerd(base: Path, *extra: str) -> Iterator[dict[str, str]]:
    """dockerd (with its own containerd, so both share this mount namespace); yields the
    environment for the docker CLI."""
    sock = base / "docker.sock"
    with open(base / "log", "wb") as log:
        proc = subprocess.Popen(
            ["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
             "--pidfile", str(base / "pid"), "-H", f"unix://{sock}", "--iptables=false",
             "--ip6tables=false", "--bridge=none", "--exec-opt",
             "native.cgroupdriver=cgroupfs", *extra],
            stdout=subprocess.DEVNULL, stderr=log)
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    try:
        wait_socket(sock, proc, "dockerd")
        deadline = time.monotonic() + 30
        while sh("docker", "version", env=env, check=False).returncode != 0:
            assert time.monotonic() < deadline, "dockerd never answered"
            time.sleep(0.2)
        yield env
    finally:
        stop(proc)
