"""Health checks through palletd, driven by the real docker CLI and Debian's docker-compose:
`--health-*` and HEALTHCHECK, State.Health, `ps` status and filter, health_status events,
probe timeouts, a palletd restart, and compose's `condition: service_healthy`."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import time

import pytest
from daemon_support import make_daemon

palletd = make_daemon()

FAST = ["--health-interval", "200ms", "--health-timeout", "2s"]


def health(palletd, name: str) -> dict:
    return palletd.inspect(name)["State"].get("Health") or {}


def wait_status(palletd, name: str, status: str, timeout: float = 20) -> dict:
    return palletd.wait_for(lambda: health(palletd, name).get("Status") == status
                            and health(palletd, name), timeout=timeout,
                            what=f"{name} {status}")


def test_probe_states_ps_events_and_restart_of_palletd(palletd):
    since = str(time.time())
    palletd.docker("run", "-d", "--name", "hc", "--health-cmd", "cat /tmp/ok", *FAST,
                   "--health-retries", "2", "busybox", "sleep", "600", check=True)
    try:
        h = health(palletd, "hc")
        assert h["Status"] == "starting" and h["FailingStreak"] == 0
        assert "(health: starting)" in palletd.docker("ps", "--format", "{{.Status}}",
                                                      check=True).stdout
        # failing probes: unhealthy after two in a row, each result logged
        h = wait_status(palletd, "hc", "unhealthy")
        assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 1
        assert "No such file" in h["Log"][-1]["Output"] or "can't open" in h["Log"][-1][
            "Output"], h["Log"][-1]
        palletd.docker("exec", "hc", "sh", "-c", "echo fine > /tmp/ok", check=True)
        h = wait_status(palletd, "hc", "healthy")
        assert h["FailingStreak"] == 0 and h["Log"][-1]["Output"] == "fine\n"
        assert len(h["Log"]) <= 5
        ps = palletd.docker("ps", "--filter", "health=healthy", "--format",
                            "{{.Names}} {{.Status}}", check=True).stdout
        assert ps.startswith("hc Up") and "(healthy)" in ps, ps
        assert palletd.docker("ps", "-q", "--filter", "health=unhealthy").stdout.strip() == ""
        p = palletd.docker("ps", "--filter", "health=sick")
        assert p.returncode != 0 and "Unrecognised filter value for health: sick" in p.stderr
        # probes are not kept as exec instances (one may be running now)
        assert len(palletd.inspect("hc")["ExecIDs"] or []) <= 1
        ev = palletd.docker("events", "--since", since, "--until", str(time.time()),
                            "--filter", "container=hc", "--format", "{{.Action}}",
                            check=True).stdout.splitlines()
        assert "health_status: unhealthy" in ev and "health_status: healthy" in ev, ev
        assert ev.index("health_status: unhealthy") < ev.index("health_status: healthy")
        assert "exec_create: /bin/sh -c cat /tmp/ok" in ev, ev  # dockerd's words
        # paused: unhealthy (dockerd stops the monitor); unpaused: probed back to healthy
        palletd.docker("pause", "hc", check=True)
        assert health(palletd, "hc")["Status"] == "unhealthy"
        palletd.docker("unpause", "hc", check=True)
        wait_status(palletd, "hc", "healthy")
        # palletd goes and comes back: the status stays, the probes go on
        palletd.kill()
        palletd.start()
        assert health(palletd, "hc")["Status"] == "healthy"
        palletd.docker("exec", "hc", "rm", "/tmp/ok", check=True)
        wait_status(palletd, "hc", "unhealthy")
        # a stop ends the probes; a start begins again from "starting"
        palletd.docker("exec", "hc", "sh", "-c", "echo fine > /tmp/ok", check=True)
        wait_status(palletd, "hc", "healthy")
        palletd.docker("stop", "-t", "0", "hc", check=True)
        n = len(health(palletd, "hc")["Log"])
        stopped = health(palletd, "hc")
        assert stopped["Status"] == "unhealthy"  # dockerd's word for a stopped monitor
        time.sleep(0.6)
        assert health(palletd, "hc") == stopped and len(stopped["Log"]) == n
        palletd.docker("start", "hc", check=True)
        assert health(palletd, "hc")["Status"] == "starting"
    finally:
        palletd.docker("rm", "-f", "hc")


def test_timeout_cmd_form_and_none(palletd, tmp_path):
    """A probe past its timeout is killed and fails with -1 and dockerd's message; the
    image's HEALTHCHECK (exec form) is inherited and `--no-healthcheck` turns it off."""
    palletd.docker("run", "-d", "--name", "slow", "--health-cmd", "sleep 5",
                   "--health-interval", "200ms", "--health-timeout", "300ms",
                   "--health-retries", "1", "busybox", "sleep", "600", check=True)
    try:
        h = wait_status(palletd, "slow", "unhealthy")
        assert h["Log"][-1]["ExitCode"] == -1
        assert h["Log"][-1]["Output"] == "Health check exceeded timeout (300ms)"
        # the killed probe does not linger in the container
        top = palletd.docker("top", "slow", check=True).stdout
        assert top.count("sleep 5") <= 1, top
    finally:
        palletd.docker("rm", "-f", "slow")
    (tmp_path / "Dockerfile").write_text(textwrap.dedent("""\
        FROM busybox
        HEALTHCHECK --interval=200ms --timeout=2s --retries=1 CMD ["test", "-e", "/etc/passwd"]
        CMD ["sleep", "600"]
        """))
    env = {**palletd.env, "DOCKER_BUILDKIT": "0"}
    subprocess.run(["docker", "build", "-q", "-t", "hc-image", str(tmp_path)], env=env,
                   check=True, capture_output=True, timeout=120)
    try:
        palletd.docker("run", "-d", "--name", "fromimage", "hc-image", check=True)
        palletd.docker("run", "-d", "--name", "nocheck", "--no-healthcheck", "hc-image",
                       check=True)
        assert palletd.inspect("fromimage")["Config"]["Healthcheck"]["Test"] == [
            "CMD", "test", "-e", "/etc/passwd"]
        wait_status(palletd, "fromimage", "healthy")
        nc = palletd.inspect("nocheck")
        assert nc["Config"]["Healthcheck"]["Test"] == ["NONE"]
        assert "Health" not in nc["State"]
        assert "(" not in palletd.docker("ps", "--filter", "name=nocheck", "--format",
                                         "{{.Status}}", check=True).stdout
    finally:
        palletd.docker("rm", "-f", "fromimage", "nocheck")
        palletd.docker("rmi", "hc-image")


