"""`process`: args, env, cwd, user, umask, rlimits, capabilities, no_new_privs, OOM score
(runtime-spec config.md Process, config.md User, config-linux.md Linux Process)."""

from __future__ import annotations

import resource

import pytest

from .support import CAPABILITIES, cap_mask, diverges, has_capability, status_field

STATUS_IDS = ["sh", "-c", "grep -E '^(Uid|Gid|Groups):' /proc/self/status"]


def fields(text: str) -> dict[str, list[str]]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.split()
    return out


def limits(text: str) -> dict[str, tuple[str, str]]:
    """/proc/self/limits → {"Max open files": (soft, hard)}."""
    out = {}
    for line in text.splitlines()[1:]:
        name = line[:26].strip()
        soft, hard = line[26:].split()[:2]
        out[name] = (soft, hard)
    return out


def test_args_passed_verbatim(runtime, bundle):
    b = bundle(["sh", "-c", 'printf "[%s]" "$0" "$@"', "zero", "a b", "", 'c"d', "$HOME"])
    assert runtime.out(b) == '[zero][a b][][c"d][$HOME]'


def test_env_is_exactly_the_configured_one(runtime, bundle):
    b = bundle(["env"], edit=lambda c: c["process"].update(
        env=["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY=", "HOME=/custom"]))
    env = runtime.out(b).splitlines()
    assert sorted(env) == sorted(["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY=", "HOME=/custom"])


@pytest.mark.parametrize(("uid", "home"), [(0, "/root"), (1000, "/home/tester")])
def test_home_from_passwd_when_unset(runtime, bundle, uid, home):
    """runc sets HOME from the container's /etc/passwd when env has none."""
    b = bundle(["env"], edit=lambda c: c["process"]["user"].update(uid=uid, gid=uid))
    env = runtime.out(b).splitlines()
    assert f"HOME={home}" in env
    assert not [e for e in env if e.startswith(("PYTEST_", "VIRTUAL_ENV="))], env


def test_cwd(runtime, bundle):
    b = bundle(["pwd"], edit=lambda c: c["process"].update(cwd="/home/tester"))
    assert runtime.out(b) == "/home/tester\n"


def test_cwd_created_when_missing(runtime, bundle):
    """runc creates a missing cwd (MkdirAll in the container's rootfs)."""
    b = bundle(["pwd"], edit=lambda c: c["process"].update(cwd="/no/such/dir"))
    assert runtime.out(b) == "/no/such/dir\n"
    assert (b / "rootfs/no/such/dir").is_dir()


def test_user_uid_gid_additional_gids(runtime, bundle):
    b = bundle(STATUS_IDS, edit=lambda c: c["process"]["user"].update(
        uid=1000, gid=1000, additionalGids=[5, 100]))
    f = fields(runtime.out(b))
    assert f["Uid"] == ["1000"] * 4
    assert f["Gid"] == ["1000"] * 4
    assert sorted(f["Groups"]) == ["100", "5"]


def test_user_without_additional_gids_has_no_groups(runtime, bundle):
    b = bundle(STATUS_IDS, edit=lambda c: c["process"]["user"].update(uid=1000, gid=1000))
    f = fields(runtime.out(b))
    assert f["Uid"] == ["1000"] * 4
    assert f["Groups"] == []


def test_user_not_in_passwd(runtime, bundle):
    b = bundle(["id"], edit=lambda c: c["process"]["user"].update(uid=4242, gid=4343))
    assert runtime.out(b).split()[:2] == ["uid=4242", "gid=4343"]


def test_umask(runtime, bundle):
    b = bundle(["sh", "-c", "umask; touch /tmp/f; stat -c %a /tmp/f"],
               edit=lambda c: c["process"]["user"].update(umask=0o027))
    assert runtime.out(b).split() == ["0027", "640"]


def test_umask_default(runtime, bundle):
    # config.md User: "If unspecified, the umask should not be changed from the calling
    # process' umask." That is a SHOULD; runc sets 0022 regardless, and callers (docker,
    # containerd) rely on it, so the suite asserts runc's behaviour.
    b = bundle(["sh", "-c", "umask"])
    assert runtime.out(b, setup="umask 077") == "0022\n"


