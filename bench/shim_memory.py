"""Memory per container supervisor: pallet-shim (under palletd) vs containerd-shim-runc-v2
(under containerd), N `sleep` containers each, side by side in one run.

Needs root and a private mount namespace:

    unshare -m --propagation private .venv/bin/python bench/shim_memory.py -n 50

PSS (proportional set size, /proc/PID/smaps_rollup) shares each page among the processes
mapping it, so it is the fair per-process figure; RSS is printed too. The daemons' own RSS
is measured idle, with the N containers running.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def mem(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB."""
    pss = rss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
    return pss, rss


def pids_with(needle: bytes, also: bytes = b"", serving: bool = True) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmd and also in cmd:
            try:  # palletd's shim zygote (reading requests on a socket) serves none
                if serving and os.readlink(f"/proc/{p}/fd/0").startswith("socket:"):
                    continue
            except OSError:
                continue
            out.append(int(p))
    return out


class Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.unix = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.unix)


def api(sock: str, method: str, path: str, body: object = None) -> object:
    c = Unix(sock)
    c.request(method, path, json.dumps(body) if body is not None else None,
              {"Content-Type": "application/json"})
    r = c.getresponse()
    raw = r.read()
    c.close()
    if r.status >= 400:
        raise RuntimeError(f"{method} {path}: {r.status} {raw!r}")
    return json.loads(raw) if raw else None


def layout() -> str:
    from pallet.testing.images import single_layer

    return str(single_layer(tempfile.mkdtemp(prefix="bb-") + "/layout"))


