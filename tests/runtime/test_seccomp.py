"""`linux.seccomp` (config-linux.md#seccomp): actions, errno return codes, the default action,
argument comparisons, and SCMP_ACT_NOTIFY with a seccomp agent on `listenerPath`.

Checked from inside the container with busybox: a denied syscall shows as the applet's error
message (strerror of the errno) or as death by SIGSYS (exit status 128 + 31).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import threading

import pytest

from pallet.testing.seccomp_profiles import docker_default

from .support import TIMEOUT, diverges

SIGSYS_EXIT = 128 + 31
MKDIR = ["mkdir", "mkdirat"]  # whichever the container's libc uses


def set_seccomp(profile, **process):
    def edit(cfg):
        cfg["linux"]["seccomp"] = profile
        cfg["process"].update(process)
    return edit


def deny(names, action="SCMP_ACT_ERRNO", **extra):
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": list(names), "action": action, **extra}]}


def shell(script):
    return ["sh", "-c", script]


def add_caps(cfg, *names):
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind] += list(names)


def test_errno_action_with_errno_ret(runtime, bundle):
    b = bundle(shell("mkdir /tmp/d 2>&1; echo rc=$?; echo alive"),
               edit=set_seccomp(deny(MKDIR, errnoRet=errno.EXDEV)))
    out = runtime.out(b)
    assert os.strerror(errno.EXDEV) in out and "rc=1" in out and "alive" in out, out
    assert not (b / "rootfs/tmp/d").exists()


def test_errno_action_defaults_to_eperm(runtime, bundle):
    b = bundle(shell("mkdir /tmp/d 2>&1; echo rc=$?"), edit=set_seccomp(deny(MKDIR)))
    out = runtime.out(b)
    assert os.strerror(errno.EPERM) in out and "rc=1" in out, out


def test_filter_is_in_place_for_the_process(runtime, bundle):
    b = bundle(shell("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"),
               edit=set_seccomp(deny(["keyctl"])))
    fields = dict(line.split(":\t") for line in runtime.out(b).splitlines())
    assert fields["Seccomp"] == "2"  # SECCOMP_MODE_FILTER


def test_default_action_applies_to_unlisted_syscalls(runtime, bundle):
    """An allow-list profile with defaultErrnoRet: whatever is not listed (mount) fails with
    that errno, while the listed syscalls keep the shell working."""
    profile = docker_default()
    profile["defaultErrnoRet"] = errno.ENOSYS

    def edit(cfg):
        set_seccomp(profile)(cfg)
        add_caps(cfg, "CAP_SYS_ADMIN")  # so that only the filter stands in mount's way

    b = bundle(shell("mount -t tmpfs none /tmp 2>&1 || echo denied"), edit=edit)
    out = runtime.out(b)
    assert os.strerror(errno.ENOSYS) in out and "denied" in out, out


def test_docker_default_profile(runtime, bundle):
    """An allow-list profile: a busybox shell works (fork, exec, pipes, files, signals),
    while unshare and mount are denied with EPERM even with CAP_SYS_ADMIN."""
    script = """
        echo shell-ok
        ls / | grep -c etc
        mkdir /tmp/d && echo hi > /tmp/d/f && cat /tmp/d/f
        (sleep 0.1; echo subshell-ok) &
        wait
        kill -0 $$ && echo kill-ok
        unshare -m true 2>/dev/null || echo unshare-denied
        mount -t tmpfs none /tmp 2>/dev/null || echo mount-denied
        grep '^Seccomp:' /proc/self/status
    """

    def edit(cfg):
        set_seccomp(docker_default())(cfg)
        add_caps(cfg, "CAP_SYS_ADMIN")

    out = runtime.out(bundle(shell(script), edit=edit)).split()
    assert out == ["shell-ok", "1", "hi", "subshell-ok", "kill-ok", "unshare-denied",
                   "mount-denied", "Seccomp:", "2"]


def test_without_the_profile_the_same_calls_work(runtime, bundle):
    """The control for the test above: it is the filter that denies, not the caps."""
    b = bundle(shell("unshare -m true && echo unshare-ok; "
                     "mount -t tmpfs none /tmp && echo mount-ok"),
               edit=lambda c: add_caps(c, "CAP_SYS_ADMIN"))
    assert runtime.out(b).split() == ["unshare-ok", "mount-ok"]


@pytest.mark.parametrize("nnp", [True, False])
def test_profile_with_user_switch(runtime, bundle, nnp):
    """Without noNewPrivileges the filter is loaded while the init still has CAP_SYS_ADMIN,
    before the user switch; with it, as late as possible. Either way the process runs as
    its user under the filter."""
    b = bundle(shell("id -u; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | sort; "
                     "unshare -U true 2>/dev/null || echo unshare-denied"),
               edit=set_seccomp(docker_default(), noNewPrivileges=nnp,
                                user={"uid": 1000, "gid": 1000}))
    out = runtime.out(b).split()
    assert out == ["1000", "NoNewPrivs:", str(int(nnp)), "Seccomp:", "2", "unshare-denied"]


def test_args_comparison(runtime, bundle):
    """kill(pid, sig) denied only when sig == 0: `kill -0` fails, `kill -CONT` works."""
    profile = deny(["kill"], args=[{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}])
    b = bundle(shell("kill -0 $$ 2>/dev/null || echo sig0-denied; kill -CONT $$ && echo cont-ok"),
               edit=set_seccomp(profile))
    assert runtime.out(b).split() == ["sig0-denied", "cont-ok"]


def test_args_masked_eq(runtime, bundle):
    """kill denied when (sig & 3) == 2: SIGCONT (18) is denied, signal 0 and SIGCHLD (17)
    are not."""
    profile = deny(["kill"], args=[{"index": 1, "value": 3, "valueTwo": 2,
                                    "op": "SCMP_CMP_MASKED_EQ"}])
    b = bundle(shell("kill -0 $$ && echo sig0-ok; kill -CONT $$ 2>/dev/null || echo cont-denied;"
                     " kill -CHLD $$ && echo chld-ok"), edit=set_seccomp(profile))
    assert runtime.out(b).split() == ["sig0-ok", "cont-denied", "chld-ok"]


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_TRAP"])
def test_kill_and_trap_end_the_process(runtime, bundle, action):
    b = bundle(["mkdir", "/tmp/d"], edit=set_seccomp(deny(MKDIR, action)))
    r = runtime.run(runtime.new_id(), b)
    assert r.returncode == SIGSYS_EXIT, str(r)
    assert not (b / "rootfs/tmp/d").exists()


def test_log_allows(runtime, bundle):
    b = bundle(shell("mkdir /tmp/d && echo made"), edit=set_seccomp(deny(MKDIR, "SCMP_ACT_LOG")))
    assert runtime.out(b) == "made\n"


@pytest.mark.parametrize("flag", ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                  "SECCOMP_FILTER_FLAG_TSYNC"])
def test_flags(request, runtime, bundle, flag):
    diverges(request, runtime, ("runc",), "runc 1.1 refuses every seccomp flag "
             "('seccomp flags are not yet supported by runc'); 1.2 supports them")
    profile = deny(MKDIR) | {"flags": [flag]}
    b = bundle(shell("mkdir /tmp/d 2>/dev/null; echo rc=$?"), edit=set_seccomp(profile))
    assert runtime.out(b) == "rc=1\n"


def test_unknown_syscall_names_are_ignored(runtime, bundle):
    b = bundle(shell("mkdir /tmp/d 2>/dev/null; echo rc=$?"),
               edit=set_seccomp(deny(["no_such_syscall_anywhere", *MKDIR])))
    assert runtime.out(b) == "rc=1\n"


def test_extra_architectures(runtime, bundle):
    profile = deny(MKDIR) | {"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                                               "SCMP_ARCH_X32"]}
    b = bundle(shell("mkdir /tmp/d 2>/dev/null; echo rc=$?"), edit=set_seccomp(profile))
    assert runtime.out(b) == "rc=1\n"


@pytest.mark.parametrize(("profile", "word"), [
    ({"defaultAction": "SCMP_ACT_BOGUS"}, "SCMP_ACT_BOGUS"),
    (deny(["read"], "SCMP_ACT_BOGUS"), "SCMP_ACT_BOGUS"),
    (deny(["read"], args=[{"index": 0, "value": 0, "op": "SCMP_CMP_BOGUS"}]), "SCMP_CMP_BOGUS"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_BOGUS"]},
     "SCMP_ARCH_BOGUS"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]},
     "SECCOMP_FILTER_FLAG_BOGUS"),
])
def test_invalid_profile_fails_create(runtime, bundle, profile, word):
    b = bundle(["true"], edit=set_seccomp(profile))
    cid = runtime.new_id()
    runtime.run(cid, b).failed(("seccomp", word))
    runtime.assert_nothing_left(cid, b)


# --- SCMP_ACT_NOTIFY and the seccomp agent ------------------------------------------------


class _Data(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32),
                ("instruction_pointer", ctypes.c_uint64), ("args", ctypes.c_uint64 * 6)]


class _Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("data", _Data)]


class _Resp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


class Agent:
    """A seccomp agent on a unix socket: takes one connection (the container process state
    and the listener fd), then answers every notification with -`error` until the
    container's filter goes away."""

    def __init__(self, path, error):
        self.path = str(path)
        self.error = error
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(TIMEOUT)
        self.message = None
        self.fds = []
        self.syscalls = []
        self.failure = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                data, self.fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
                # One JSON document; read on until it is whole (not until EOF: the fd
                # must be serviced while the runtime still holds the connection).
                while not self._parsed(data):
                    more = conn.recv(1 << 16)
                    if not more:
                        raise ValueError(f"connection closed after {data!r}")
                    data += more
            if len(self.fds) == 1:
                self._answer(self.fds[0])
        except Exception as e:  # reported by the test
            self.failure = e

    def _parsed(self, data):
        try:
            self.message = json.loads(data)
        except ValueError:
            return False
        return True

    def _answer(self, fd):
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        req, resp = ctypes.POINTER(_Notif)(), ctypes.POINTER(_Resp)()
        assert lib.seccomp_notify_alloc(ctypes.byref(req), ctypes.byref(resp)) == 0
        try:
            while True:
                # Fails (ENOENT) once every process under the filter has exited.
                if lib.seccomp_notify_receive(fd, req) != 0:
                    return
                self.syscalls.append(req.contents.data.nr)
                resp.contents.id = req.contents.id
                resp.contents.val = 0
                resp.contents.error = -self.error
                resp.contents.flags = 0
                lib.seccomp_notify_respond(fd, resp)
        finally:
            lib.seccomp_notify_free(req, resp)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a thread still blocked in accept
        except OSError:
            pass
        self.sock.close()
        self.thread.join(TIMEOUT)
        for fd in self.fds:
            os.close(fd)