def test_bad_healthcheck_is_refused(palletd):
    status, body = palletd.api("POST", "/v1.41/containers/create", {
        "Image": "busybox", "Cmd": ["true"],
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 10}})
    assert status == 400, body
    assert body["message"] == "Interval in Healthcheck cannot be less than 1ms"
    assert palletd.docker("ps", "-aq").stdout.strip() == ""


COMPOSE = shutil.which("docker-compose")


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed")
def test_compose_waits_for_a_healthy_service(palletd, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(textwrap.dedent("""\
        version: "2.4"
        services:
          db:
            image: busybox
            command: ["sh", "-c", "sleep 1; touch /tmp/ready; sleep 600"]
            healthcheck:
              test: ["CMD", "test", "-e", "/tmp/ready"]
              interval: 200ms
              retries: 30
          app:
            image: busybox
            command: ["sleep", "600"]
            depends_on:
              db:
                condition: service_healthy
        """))
    up = subprocess.run([COMPOSE, "-p", "hcdemo", "up", "-d"], cwd=tmp_path, env=palletd.env,
                        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    try:
        assert up.returncode == 0, up.stderr
        db = palletd.inspect("hcdemo_db_1")
        app = palletd.inspect("hcdemo_app_1")
        assert db["State"]["Health"]["Status"] == "healthy"
        # app was started only once db had turned healthy
        healthy_at = next(r["End"] for r in db["State"]["Health"]["Log"]
                          if r["ExitCode"] == 0)
        assert app["State"]["StartedAt"] > healthy_at, (app["State"], db["State"]["Health"])
    finally:
        subprocess.run([COMPOSE, "-p", "hcdemo", "down", "-t", "0"], cwd=tmp_path,
                       env=palletd.env, capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)




def test_pallet_cli_health_flags(palletd):
    p = palletd.pallet("run", "-d", "--name", "phc", "--health-cmd", "true",
                       "--health-interval", "250ms", "--health-retries", "2",
                       "busybox", "sleep", "600")
    assert p.returncode == 0, p.stderr
    palletd.pallet("create", "--name", "phc2", "--health-start-period", "1m30s",
                   "--health-timeout", "1.5s", "busybox", check=True)
    try:
        hc = palletd.inspect("phc")["Config"]["Healthcheck"]
        assert hc == {"Test": ["CMD-SHELL", "true"], "Interval": 250_000_000, "Retries": 2}
        hc = palletd.inspect("phc2")["Config"]["Healthcheck"]
        assert hc == {"Test": [], "StartPeriod": 90_000_000_000, "Timeout": 1_500_000_000}
        wait_status(palletd, "phc", "healthy")
        assert "(healthy)" in palletd.pallet("ps", check=True).stdout
    finally:
        palletd.docker("rm", "-f", "phc", "phc2")
    p = palletd.pallet("run", "--health-interval", "soon", "busybox", "true")
    assert p.returncode == 2 and "invalid duration" in p.stderr, p.stderr
    p = palletd.pallet("run", "--no-healthcheck", "--health-cmd", "true", "busybox", "true")
    assert p.returncode == 2 and "conflicts" in p.stderr, p.stderr
    assert palletd.docker("ps", "-aq").stdout.strip() == ""