def test_rlimits(runtime, bundle):
    b = bundle(["cat", "/proc/self/limits"], edit=lambda c: c["process"].update(rlimits=[
        {"type": "RLIMIT_NOFILE", "soft": 1500, "hard": 2048},
        {"type": "RLIMIT_CORE", "soft": 1234567, "hard": 12345678},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
    ]))
    lim = limits(runtime.out(b))
    assert lim["Max open files"] == ("1500", "2048")
    assert lim["Max core file size"] == ("1234567", "12345678")
    assert lim["Max processes"] == ("300", "400")


def test_rlimit_above_hard_limit_fails(runtime, bundle):
    if has_capability("CAP_SYS_RESOURCE"):
        pytest.skip("the test process has CAP_SYS_RESOURCE: raising a hard limit would work")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_NOFILE hard limit is unlimited here")
    b = bundle(["true"], edit=lambda c: c["process"].update(
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": hard + 1000, "hard": hard + 1000}]))
    cid = runtime.new_id()
    runtime.run(cid, b).failed("rlimit")
    runtime.assert_nothing_left(cid, b)


def test_rlimit_soft_above_hard_fails(runtime, bundle):
    b = bundle(["true"], edit=lambda c: c["process"].update(
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 200, "hard": 100}]))
    cid = runtime.new_id()
    runtime.run(cid, b).failed("rlimit")
    runtime.assert_nothing_left(cid, b)


def test_rlimit_unknown_type_fails(runtime, bundle):
    """config.md: values that cannot be mapped to a kernel interface MUST generate an error."""
    b = bundle(["true"], edit=lambda c: c["process"].update(
        rlimits=[{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]))
    cid = runtime.new_id()
    runtime.run(cid, b).failed("RLIMIT_BOGUS")
    runtime.assert_nothing_left(cid, b)


def test_rlimit_duplicate_type_fails(runtime, bundle, request):
    # config.md POSIX process: "If rlimits contains duplicated entries with same type, the
    # runtime MUST generate an error."
    diverges(request, runtime, ("runc",), "runc 1.1 applies duplicate rlimits in order")
    b = bundle(["true"], edit=lambda c: c["process"].update(rlimits=[
        {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200},
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100},
    ]))
    cid = runtime.new_id()
    runtime.run(cid, b).failed("RLIMIT_NOFILE")


CAP_SETS = {
    "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID"],
    "permitted": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID"],
    "effective": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID"],
    "inheritable": ["CAP_KILL", "CAP_CHOWN"],
    "ambient": ["CAP_KILL"],
}


def after_exec(sets: dict[str, list[str]], uid: int) -> dict[str, int]:
    """The sets the process has after execve of a binary without file capabilities
    (capabilities(7), "Transformation of capabilities during execve()"): bounding,
    inheritable and ambient carry over; permitted = (inheritable & F.inheritable) |
    (F.permitted & bounding) | ambient, where a uid 0 process treats the file sets as full;
    effective = permitted for uid 0, ambient otherwise."""
    bnd, inh, amb = (cap_mask(sets[k]) for k in ("bounding", "inheritable", "ambient"))
    prm = (inh | bnd | amb) if uid == 0 else amb
    return {"CapBnd": bnd, "CapInh": inh, "CapAmb": amb, "CapPrm": prm, "CapEff": prm}


@pytest.mark.parametrize("uid", [0, 1000])
def test_capabilities_all_sets(runtime, bundle, uid):
    b = bundle(["cat", "/proc/self/status"], edit=lambda c: (
        c["process"].update(capabilities=CAP_SETS),
        c["process"]["user"].update(uid=uid, gid=uid)))
    status = runtime.out(b)
    for key, want in after_exec(CAP_SETS, uid).items():
        got = int(status_field(status, key), 16)
        assert got == want, (
            f"{key}: got {[c for i, c in enumerate(CAPABILITIES) if got >> i & 1]}, "
            f"want {[c for i, c in enumerate(CAPABILITIES) if want >> i & 1]}")


