"""pallet-runtime vs runc, side by side in one run: `run` of /bin/true, create+start+delete,
and `state`, interleaved so that both see the same machine; medians, the ratio, peak RSS.

    unshare -m .venv/bin/python bench/runtime_bench.py [-n 30] [--json out.json]

(It re-executes itself under `unshare -m` when needed: containers without their own mount
namespace must not touch the machine's mount table.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from pallet.testing.busybox import make_bundle


def timed(argv: list[str]) -> float:
    # stderr goes to a file, not a pipe: a created container's init keeps the runtime's
    # stdio open, and reading a pipe to its end would wait for the container.
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=err)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(argv)} failed: {err.read().decode()}")
    return elapsed


def peak_rss_kib(argv: list[str]) -> int:
    """Peak RSS of the command's process tree, through GNU time: a child forked from this
    (large) Python process would report the parent's RSS as its own peak."""
    with tempfile.TemporaryFile() as err:
        subprocess.run(["/usr/bin/time", "-f", "%M", *argv], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=err, check=True)
        err.seek(0)
        return int(err.read().decode().split()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=30)
    p.add_argument("--json", default="")
    p.add_argument("--runtimes", default="runc,pallet-runtime")
    ns = p.parse_args()
    if os.environ.get("PALLET_BENCH_UNSHARED") != "1":
        os.environ["PALLET_BENCH_UNSHARED"] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable,
                              *sys.argv])
    runtimes = ns.runtimes.split(",")
    for rt in runtimes:
        if not shutil.which(rt):
            sys.exit(f"{rt} is not on PATH")
    work = tempfile.mkdtemp(prefix="pallet-bench-")
    try:
        bundle = make_bundle(os.path.join(work, "bundle"), ["true"])
        results = {rt: {"run": [], "create+start+delete": [], "state": [], "rss": []}
                   for rt in runtimes}
        roots = {rt: os.path.join(work, "root-" + rt) for rt in runtimes}
        # One warm-up round each: page cache, pyc files, the first cgroup migration.
        for rt in runtimes:
            timed([rt, "--root", roots[rt], "run", "--bundle", str(bundle), "warm"])
        for i in range(ns.n):
            for rt in runtimes:
                base = [rt, "--root", roots[rt]]
                cid = f"b{i}"
                results[rt]["run"].append(timed([*base, "run", "--bundle", str(bundle), cid]))
                t0 = time.perf_counter()
                timed([*base, "create", "--bundle", str(bundle), cid])
                ts = timed([*base, "state", cid])
                timed([*base, "start", cid])
                timed([*base, "delete", "--force", cid])
                results[rt]["create+start+delete"].append(time.perf_counter() - t0)
                results[rt]["state"].append(ts)
                if i < 5:
                    argv = [*base, "run", "--bundle", str(bundle), f"rss{i}"]
                    results[rt]["rss"].append(peak_rss_kib(argv))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results, runtimes, ns.n)
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump(results, f)


def report(results: dict, runtimes: list[str], n: int) -> None:
    ref, ours = runtimes[0], runtimes[-1]
    print(f"{n} rounds, interleaved; median milliseconds (ratio = {ours} / {ref})")
    print(f"{'operation':22}" + "".join(f"{rt:>16}" for rt in runtimes) + f"{'ratio':>8}")
    for op in ("run", "create+start+delete", "state"):
        med = {rt: statistics.median(results[rt][op]) * 1000 for rt in runtimes}
        print(f"{op:22}" + "".join(f"{med[rt]:16.1f}" for rt in runtimes)
              + f"{med[ours] / med[ref]:8.2f}")
    rss = {rt: max(results[rt]["rss"]) / 1024 for rt in runtimes}
    print(f"{'peak RSS (MiB)':22}" + "".join(f"{rss[rt]:16.1f}" for rt in runtimes)
          + f"{rss[ours] / rss[ref]:8.2f}")


if __name__ == "__main__":
    main()
