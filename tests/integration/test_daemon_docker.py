"""The real docker CLI (28.x, negotiating API 1.41) against palletd."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time

from daemon_support import DOCKER, make_daemon

palletd = make_daemon()

LOOP = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done"


def test_version_and_info(palletd):
    v = palletd.docker("version", check=True).stdout
    assert "API version:       1.41 (downgraded from" in v
    assert "minimum version 1.24" in v
    info = palletd.docker("info", "--format", "{{json .}}", check=True).stdout
    d = json.loads(info)
    assert d["DefaultRuntime"] == "pallet-runtime"
    assert "runc" in d["Runtimes"]


def test_run_rm_echo(palletd):
    p = palletd.docker("run", "--rm", "busybox", "echo", "hi", check=True)
    assert p.stdout == "hi\n"
    assert palletd.docker("ps", "-aq").stdout.strip() == ""


def test_run_exit_code_and_stderr(palletd):
    p = palletd.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert p.returncode == 3
    assert p.stdout == "out\n"
    assert "err" in p.stderr


def test_stdin_pipe(palletd):
    p = palletd.docker("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo end",
                       input=b"hello\nworld\n", check=True)
    assert p.stdout == "hello\nworld\nend\n"


def test_detached_lifecycle(palletd):
    cid = palletd.docker("run", "-d", "--name", "web", "-e", "FOO=bar", "busybox", "sh", "-c",
                         LOOP, check=True).stdout.strip()
    assert len(cid) == 64
    ps = palletd.docker("ps", check=True).stdout
    assert "web" in ps and cid[:12] in ps and "Up " in ps
    assert palletd.docker("ps", "-q", "--filter", "name=web").stdout.strip() == cid[:12]
    palletd.wait_for(lambda: "line 3" in palletd.docker("logs", "web").stdout, what="logs")
    tail = palletd.docker("logs", "--tail", "2", "web", check=True).stdout.splitlines()
    assert len(tail) == 2 and all(x.startswith("line ") for x in tail)
    ts = palletd.docker("logs", "-t", "--tail", "1", "web", check=True).stdout
    assert ts[:2] == "20" and "Z line " in ts
    assert palletd.docker("exec", "web", "sh", "-c", "echo $FOO",
                          check=True).stdout == "bar\n"
    assert palletd.docker("exec", "web", "sh", "-c", "exit 5").returncode == 5
    p = palletd.docker("exec", "web", "/no/such/exe")
    assert p.returncode == 126 and "no such file" in (p.stdout + p.stderr).lower()
    assert palletd.docker("exec", "-e", "X=1", "-w", "/tmp", "web", "sh", "-c",
                          "echo $X $(pwd)", check=True).stdout == "1 /tmp\n"
    assert palletd.docker("exec", "-u", "1000", "web", "id", "-u").stdout.strip() == "1000"
    palletd.docker("exec", "-d", "web", "sh", "-c", "echo detached > /tmp/d", check=True)
    palletd.wait_for(lambda: palletd.docker("exec", "web", "cat", "/tmp/d").stdout
                     == "detached\n", what="detached exec")
    st = json.loads(palletd.docker("inspect", "web", check=True).stdout)[0]
    assert st["State"]["Running"] and st["State"]["Pid"] > 0
    assert st["Name"] == "/web" and st["Config"]["Image"] == "busybox"
    assert "FOO=bar" in st["Config"]["Env"]
    t0 = time.monotonic()
    palletd.docker("stop", "-t", "1", "web", check=True)
    assert time.monotonic() - t0 < 8
    assert palletd.docker("wait", "web", check=True).stdout.strip() == "137"
    assert "Exited (137)" in palletd.docker("ps", "-a").stdout
    palletd.docker("start", "web", check=True)
    assert palletd.inspect("web")["State"]["Running"]
    palletd.docker("restart", "-t", "0", "web", check=True)
    assert palletd.inspect("web")["State"]["Running"]
    assert palletd.docker("rm", "web").returncode != 0  # running
    palletd.docker("rm", "-f", "web", check=True)
    assert palletd.docker("inspect", "web").returncode != 0


def test_kill_and_wait(palletd):
    palletd.docker("run", "-d", "--name", "k1", "busybox", "sleep", "100", check=True)
    palletd.docker("kill", "k1", check=True)
    assert palletd.docker("wait", "k1", check=True).stdout.strip() == "137"
    palletd.docker("run", "-d", "--name", "k2", "busybox", "sh", "-c",
                   "trap 'exit 42' USR1; while true; do sleep 0.1; done", check=True)
    time.sleep(0.3)
    palletd.docker("kill", "-s", "USR1", "k2", check=True)
    assert palletd.docker("wait", "k2", check=True).stdout.strip() == "42"
    palletd.docker("rm", "k1", "k2", check=True)


def test_attach_non_tty(palletd):
    palletd.docker("run", "-d", "--name", "att", "busybox", "sh", "-c",
                   "sleep 1; echo one; echo two >&2; exit 4", check=True)
    p = palletd.docker("attach", "att", timeout=20)
    assert p.returncode == 4
    assert p.stdout == "one\n" and "two" in p.stderr
    palletd.docker("rm", "att", check=True)


def _pty_run(argv: list[str], env: dict[str, str], send: bytes = b"", timeout: float = 20,
             trigger: bytes = b"READY") -> tuple[int, bytes]:
    master, slave = pty.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                         start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    sent = False
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
        if send and not sent and trigger in out:
            os.write(master, send)
            sent = True
        if p.poll() is not None and not r:
            break
    os.close(master)
    try:
        rc = p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    return rc, out


def test_run_tty(palletd):
    rc, out = _pty_run([DOCKER, "run", "-it", "--rm", "busybox", "sh", "-c",
                        "tty; stty size; echo READY; read x; echo got:$x; exit 6"],
                       palletd.env, send=b"abc\r")
    assert rc == 6, out
    assert b"/dev/pts/0" in out
    assert b"40 120" in out  # the terminal's size reached the container
    assert b"got:abc" in out


def test_attach_tty(palletd):
    palletd.docker("run", "-dit", "--name", "tt", "busybox", "sh", check=True)
    time.sleep(0.3)
    _, out = _pty_run([DOCKER, "attach", "tt"], palletd.env, trigger=b"",
                       send=b"echo hello-$((6*7)); exit 3\r")
    assert b"hello-42" in out, out
    assert palletd.docker("wait", "tt", check=True).stdout.strip() == "3"
    palletd.docker("rm", "tt", check=True)


def test_images_tag_rmi(palletd):
    out = palletd.docker("images", check=True).stdout
    assert "busybox" in out and "latest" in out
    palletd.docker("tag", "busybox", "example.com/me/tagged:1", check=True)
    out = palletd.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}",
                         check=True).stdout
    assert "example.com/me/tagged:1" in out
    ids = {line.split()[1] for line in out.splitlines()}
    assert len(ids) == 1
    img = json.loads(palletd.docker("image", "inspect", "busybox", check=True).stdout)[0]
    assert img["Id"].startswith("sha256:") and img["Os"] == "linux"
    assert "busybox:latest" in img["RepoTags"]
    p = palletd.docker("rmi", "example.com/me/tagged:1", check=True)
    assert "Untagged: example.com/me/tagged:1" in p.stdout
    assert "tagged" not in palletd.docker("images").stdout
    assert palletd.docker("inspect", "busybox", check=True).returncode == 0


def test_pull_error_is_clear(palletd):
    p = palletd.docker("pull", "127.0.0.1:1/nothing:latest")
    assert p.returncode != 0
    assert "Error response from daemon" in p.stderr


def test_restart_policies(palletd):
    palletd.docker("run", "-d", "--name", "onf", "--restart", "on-failure:2", "busybox",
                   "sh", "-c", "exit 1", check=True)
    palletd.wait_for(lambda: palletd.inspect("onf")["RestartCount"] == 2
                     and palletd.inspect("onf")["State"]["Status"] == "exited",
                     what="on-failure:2 to give up")
    assert palletd.inspect("onf")["State"]["ExitCode"] == 1
    palletd.docker("run", "-d", "--name", "alw", "--restart", "always", "busybox", "sh", "-c",
                   "echo run; sleep 0.2", check=True)
    palletd.wait_for(lambda: palletd.inspect("alw")["RestartCount"] >= 2, what="always")
    palletd.docker("stop", "-t", "1", "alw", check=True)
    n = palletd.inspect("alw")["RestartCount"]
    time.sleep(0.8)
    st = palletd.inspect("alw")
    assert st["RestartCount"] == n and not st["State"]["Running"]
    assert palletd.docker("logs", "alw").stdout.count("run") >= 3
    palletd.docker("run", "-d", "--name", "nop", "busybox", "sh", "-c", "exit 2", check=True)
    palletd.wait_for(lambda: palletd.inspect("nop")["State"]["Status"] == "exited")
    time.sleep(0.4)
    assert palletd.inspect("nop")["RestartCount"] == 0
    palletd.docker("rm", "onf", "alw", "nop", check=True)


def test_runc_per_container(palletd):
    p = palletd.docker("run", "--rm", "--runtime", "runc", "busybox", "sh", "-c",
                       "echo via-runc; cat /proc/1/cmdline", check=True)
    assert p.stdout.startswith("via-runc\n")
    palletd.docker("run", "-d", "--name", "r1", "--runtime", "runc", "busybox", "sleep", "30",
                   check=True)
    assert palletd.docker("exec", "r1", "echo", "x", check=True).stdout == "x\n"
    assert palletd.inspect("r1")["HostConfig"]["Runtime"] == "runc"
    palletd.docker("rm", "-f", "r1", check=True)
    assert palletd.docker("run", "--rm", "--runtime", "nope", "busybox", "true").returncode != 0


def test_run_options(palletd):
    p = palletd.docker("run", "--rm", "--name", "opts", "-w", "/srv", "-u", "1000:1000",
                       "--hostname", "box", "--read-only", "--cap-drop", "ALL",
                       "--memory", "64m", "--pids-limit", "50", "--cpus", "0.5",
                       "--ulimit", "nofile=123:456", "--entrypoint", "sh", "busybox", "-c",
                       "pwd; id -u; hostname; ulimit -n; touch /x 2>&1 || echo ro",
                       check=True)
    assert p.stdout.split("\n")[:5] == ["/srv", "1000", "box", "123", p.stdout.split("\n")[4]]
    assert "ro" in p.stdout.split("\n")[-2]
    p = palletd.docker("run", "--rm", "--init", "busybox", "cat", "/proc/1/cmdline",
                       check=True)
    assert "docker-init" in p.stdout
    p = palletd.docker("run", "--rm", "--privileged", "busybox", "sh", "-c",
                       "grep CapEff /proc/self/status", check=True)
    with open("/proc/self/status") as f:
        bnd = next(line.split()[1] for line in f if line.startswith("CapBnd:"))
    assert p.stdout.split() == ["CapEff:", bnd]


def test_errors(palletd):
    p = palletd.docker("inspect", "no-such-thing")
    assert p.returncode == 1 and "No such" in p.stderr
    assert palletd.api("GET", "/v1.99/version")[0] == 400
    status, body = palletd.api("POST", "/containers/create?name=bad%20name",
                               {"Image": "busybox"})
    assert status == 400 and "Invalid container name" in body["message"]
    status, body = palletd.api("POST", "/containers/create", {"Image": "nope:1"})
    assert status == 404 and "No such image" in body["message"]
    assert palletd.api("POST", "/containers/nothing/start")[0] == 404
    p = palletd.docker("run", "--rm", "busybox", "/no/such/binary")
    assert p.returncode != 0


def test_events_and_df_and_prune(palletd):
    since = str(int(time.time()) - 1)
    palletd.docker("run", "--name", "ev", "busybox", "true", check=True)
    out = palletd.docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                         "--filter", "container=ev", "--format", "{{.Action}}",
                         check=True).stdout.split()
    assert out[:3] == ["create", "start", "die"] or ("start" in out and "die" in out)
    df = palletd.docker("system", "df", check=True).stdout
    assert "Images" in df and "Containers" in df
    p = palletd.docker("system", "prune", "-f", check=True)
    assert "Total reclaimed space" in p.stdout
    assert palletd.docker("ps", "-aq").stdout.strip() == ""


def test_push_pull_local_registry(palletd, tmp_path):
    from pallet.registry.testing import pallet_registry

    with pallet_registry(str(tmp_path / "reg")) as reg:
        host = reg.url.split("://", 1)[1]
        ref = f"{host}/lib/bb:1"
        palletd.docker("tag", "busybox", ref, check=True)
        p = palletd.docker("push", ref, check=True)
        assert "digest: sha256:" in p.stdout
        palletd.docker("rmi", ref, check=True)
        p = palletd.docker("pull", ref, check=True)
        assert "Downloaded newer image" in p.stdout or "Pull complete" in p.stdout
        assert palletd.docker("run", "--rm", ref, "echo", "pulled",
                              check=True).stdout == "pulled\n"
        palletd.docker("rmi", ref, check=True)
        # docker run pulls a missing image itself
        p = palletd.docker("run", "--rm", ref, "echo", "auto", check=True)
        assert p.stdout == "auto\n" and "Unable to find image" in p.stderr
        palletd.docker("rmi", ref, check=True)


def test_login_then_push_and_pull_with_credentials(palletd, tmp_path):
    """`docker login` against Debian's docker-registry with htpasswd auth: palletd checks
    the credentials (POST /auth), the CLI stores them and sends them with push and pull."""
    from pallet.registry.testing import docker_registry, write_htpasswd

    hp = tmp_path / "htpasswd"
    write_htpasswd(hp, {"carol": "pw123"})
    with docker_registry(str(tmp_path / "reg"), htpasswd=str(hp)) as reg:
        host = reg.url.split("://", 1)[1]
        ref = f"{host}/private/bb:1"
        palletd.docker("tag", "busybox", ref, check=True)
        try:
            p = palletd.docker("push", ref)
            assert p.returncode != 0 and "401" in p.stderr + p.stdout, p
            p = palletd.docker("login", "-u", "carol", "--password-stdin", host,
                               input=b"wrong\n")
            assert p.returncode != 0 and f"login to {host}" in p.stderr, p.stderr
            config = os.path.join(palletd.env["DOCKER_CONFIG"], "config.json")

            def stored() -> dict:
                if not os.path.exists(config):
                    return {}
                with open(config) as f:
                    return json.load(f).get("auths", {})

            assert host not in stored()
            p = palletd.docker("login", "-u", "carol", "--password-stdin", host,
                               input=b"pw123\n", check=True)
            assert "Login Succeeded" in p.stdout
            assert host in stored()
            assert "digest: sha256:" in palletd.docker("push", ref, check=True).stdout
            palletd.docker("rmi", ref, check=True)
            palletd.docker("pull", ref, check=True)
            assert palletd.docker("run", "--rm", ref, "echo", "private",
                                  check=True).stdout == "private\n"
            palletd.docker("rmi", ref, check=True)
            palletd.docker("logout", host, check=True)
            p = palletd.docker("pull", ref)
            assert p.returncode != 0 and "401" in p.stderr, p.stderr
        finally:
            palletd.docker("rmi", ref)
            palletd.docker("logout", host)


def test_default_seccomp_profile(palletd, tmp_path):
    """docker's rules: the default profile (unshare denied), widened by --cap-add SYS_ADMIN,
    off for --privileged and seccomp=unconfined, or a profile file of one's own."""
    probe = ["busybox", "sh", "-c",
             "grep '^Seccomp:' /proc/self/status; unshare -U true 2>/dev/null && echo "
             "unshare-ok || echo unshare-denied"]
    out = palletd.docker("run", "--rm", *probe, check=True).stdout.split()
    assert out == ["Seccomp:", "2", "unshare-denied"]
    out = palletd.docker("run", "--rm", "--cap-add", "SYS_ADMIN", *probe, check=True).stdout
    assert out.split() == ["Seccomp:", "2", "unshare-ok"]
    out = palletd.docker("run", "--rm", "--security-opt", "seccomp=unconfined", *probe,
                         check=True).stdout.split()
    assert out[:2] == ["Seccomp:", "0"]
    assert palletd.docker("run", "--rm", "--privileged", *probe,
                          check=True).stdout.split()[:2] == ["Seccomp:", "0"]
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}]}))
    p = palletd.docker("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox",
                       "mkdir", "/tmp/x")
    assert p.returncode != 0 and "not permitted" in p.stderr.lower()


