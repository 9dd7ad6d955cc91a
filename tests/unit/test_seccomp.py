"""pallet.linux.seccomp: validation, and filters built and loaded in forked children.

A loaded filter stays for the life of the process, so every load happens in a child that
reports over a pipe and ends with os._exit. The children set no_new_privs first, as an
unprivileged runtime would, so these tests need no root.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import signal
import socket
import time

import pytest

from pallet.errors import InvalidArgument, Unavailable
from pallet.linux import libc, seccomp
from pallet.testing.seccomp_profiles import docker_default

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="syscall numbers below are x86_64's")

try:
    seccomp.version()
except Exception as e:  # any failure to open the library skips the module
    pytest.skip(f"libseccomp.so.2 unavailable: {e}", allow_module_level=True)

# x86_64 syscall numbers.
NR = {"getpid": 39, "uname": 63, "umask": 95, "getpriority": 140, "personality": 135,
      "keyctl": 250, "mkdirat": 258, "unshare": 272, "clone3": 435}
PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_uts_buffer = ctypes.create_string_buffer(1024)
UTS = ctypes.addressof(_uts_buffer)  # a struct utsname for uname(2)


def sys_call(name: str, *args: int) -> tuple[int, int]:
    """(return value, errno) of a raw syscall; errno 0 on success."""
    ctypes.set_errno(0)
    ret = _libc.syscall(ctypes.c_long(NR[name]), *(ctypes.c_ulong(a) for a in args))
    return ret, (ctypes.get_errno() if ret == -1 else 0)


def errno_of(name: str, *args: int) -> int:
    return sys_call(name, *args)[1]


def in_child(body, profile=None, nnp=True) -> tuple[object, int]:
    """Run body() in a forked child after loading `profile`; (its result, wait status).

    The result comes back as JSON through a pipe; an exception comes back as
    {"error": repr}. A child killed by the filter sends nothing (result None)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            if nnp:
                _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            if profile is not None:
                seccomp.load(profile)
            out = {"result": body()}
        except BaseException as e:  # everything goes back to the parent
            out = {"error": repr(e)}
        try:
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return None, status
    out = json.loads(b"".join(chunks))
    assert "error" not in out, out["error"]
    return out["result"], status