def test_notify_sends_state_and_fd_to_the_agent(runtime, bundle, tmp_path):
    agent = Agent(tmp_path / "agent.sock", errno.EXDEV)
    try:
        profile = deny(MKDIR, "SCMP_ACT_NOTIFY") | {"listenerPath": agent.path,
                                                   "listenerMetadata": "who=test"}
        b = bundle(shell("mkdir /tmp/d 2>&1; echo rc=$?"), edit=set_seccomp(profile))
        cid = runtime.new_id()
        r = runtime.run(cid, b).ok()
        assert os.strerror(errno.EXDEV) in r.stdout and "rc=1" in r.stdout, str(r)
    finally:
        agent.close()
    assert agent.failure is None, agent.failure
    msg = agent.message
    assert msg["fds"] == ["seccompFd"] and len(agent.fds) == 1
    assert msg["metadata"] == "who=test"
    assert isinstance(msg["ociVersion"], str) and msg["ociVersion"]
    state = msg["state"]
    assert state["id"] == cid
    assert state["status"] == "creating"
    assert os.path.realpath(state["bundle"]) == os.path.realpath(b)
    assert state["pid"] == msg["pid"] > 0
    assert agent.syscalls, "the agent answered no notification"


def test_notify_without_agent_fails_create(runtime, bundle, tmp_path):
    profile = deny(MKDIR, "SCMP_ACT_NOTIFY") | {"listenerPath": str(tmp_path / "nobody.sock")}
    b = bundle(["true"], edit=set_seccomp(profile))
    cid = runtime.new_id()
    runtime.run(cid, b).failed(("nobody.sock", "seccomp", "listener"))
    runtime.assert_nothing_left(cid, b)


def test_exec_gets_the_containers_filter(runtime, bundle):
    """An exec'd process is under the container's profile too; with pallet-runtime both
    the init and the exec load the program compiled once and cached under --root."""
    def edit(cfg):
        set_seccomp(docker_default())(cfg)
        add_caps(cfg, "CAP_SYS_ADMIN")

    cid = runtime.new_id()
    b = bundle(["sleep", "1000"], edit=edit)
    runtime.detached("run", "--detach", "--bundle", str(b), cid, tag=cid).ok()
    r = runtime("exec", cid, "sh", "-c", "unshare -m true 2>/dev/null || echo denied; "
                "grep '^Seccomp:' /proc/self/status").ok()
    assert r.stdout.split() == ["denied", "Seccomp:", "2"]
    if runtime.name == "pallet-runtime":
        cached = list((runtime.root / "@seccomp").iterdir())
        assert len(cached) == 1 and cached[0].suffix == ".bpf"