def test_no_descriptor_of_the_daemon_or_shim_reaches_the_container(palletd):
    """Only stdio (and ls's own directory handle) in the container's process and in an exec:
    the shim runs pallet-runtime in a fork of itself, and none of its sockets, logs or
    pipes may leak through."""
    out = palletd.docker("run", "--rm", "busybox", "ls", "/proc/self/fd", check=True).stdout
    assert sorted(out.split()) == ["0", "1", "2", "3"]
    palletd.docker("run", "-d", "--name", "fds", "-t", "busybox", "sleep", "60", check=True)
    try:
        out = palletd.docker("exec", "fds", "ls", "/proc/1/fd", check=True).stdout
        assert sorted(out.split()) == ["0", "1", "2"]
        out = palletd.docker("exec", "fds", "ls", "/proc/self/fd", check=True).stdout
        assert sorted(out.split()) == ["0", "1", "2", "3"]
    finally:
        palletd.docker("rm", "-f", "fds")


def test_image_list_filters(palletd):
    """dangling, label, since/before and reference, as dockerd filters images."""
    palletd.docker("run", "--name", "src", "busybox", "touch", "/made", check=True)
    try:
        dangling = palletd.docker("commit", "src", check=True).stdout.strip()
        palletd.docker("commit", "-c", "LABEL team=a", "src", "lbl:1", check=True)

        def ids(*args: str) -> set[str]:
            return set(palletd.docker("images", "-q", "--no-trunc", *args,
                                      check=True).stdout.split())

        assert ids("--filter", "dangling=true") == {dangling}
        assert dangling not in ids("--filter", "dangling=false")
        def image_id(ref: str) -> str:
            return palletd.docker("image", "inspect", "-f", "{{.Id}}", ref,
                                  check=True).stdout.strip()

        lbl = image_id("lbl:1")
        assert ids("--filter", "label=team=a") == {lbl}
        assert ids("--filter", "label=team") == {lbl}
        assert ids("--filter", "label=team=b") == set()
        bb = image_id("busybox")
        assert bb not in ids("--filter", "since=busybox") and lbl in ids(
            "--filter", "since=busybox")
        assert ids("--filter", "before=lbl:1") >= {bb}
        assert ids("--filter", "reference=lbl") == {lbl}
        p = palletd.docker("images", "--filter", "nope=1")
        assert p.returncode != 0 and "invalid filter 'nope'" in p.stderr, p.stderr
    finally:
        palletd.docker("rm", "-f", "src")
        palletd.docker("rmi", "lbl:1")
        palletd.docker("image", "prune", "-f")


