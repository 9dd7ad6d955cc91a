"""stats, pause/unpause, rename, update, top and json-file log rotation, through the real
docker CLI, docker-py and the pallet CLI; the cgroup-touching ones with pallet-runtime and
with runc under the container (`--runtime`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest
from daemon_support import DOCKER, make_daemon

palletd = make_daemon()

RUNTIMES = ["pallet-runtime", "runc"]
COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done"
_BIN = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def _bytes(text: str) -> float:
    """docker's BytesSize output ("1.5MiB") back to bytes."""
    m = re.fullmatch(r"([\d.]+)([KMGT]?i?B)", text.strip())
    assert m, text
    return float(m.group(1)) * _BIN[m.group(2)]


def _cgroup_file(cid: str, controller: str, v1: str, v2: str) -> str:
    from pallet.daemon.stats import cgroup_paths

    paths = cgroup_paths({"Id": cid, "HostConfig": {}})
    for name, path in paths.items():
        if controller in name.split(","):
            with open(os.path.join(path, v1)) as f:
                return f.read().strip()
    with open(os.path.join(paths[""], v2)) as f:
        return f.read().strip()


def _stats_row(palletd, name: str) -> dict[str, str]:
    fmt = "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.PIDs}}|{{.NetIO}}"
    out = palletd.docker("stats", "--no-stream", "--format", fmt, name, check=True).stdout
    keys = ["Name", "CPUPerc", "MemUsage", "MemPerc", "PIDs", "NetIO"]
    return dict(zip(keys, out.strip().split("|"), strict=True))


def _logged_numbers(palletd, name: str) -> list[int]:
    out = palletd.docker("logs", name).stdout.split()
    return [int(x) for x in out if x.isdigit()]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_stats_cli_memory_grows(palletd, runtime):
    name = f"st-{runtime}"
    palletd.docker("run", "-d", "--name", name, "--runtime", runtime, "-m", "256m",
                   "busybox", "sleep", "1000", check=True)
    before = _stats_row(palletd, name)
    assert before["Name"] == name and before["PIDs"] == "1"
    used0, limit = (_bytes(x) for x in before["MemUsage"].split(" / "))
    assert limit == 256 << 20
    # tmpfs pages are charged to the writer's memory cgroup and are not page cache the CLI
    # subtracts (inactive_file): the figure has to grow by about what was written
    palletd.docker("exec", name, "dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M",
                   "count=48", check=True)
    after = _stats_row(palletd, name)
    used1 = _bytes(after["MemUsage"].split(" / ")[0])
    assert used1 - used0 > 40 << 20, (before, after)
    assert float(after["MemPerc"].rstrip("%")) == pytest.approx(used1 / limit * 100, abs=0.1)
    # freeing it shows too
    palletd.docker("exec", name, "rm", "/dev/shm/fill", check=True)
    used2 = _bytes(_stats_row(palletd, name)["MemUsage"].split(" / ")[0])
    assert used2 < used1 - (30 << 20)
    palletd.docker("rm", "-f", name, check=True)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_stats_api_shape_and_cpu(palletd, runtime):
    name = f"busy-{runtime}"
    cid = palletd.docker("run", "-d", "--name", name, "--runtime", runtime, "busybox", "sh",
                         "-c", "while :; do :; done", check=True).stdout.strip()
    t0 = time.monotonic()
    status, s = palletd.api("GET", f"/containers/{name}/stats?stream=0")
    took = time.monotonic() - t0
    assert status == 200 and s["id"] == cid and s["name"] == f"/{name}"
    assert 0.9 < took < 5, "stream=0 waits for a second sample, as dockerd"
    cpu, pre = s["cpu_stats"], s["precpu_stats"]
    assert cpu["online_cpus"] == os.sysconf("SC_NPROCESSORS_ONLN")
    assert pre["system_cpu_usage"] < cpu["system_cpu_usage"]
    busy = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    # a busy loop on a shared machine: at least a tenth of a CPU over that second
    assert busy > 0.1e9 * 0.9, s
    assert cpu["cpu_usage"]["usage_in_usermode"] > 0
    assert s["pids_stats"]["current"] == 1
    assert s["memory_stats"]["usage"] > 0 and s["memory_stats"]["stats"]
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1]) * 1024
    assert s["memory_stats"]["limit"] == total  # unlimited: the host's memory
    assert s["read"] > s["preread"] > "2000"
    row = _stats_row(palletd, name)
    assert float(row["CPUPerc"].rstrip("%")) > 10.0, row
    # one-shot: one sample at once, no previous one
    status, s1 = palletd.api("GET", f"/containers/{name}/stats?stream=0&one-shot=1")
    assert status == 200 and s1["preread"] == "0001-01-01T00:00:00Z"
    assert palletd.api("GET", f"/containers/{name}/stats?stream=1&one-shot=1")[0] == 400
    palletd.docker("rm", "-f", name, check=True)


