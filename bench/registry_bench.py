"""Registry throughput, side by side in one run: `pallet registry` vs Debian's
`docker-registry` (CNCF distribution), same client (skopeo), same big image; the server's
CPU time (utime+stime from /proc/<pid>/stat) for the push and for the pull, and its peak
RSS (VmHWM); a hundred concurrent small manifest+blob pulls against each server (latency
percentiles, errors counted); and, from the same pallet registry, `pallet pull` + unpack
into a snapshot vs `skopeo copy` + `umoci unpack`.

    .venv/bin/python bench/registry_bench.py [--size-mb 500] [--layers 5] [--work DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

from pallet.images.service import ImageService
from pallet.registry.client.api import Options, pull
from pallet.registry.testing import docker_registry, pallet_registry

CLK = os.sysconf("SC_CLK_TCK")


def _build(dest: Path, size_mb: int, layers: int) -> Path:
    spec = importlib.util.spec_from_file_location(
        "images_bench", Path(__file__).with_name("images_bench.py"))
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.build(dest, size_mb, layers)


def proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds (user+system) and peak RSS (kB) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK
    with open(f"/proc/{pid}/status") as f:
        hwm = next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:"))
    return cpu, hwm


def skopeo(*args: str) -> float:
    t = time.perf_counter()
    subprocess.run(["skopeo", "--insecure-policy", *args], check=True, capture_output=True)
    return time.perf_counter() - t


async def small_pulls(url: str, repo: str, n: int = 100) -> tuple[list[float], int]:
    """n concurrent pulls of the manifest and config of `repo:latest`, each on its own
    connection; latencies in ms, and how many failed."""
    accept = "application/vnd.oci.image.manifest.v1+json"

    async def one(s: aiohttp.ClientSession) -> float | None:
        t = time.perf_counter()
        try:
            async with s.get(f"{url}/v2/{repo}/manifests/latest",
                             headers={"Accept": accept}) as r:
                doc = await r.json(content_type=None)
                if r.status != 200:
                    return None
            async with s.get(f"{url}/v2/{repo}/blobs/{doc['config']['digest']}") as r:
                await r.read()
                if r.status != 200:
                    return None
        except (aiohttp.ClientError, ValueError, KeyError):
            return None
        return (time.perf_counter() - t) * 1000

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n,
                                                                    force_close=True)) as s:
        got = await asyncio.gather(*(one(s) for _ in range(n)))
    lat = [x for x in got if x is not None]
    return lat, n - len(lat)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=500)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--work", default=None)
    ns = ap.parse_args()
    work = Path(ns.work or tempfile.mkdtemp(prefix="registry-bench-"))
    layout = work / "layout"
    if not layout.exists():
        _build(layout, ns.size_mb, ns.layers)
    size = sum(f.stat().st_size for f in (layout / "blobs").rglob("*") if f.is_file())
    mb = size / 1e6
    rows = []
    servers = {"pallet registry": lambda d: pallet_registry(d),
               "docker-registry": lambda d: docker_registry(d)}
    unpack: dict[str, float] = {}
    for label, start in servers.items():
        d = str(work / label.replace(" ", "-"))
        shutil.rmtree(d, ignore_errors=True)
        with start(d) as reg:
            ref = f"docker://{reg.host}/bench/big:latest"
            cpu0, _ = proc_stats(reg.proc.pid)
            push = skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:latest", ref)
            cpu1, _ = proc_stats(reg.proc.pid)
            out = work / f"out-{label.replace(' ', '-')}"
            shutil.rmtree(out, ignore_errors=True)
            os.sync()
            pull_s = skopeo("copy", "--src-tls-verify=false", ref, f"oci:{out}:latest")
            cpu2, rss = proc_stats(reg.proc.pid)
            lat, errors = asyncio.run(small_pulls(reg.url, "bench/big"))
            rows.append((label, push, pull_s, cpu1 - cpu0, cpu2 - cpu1, rss, lat, errors))
            if label == "pallet registry":
                unpack = pull_and_unpack(work, reg, out)
            shutil.rmtree(out, ignore_errors=True)
    print(f"image: {mb:.0f} MB in {ns.layers} layers (compressed blobs)\n")
    print(f"{'server':18} {'push MB/s':>10} {'pull MB/s':>10} {'CPU push s':>11} "
          f"{'CPU pull s':>11} {'peak RSS MB':>12} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7} {'errors':>7}")
    for label, push, pull_s, cpu_push, cpu_pull, rss, lat, errors in rows:
        print(f"{label:18} {mb / push:10.1f} {mb / pull_s:10.1f} {cpu_push:11.2f} "
              f"{cpu_pull:11.2f} {rss / 1024:12.1f} {statistics.median(lat):7.1f} "
              f"{pct(lat, 95):7.1f} {pct(lat, 99):7.1f} {errors:7d}")
    if unpack:
        print("\nfrom pallet registry, pull + unpack (seconds):")
        for k, v in unpack.items():
            print(f"  {k:42} {v:7.2f}")
        a = unpack["skopeo copy + umoci unpack"]
        b = unpack["pallet pull + unpack (snapshots)"]
        print(f"  pallet vs skopeo+umoci: {a / b:.2f}x; pull alone: "
              f"{unpack['skopeo copy'] / unpack['pallet pull']:.2f}x")
    if ns.work is None:
        shutil.rmtree(work)


def pull_and_unpack(work: Path, reg, layout_out: Path) -> dict[str, float]:
    """The same image from the same server: pallet's client (pull, then unpack into the
    snapshotter) vs skopeo (copy to an OCI layout, then umoci unpack into a bundle)."""
    out: dict[str, float] = {}
    root = work / "pallet-root"
    shutil.rmtree(root, ignore_errors=True)
    svc = ImageService(str(root))
    name = f"{reg.host}/bench/big:latest"
    os.sync()
    t = time.perf_counter()
    asyncio.run(pull(svc, name, opts=Options(plain_http=True, hosts_dir="")))
    t1 = time.perf_counter()
    svc.unpack(name)
    t2 = time.perf_counter()
    svc.close()
    out["pallet pull"] = t1 - t
    out["pallet pull + unpack (snapshots)"] = t2 - t
    shutil.rmtree(root, ignore_errors=True)
    if shutil.which("umoci"):
        dest = work / "skopeo-oci"
        bundle = work / "umoci-bundle"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(bundle, ignore_errors=True)
        os.sync()
        t = time.perf_counter()
        skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{dest}:latest")
        t1 = time.perf_counter()
        subprocess.run(["umoci", "unpack", "--image", f"{dest}:latest", str(bundle)],
                       check=True, capture_output=True)
        t2 = time.perf_counter()
        out["skopeo copy"] = t1 - t
        out["skopeo copy + umoci unpack"] = t2 - t
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(bundle, ignore_errors=True)
    return out


if __name__ == "__main__":
    main()