def test_log_driver_none(palletd):
    """`--log-driver none`: the output still reaches an attached client, nothing is kept,
    and `docker logs` says why it has nothing."""
    p = palletd.docker("run", "--name", "nolog", "--log-driver", "none", "busybox", "sh",
                       "-c", "echo out; echo err >&2", check=True)
    try:
        assert p.stdout == "out\n" and p.stderr == "err\n"
        st = palletd.inspect("nolog")
        assert st["LogPath"] == "" and st["HostConfig"]["LogConfig"]["Type"] == "none"
        assert not [f for f in os.listdir(os.path.dirname(st["HostnamePath"]))
                    if f.endswith(".log")]
        p = palletd.docker("logs", "nolog")
        assert p.returncode != 0, p
        assert "configured logging driver does not support reading" in p.stderr
    finally:
        palletd.docker("rm", "-f", "nolog")
    p = palletd.docker("run", "--rm", "--log-driver", "syslog", "busybox", "true")
    assert p.returncode != 0 and "log driver 'syslog' is not supported" in p.stderr
    status, body = palletd.api("POST", "/v1.41/containers/create", {
        "Image": "busybox", "HostConfig": {"LogConfig": {"Type": "none",
                                                         "Config": {"max-size": "1m"}}}})
    assert status == 400 and body["message"] == \
        "unknown log opt 'max-size' for none log driver", body


