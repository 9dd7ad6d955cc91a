"""ps, pause/resume, events, update and features on a running container."""

from __future__ import annotations

import json
from pathlib import Path

from .support import assert_valid, wait_for


def running(runtime, bundle, args=("sleep", "1000"), **kw):
    cid = runtime.new_id()
    b = bundle(list(args), **kw)
    runtime.detached("run", "--detach", "--bundle", str(b), cid, tag=cid).ok()
    return cid, runtime.state(cid)


def test_ps_lists_the_container_processes(runtime, bundle):
    cid, st = running(runtime, bundle, ("sh", "-c", "sleep 1000 & sleep 1000; true"))
    wait_for(lambda: len(json.loads(runtime("ps", "--format", "json", cid).ok().stdout)) == 3,
             what="three processes")
    pids = json.loads(runtime("ps", "--format", "json", cid).ok().stdout)
    assert st["pid"] in pids
    table = runtime("ps", cid).ok().stdout.splitlines()
    assert "PID" in table[0].split()
    assert len(table) == 4
    # Extra arguments go to ps(1).
    custom = runtime("ps", cid, "-o", "pid,comm").ok().stdout.split()
    assert custom[:2] == ["PID", "COMMAND"]


def test_pause_resume(runtime, bundle):
    cid, st = running(runtime, bundle)
    runtime("pause", cid).ok()
    assert runtime.state(cid)["status"] == "paused"
    state = Path(f"/proc/{st['pid']}/status").read_text()
    assert any(line.split()[1] in ("D", "S", "T") for line in state.splitlines()
               if line.startswith("State:"))
    runtime("pause", cid).failed(("paused", "not running"))
    runtime("resume", cid).ok()
    assert runtime.state(cid)["status"] == "running"
    runtime("resume", cid).failed(("not paused", "running"))


def test_delete_force_paused(runtime, bundle):
    cid, _ = running(runtime, bundle)
    runtime("pause", cid).ok()
    runtime.delete(cid, "--force").ok()
    runtime("state", cid).failed("does not exist")


def test_events_stats(runtime, bundle):
    cid, _ = running(runtime, bundle,
                     edit=lambda c: c["linux"]["resources"].update(pids={"limit": 33}))
    ev = json.loads(runtime("events", "--stats", cid).ok().stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    data = ev["data"]
    assert data["pids"]["current"] >= 1 and data["pids"]["limit"] == 33
    assert data["memory"]["usage"]["usage"] > 0
    assert data["cpu"]["usage"]["total"] > 0


def test_update_flags_and_resources_file(runtime, bundle, tmp_path):
    cid, _ = running(runtime, bundle)
    runtime("update", "--memory", "64m", "--pids-limit", "20", cid).ok()
    ev = json.loads(runtime("events", "--stats", cid).ok().stdout)["data"]
    assert ev["memory"]["usage"]["limit"] == 64 << 20
    assert ev["pids"]["limit"] == 20
    res = tmp_path / "res.json"
    res.write_text(json.dumps({"pids": {"limit": 7}}))
    runtime("update", "--resources", str(res), cid).ok()
    assert json.loads(runtime("events", "--stats", cid).ok().stdout)["data"]["pids"]["limit"] == 7
    runtime("update", "--memory", "lots", cid).failed("memory")


def test_features_valid(runtime):
    r = runtime("features")
    if runtime.name == "runc" and r.returncode != 0:
        import pytest

        pytest.skip("this runc has no features verb")
    doc = json.loads(r.ok().stdout)
    assert_valid("features-schema.json", doc)
    assert "createRuntime" in doc["hooks"]
    assert "pid" in doc["linux"]["namespaces"]


def test_events_reports_oom(runtime, bundle, tmp_path):
    import subprocess
    import time

    limit = 24 << 20
    cid, _ = running(runtime, bundle, edit=lambda c: c["linux"]["resources"].update(
        memory={"limit": limit, "swap": limit}))
    out = tmp_path / "events.out"
    with open(out, "w") as f:
        ev = subprocess.Popen([*runtime.base(), "events", "--interval", "100ms", cid],
                              stdout=f, stderr=subprocess.STDOUT)
    try:
        time.sleep(0.5)
        hog = runtime("exec", cid, "sh", "-c",
                      "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived")
        assert "survived" not in hog.stdout
        wait_for(lambda: '"oom"' in out.read_text(), timeout=10, what="an oom event")
    finally:
        ev.terminate()
        ev.wait(timeout=10)
    events = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    assert {"type": "oom", "id": cid} in [{k: e[k] for k in ("type", "id")} for e in events]
    assert any(e["type"] == "stats" for e in events)
