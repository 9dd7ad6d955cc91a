"""`run --rm busybox true` end to end, side by side, interleaved: pallet's CLI and the docker
CLI against palletd, `ctr run --rm` against containerd, `podman run --rm`, and the docker CLI
against Debian's dockerd.

    unshare -m --propagation private .venv/bin/python bench/run_bench.py -n 15
    unshare -m --propagation private .venv/bin/python bench/run_bench.py -n 15 --network bridge

`--network none` (the default) measures the container machinery alone; `--network bridge`
gives every container an address on a bridge (palletd and podman through CNI, dockerd through
libnetwork; ctr has none and is left out).

Each peer gets a private root under /tmp and the same busybox image (pallet's test image,
exported as a docker-archive for the peers). Medians in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shim_memory import layout

VENV_BIN = Path(sys.executable).parent
BB = "docker.io/library/busybox:latest"


def wait_socket(path: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if os.path.exists(path):
            time.sleep(0.3)
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited")
        time.sleep(0.05)
    raise RuntimeError(f"{path} did not appear")


NETWORK = "none"


def setup_palletd(base: str, bb: str) -> tuple[dict[str, list[str]], Callable[[], None], dict]:
    from pallet.images.service import ImageService

    svc = ImageService(f"{base}/root")
    svc.import_(bb, base_name="docker.io/library/busybox")
    svc.close()
    sock = f"{base}/d.sock"
    d = subprocess.Popen([str(VENV_BIN / "palletd"), "--root", f"{base}/root", "--exec-root",
                          f"{base}/run", "-H", sock, "--bridge", "pbench0", "--bip",
                          "10.216.1.0/24"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait_socket(sock, d)
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "PALLET_HOST": f"unix://{sock}",
           "DOCKER_CONFIG": f"{base}/dc"}

    def stop() -> None:
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=30)
        subprocess.run(["ip", "link", "del", "pbench0"], capture_output=True)

    net = ["--network", NETWORK]
    return ({f"pallet run --network {NETWORK} (palletd)": [
                str(VENV_BIN / "pallet"), "run", "--rm", *net, "busybox", "true"],
             f"docker CLI --network {NETWORK} -> palletd": [
                 "docker", "run", "--rm", *net, "busybox", "true"],
             f"docker CLI --network {NETWORK} --runtime runc -> palletd": [
                 "docker", "run", "--rm", *net, "--runtime", "runc", "busybox", "true"]},
            stop, env)


def setup_containerd(base: str, tar: str) -> tuple[dict[str, list[str]], Callable[[], None],
                                                    dict]:
    addr = f"{base}/c.sock"
    cfg = Path(base, "config.toml")
    cfg.write_text(f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n'
                   f'[grpc]\n  address = "{addr}"\n[ttrpc]\n  address = "{addr}.ttrpc"\n'
                   f'[debug]\n  address = "{base}/debug.sock"\n')
    d = subprocess.Popen(["containerd", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait_socket(addr, d)
    ctr = ["ctr", "-a", addr, "-n", "bench"]
    subprocess.run([*ctr, "images", "import", tar], check=True, capture_output=True)
    counter = iter(range(10 ** 6))

    class Cmd(list):  # a fresh container name per run
        def __iter__(self):  # type: ignore[override]
            return iter([*ctr, "run", "--rm", BB, f"b{next(counter)}", "true"])

    def stop() -> None:
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=30)

    return {"ctr run --rm (containerd)": Cmd()}, stop, dict(os.environ)


def setup_podman(base: str, tar: str) -> tuple[dict[str, list[str]], Callable[[], None],
                                                dict]:
    pm = ["podman", "--root", f"{base}/root", "--runroot", f"{base}/run",
          "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    out = subprocess.run([*pm, "load", "-i", tar], check=True, capture_output=True,
                         text=True).stdout
    ref = out.rsplit("Loaded image:", 1)[1].split()[0]  # localhost/busybox:latest
    net = ["--network", NETWORK] if NETWORK == "none" else []
    return ({f"podman run --rm --network {NETWORK}": [*pm, "run", "--rm", "--pull", "never",
                                                     *net,
                                                 # podman's default rlimits exceed this
                                                 # VM's hard limits (as in tests/interop)
                                                 "--ulimit", "nofile=1024:1024",
                                                 "--ulimit", "nproc=1024:1024", ref, "true"]},
            lambda: None, dict(os.environ))


def setup_dockerd(base: str, tar: str) -> tuple[dict[str, list[str]], Callable[[], None],
                                                 dict]:
    """Debian's dockerd (its own containerd, runc underneath); a bridge (docker0, iptables)
    only for `--network bridge`."""
    sock = f"{base}/docker.sock"
    had_docker0 = os.path.exists("/sys/class/net/docker0")
    net = (["--iptables=false", "--ip6tables=false", "--bridge=none"] if NETWORK == "none"
           else ["--bip", "10.216.2.1/24"])
    d = subprocess.Popen(["dockerd", "--data-root", f"{base}/data", "--exec-root",
                          f"{base}/exec", "--pidfile", f"{base}/pid", "-H", f"unix://{sock}",
                          *net, "--exec-opt", "native.cgroupdriver=cgroupfs"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_socket(sock, d)
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": f"{base}/dc"}
    for _ in range(100):
        if subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.2)
    subprocess.run(["docker", "load", "-i", tar], env=env, check=True, capture_output=True)

    def stop() -> None:
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=60)
        if not had_docker0:
            subprocess.run(["ip", "link", "del", "docker0"], capture_output=True)

    return ({f"docker run --rm --network {NETWORK} (dockerd)": [
        "docker", "run", "--rm", "--network", NETWORK, "busybox", "true"]}, stop, env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=15)
    ap.add_argument("--network", choices=["none", "bridge"], default="none")
    a = ap.parse_args()
    global NETWORK
    NETWORK = a.network
    if os.geteuid() != 0:
        sys.exit("needs root (and `unshare -m --propagation private`)")
    bb = layout()
    from pallet.images.service import ImageService

    tmp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
    svc = ImageService(f"{tmp}/src")
    svc.import_(bb, base_name="docker.io/library/busybox")
    tar = f"{tmp}/bb.tar"
    svc.export([BB], tar, fmt="docker-archive")
    svc.close()
    cmds: dict[str, tuple[list[str], dict]] = {}
    stops = []
    bases = []
    for name, setup, src in (("palletd", setup_palletd, bb),
                             *([("containerd", setup_containerd, tar)]
                               if NETWORK == "none" else []),
                             ("podman", setup_podman, tar),
                             ("dockerd", setup_dockerd, tar)):
        if name != "palletd" and not shutil.which(name):
            continue
        base = tempfile.mkdtemp(prefix="rb", dir="/tmp")
        bases.append(base)
        try:
            c, stop, env = setup(base, src)
        except Exception as e:
            print(f"{name}: not measured ({e})", file=sys.stderr)
            continue
        stops.append(stop)
        for k, v in c.items():
            cmds[k] = (v, env)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    try:
        for argv, env in cmds.values():  # warm-up
            subprocess.run(list(argv), env=env, capture_output=True, check=True)
        for _ in range(a.n):
            for k, (argv, env) in cmds.items():
                t0 = time.perf_counter()
                subprocess.run(list(argv), env=env, capture_output=True, check=True)
                times[k].append((time.perf_counter() - t0) * 1000)
    finally:
        for stop in stops:
            try:
                stop()
            except Exception:
                pass
        for base in [*bases, tmp]:
            subprocess.run(["sh", "-c", f"grep -o ' {base}[^ ]*' /proc/self/mountinfo | "
                            "sort -r | xargs -r -n1 umount -l"], capture_output=True)
            shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(os.path.dirname(bb), ignore_errors=True)
    print(f"`run --rm busybox true` --network {NETWORK}, median of {a.n}, "
          f"{time.strftime('%Y-%m-%d')}")
    print("| command | median ms | min ms |")
    print("| --- | --- | --- |")
    for k, v in times.items():
        print(f"| {k} | {statistics.median(v):.0f} | {min(v):.0f} |")


if __name__ == "__main__":
    main()