def deny(names, action="SCMP_ACT_ERRNO", default="SCMP_ACT_ALLOW", **extra):
    rule = {"names": list(names), "action": action, **extra}
    return {"defaultAction": default, "syscalls": [rule]}


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "words"), [
    ({}, ["defaultAction", "required"]),
    ({"defaultAction": "SCMP_ACT_NOPE"}, ["defaultAction", "SCMP_ACT_NOPE"]),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, ["defaultAction", "NOTIFY"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 5}, ["defaultErrnoRet",
                                                                "SCMP_ACT_ALLOW"]),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": "5"}, ["defaultErrnoRet", "'5'"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]},
     ["architectures[1]", "SCMP_ARCH_Z80"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": "SCMP_ARCH_X86_64"},
     ["architectures", "array"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]},
     ["flags[0]", "SECCOMP_FILTER_FLAG_FAST"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"},
     ["listenerMetadata", "listenerPath"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]},
     ["syscalls[0].action"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_LOG"}]},
     ["syscalls[0].names"]),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_LOG"}]},
     ["syscalls[0].names"]),
    (deny(["read"], "SCMP_ACT_KILLALL"), ["syscalls[0].action", "SCMP_ACT_KILLALL"]),
    (deny(["read"], errnoRet=True), ["syscalls[0].errnoRet", "True"]),
    (deny(["read"], errnoRet=-1), ["syscalls[0].errnoRet"]),
    (deny(["read"], errnoRet=1 << 16), ["syscalls[0].errnoRet"]),
    (deny(["read"], "SCMP_ACT_KILL_PROCESS", errnoRet=1), ["errnoRet", "KILL_PROCESS"]),
    (deny(["read"], "SCMP_ACT_NOTIFY"), ["listenerPath", "NOTIFY"]),
    (deny(["write"], "SCMP_ACT_NOTIFY", ), ["syscalls[0]", "write"]),
    (deny(["read"], args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]),
     ["syscalls[0].args[0].index", "6"]),
    (deny(["read"], args=[{"index": 0, "value": 1, "op": "SCMP_CMP_SIMILAR"}]),
     ["syscalls[0].args[0].op", "SCMP_CMP_SIMILAR"]),
    (deny(["read"], args=[{"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}]),
     ["syscalls[0].args[0].value"]),
    (deny(["read"], args=[{"index": 0, "value": 1, "valueTwo": -3, "op": "SCMP_CMP_EQ"}]),
     ["syscalls[0].args[0].valueTwo"]),
    (deny(["read"], args=[{"value": 1, "op": "SCMP_CMP_EQ"}]),
     ["syscalls[0].args[0].index", "required"]),
])
def test_validate_names_the_field(profile, words):
    with pytest.raises(InvalidArgument) as exc:
        seccomp.validate(profile)
    msg = str(exc.value)
    assert msg.startswith("linux.seccomp"), msg
    for w in words:
        assert w in msg, msg


def test_validate_accepts_the_spec_vocabulary():
    seccomp.validate({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "architectures": list(seccomp.ARCHES), "flags": list(seccomp.FLAGS),
        "listenerPath": "/run/agent.sock", "listenerMetadata": "opaque",
        "syscalls": [
            {"names": ["no_such_syscall_anywhere", "read"], "action": a,
             **({"errnoRet": 5} if a in seccomp.WITH_ERRNO else {}),
             "args": [{"index": i, "value": 1 << 63, "valueTwo": 0, "op": op}
                      for i, op in enumerate(list(seccomp.OPERATORS)[:6])]}
            for a in seccomp.ACTIONS
        ],
    })
    seccomp.validate(docker_default())


def test_unsupported_architecture_fails_at_build_naming_the_version():
    if seccomp.version() >= (2, 6, 0):
        pytest.skip("this libseccomp knows every architecture of the spec")
    with pytest.raises(InvalidArgument, match=r"architectures\[1\].*LOONGARCH64.*libseccomp 2"):
        seccomp.prepare({"defaultAction": "SCMP_ACT_ALLOW",
                         "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_LOONGARCH64"]})


def test_wait_killable_recv_reaches_the_kernel_only_with_a_listener(tmp_path):
    """The flag goes to seccomp(2) as it is (libseccomp's version does not matter); the
    kernel only takes it with a listener, so a filter without one loads without it."""
    if not libc.seccomp_flag_known(32 | 8):
        pytest.skip("this kernel has no SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (< 5.19)")
    flag = {"flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}
    got, _ = in_child(lambda: errno_of("uname", UTS), deny(["uname"]) | flag)
    assert got == errno.EPERM

    def body():
        fd = seccomp.prepare(deny(["mkdirat"], "SCMP_ACT_NOTIFY") | flag
                             | {"listenerPath": str(tmp_path / "x")}).load()
        return fd is not None and fd > 2

    got, _ = in_child(body)
    assert got is True
    assert "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in seccomp.features()["supportedFlags"]


# --- actions -------------------------------------------------------------------------------


def test_errno_defaults_to_eperm():
    got, _ = in_child(lambda: [errno_of("mkdirat", -100, 0, 0o755), errno_of("getpid")],
                      deny(["mkdirat"]))
    assert got == [errno.EPERM, 0]


def test_errno_ret():
    got, _ = in_child(lambda: errno_of("uname", UTS), deny(["uname"], errnoRet=errno.ENOTSUP))
    assert got == errno.ENOTSUP


def test_default_errno_ret_with_allow_list():
    # ERRNO by default, and just enough allowed for the child to report and exit.
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EXDEV,
               "syscalls": [{"names": ["write", "exit", "exit_group", "getpid", "brk",
                                       "mmap", "munmap", "rt_sigaction", "rt_sigprocmask"],
                             "action": "SCMP_ACT_ALLOW"}]}
    got, _ = in_child(lambda: [errno_of("uname", UTS), errno_of("getpid")], profile)
    assert got == [errno.EXDEV, 0]


def test_unknown_syscall_names_are_skipped():
    got, _ = in_child(lambda: errno_of("uname", UTS), deny(["no_such_syscall", "uname"]))
    assert got == errno.EPERM


