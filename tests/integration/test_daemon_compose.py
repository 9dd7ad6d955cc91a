"""Debian's docker-compose (1.29, a Python client of the Engine API) against palletd: a
two-service project — a busybox httpd and a client that fetches from it by service
name — brought up, inspected and torn down."""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest
from daemon_support import make_daemon

palletd = make_daemon()
COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed "
                                "(scripts/install-deps installs Debian's)")

PROJECT = """\
version: "3.8"
services:
  web:
    image: busybox
    command:
      - sh
      - -c
      - mkdir -p /www && echo served-by-web > /www/index.html && exec httpd -f -p 80 -h /www
    ports:
      - "127.0.0.1:{port}:80"
  client:
    image: busybox
    depends_on: [web]
    command:
      - sh
      - -c
      - until wget -qO- http://web/ > /tmp/got; do sleep 0.2; done; cat /tmp/got; sleep 600
"""


def compose(palletd, project_dir, *args: str, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMPOSE, "-p", "demo", *args], cwd=project_dir, env=palletd.env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_two_service_project_up_and_down(palletd, tmp_path):
    from test_daemon_network import fetch, free_port

    port = free_port()
    (tmp_path / "docker-compose.yml").write_text(textwrap.dedent(PROJECT.format(port=port)))
    up = compose(palletd, tmp_path, "up", "-d")
    assert up.returncode == 0, up.stderr
    try:
        ps = compose(palletd, tmp_path, "ps")
        assert "demo_web_1" in ps.stdout and "demo_client_1" in ps.stdout, ps.stdout
        assert fetch(f"http://127.0.0.1:{port}/") == "served-by-web\n"
        palletd.wait_for(lambda: "served-by-web" in compose(palletd, tmp_path, "logs",
                                                            "client").stdout,
                         timeout=30, what="the client's fetch by service name")
        nets = palletd.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert "demo_default" in nets
        ex = compose(palletd, tmp_path, "exec", "-T", "client", "wget", "-qO-", "http://web/")
        assert ex.stdout == "served-by-web\n", ex.stderr
    finally:
        down = compose(palletd, tmp_path, "down", "-t", "1")
    assert down.returncode == 0, down.stderr
    assert palletd.docker("ps", "-aq").stdout.strip() == ""
    assert "demo_default" not in palletd.docker("network", "ls").stdout