def test_stats_stream_and_stopped(palletd):
    palletd.docker("run", "-d", "--name", "sst", "busybox", "sleep", "1000", check=True)
    p = subprocess.Popen(["curl", "-sN", "--unix-socket", palletd.sock,
                          "http://x/v1.41/containers/sst/stats"], stdout=subprocess.PIPE)
    try:
        assert p.stdout is not None
        objs = [json.loads(p.stdout.readline()) for _ in range(3)]
    finally:
        p.kill()
        p.wait()
    assert objs[0]["preread"] == "0001-01-01T00:00:00Z"
    assert objs[1]["preread"] == objs[0]["read"] and objs[2]["preread"] == objs[1]["read"]
    assert objs[2]["precpu_stats"] == objs[1]["cpu_stats"]
    palletd.docker("stop", "-t", "0", "sst", check=True)
    status, s = palletd.api("GET", "/containers/sst/stats?stream=0")
    assert status == 200 and s["name"] == "/sst" and s["read"] == "0001-01-01T00:00:00Z"
    assert s["memory_stats"] == {} and s["pids_stats"] == {}
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] == 0
    row = palletd.docker("stats", "--no-stream", "--format", "{{.MemUsage}} {{.PIDs}}",
                         "sst", check=True).stdout.strip()
    assert row == "0B / 0B 0"
    palletd.docker("rm", "sst", check=True)


def test_stats_networks(palletd):
    """The eth* devices of the container's network namespace with their counters (its CNI
    interface on the default bridge); lo is left out, so --network none has none."""
    palletd.docker("run", "-d", "--name", "nonet", "--network", "none", "busybox", "sleep",
                   "1000", check=True)
    status, s = palletd.api("GET", "/containers/nonet/stats?stream=0&one-shot=1")
    assert status == 200 and "networks" not in s  # only lo: no networks, as dockerd
    palletd.docker("rm", "-f", "nonet", check=True)
    palletd.docker("run", "-d", "--name", "net", "busybox", "sleep", "1000", check=True)
    gateway = palletd.inspect("net")["NetworkSettings"]["Gateway"]
    status, s = palletd.api("GET", "/containers/net/stats?stream=0&one-shot=1")
    before = s["networks"]["eth0"]
    palletd.docker("exec", "net", "ping", "-c", "3", "-W", "1", gateway, check=True)
    status, s = palletd.api("GET", "/containers/net/stats?stream=0&one-shot=1")
    nets = s["networks"]
    assert set(nets) == {"eth0"}
    assert nets["eth0"]["tx_packets"] >= before["tx_packets"] + 3
    assert nets["eth0"]["rx_packets"] >= before["rx_packets"] + 3
    assert set(nets["eth0"]) == {"rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
                                 "tx_bytes", "tx_packets", "tx_errors", "tx_dropped"}
    net_io = _stats_row(palletd, "net")["NetIO"]
    assert net_io != "0B / 0B" and not net_io.endswith(" / 0B")
    palletd.docker("rm", "-f", "net", check=True)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_pause_unpause(palletd, runtime):
    name = f"pz-{runtime}"
    since = str(time.time() - 1)
    palletd.docker("run", "-d", "--name", name, "--runtime", runtime, "busybox", "sh", "-c",
                   COUNTER, check=True)
    palletd.wait_for(lambda: len(_logged_numbers(palletd, name)) > 5, what="output")
    palletd.docker("pause", name, check=True)
    st = palletd.inspect(name)["State"]
    assert st["Paused"] and st["Running"] and st["Status"] == "paused"
    assert "(Paused)" in palletd.docker("ps", "--filter", f"name={name}").stdout
    assert palletd.docker("ps", "-q", "--filter", "status=paused").stdout.strip() != ""
    n = len(_logged_numbers(palletd, name))
    time.sleep(1)
    assert len(_logged_numbers(palletd, name)) == n, "output went on while paused"
    p = palletd.docker("exec", name, "true")
    assert p.returncode != 0 and "is paused" in p.stderr
    assert "already paused" in palletd.docker("pause", name).stderr
    assert palletd.api("POST", f"/containers/{name}/start")[0] == 409
    assert palletd.api("POST", f"/containers/{name}/attach?stream=1&stdout=1")[0] == 409
    palletd.docker("unpause", name, check=True)
    st = palletd.inspect(name)["State"]
    assert not st["Paused"] and st["Status"] == "running"
    palletd.wait_for(lambda: len(_logged_numbers(palletd, name)) > n + 5, what="resumed")
    numbers = _logged_numbers(palletd, name)
    assert numbers == list(range(len(numbers)))
    assert "not paused" in palletd.docker("unpause", name).stderr
    # stop of a paused container: the signal is delivered once it is thawed
    palletd.docker("pause", name, check=True)
    t0 = time.monotonic()
    palletd.docker("stop", "-t", "1", name, check=True)
    # not the 30 s palletd gives a SIGKILL that a frozen v1 cgroup holds back (slow VMs
    # need more than the second of -t 1 and a few runtime calls)
    assert time.monotonic() - t0 < 15
    st = palletd.inspect(name)["State"]
    assert st["Status"] == "exited" and not st["Paused"]
    actions = palletd.docker("events", "--since", since, "--until", str(time.time()),
                             "--filter", f"container={name}", "--format", "{{.Action}}",
                             check=True).stdout.split()
    assert actions.count("pause") == 2 and actions.count("unpause") == 2, actions
    # kill of a paused one
    palletd.docker("start", name, check=True)
    palletd.docker("pause", name, check=True)
    palletd.docker("kill", name, check=True)
    assert palletd.docker("wait", name, check=True).stdout.strip() == "137"
    palletd.docker("rm", name, check=True)


