"""pallet.daemon.health: docker's health-check rules, without a container (a recording fake
stands for palletd's container table)."""

from __future__ import annotations

import time

import pytest

from pallet.daemon import health
from pallet.errors import InvalidArgument
from pallet.runtime.state import now_rfc3339

S = health.SECOND


def test_merge_inherits_what_the_container_leaves_unset():
    image = {"Test": ["CMD-SHELL", "true"], "Interval": 5 * S, "Retries": 4}
    assert health.merge(None, image) == image
    assert health.merge({"Interval": S}, image) == {"Test": ["CMD-SHELL", "true"],
                                                    "Interval": S, "Retries": 4}
    assert health.merge({"Test": ["NONE"]}, image)["Test"] == ["NONE"]
    assert health.merge(None, None) is None


@pytest.mark.parametrize(("hc", "message"), [
    ({"Interval": 10}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Timeout": 999_999}, "Timeout in Healthcheck cannot be less than 1ms"),
    ({"StartPeriod": -5}, "StartPeriod in Healthcheck cannot be less than 1ms"),
    ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
    ({"Test": "true"}, "Healthcheck.Test must be a list of strings"),
])
def test_validate_refuses_as_dockerd(hc, message):
    with pytest.raises(InvalidArgument, match=message):
        health.validate(hc)


def test_probe_command():
    assert health.probe_command({"Healthcheck": {"Test": ["CMD", "ls", "/"]}}) == ["ls", "/"]
    assert health.probe_command({"Healthcheck": {"Test": ["CMD-SHELL", "exit 1"]}}) == [
        "/bin/sh", "-c", "exit 1"]
    assert health.probe_command({"Healthcheck": {"Test": ["CMD-SHELL", "x"]},
                                 "Shell": ["/bin/ash", "-e", "-c"]}) == [
        "/bin/ash", "-e", "-c", "x"]
    for test in (["NONE"], [], ["CMD"], ["WHAT", "x"]):
        assert health.probe_command({"Healthcheck": {"Test": test}}) is None
    assert health.probe_command({}) is None


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (300_000_000, "300ms"), (1_500_000_000, "1.5s"), (30 * S, "30s"),
    (90 * S, "1m30s"), (3600 * S, "1h0m0s"), (2_500, "2.5µs"),
])
def test_go_duration(ns, text):
    assert health.go_duration(ns) == text


def test_status_suffix_and_filter():
    assert health.status_suffix({"Health": {"Status": "starting"}}) == " (health: starting)"
    assert health.status_suffix({"Health": {"Status": "healthy"}}) == " (healthy)"
    assert health.status_suffix({}) == ""
    assert health.matches({}, "none") and not health.matches({}, "healthy")
    assert health.matches({"Health": {"Status": "unhealthy"}}, "unhealthy")
    with pytest.raises(InvalidArgument, match="Unrecognised filter value for health: sick"):
        health.matches({}, "sick")


class _Containers:
    def __init__(self):
        self.saved = 0
        self.events: list[str] = []

    def save(self, c):
        self.saved += 1

    def publish(self, c, action, **extra):
        self.events.append(action)


class _C:
    id = "c" * 64

    def __init__(self, started_ago: float):
        self.rec = {"Config": {}}
        self.state = {"StartedAt": now_rfc3339(time.time() - started_ago),
                      "Health": {"Status": "starting", "FailingStreak": 0, "Log": []}}


def _record(h, c, hc, code, *, at=None):
    h._record(c, hc, {"ExitCode": code, "Output": ""}, at if at is not None else time.time())


def test_failures_in_the_start_period_do_not_count():
    cs = _Containers()
    h = health.Health(cs, None)  # type: ignore[arg-type]
    c = _C(started_ago=1)
    hc = {"StartPeriod": 60 * S, "Retries": 1}
    for _ in range(3):
        _record(h, c, hc, 1)
    assert c.state["Health"]["Status"] == "starting"
    assert c.state["Health"]["FailingStreak"] == 0 and cs.events == []
    _record(h, c, hc, 0)
    assert c.state["Health"]["Status"] == "healthy"
    # once healthy, a failure counts even inside the start period
    _record(h, c, hc, 1)
    assert c.state["Health"]["Status"] == "unhealthy"
    assert cs.events == ["health_status: healthy", "health_status: unhealthy"]


def test_retries_failures_in_a_row_make_it_unhealthy_and_the_log_keeps_five():
    cs = _Containers()
    h = health.Health(cs, None)  # type: ignore[arg-type]
    c = _C(started_ago=100)
    hc = {"Retries": 3}
    _record(h, c, hc, 0)
    _record(h, c, hc, 1)
    _record(h, c, hc, 1)
    assert c.state["Health"]["Status"] == "healthy"  # two failures of three
    _record(h, c, hc, 0)
    assert c.state["Health"]["FailingStreak"] == 0
    for _ in range(3):
        _record(h, c, hc, 2)
    assert c.state["Health"]["Status"] == "unhealthy"
    assert c.state["Health"]["FailingStreak"] == 3
    assert [r["ExitCode"] for r in c.state["Health"]["Log"]] == [1, 0, 2, 2, 2]
    assert cs.saved == 2  # only the status changes are written


def test_default_retries_is_three():
    cs = _Containers()
    h = health.Health(cs, None)  # type: ignore[arg-type]
    c = _C(started_ago=100)
    for i in range(3):
        assert c.state["Health"]["Status"] == "starting", i
        _record(h, c, {}, 1)
    assert c.state["Health"]["Status"] == "unhealthy"


@pytest.mark.parametrize(("started_ago", "status", "want"), [
    (10, "starting", 5),     # within the start period: the start interval
    (57, "starting", 3),     # but never past the period's end
    (10, "healthy", 30),     # healthy already: the interval (the period is 50 s off)
    (58, "healthy", 2),
    (70, "starting", 30),    # after the period: the interval
])
def test_interval_to_the_next_probe(started_ago, status, want):
    c = _C(started_ago)
    c.state["Health"]["Status"] = status
    hc = {"StartPeriod": 60 * S, "Interval": 30 * S}
    got = health.Health(_Containers(), None)._interval(c, hc)  # type: ignore[arg-type]
    assert abs(got - want) < 0.5, got