def test_default_capabilities(runtime, bundle):
    """The starter config's three capabilities; no inheritable or ambient set given."""
    status = runtime.out(bundle(["cat", "/proc/self/status"]))
    want = cap_mask(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    assert int(status_field(status, "CapBnd"), 16) == want
    assert int(status_field(status, "CapEff"), 16) == want
    assert int(status_field(status, "CapPrm"), 16) == want
    assert int(status_field(status, "CapInh"), 16) == 0
    assert int(status_field(status, "CapAmb"), 16) == 0


def test_capability_really_dropped(runtime, bundle):
    """Without CAP_CHOWN, root in the container cannot chown a file it does not own."""
    b = bundle(["sh", "-c", "touch /tmp/f; chown 1000 /tmp/f && echo chowned || echo denied"])
    assert runtime.out(b).strip().splitlines()[-1] == "denied"


def test_unknown_capability_is_a_warning(runtime, bundle):
    # config-linux.md Linux Process: a capability that cannot be mapped MUST be logged as a
    # warning, and runtimes SHOULD NOT fail. runc: 'level=warning msg="ignoring unknown or
    # unavailable capabilities: [CAP_NO_SUCH_THING]"'.
    b = bundle(["cat", "/proc/self/status"], edit=lambda c: c["process"]["capabilities"].update(
        bounding=["CAP_KILL", "CAP_NO_SUCH_THING"]))
    r = runtime.run(runtime.new_id(), b).ok()
    assert "CAP_NO_SUCH_THING" in r.stderr
    assert int(status_field(r.stdout, "CapBnd"), 16) == cap_mask(["CAP_KILL"])


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(runtime, bundle, nnp):
    b = bundle(["cat", "/proc/self/status"],
               edit=lambda c: c["process"].update(noNewPrivileges=nnp))
    assert status_field(runtime.out(b), "NoNewPrivs") == ("1" if nnp else "0")


def test_oom_score_adj(runtime, bundle):
    b = bundle(["cat", "/proc/self/oom_score_adj"],
               edit=lambda c: c["process"].update(oomScoreAdj=123))
    assert runtime.out(b) == "123\n"


def test_oom_score_adj_unset_is_inherited(runtime, bundle):
    """config-linux.md: if oomScoreAdj is not set, the runtime MUST NOT change it."""
    b = bundle(["cat", "/proc/self/oom_score_adj"])
    assert runtime.out(b, setup="echo 57 > /proc/self/oom_score_adj") == "57\n"


def test_negative_oom_score_adj_needs_cap_sys_resource(runtime, bundle):
    if has_capability("CAP_SYS_RESOURCE"):
        pytest.skip("the test process has CAP_SYS_RESOURCE: a negative score would work")
    b = bundle(["true"], edit=lambda c: c["process"].update(oomScoreAdj=-500))
    cid = runtime.new_id()
    runtime.run(cid, b).failed(("oom_score_adj", "oomScoreAdj"))
    runtime.assert_nothing_left(cid, b)


def test_no_process_fails(runtime, bundle):
    """runtime.md Start: MUST generate an error if process was not set (runc: at create)."""
    b = bundle(edit=lambda c: c.pop("process"))
    cid = runtime.new_id()
    runtime.create(cid, b).failed("process")
    runtime.assert_nothing_left(cid, b)


def test_missing_executable_fails(runtime, bundle):
    """runc looks the executable up before create returns, and names it."""
    b = bundle(["/nonexistent"])
    cid = runtime.new_id()
    runtime.create(cid, b).failed("/nonexistent")
    runtime.assert_nothing_left(cid, b)


def test_not_executable_fails(runtime, bundle):
    b = bundle(["/etc/passwd"])
    cid = runtime.new_id()
    runtime.run(cid, b).failed("/etc/passwd", "permission denied")
    runtime.assert_nothing_left(cid, b)


def test_executable_found_on_path(runtime, bundle):
    """args[0] without a slash is looked up in the container's PATH, in order."""
    b = bundle(["which-one"], edit=lambda c: c["process"].update(env=["PATH=/usr/bin:/bin"]))
    for d, word in (("usr/bin", "usr"), ("bin", "bin")):
        script = b / "rootfs" / d / "which-one"
        script.write_text(f"#!/bin/sh\necho {word}\n")
        script.chmod(0o755)
    assert runtime.out(b) == "usr\n"
