"""palletd's stats from cgroup files in temp dirs (v1 and v2 shapes), the docker CLI's
arithmetic over them (pallet stats), and `top`'s ps -ef rows against the host's ps. No root."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from pallet.cli.pallet.ops import bytes_size, cpu_percent, stats_row
from pallet.daemon import ops
from pallet.daemon import stats as st


def _files(d, files: dict[str, str]) -> str:
    os.makedirs(d, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    return str(d)


def _sampler(paths: dict[str, str], monkeypatch) -> st.Sampler:
    monkeypatch.setattr(st, "cgroup_paths", lambda rec: paths)
    return st.Sampler("/web", {"Id": "c" * 64, "HostConfig": {}}, os.getpid(),
                      with_network=True)


def test_v1_sample(tmp_path, monkeypatch):
    cpu = _files(tmp_path / "cpu", {
        "cpuacct.usage": "5000000000\n", "cpuacct.usage_percpu": "3000000000 2000000000\n",
        "cpuacct.stat": "user 300\nsystem 100\n",
        "cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 777\n"})
    mem = _files(tmp_path / "memory", {
        "memory.usage_in_bytes": "104857600\n", "memory.max_usage_in_bytes": "209715200\n",
        "memory.limit_in_bytes": "9223372036854771712\n", "memory.failcnt": "0\n",
        "memory.stat": "cache 1000\ntotal_inactive_file 4194304\n"})
    pids = _files(tmp_path / "pids", {"pids.current": "3\n", "pids.max": "max\n"})
    blk = _files(tmp_path / "blkio", {
        "blkio.throttle.io_service_bytes": "8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n"})
    s = _sampler({"cpu,cpuacct": cpu, "memory": mem, "pids": pids, "blkio": blk},
                 monkeypatch)
    a = s.sample()
    assert a["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert a["cpu_stats"]["cpu_usage"] == {
        "total_usage": 5_000_000_000, "percpu_usage": [3_000_000_000, 2_000_000_000],
        "usage_in_kernelmode": 100 * 10**9 // os.sysconf("SC_CLK_TCK"),
        "usage_in_usermode": 300 * 10**9 // os.sysconf("SC_CLK_TCK")}
    assert a["cpu_stats"]["throttling_data"] == {"periods": 10, "throttled_periods": 2,
                                                 "throttled_time": 777}
    # unlimited: the host's memory; "max" pids: no limit field, as dockerd
    assert a["memory_stats"]["limit"] == st.machine_memory()
    assert a["memory_stats"]["max_usage"] == 209715200
    assert a["pids_stats"] == {"current": 3}
    assert [(e["op"], e["value"]) for e in a["blkio_stats"]["io_service_bytes_recursive"]] \
        == [("Read", 4096), ("Write", 8192)]
    b = s.sample()
    assert b["preread"] == a["read"] and b["precpu_stats"] == a["cpu_stats"]
    row = stats_row(b, "web")
    assert row["MemUsage"].startswith("96MiB / ") and row["PIDs"] == "3"
    assert row["BlockIO"] == "4.1kB / 8.19kB"


def test_v2_sample(tmp_path, monkeypatch):
    d = _files(tmp_path / "v2", {
        "cpu.stat": "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 0\n"
                    "nr_throttled 0\nthrottled_usec 0\n",
        "memory.current": "52428800\n", "memory.max": "67108864\n",
        "memory.stat": "anon 1000\ninactive_file 2097152\n", "memory.events": "max 0\n",
        "pids.current": "2\n", "pids.max": "100\n",
        "io.stat": "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"})
    s = _sampler({"": d}, monkeypatch).sample()
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] == 2_000_000
    assert "percpu_usage" not in s["cpu_stats"]["cpu_usage"]
    assert s["memory_stats"]["limit"] == 64 << 20 and "max_usage" not in s["memory_stats"]
    assert s["pids_stats"] == {"current": 2, "limit": 100}
    assert [(e["op"], e["value"]) for e in s["blkio_stats"]["io_service_bytes_recursive"]] \
        == [("read", 100), ("write", 200)]
    assert stats_row(s, "web")["MemUsage"] == "48MiB / 64MiB"
    assert stats_row(s, "web")["MemPerc"] == "75.00%"


def test_cpu_percent_and_sizes():
    def sample(total: int, system: int) -> dict:
        return {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system,
                "online_cpus": 2}

    s = {"cpu_stats": sample(1_500_000_000, 4_000_000_000),
         "precpu_stats": sample(1_000_000_000, 2_000_000_000)}
    assert cpu_percent(s) == pytest.approx(50.0)
    assert bytes_size(0) == "0B" and bytes_size(1536) == "1.5KiB"
    assert bytes_size(23.54 * (1 << 30)) == "23.54GiB"


def test_zero_object():
    z = st.zero("/x", "id")
    assert z["read"] == st.ZERO_TIME and z["memory_stats"] == {} and z["name"] == "/x"
    assert stats_row(z, "x")["MemUsage"] == "0B / 0B"


def test_ps_ef_row_matches_the_hosts_ps():
    pid = os.getppid()
    row = ops.ps_ef_row(pid, ops._boot_time(), time.time())
    out = subprocess.run(["ps", "-ww", "-f", "-p", str(pid)], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0].split() == ops.PS_EF_TITLES
    theirs = out[1].split(None, 7)
    assert row is not None
    # UID PID PPID STIME TTY CMD as procps prints them (C and TIME may tick in between)
    for i in (0, 1, 2, 4, 5, 7):
        assert row[i] == theirs[i], (row, theirs)
