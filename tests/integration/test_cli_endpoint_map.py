"""The real docker CLI talks to palletd as it talks to dockerd: a recording proxy on the unix
socket captures the requests each command sends, and they must be the ones, in the order,
of ../shared/specs/docker-engine-api/cli-endpoint-map.md (captured against dockerd 20.10).
A command whose answer makes the CLI send something else (a 404 it did not expect, a
different hijack) shows up here as a different sequence."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
from daemon_support import make_daemon

palletd = make_daemon()

# Not anchored to a line start: a request follows the previous one's body directly.
REQUEST = re.compile(rb"(GET|HEAD|POST|PUT|DELETE) (/\S*) HTTP/1\.[01]\r\n")


class Recorder:
    """A unix-socket proxy in front of palletd that notes every request line it forwards."""

    def __init__(self, upstream: str, path: str) -> None:
        self.upstream = upstream
        self.path = path
        self.lock = threading.Lock()
        self.seen: list[tuple[float, str, str]] = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(self.upstream)
            threading.Thread(target=self._pipe, args=(conn, up, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, conn, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        buf = b""
        try:
            while data := src.recv(65536):
                if record:
                    buf = self._scan(buf + data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # pass the half-close on: a hijacked attach without stdin closes its write side
            # and goes on reading
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _scan(self, buf: bytes) -> bytes:
        end = 0
        for m in REQUEST.finditer(buf):
            with self.lock:
                self.seen.append((time.monotonic(), m.group(1).decode(),
                                  m.group(2).decode()))
            end = m.end()
        # keep a tail that may hold the start of a request line split across reads
        return buf[max(end, len(buf) - 2048):]

    def take(self) -> list[str]:
        """The requests so far as `METHOD /path?key=value` without the version prefix and
        the ping, in order; the record is emptied."""
        time.sleep(0.2)  # requests of connections the CLI closed as it exited
        with self.lock:
            seen, self.seen = sorted(self.seen), []
        out = []
        for _, method, target in seen:
            u = urlsplit(target)
            path = re.sub(r"^/v1\.\d+", "", u.path)
            if path == "/_ping":
                continue
            q = "&".join(f"{k}={v}" for k, v in parse_qsl(u.query, keep_blank_values=True))
            out.append(f"{method} {path}" + (f"?{q}" if q else ""))
        return out

    def close(self) -> None:
        self.srv.close()
        os.unlink(self.path)


@pytest.fixture(scope="module")
def cli(palletd):
    rec = Recorder(palletd.sock, os.path.join(palletd.base, "rec.sock"))
    env = {**palletd.env, "DOCKER_HOST": f"unix://{rec.path}"}

    def run(*args: str, check: bool = True) -> list[str]:
        import subprocess

        from daemon_support import DOCKER

        rec.take()
        p = subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env,
                           timeout=60, stdin=subprocess.DEVNULL)
        if check:
            assert p.returncode == 0, p.stderr
        return rec.take()

    yield run
    rec.close()


def _id_free(seq: list[str], *ids: str) -> list[str]:
    out = []
    for s in seq:
        for i in ids:
            s = s.replace(i, "{id}")
        out.append(s)
    return out


def test_system_and_image_commands(cli):
    assert cli("version") == ["GET /version"]
    assert cli("info") == ["GET /info"]
    assert cli("images") == ["GET /images/json"]
    assert cli("tag", "busybox", "busybox:tagged") == [
        "POST /images/busybox/tag?repo=docker.io/library/busybox&tag=tagged"]
    assert cli("rmi", "busybox:tagged") == ["DELETE /images/busybox:tagged"]
    assert cli("system", "df") == ["GET /system/df"]


def test_run_detached_and_the_verbs_on_it(cli, palletd):
    seq = cli("run", "-d", "--name", "web", "busybox", "sh", "-c",
              "while true; do echo tick; sleep 0.2; done")
    cid = palletd.inspect("web")["Id"]
    assert _id_free(seq, cid) == ["POST /containers/create?name=web",
                                  "POST /containers/{id}/wait?condition=next-exit",
                                  "POST /containers/{id}/start"]
    assert cli("ps") == ["GET /containers/json"]
    assert cli("ps", "-a") == ["GET /containers/json?all=1"]
    assert _id_free(cli("logs", "--tail", "3", "web"), cid) == [
        "GET /containers/web/json", "GET /containers/{id}/logs?stderr=1&stdout=1&tail=3"]
    seq = cli("exec", "web", "echo", "hi")
    assert seq[:2] == ["GET /containers/web/json", "POST /containers/web/exec"]
    assert re.fullmatch(r"POST /exec/[0-9a-f]{64}/start", seq[2])
    assert re.fullmatch(r"GET /exec/[0-9a-f]{64}/json", seq[3]) and len(seq) == 4
    assert cli("inspect", "web") == ["GET /containers/web/json"]
    assert cli("top", "web") == ["GET /containers/web/top"]
    assert cli("stop", "-t", "1", "web") == ["POST /containers/web/stop?t=1"]
    assert cli("start", "web") == ["POST /containers/web/start"]
    assert cli("restart", "-t", "1", "web") == ["POST /containers/web/restart?t=1"]
    assert cli("kill", "web") == ["POST /containers/web/kill"]
    assert cli("rm", "web") == ["DELETE /containers/web"]


def test_run_rm_attaches_before_start(cli, palletd):
    seq = cli("run", "--rm", "busybox", "echo", "hi")
    assert [re.sub(r"[0-9a-f]{64}", "{id}", s) for s in seq] == [
        "POST /containers/create",
        "POST /containers/{id}/attach?stderr=1&stdout=1&stream=1",
        "POST /containers/{id}/wait?condition=removed",
        "POST /containers/{id}/start"]


def test_inspect_of_an_image_falls_back_from_containers(cli):
    seq = cli("inspect", "busybox:latest")
    assert seq == ["GET /containers/busybox:latest/json", "GET /images/busybox:latest/json"]


def test_network_commands_and_published_ports(cli, palletd):
    seq = cli("network", "create", "mapnet")
    assert seq == ["POST /networks/create"]
    assert cli("network", "ls") == ["GET /networks"]
    assert cli("network", "rm", "mapnet") == ["GET /networks/mapnet",
                                              "DELETE /networks/mapnet"]
    seq = cli("run", "-d", "--name", "httpd", "-p", "127.0.0.1::80", "busybox", "sleep", "30")
    assert seq[0] == "POST /containers/create?name=httpd" and len(seq) == 3
    assert cli("port", "httpd") == ["GET /containers/httpd/json"]
    assert cli("rm", "-f", "httpd") == ["DELETE /containers/httpd?force=1"]


def test_events_with_since_and_until(cli):
    now = int(time.time())
    seq = cli("events", "--since", str(now - 5), "--until", str(now),
              "--filter", "container=waiter")
    assert len(seq) == 1 and seq[0].startswith("GET /events?")
    q = dict(parse_qsl(urlsplit(seq[0].split(" ", 1)[1]).query))
    assert set(q) == {"since", "until", "filters"}


def test_volume_commands(cli):
    assert cli("volume", "create", "mapvol") == ["POST /volumes/create"]
    assert cli("volume", "ls") == ["GET /volumes"]
    assert cli("volume", "rm", "mapvol") == ["DELETE /volumes/mapvol"]


def test_files_in_and_out(cli, palletd, tmp_path):
    palletd.docker("run", "-d", "--name", "files", "busybox", "sleep", "60", check=True)
    try:
        assert cli("cp", "files:/etc/passwd", str(tmp_path)) == [
            "GET /containers/files/archive?path=/etc/passwd"]
        src = tmp_path / "tocopy.txt"
        src.write_text("x\n")
        assert cli("cp", str(src), "files:/tmp/tocopy.txt") == [
            "HEAD /containers/files/archive?path=/tmp/tocopy.txt",
            "PUT /containers/files/archive?noOverwriteDirNonDir=true&path=/tmp"]
        seq = cli("commit", "files", "committed:1")
        assert seq == ["POST /commit?author=&comment=&container=files"
                       "&repo=docker.io/library/committed&tag=1"]
        out = str(tmp_path / "fs.tar")
        assert cli("export", "-o", out, "files") == ["GET /containers/files/export"]
        assert cli("import", out, "imported:1") == [
            "POST /images/create?fromSrc=-&repo=imported:1"]
        img = str(tmp_path / "img.tar")
        assert cli("save", "-o", img, "committed:1") == ["GET /images/get?names=committed:1"]
        assert cli("load", "-i", img) == ["POST /images/load?quiet=1"]
    finally:
        palletd.docker("rm", "-f", "files")
        palletd.docker("rmi", "committed:1", "imported:1")
