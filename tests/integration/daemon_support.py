"""A palletd of one's own for the daemon tests: a temp root and socket, the busybox test
image imported as `docker.io/library/busybox:latest`, and a clean-up that removes every
container, shim, mount and process the daemon started (found by the daemon's own directory,
never by a program name).

Needs root and a private mount namespace (`./scripts/test` runs pytest under
`unshare -m --propagation private`).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

VENV_BIN = Path(sys.executable).parent
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
_LAYOUT: dict[str, str] = {}


def _in_private_mount_ns() -> bool:
    try:
        return os.readlink("/proc/1/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    except OSError:
        return True  # PID 1 hidden from us: not the host's namespace view


def requirements() -> str | None:
    if os.geteuid() != 0:
        return "palletd tests need root"
    if not _in_private_mount_ns():
        return "run the daemon tests inside `unshare -m --propagation private` (scripts/test)"
    return None


def busybox_layout() -> str:
    if "path" not in _LAYOUT:
        from pallet.testing.images import single_layer

        d = tempfile.mkdtemp(prefix="pallet-bb-")
        atexit.register(shutil.rmtree, d, True)
        _LAYOUT["path"] = str(single_layer(os.path.join(d, "layout")))
    return _LAYOUT["path"]


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


class Palletd:
    def __init__(self, base: str, runtime: str = "pallet-runtime") -> None:
        self.base = base
        self.root = os.path.join(base, "root")
        self.exec_root = os.path.join(base, "run")
        self.sock = os.path.join(base, "d.sock")
        self.runtime = runtime
        # a default network of its own: a test daemon never shares the machine's bridge
        self.bridge, self.subnet = _free_bridge()
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}",
                    "DOCKER_CONFIG": os.path.join(base, "docker-config"),
                    "PALLET_HOST": f"unix://{self.sock}", "NO_COLOR": "1"}

    def import_busybox(self) -> None:
        from pallet.images.service import ImageService

        svc = ImageService(self.root)
        try:
            svc.import_(busybox_layout(), base_name="docker.io/library/busybox")
        finally:
            svc.close()

    def start(self) -> None:
        log = open(os.path.join(self.base, "palletd.log"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "palletd"), "--root", self.root, "--exec-root", self.exec_root,
             "-H", self.sock, "--default-runtime", self.runtime, "--bridge", self.bridge,
             "--bip", self.subnet],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("palletd exited:\n" + self.log())
            try:
                if self.api("GET", "/_ping")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("palletd did not come up:\n" + self.log())

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None

    def log(self) -> str:
        try:
            return Path(self.base, "palletd.log").read_text()[-4000:]
        except OSError:
            return ""

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30
            ) -> tuple[int, Any]:
        c = UnixHTTP(self.sock, timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data,
                      headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw) if raw else None
            except ValueError:
                return r.status, raw
        finally:
            c.close()

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60,
               check: bool = False) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([DOCKER, *args], input=input.decode() if input else None,
                           capture_output=True, text=True, env=self.env, timeout=timeout,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: rc {p.returncode}\n{p.stderr}")
        return p

    def pallet(self, *args: str, input: bytes | None = None, timeout: float = 60,
               check: bool = False) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([str(VENV_BIN / "pallet"), *args],
                           input=input.decode() if input else None, capture_output=True,
                           text=True, env=self.env, timeout=timeout,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"pallet {' '.join(args)}: rc {p.returncode}\n{p.stderr}")
        return p

    def inspect(self, name: str) -> dict[str, Any]:
        status, body = self.api("GET", f"/containers/{name}/json")
        assert status == 200, body
        return body

    def wait_for(self, pred: Any, timeout: float = 15, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    # --- what this daemon started ------------------------------------------------------

    def our_pids(self) -> list[int]:
        """Processes whose command line names this daemon's directory: its shims (and
        runtime calls in flight)."""
        out = []
        me = self.base.encode()
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) == os.getpid():
                continue
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if me in f.read():
                        out.append(int(p))
            except OSError:
                continue
        return out

    def shim_pids(self) -> list[int]:
        """The shims serving containers: not the zygote they are forked from, which reads
        palletd's requests on a socket (a serving shim has /dev/null there)."""
        out = []
        for pid in self.our_pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
                    if b"pallet.shim.main" not in cmd and b"pallet-shim" not in cmd:
                        continue
                if os.readlink(f"/proc/{pid}/fd/0").startswith("socket:"):
                    continue
            except OSError:
                continue
            out.append(pid)
        return out

    def bridges(self) -> list[str]:
        """The bridge devices of this daemon's networks (the default one and any created)."""
        out = [self.bridge]
        ndir = Path(self.root, "networks")
        for p in ndir.glob("*.json") if ndir.exists() else []:
            conf = json.loads(p.read_text()).get("_Conflist")
            if conf:
                out.append(conf["plugins"][0]["bridge"])
        return sorted(set(out))

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                _, cs = self.api("GET", "/containers/json?all=1", timeout=10)
                for c in cs or []:
                    self.api("DELETE", f"/containers/{c['Id']}?force=1", timeout=30)
            except Exception:
                pass
            self.kill(signal.SIGTERM)
        # containers whose shim or daemon broke: delete them through their runtime
        rroot = Path(self.exec_root, "runtime")
        for rt_dir in (rroot.iterdir() if rroot.exists() else []):
            rt = shutil.which(rt_dir.name) or str(VENV_BIN / rt_dir.name)
            for cdir in rt_dir.iterdir():
                if cdir.is_dir():
                    subprocess.run([rt, "--root", str(rt_dir), "delete", "--force", cdir.name],
                                   capture_output=True, timeout=30)
        for pid in self.our_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while self.our_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        for bridge in self.bridges():
            subprocess.run(["ip", "link", "del", "dev", bridge], capture_output=True)
        from pallet.linux import libc

        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for mp in reversed(points):
            if mp.startswith(self.base + "/"):
                try:
                    libc.umount2(mp, 2)
                except OSError:
                    pass
        shutil.rmtree(self.base, ignore_errors=True)