def test_container_sizes(palletd):
    """`ps -s` and `inspect -s`: the container's own files, and with its image."""
    palletd.docker("run", "-d", "--name", "sized", "busybox", "sh", "-c",
                   "head -c 200000 /dev/zero > /blob; sleep 60", check=True)
    try:
        palletd.wait_for(lambda: palletd.docker("exec", "sized", "test", "-s", "/blob"
                                                ).returncode == 0, what="the blob")
        out = palletd.docker("ps", "-s", "--filter", "name=sized", "--format", "{{.Size}}",
                             check=True).stdout.strip()
        assert out.startswith("20") and "kB (virtual 1." in out, out
        status, body = palletd.api("GET", "/v1.41/containers/sized/json?size=1")
        assert status == 200 and 200_000 <= body["SizeRw"] < 300_000, body["SizeRw"]
        assert body["SizeRootFs"] > body["SizeRw"] + 500_000
        assert palletd.inspect("sized")["SizeRw"] is None  # only when asked, as dockerd
    finally:
        palletd.docker("rm", "-f", "sized")


def test_search_says_why_it_cannot(palletd):
    p = palletd.docker("search", "busybox")
    assert p.returncode != 0 and "no image index to search" in p.stderr, p.stderr


def test_prune_filters(palletd):
    """until (a duration, Unix time or date) and label / label! for container, image and
    network prune, as dockerd reads them."""
    palletd.docker("create", "--name", "pr-keep", "-l", "keep=1", "busybox", check=True)
    palletd.docker("create", "--name", "pr-go", "busybox", check=True)
    palletd.docker("network", "create", "--label", "scratch=1", "pr-net", check=True)
    try:
        def names() -> set[str]:
            return set(palletd.docker("ps", "-a", "--format", "{{.Names}}",
                                      check=True).stdout.split())

        palletd.docker("container", "prune", "-f", "--filter", "until=1h", check=True)
        assert {"pr-keep", "pr-go"} <= names()  # both are younger than an hour
        p = palletd.docker("container", "prune", "-f", "--filter", "until=soon")
        assert p.returncode != 0 and "failed to parse value as time or duration" in p.stderr
        palletd.docker("container", "prune", "-f", "--filter", "label!=keep", "--filter",
                       f"until={time.time() + 5:.3f}", check=True)
        assert "pr-keep" in names() and "pr-go" not in names()
        palletd.docker("container", "prune", "-f", "--filter", "label=keep=1", check=True)
        assert "pr-keep" not in names()
        src = palletd.docker("create", "busybox", check=True).stdout.strip()
        palletd.docker("commit", "-c", "LABEL purpose=prune-me", src, "pr-img:1",
                       check=True)
        palletd.docker("rm", src, check=True)
        palletd.docker("image", "prune", "-a", "-f", "--filter", "label=purpose=other",
                       check=True)
        assert palletd.docker("image", "inspect", "pr-img:1").returncode == 0
        out = palletd.docker("image", "prune", "-a", "-f", "--filter",
                             "label=purpose=prune-me", check=True).stdout
        assert "pr-img:1" in out and palletd.docker("image", "inspect",
                                                    "pr-img:1").returncode != 0
        assert palletd.docker("image", "inspect", "busybox").returncode == 0
        palletd.docker("network", "prune", "-f", "--filter", "label!=scratch", check=True)
        assert palletd.docker("network", "inspect", "pr-net").returncode == 0
        palletd.docker("network", "prune", "-f", "--filter", "label=scratch", check=True)
        assert palletd.docker("network", "inspect", "pr-net").returncode != 0
    finally:
        palletd.docker("container", "prune", "-f")
        palletd.docker("rm", "-f", "pr-keep", "pr-go")
        palletd.docker("network", "rm", "pr-net")
        palletd.docker("rmi", "pr-img:1")


