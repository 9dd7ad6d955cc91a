"""Registry throughput, side by side in one run: `pallet registry` vs Debian's
`docker-registry` (CNCF distribution), same client (skopeo), same big image; the server's
CPU time and peak RSS; pallet's client vs skopeo pulling from pallet registry; and a
hundred concurrent small manifest+blob pulls against each server (latency percentiles).

    .venv/bin/python bench/registry_bench.py [--size-mb 300] [--layers 4] [--work DIR]
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


async def small_pulls(url: str, repo: str, n: int = 100) -> list[float]:
    """n concurrent pulls of the manifest and config of `repo:latest`; latencies in ms."""
    accept = "application/vnd.oci.image.manifest.v1+json"

    async def one(s: aiohttp.ClientSession) -> float:
        t = time.perf_counter()
        async with s.get(f"{url}/v2/{repo}/manifests/latest",
                         headers={"Accept": accept}) as r:
            doc = await r.json(content_type=None)
            assert r.status == 200
        async with s.get(f"{url}/v2/{repo}/blobs/{doc['config']['digest']}") as r:
            await r.read()
            assert r.status == 200
        return (time.perf_counter() - t) * 1000

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n)) as s:
        return list(await asyncio.gather(*(one(s) for _ in range(n))))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=300)
    ap.add_argument("--layers", type=int, default=4)
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
    for label, start in servers.items():
        d = str(work / label.replace(" ", "-"))
        shutil.rmtree(d, ignore_errors=True)
        with start(d) as reg:
            ref = f"docker://{reg.host}/bench/big:latest"
            push = skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:latest", ref)
            out = work / f"out-{label.replace(' ', '-')}"
            shutil.rmtree(out, ignore_errors=True)
            pull_s = skopeo("copy", "--src-tls-verify=false", ref, f"oci:{out}:latest")
            cpu, rss = proc_stats(reg.proc.pid)
            lat = asyncio.run(small_pulls(reg.url, "bench/big"))
            pallet_s = None
            if label == "pallet registry":
                root = work / "pallet-root"
                shutil.rmtree(root, ignore_errors=True)
                svc = ImageService(str(root))
                t = time.perf_counter()
                asyncio.run(pull(svc, f"{reg.host}/bench/big:latest",
                                 opts=Options(plain_http=True, hosts_dir="")))
                pallet_s = time.perf_counter() - t
                svc.close()
            rows.append((label, push, pull_s, cpu, rss, lat, pallet_s))
    print(f"image: {mb:.0f} MB in {ns.layers} layers (compressed blobs)\n")
    print(f"{'server':18} {'push MB/s':>10} {'pull MB/s':>10} {'server CPU s':>13} "
          f"{'peak RSS MB':>12} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    for label, push, pull_s, cpu, rss, lat, _ in rows:
        print(f"{label:18} {mb / push:10.1f} {mb / pull_s:10.1f} {cpu:13.2f} {rss / 1024:12.1f} "
              f"{statistics.median(lat):7.1f} {pct(lat, 95):7.1f} {pct(lat, 99):7.1f}")
    pallet_row = rows[0]
    print(f"\npull from pallet registry: skopeo {mb / pallet_row[2]:.1f} MB/s, "
          f"pallet {mb / pallet_row[6]:.1f} MB/s "
          f"({pallet_row[2] / pallet_row[6]:.2f}x)")


if __name__ == "__main__":
    main()
