"""Unpack throughput, side by side: pallet vs umoci vs `tar -x` with pigz, on one big
local image (about 5 layers, random and compressible files), and bytes on disk for two
images sharing a base.

    .venv/bin/python bench/images_bench.py [--size-mb 500] [--layers 5] [--work DIR]
                                           [--repeat 3]

Prints a table of seconds (best of --repeat), MB/s (uncompressed) and ratios to tar+pigz;
"pallet -> overlayfs" unpacks into the snapshotter (one snapshot per layer, chain IDs).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from pallet.images.diff import tar_dir
from pallet.images.service import ImageService
from pallet.oci import mediatypes as mt
from pallet.oci.image import ContainerConfig
from pallet.snapshots.base import disk_usage
from pallet.testing.images import LayoutWriter


def _fill(root: Path, size: int, rng: random.Random, prefix: str = "") -> None:
    """Half random (incompressible), half text-like (compressible), in files of 4 kB..4 MB."""
    words = [bytes(rng.choice(b"abcdefghijklmnop") for _ in range(rng.randint(3, 9)))
             for _ in range(500)]
    written, i = 0, 0
    while written < size:
        n = min(size - written, rng.choice([4096, 65536, 1 << 20, 4 << 20]))
        d = root / f"{prefix}d{i % 37}"
        d.mkdir(exist_ok=True)
        if i % 2:
            data = rng.randbytes(n)
        else:
            data = b" ".join(rng.choice(words) for _ in range(n // 6))[:n]
        (d / f"f{i}").write_bytes(data)
        written += n
        i += 1


def build(dest: Path, size_mb: int, layers: int) -> Path:
    """The big image (`latest`) and, in the same layout, `derived`: the same base layers
    plus one small layer of its own, to measure what sharing saves."""
    rng = random.Random(42)
    w = LayoutWriter(dest)
    infos = []
    per = size_mb * 1_000_000 // layers
    for n in range(layers + 1):
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            root = Path(tmp) / f"layer{n}"
            root.mkdir()
            _fill(root, per if n < layers else 1_000_000, rng, f"l{n}")
            infos.append(w.layer(lambda tw, r=root: tar_dir(str(r), tw), mt.GZIP))
    w.image(infos[:layers], ContainerConfig(Cmd=["sh"]), ref_name="latest")
    w.image(infos, ContainerConfig(Cmd=["sh"]), ref_name="derived")
    return w.close()


def timed(fn, before=None, repeat: int = 1) -> float:
    """Best of `repeat` runs of `fn`, each after `before` (which is not timed)."""
    best = float("inf")
    for _ in range(repeat):
        if before is not None:
            before()
        os.sync()  # start each run with no dirty pages of the previous one
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size-mb", type=int, default=500)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--work", default=None)
    p.add_argument("--repeat", type=int, default=3, help="best of N runs per tool")
    ns = p.parse_args()
    work = Path(ns.work or tempfile.mkdtemp(prefix="pallet-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    layout = work / "big"
    if not (layout / "index.json").exists():
        print(f"building a {ns.size_mb} MB, {ns.layers}-layer image in {layout} ...")
        t = timed(lambda: build(layout, ns.size_mb, ns.layers))
        print(f"  built in {t:.1f}s")
    svc = ImageService(str(work / "root"))
    svc.import_(str(layout), base_name="big")
    r = svc.resolve("big")
    uncompressed = ns.size_mb * 1_000_000
    raw_bytes = sum(os.path.getsize(svc.content.blob_path(x.digest)) for x in r.layers)
    results: dict[str, float] = {}

    def fresh(name: str, make: bool = False):
        d = work / name

        def clear() -> None:
            if d.exists():
                shutil.rmtree(d)
            if make:
                d.mkdir()
        return d, clear

    rep = ns.repeat
    d, clear = fresh("out-pallet")
    results["pallet unpack"] = timed(lambda: svc.unpack_to_dir("big", str(d)), clear, rep)
    tree_bytes = disk_usage(str(d)).size
    snap_root = work / "root-snap"
    svc_snap: list[ImageService] = []

    def new_snap_root() -> None:
        for s in svc_snap:
            s.close()
        svc_snap.clear()
        shutil.rmtree(snap_root, ignore_errors=True)
        svc_snap.append(ImageService(str(snap_root)))
        svc_snap[0].import_(str(layout), base_name="big")

    new_snap_root()
    results[f"pallet -> {svc_snap[0].snapshotter_name}"] = timed(
        lambda: svc_snap[0].unpack("big"), new_snap_root, rep)
    svc_snap[0].close()
    shutil.rmtree(snap_root)
    if shutil.which("umoci"):
        d, clear = fresh("out-umoci")
        results["umoci raw unpack"] = timed(lambda: subprocess.run(
            ["umoci", "raw", "unpack", "--image", f"{layout}:latest", str(d)],
            check=True, capture_output=True), clear, rep)
    if shutil.which("pigz"):
        d, clear = fresh("out-tar", make=True)

        def tar_pigz() -> None:
            for x in r.layers:
                subprocess.run(["tar", "-I", "pigz", "-xf", svc.content.blob_path(x.digest),
                                "-C", str(d)], check=True)
        results["tar -x (pigz)"] = timed(tar_pigz, clear, rep)
    base = results.get("tar -x (pigz)")
    print()
    print(f"\nimage: {len(r.layers)} layers, {raw_bytes / 1e6:.0f} MB compressed, "
          f"~{uncompressed / 1e6:.0f} MB of files, {tree_bytes / 1e6:.0f} MB on disk unpacked")
    print(f"{'tool':<20} {'seconds':>8} {'MB/s':>8} {'vs tar+pigz':>12}")
    for k, v in results.items():
        ratio = f"{base / v:.2f}x" if base else "-"
        print(f"{k:<20} {v:8.2f} {uncompressed / 1e6 / v:8.1f} {ratio:>12}")

    # disk: `derived` shares every layer of `big` and adds one of 1 MB
    for sn in ("overlayfs", "native") if os.geteuid() == 0 else ("native",):
        root2 = work / f"root-share-{sn}"
        shutil.rmtree(root2, ignore_errors=True)
        svc2 = ImageService(str(root2), sn)
        svc2.import_(str(layout), base_name="big")
        svc2.unpack("big")
        one = disk_usage(str(root2 / "snapshots")).size
        svc2.unpack("big:derived")
        two = disk_usage(str(root2 / "snapshots")).size
        content = disk_usage(str(root2 / "content")).size
        print(f"{sn:>9} snapshots: big {one / 1e6:.0f} MB; big + derived {two / 1e6:.0f} MB; "
              f"content store for both {content / 1e6:.0f} MB")
        svc2.close()
        shutil.rmtree(root2)
    print()
    if ns.work is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
