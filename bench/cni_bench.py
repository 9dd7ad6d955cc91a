"""What a container's bridge networking costs, itemised: the pinned netns, each plugin of
palletd's bridge conflist for ADD (with one published port, as `-p` gives portmap work) and
DEL, against the whole `pallet run` figure of run_bench.py.

    unshare -m --propagation private .venv/bin/python bench/cni_bench.py -n 20

Every plugin is a Go binary started per call (the CNI exec protocol): its start-up and its
iptables calls are most of the cost. Medians in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from pallet.network import config, netns
from pallet.network.cni import CNI, Attachment


class TimedCNI(CNI):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.times: dict[str, list[float]] = {}

    def _exec(self, command: str, conf: dict[str, Any], plugin: dict[str, Any],
              att: Attachment, prev: dict[str, Any] | None) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        try:
            return super()._exec(command, conf, plugin, att, prev)
        finally:
            key = f"{command} {plugin['type']}"
            self.times.setdefault(key, []).append((time.perf_counter() - t0) * 1000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--no-ports", action="store_true",
                    help="no published port (what most containers are)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (and `unshare -m --propagation private`)")
    tmp = tempfile.mkdtemp(prefix="cnib", dir="/tmp")
    bridge = "pcnibench0"
    conf = config.bridge_conflist("bench", bridge, "10.216.3.0/24",
                                  ipam_dir=f"{tmp}/ipam")
    cni = TimedCNI(cache_dir=f"{tmp}/results")
    totals: dict[str, list[float]] = {"netns create": [], "netns remove": [],
                                      "ADD (chain)": [], "DEL (chain)": []}
    try:
        for i in range(a.n + 1):
            path = f"{tmp}/ns/{i}"
            t0 = time.perf_counter()
            netns.create(path)
            t1 = time.perf_counter()
            ports = [] if a.no_ports else [{"hostPort": 20000 + i, "containerPort": 80,
                                            "protocol": "tcp", "hostIP": ""}]
            att = Attachment(f"c{i:060d}", path, "eth0",
                             capability_args={"portMappings": ports} if ports else {})
            cni.add(conf, att)
            t2 = time.perf_counter()
            cni.delete(conf, att)
            t3 = time.perf_counter()
            netns.remove(path)
            t4 = time.perf_counter()
            if i == 0:  # warm-up: the bridge and the chains are created once
                cni.times.clear()
                continue
            for k, d in (("netns create", t1 - t0), ("ADD (chain)", t2 - t1),
                         ("DEL (chain)", t3 - t2), ("netns remove", t4 - t3)):
                totals[k].append(d * 1000)
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"bridge networking per container, median of {a.n}, {time.strftime('%Y-%m-%d')}")
    print("| step | median ms |")
    print("| --- | --- |")
    for k, v in {**totals, **cni.times}.items():
        print(f"| {k} | {statistics.median(v):.1f} |")


if __name__ == "__main__":
    main()