def _free_bridge() -> tuple[str, str]:
    """A bridge name and a /24 no route of this machine overlaps."""
    import ipaddress
    import random

    from pallet.daemon.networks import host_routes

    routes = host_routes()
    for _ in range(200):
        sub = ipaddress.ip_network(f"10.214.{random.randrange(256)}.0/24")
        name = f"pt{os.getpid() % 100000}{random.randrange(1000)}"
        # two daemons of one module are alive together: neither name nor subnet may be
        # one handed out already (a bridge of another subnet fails the ADD)
        if any(sub.overlaps(r) for r in routes) or name in _HANDED_OUT or \
                str(sub) in _HANDED_OUT or os.path.exists(f"/sys/class/net/{name}"):
            continue
        _HANDED_OUT.update((name, str(sub)))
        return name, str(sub)
    raise RuntimeError("no free subnet in 10.214.0.0/16 for a test daemon")


_HANDED_OUT: set[str] = set()


def make_daemon(runtime: str = "pallet-runtime"):
    """A module-scoped fixture function: `palletd = make_daemon()` in a test module."""

    @pytest.fixture(scope="module")
    def palletd():
        why = requirements()
        if why:
            pytest.skip(why)
        d = Palletd(tempfile.mkdtemp(prefix="pd", dir="/tmp"), runtime)
        try:
            d.import_busybox()
            d.start()
            yield d
        finally:
            d.cleanup()

    return palletd


@contextlib.contextmanager
def serve_directory(directory: str, host: str = "127.0.0.1") -> Iterator[str]:
    """A quiet HTTP server of `directory` on `host` for the block; its base URL."""
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=directory, **kw)

        def log_message(self, *a: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer((host, 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