def test_rule_repeating_the_default_action_is_skipped():
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ALLOW"},
                            {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO"}]}
    got, _ = in_child(lambda: [errno_of("uname", UTS), errno_of("getpriority", 0, 0)], profile)
    assert got == [0, errno.EPERM]


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_KILL", "SCMP_ACT_TRAP"])
def test_kill_and_trap_end_the_process_with_sigsys(action):
    got, status = in_child(lambda: errno_of("uname", UTS), deny(["uname"], action))
    assert got is None
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_trace_without_a_tracer_is_enosys():
    got, _ = in_child(lambda: errno_of("uname", UTS), deny(["uname"], "SCMP_ACT_TRACE"))
    assert got == errno.ENOSYS


def test_log_allows():
    got, _ = in_child(lambda: errno_of("uname", UTS), deny(["uname"], "SCMP_ACT_LOG"))
    assert got == 0


@pytest.mark.parametrize("flag", ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
def test_flags_load(flag):
    profile = deny(["uname"]) | {"flags": [flag]}
    got, _ = in_child(lambda: errno_of("uname", UTS), profile)
    assert got == errno.EPERM


def test_load_does_not_set_no_new_privs():
    def nnp():
        with open("/proc/self/status") as f:
            return next(ln.split()[1] for ln in f if ln.startswith("NoNewPrivs:"))

    if os.geteuid() != 0:
        pytest.skip("loading without no_new_privs needs CAP_SYS_ADMIN")
    got, _ = in_child(nnp, deny(["uname"]), nnp=False)
    assert got == "0"


# --- argument comparisons -----------------------------------------------------------------

# umask(2) cannot fail, so any error is the filter's.
@pytest.mark.parametrize(("op", "value", "value_two", "denied", "allowed"), [
    ("SCMP_CMP_EQ", 0o77, 0, [0o77], [0o22, 0o777]),
    ("SCMP_CMP_NE", 0o22, 0, [0, 0o77], [0o22]),
    ("SCMP_CMP_LT", 0o22, 0, [0, 0o21], [0o22, 0o77]),
    ("SCMP_CMP_LE", 0o22, 0, [0, 0o22], [0o23, 0o77]),
    ("SCMP_CMP_GT", 0o22, 0, [0o23, 0o777], [0, 0o22]),
    ("SCMP_CMP_GE", 0o22, 0, [0o22, 0o777], [0, 0o21]),
    # value is the mask, valueTwo what the masked argument must equal.
    ("SCMP_CMP_MASKED_EQ", 0o700, 0o700, [0o700, 0o777], [0o77, 0o600, 0]),
])
def test_arg_operators(op, value, value_two, denied, allowed):
    profile = deny(["umask"], errnoRet=errno.ENOMSG,
                   args=[{"index": 0, "value": value, "valueTwo": value_two, "op": op}])
    got, _ = in_child(lambda: [errno_of("umask", m) for m in denied + allowed], profile)
    assert got == [errno.ENOMSG] * len(denied) + [0] * len(allowed)


def test_args_on_distinct_indexes_all_must_match():
    # getpriority(which, who): the rule matches which == PRIO_PGRP (1) AND who == 0.
    profile = deny(["getpriority"], errnoRet=errno.ENOMSG,
                   args=[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                         {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}])
    got, _ = in_child(lambda: [errno_of("getpriority", 1, 0), errno_of("getpriority", 0, 0),
                               errno_of("getpriority", 1, os.getpgrp())], profile)
    assert got == [errno.ENOMSG, 0, 0]


def test_args_on_the_same_index_match_any():
    profile = deny(["umask"], errnoRet=errno.ENOMSG,
                   args=[{"index": 0, "value": 0o11, "op": "SCMP_CMP_EQ"},
                         {"index": 0, "value": 0o33, "op": "SCMP_CMP_EQ"}])
    got, _ = in_child(lambda: [errno_of("umask", m) for m in (0o11, 0o33, 0o22)], profile)
    assert got == [errno.ENOMSG, errno.ENOMSG, 0]


def test_64_bit_values():
    big = (1 << 40) | 0o77
    profile = deny(["getpriority"], errnoRet=errno.ENOMSG,
                   args=[{"index": 1, "value": big, "op": "SCMP_CMP_EQ"}])
    got, _ = in_child(lambda: [errno_of("getpriority", 0, big), errno_of("getpriority", 0, 0o77)],
                      profile)
    # The low 32 bits alone do not match: the comparison is on all 64 (the second call may
    # succeed or fail with ESRCH, but not by the filter).
    assert got[0] == errno.ENOMSG and got[1] != errno.ENOMSG


# --- architectures ----------------------------------------------------------------------------


def test_architectures_get_their_own_filters():
    profile = deny(["mkdirat"]) | {"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                                                      "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"]}
    pfc = seccomp.pfc(profile)
    for arch in ("x86_64", "x86", "x32", "aarch64"):
        assert f"# filter for arch {arch} (" in pfc, pfc
    # mkdirat is 258 on x86_64, 296 on i386, 34 on aarch64.
    for nr in (258, 296, 34):
        assert f'"mkdirat" ({nr})' in pfc, pfc
    got, _ = in_child(lambda: errno_of("mkdirat", -100, 0, 0o755), profile)
    assert got == errno.EPERM


def test_only_foreign_architectures_still_keep_the_native_one():
    profile = deny(["uname"]) | {"architectures": ["SCMP_ARCH_AARCH64"]}
    got, _ = in_child(lambda: errno_of("uname", UTS), profile)
    assert got == errno.EPERM


def test_prepare_then_load_later():
    flt = seccomp.prepare(deny(["uname"], errnoRet=errno.EROFS))

    def body():
        assert flt.load() is None
        return errno_of("uname", UTS)

    got, _ = in_child(body)
    assert got == errno.EROFS
    flt.release()
    with pytest.raises(Exception, match="already loaded or released"):
        flt.load()


# --- the Docker-style default profile ---------------------------------------------------------


def test_default_profile_builds_and_loads():
    def body():
        out = {"getpid": os.getpid() > 1, "uname": errno_of("uname", UTS),
               "unshare": errno_of("unshare", 0x10000000),
               "keyctl": errno_of("keyctl", 1, 0), "clone3": errno_of("clone3", 0, 0),
               "personality query": errno_of("personality", 0xFFFFFFFF),
               "personality ADDR_NO_RANDOMIZE": errno_of("personality", 0x0040000)}
        pid = os.fork()  # clone without namespace flags
        if pid == 0:
            os._exit(3)
        out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        return out

    got, _ = in_child(body, docker_default())
    assert got == {"getpid": True, "uname": 0, "unshare": errno.EPERM,
                   "keyctl": errno.EPERM, "clone3": errno.ENOSYS, "personality query": 0,
                   "personality ADDR_NO_RANDOMIZE": errno.EPERM, "fork": 3}


# --- SCMP_ACT_NOTIFY ------------------------------------------------------------------------


class _Data(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32),
                ("instruction_pointer", ctypes.c_uint64), ("args", ctypes.c_uint64 * 6)]


class _Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("data", _Data)]


class _Resp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


def _answer_one(fd: int, error: int) -> _Notif:
    """Act as the seccomp agent for one notification: fail the syscall with `error`."""
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    req, resp = ctypes.POINTER(_Notif)(), ctypes.POINTER(_Resp)()
    assert lib.seccomp_notify_alloc(ctypes.byref(req), ctypes.byref(resp)) == 0
    try:
        rc = lib.seccomp_notify_receive(fd, req)
        assert rc == 0, os.strerror(-rc)
        got = _Notif.from_buffer_copy(req.contents)
        resp.contents.id = got.id
        resp.contents.val = 0
        resp.contents.error = -error
        resp.contents.flags = 0
        rc = lib.seccomp_notify_respond(fd, resp)
        assert rc == 0, os.strerror(-rc)
        return got
    finally:
        lib.seccomp_notify_free(req, resp)


def test_notify_sends_the_listener_fd_and_state(tmp_path):
    path = str(tmp_path / "agent.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(10)
    profile = deny(["mkdirat"], "SCMP_ACT_NOTIFY") | {"listenerPath": path,
                                                     "listenerMetadata": "agent=test"}
    state = {"ociVersion": "1.0.2", "id": "c1", "status": "creating", "pid": 0,
             "bundle": "/b", "annotations": {"k": "v"}}

    def body():
        fd = seccomp.prepare(profile).load()
        assert isinstance(fd, int) and fd > 2
        seccomp.send_to_listener(path, fd, state | {"pid": os.getpid()}, "agent=test")
        os.close(fd)
        return errno_of("mkdirat", -100, 0, 0o755)  # blocks until the agent answers

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            os.write(w, json.dumps(body()).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            msg, fds, _, _ = socket.recv_fds(conn, 65536, 4)
            while more := conn.recv(65536):
                msg += more
        assert len(fds) == 1
        sent = json.loads(msg)
        assert sent == {"ociVersion": "1.0.2", "fds": ["seccompFd"], "pid": pid,
                        "metadata": "agent=test", "state": state | {"pid": pid}}
        assert os.readlink(f"/proc/self/fd/{fds[0]}") == "anon_inode:seccomp notify"
        notif = _answer_one(fds[0], errno.EXDEV)
        os.close(fds[0])
        assert notif.pid == pid and notif.data.nr == NR["mkdirat"]
        assert json.loads(os.read(r, 4096)) == errno.EXDEV
    finally:
        os.close(r)
        with_timeout_reap(pid)
        listener.close()


def with_timeout_reap(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_send_to_listener_without_agent_fails_naming_the_path(tmp_path):
    path = str(tmp_path / "nobody.sock")
    r, w = os.pipe()
    try:
        with pytest.raises(Unavailable, match=r"listenerPath .*nobody\.sock"):
            seccomp.send_to_listener(path, r, {"ociVersion": "1.0.2", "pid": 1}, "")
    finally:
        os.close(r)
        os.close(w)


# --- the compiled-program cache ----------------------------------------------------------------


def test_cached_program_is_reused_without_libseccomp(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    profile = deny(["uname"], errnoRet=errno.EROFS)
    first = seccomp.prepare(profile, str(cache))
    (entry,) = cache.iterdir()
    assert cache.stat().st_mode & 0o777 == 0o700 and entry.stat().st_mode & 0o777 == 0o600

    def no_library():
        raise AssertionError("libseccomp was used although the program was cached")

    monkeypatch.setattr(seccomp, "_library", no_library)
    again = seccomp.prepare(profile, str(cache))
    assert again.program == first.program
    got, _ = in_child(lambda: (again.load(), errno_of("uname", UTS))[1])
    assert got == errno.EROFS
    # another profile is another program: not found in the cache, so libseccomp is needed
    with pytest.raises(AssertionError, match="libseccomp was used"):
        seccomp.prepare(deny(["umask"]), str(cache))


@pytest.mark.parametrize("damage", ["truncate", "header", "library", "writable", "symlink"])
def test_a_bad_or_stale_cache_entry_is_compiled_again(tmp_path, damage):
    cache = tmp_path / "cache"
    profile = deny(["uname"])
    good = seccomp.prepare(profile, str(cache)).program
    (entry,) = cache.iterdir()
    data = entry.read_bytes()
    head, _, program = data.partition(b"\n")
    if damage == "truncate":  # a program that is no whole number of instructions
        entry.write_bytes(data[:-3])
    elif damage == "header":
        entry.write_bytes(b"something else\n" + program)
    elif damage == "writable":  # a file others could have changed is not trusted
        entry.write_bytes(head + b"\n" + program[:-8])
        entry.chmod(0o666)
    elif damage == "symlink":  # nor one reached through a symlink
        other = tmp_path / "elsewhere"
        other.write_bytes(head + b"\n" + program[:-8])
        entry.unlink()
        entry.symlink_to(other)
    else:  # generated by another libseccomp (an upgrade since)
        parts = head.split(b" ")
        parts[4] = str(int(parts[4]) + 1).encode()
        entry.write_bytes(b" ".join(parts) + b"\n" + program[:-8])
    assert seccomp.prepare(profile, str(cache)).program == good
    assert not entry.is_symlink() and entry.read_bytes() == data  # and stored again
    assert entry.stat().st_mode & 0o777 == 0o600


def test_an_unwritable_cache_only_costs_the_compilation(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    flt = seccomp.prepare(deny(["uname"]), str(blocker / "cache"))
    got, _ = in_child(lambda: (flt.load(), errno_of("uname", UTS))[1])
    assert got == errno.EPERM