def test_rename(palletd):
    since = str(time.time() - 1)
    cid = palletd.docker("run", "-d", "--name", "rn-old", "busybox", "sleep", "1000",
                         check=True).stdout.strip()
    palletd.docker("run", "-d", "--name", "rn-other", "busybox", "sleep", "1000", check=True)
    palletd.docker("rename", "rn-old", "rn-new", check=True)
    st = json.loads(palletd.docker("inspect", "rn-new", check=True).stdout)[0]
    assert st["Id"] == cid and st["Name"] == "/rn-new"
    assert palletd.docker("inspect", "rn-old").returncode != 0
    assert "rn-new" in palletd.docker("ps", "--filter", "id=" + cid).stdout
    p = palletd.docker("rename", "rn-new", "rn-other")
    assert p.returncode != 0 and "already in use" in p.stderr
    assert palletd.api("POST", "/containers/rn-new/rename?name=rn-other")[0] == 409
    assert palletd.api("POST", "/containers/rn-new/rename?name=bad%20name")[0] == 400
    ev = palletd.docker("events", "--since", since, "--until", str(time.time()), "--filter",
                        "event=rename", "--format", "{{json .Actor.Attributes}}",
                        check=True).stdout.splitlines()
    attrs = [json.loads(x) for x in ev]
    assert {"name": "rn-new", "oldName": "/rn-old"}.items() <= attrs[0].items()
    palletd.docker("rm", "-f", "rn-new", "rn-other", check=True)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_update(palletd, runtime):
    name = f"up-{runtime}"
    cid = palletd.docker("run", "-d", "--name", name, "--runtime", runtime, "-m", "128m",
                         "busybox", "sleep", "1000", check=True).stdout.strip()
    assert _cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max") \
        == str(128 << 20)
    palletd.docker("update", "--memory", "200m", "--pids-limit", "50", "--cpus", "0.5",
                   "--restart", "on-failure:3", name, check=True)
    host = palletd.inspect(name)["HostConfig"]
    assert host["Memory"] == 200 << 20 and host["PidsLimit"] == 50
    assert host["NanoCpus"] == 500_000_000
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert _cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max") \
        == str(200 << 20)
    assert _cgroup_file(cid, "pids", "pids.max", "pids.max") == "50"
    quota = _cgroup_file(cid, "cpu", "cpu.cfs_quota_us", "cpu.max").split()[0]
    assert quota == "50000"
    limit = palletd.api("GET", f"/containers/{name}/stats?one-shot=1&stream=0"
                        )[1]["memory_stats"]["limit"]
    assert limit == 200 << 20
    p = palletd.docker("update", "--memory", "1m", name)
    assert p.returncode != 0 and "Minimum memory limit" in p.stderr
    # the stored limits are the ones of the next start; a stopped container's update is
    # only stored
    palletd.docker("stop", "-t", "0", name, check=True)
    palletd.docker("update", "--memory", "150m", name, check=True)
    palletd.docker("start", name, check=True)
    assert _cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max") \
        == str(150 << 20)
    assert _cgroup_file(cid, "pids", "pids.max", "pids.max") == "50"
    # what the second update did not name stays as the first one set it
    assert _cgroup_file(cid, "cpu", "cpu.cfs_quota_us", "cpu.max").split()[0] == "50000"
    host = palletd.inspect(name)["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 50
    palletd.docker("rm", "-f", name, check=True)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_top(palletd, runtime):
    palletd.docker("run", "-d", "--name", "tp", "--runtime", runtime, "busybox", "sh", "-c",
                   "sleep 1001 & sleep 1002 & wait", check=True)
    time.sleep(0.3)
    out = palletd.docker("top", "tp", check=True).stdout.splitlines()
    assert out[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    rows = [line.split(None, 7) for line in out[1:]]
    by_cmd = {r[7]: r for r in rows}
    assert set(by_cmd) == {"sh -c sleep 1001 & sleep 1002 & wait", "sleep 1001",
                           "sleep 1002"}, out
    sh = by_cmd["sh -c sleep 1001 & sleep 1002 & wait"]
    assert by_cmd["sleep 1001"][2] == sh[1] and by_cmd["sleep 1002"][2] == sh[1]
    assert sh[1] == str(palletd.inspect("tp")["State"]["Pid"])
    assert all(r[0] == "root" and r[5] == "?" and re.fullmatch(r"\d\d:\d\d:\d\d", r[6])
               for r in rows)
    # other ps options: the host's ps, the container's lines
    status, t = palletd.api("GET", "/containers/tp/top?ps_args=-o%20pid,comm")
    assert status == 200 and t["Titles"] == ["PID", "COMMAND"]
    assert sorted(c for _, c in t["Processes"]) == ["sh", "sleep", "sleep"]
    palletd.docker("stop", "-t", "0", "tp", check=True)
    assert palletd.api("GET", "/containers/tp/top")[0] == 409
    palletd.docker("rm", "tp", check=True)


def test_log_rotation_bounded(palletd):
    cid = palletd.docker("run", "-d", "--name", "rot", "--log-opt", "max-size=1k",
                         "--log-opt", "max-file=2", "busybox", "sh", "-c",
                         "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done; "
                         "sleep 1000", check=True).stdout.strip()
    log_path = palletd.inspect("rot")["LogPath"]
    palletd.wait_for(lambda: "line-399" in palletd.docker("logs", "--tail", "1", "rot").stdout,
                     what="the last line")
    assert os.path.exists(log_path + ".1") and not os.path.exists(log_path + ".2")
    # each file ends at the first entry that reaches max-size
    for p in (log_path, log_path + ".1"):
        assert os.path.getsize(p) < 1024 + 200, p
    lines = palletd.docker("logs", "rot", check=True).stdout.split()
    numbers = [int(x.split("-")[1]) for x in lines]
    assert numbers[-1] == 399 and numbers == list(range(numbers[0], 400))
    assert numbers[0] > 300  # the older ones are gone with the rotated-out files
    status, _ = palletd.api("POST", "/containers/create?name=badopt",
                            {"Image": "busybox", "HostConfig": {"LogConfig": {
                                "Type": "json-file", "Config": {"max-sise": "1k"}}}})
    assert status == 400
    palletd.docker("rm", "-f", cid, check=True)


def test_log_follow_across_rotation(palletd):
    palletd.docker("run", "-d", "--name", "rotf", "--log-opt", "max-size=1k",
                   "--log-opt", "max-file=3", "busybox", "sh", "-c",
                   "i=0; while [ $i -lt 300 ]; do echo n-$i; i=$((i+1)); usleep 20000; done",
                   check=True)
    p = subprocess.run([DOCKER, "logs", "-f", "rotf"], capture_output=True, text=True,
                       env=palletd.env, timeout=60)
    numbers = [int(x.split("-")[1]) for x in p.stdout.split()]
    # it followed from before the middle, through about ten rotations: no line lost or
    # repeated
    assert numbers[0] < 150
    assert numbers[-1] == 299 and numbers == list(range(numbers[0], 300)), p.stdout[-300:]
    palletd.docker("rm", "-f", "rotf", check=True)


def test_pallet_cli(palletd):
    palletd.pallet("run", "-d", "--name", "pc", "-m", "96m", "busybox", "sleep", "1000",
                   check=True)
    out = palletd.pallet("stats", "--no-stream", "pc", check=True).stdout.splitlines()
    assert out[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/",
                              "LIMIT", "MEM", "%", "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    row = palletd.pallet("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} "
                         "{{.PIDs}}", "pc", check=True).stdout.split()
    assert row[0] == "pc" and row[3] == "96MiB" and row[4] == "1"
    assert palletd.pallet("pause", "pc", check=True).stdout == "pc\n"
    assert "(Paused)" in palletd.pallet("ps", check=True).stdout
    palletd.pallet("unpause", "pc", check=True)
    palletd.pallet("update", "--memory", "120m", "--pids-limit", "20", "pc", check=True)
    assert palletd.inspect("pc")["HostConfig"]["Memory"] == 120 << 20
    palletd.pallet("rename", "pc", "pc2", check=True)
    top = palletd.pallet("top", "pc2", check=True).stdout.splitlines()
    assert top[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert top[1].split()[-2:] == ["sleep", "1000"]
    assert palletd.pallet("rename", "pc2", "pc2").returncode != 0
    palletd.pallet("rm", "-f", "pc2", check=True)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_dockerpy(palletd, runtime):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=f"unix://{palletd.sock}", version="auto")
    try:
        ct = client.containers.run("busybox", ["sh", "-c", COUNTER], detach=True,
                                   name=f"dpy-{runtime}", runtime=runtime,
                                   mem_limit="64m")
        s = ct.stats(stream=False)
        assert s["id"] == ct.id and s["memory_stats"]["limit"] == 64 << 20
        assert s["precpu_stats"]["system_cpu_usage"] > 0
        ct.pause()
        ct.reload()
        assert ct.status == "paused"
        with pytest.raises(docker.errors.APIError) as err:
            ct.exec_run("true")
        assert err.value.response.status_code == 409
        ct.unpause()
        ct.reload()
        assert ct.status == "running"
        ct.rename(f"dpy2-{runtime}")
        assert client.containers.get(f"dpy2-{runtime}").id == ct.id
        assert ct.update(mem_limit="100m", cpu_period=100000, cpu_quota=25000,
                         restart_policy={"Name": "always"}) == {"Warnings": []}
        ct.reload()
        host = ct.attrs["HostConfig"]
        assert host["Memory"] == 100 << 20 and host["CpuQuota"] == 25000
        assert host["RestartPolicy"]["Name"] == "always"
        assert _cgroup_file(ct.id, "cpu", "cpu.cfs_quota_us", "cpu.max").split()[0] \
            == "25000"
        top = ct.top()
        assert "PID" in top["Titles"] and len(top["Processes"]) >= 1
        ct.remove(force=True)
    finally:
        client.close()


def test_paused_survives_a_daemon_restart(palletd):
    palletd.docker("run", "-d", "--name", "pz-restart", "busybox", "sh", "-c", COUNTER,
                   check=True)
    palletd.docker("pause", "pz-restart", check=True)
    palletd.kill()
    palletd.start()
    st = palletd.inspect("pz-restart")["State"]
    assert st["Running"] and st["Paused"] and st["Status"] == "paused"
    n = len(_logged_numbers(palletd, "pz-restart"))
    palletd.docker("unpause", "pz-restart", check=True)
    palletd.wait_for(lambda: len(_logged_numbers(palletd, "pz-restart")) > n + 3,
                     what="output after unpause")
    palletd.docker("rm", "-f", "pz-restart", check=True)


def test_exec_instances_live_as_long_as_their_container(palletd):
    """ExecIDs lists the running execs (as dockerd); a finished exec stays inspectable until
    its container is removed."""
    palletd.docker("run", "-d", "--name", "ex1", "busybox", "sleep", "60", check=True)
    palletd.docker("run", "-d", "--name", "ex2", "busybox", "sleep", "60", check=True)
    try:
        status, body = palletd.api("POST", "/v1.41/containers/ex1/exec",
                                   {"Cmd": ["sleep", "30"]})
        assert status == 201, body
        eid = body["Id"]
        status, _ = palletd.api("POST", f"/v1.41/exec/{eid}/start", {"Detach": True})
        assert status == 200
        assert palletd.inspect("ex1")["ExecIDs"] == [eid]
        palletd.docker("exec", "ex1", "sh", "-c",  # the exec's sleep, not init's
                       "for p in $(pidof sleep); do [ $p = 1 ] || kill $p; done", check=True)
        palletd.wait_for(lambda: palletd.api("GET", f"/v1.41/exec/{eid}/json")[1][
            "Running"] is False, what="the exec's end")
        assert palletd.inspect("ex1")["ExecIDs"] is None
        palletd.docker("rm", "-f", "ex1", check=True)
        palletd.docker("exec", "ex2", "true", check=True)
        status, body = palletd.api("GET", f"/v1.41/exec/{eid}/json")
        assert status == 404 and body["message"] == f"No such exec instance: {eid}"
    finally:
        palletd.docker("rm", "-f", "ex1", "ex2")