def test_forced_rmi_of_an_image_a_running_container_uses(palletd):
    """As dockerd: `rmi -f <name>` untags and keeps the image (dangling) for the running
    container; `rmi -f <id>` is refused; once stopped, a forced rmi deletes it."""
    src = palletd.docker("create", "busybox", check=True).stdout.strip()
    palletd.docker("commit", src, "inuse:1", check=True)
    palletd.docker("rm", src, check=True)
    palletd.docker("tag", "inuse:1", "inuse:2", check=True)
    palletd.docker("run", "-d", "--name", "user", "inuse:1", "sleep", "60", check=True)
    try:
        iid = palletd.docker("image", "inspect", "-f", "{{.Id}}", "inuse:1",
                             check=True).stdout.strip()
        palletd.docker("rmi", "inuse:2", check=True)  # another name of it: just untagged
        out = palletd.docker("rmi", "-f", "inuse:1", check=True).stdout
        assert "Untagged: inuse:1" in out and "Deleted" not in out, out
        dangling = palletd.docker("images", "-q", "--no-trunc", "--filter", "dangling=true",
                                  check=True).stdout.split()
        assert iid in dangling
        p = palletd.docker("rmi", "-f", iid)
        assert p.returncode != 0 and "(cannot be forced) - image is being used by running " \
            "container" in p.stderr, p.stderr
        palletd.docker("exec", "user", "true", check=True)
        palletd.docker("stop", "-t", "0", "user", check=True)
        out = palletd.docker("rmi", "-f", iid, check=True).stdout
        assert "Deleted" in out, out
    finally:
        palletd.docker("rm", "-f", "user")
        palletd.docker("image", "prune", "-f")