def bench_pallet(n: int, base: str, bb: str) -> dict[str, float]:
    from pallet.images.service import ImageService

    root, run, sock = f"{base}/root", f"{base}/run", f"{base}/d.sock"
    svc = ImageService(root)
    svc.import_(bb, base_name="docker.io/library/busybox")
    svc.close()
    d = subprocess.Popen([str(VENV_BIN / "palletd"), "--root", root, "--exec-root", run,
                          "-H", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        time.sleep(0.3)
        ids = []
        t0 = time.monotonic()
        for i in range(n):
            cid = api(sock, "POST", f"/containers/create?name=m{i}",
                      # no network: the containerd side has none either
                      {"Image": "busybox", "Cmd": ["sleep", "3600"],
                       "HostConfig": {"NetworkMode": "none"}})["Id"]  # type: ignore
            api(sock, "POST", f"/containers/{cid}/start")
            ids.append(cid)
        started = time.monotonic() - t0
        time.sleep(2)
        # forked shims name their container's directory ("pallet-shim <dir>"); the zygote
        # they were forked from is counted apart, its PSS shared out over the n shims
        shims = pids_with(b"pallet-shim", base.encode())
        assert len(shims) == n, (len(shims), n)
        ms = [mem(p) for p in shims]
        zygotes = [p for p in pids_with(b"--zygote", base.encode(), serving=False)
                   if p not in shims]
        zygote_pss = sum(mem(p)[0] for p in zygotes) / 1024
        daemon = mem(d.pid)
        t0 = time.monotonic()
        listed = api(sock, "GET", "/containers/json")
        list_s = time.monotonic() - t0
        assert len(listed) == n  # type: ignore[arg-type]
        t0 = time.monotonic()
        for cid in ids:  # docker rm -f: kill, wait for the exit, remove
            api(sock, "DELETE", f"/containers/{cid}?force=1")
        removed = time.monotonic() - t0
        pss = statistics.mean(m[0] for m in ms) / 1024
        return {"pss": pss, "pss_with_zygote": pss + zygote_pss / n, "zygote_pss": zygote_pss,
                "rss": statistics.mean(m[1] for m in ms) / 1024,
                "daemon_rss": daemon[1] / 1024, "start_s": started, "list_s": list_s,
                "remove_s": removed}
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=30)


def bench_containerd(n: int, base: str, bb: str) -> dict[str, float] | None:
    if not shutil.which("containerd") or not shutil.which("ctr"):
        return None
    from pallet.images.service import ImageService

    svc = ImageService(f"{base}/pallet")
    svc.import_(bb, base_name="docker.io/library/busybox")
    svc.export(["docker.io/library/busybox:latest"], f"{base}/bb.tar", fmt="docker-archive")
    svc.close()
    addr = f"{base}/c.sock"
    cfg = Path(base, "config.toml")
    cfg.write_text(f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n'
                   f'[grpc]\n  address = "{addr}"\n[ttrpc]\n  address = "{addr}.ttrpc"\n'
                   '[plugins."io.containerd.grpc.v1.cri"]\n  disable_cgroup = true\n'
                   f'[debug]\n  address = "{base}/debug.sock"\n')
    d = subprocess.Popen(["containerd", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    ctr = ["ctr", "-a", addr, "-n", "bench"]
    try:
        for _ in range(200):
            if os.path.exists(addr):
                break
            time.sleep(0.05)
        time.sleep(0.5)
        subprocess.run([*ctr, "images", "import", f"{base}/bb.tar"], check=True,
                       capture_output=True)
        t0 = time.monotonic()
        for i in range(n):
            subprocess.run([*ctr, "run", "-d", "docker.io/library/busybox:latest", f"m{i}",
                            "sleep", "3600"], check=True, capture_output=True)
        started = time.monotonic() - t0
        time.sleep(2)
        shims = pids_with(b"containerd-shim-runc-v2", b"bench")
        ms = [mem(p) for p in shims]
        daemon = mem(d.pid)
        t0 = time.monotonic()
        out = subprocess.run([*ctr, "task", "ls"], check=True, capture_output=True).stdout
        list_s = time.monotonic() - t0
        assert len(out.splitlines()) == n + 1
        t0 = time.monotonic()
        for i in range(n):  # ctr's way to the same end: kill, delete the task (waits), rm
            subprocess.run([*ctr, "task", "kill", "-s", "KILL", f"m{i}"], capture_output=True)
            subprocess.run([*ctr, "task", "rm", "-f", f"m{i}"], capture_output=True)
            subprocess.run([*ctr, "c", "rm", f"m{i}"], capture_output=True)
        removed = time.monotonic() - t0
        return {"pss": statistics.mean(m[0] for m in ms) / 1024,
                "rss": statistics.mean(m[1] for m in ms) / 1024,
                "daemon_rss": daemon[1] / 1024, "start_s": started, "shims": len(shims),
                "list_s": list_s, "remove_s": removed}
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=50)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (and `unshare -m --propagation private`)")
    bb = layout()
    results = {}
    for name, fn in (("pallet-shim", bench_pallet), ("containerd-shim-runc-v2",
                                                      bench_containerd)):
        base = tempfile.mkdtemp(prefix="sm", dir="/tmp")
        try:
            results[name] = fn(a.n, base, bb)
        finally:
            subprocess.run(["sh", "-c", f"grep -o ' {base}[^ ]*' /proc/self/mountinfo | sort -r"
                            " | xargs -r -n1 umount -l"], capture_output=True)
            shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(os.path.dirname(bb), ignore_errors=True)
    print(f"{a.n} running `sleep` containers, {time.strftime('%Y-%m-%d')}")
    print("| supervisor | PSS each (MiB) | with the zygote's share | RSS each (MiB) | "
          "daemon RSS (MiB) | start N (s) | list (ms) | remove N (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        if r is None:
            print(f"| {name} | (not installed) | | | | | | |")
            continue
        print(f"| {name} | {r['pss']:.2f} | {r.get('pss_with_zygote', r['pss']):.2f} | "
              f"{r['rss']:.2f} | {r['daemon_rss']:.1f} | {r['start_s']:.1f} | "
              f"{r['list_s'] * 1000:.0f} | {r['remove_s']:.1f} |")
    if results.get("pallet-shim"):
        print(f"(the zygote itself: {results['pallet-shim']['zygote_pss']:.2f} MiB PSS)")

if __name__ == "__main__":
    main()
