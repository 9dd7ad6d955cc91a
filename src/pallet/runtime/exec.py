"""`exec`: run one more process in a running container, with the same environment and the
same security setup as its init.

  parent (exec)                    stage-1                          process (in the pid ns)
  ───────────────────────────────────────────────────────────────────────────────────────
  fork (into the v2 cgroup) ───▶  (waits)
  "go" ─────────────────────────▶  join the v1 cgroups,
                                   setns(user), setns(the others),
                                   setns(mnt) last; fork ───────────▶ console, rlimits, fds,
          ◀──────────────────────  "pid" {pid}; _exit(0)              cwd, user, caps, nnp,
                                                                       seccomp; execve
          ◀────────────────────────────────────────────────────────── "error" {..} on failure
  EOF on the socket (closed by execve's CLOEXEC) means the program is running.

The namespaces are the init's (/proc/<pid>/ns/*): whatever the container was created with,
new or joined, is found there.
"""

from __future__ import annotations

import _socket
import gc
import os
import sys

from pallet import errors
from pallet.cgroups import Manager
from pallet.linux import caps, libc
from pallet.oci import runtime_config
from pallet.runtime import process, stages, sync, trampoline
from pallet.runtime.state import CREATED, PAUSED, RUNNING, ContainerState

TYPE_CHECKING = False  # `typing` itself costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

NS_FILES = {"user": "user", "ipc": "ipc", "uts": "uts", "network": "net", "pid": "pid",
            "cgroup": "cgroup", "time": "time", "mount": "mnt"}


class ExecOptions:
    def __init__(self, process_json: dict[str, Any], *, console_socket: str | None = None,
                 console: _socket.socket | None = None, pid_file: str | None = None,
                 preserve_fds: int = 0, detach: bool = False, ignore_paused: bool = False,
                 subreaper: bool = False) -> None:
        self.process = process_json
        self.console_socket = console_socket
        self.console = console
        self.pid_file = pid_file
        self.preserve_fds = preserve_fds
        self.detach = detach
        self.ignore_paused = ignore_paused
        self.subreaper = subreaper


def build_process(config: dict[str, Any], *, args: list[str], tty: bool = False,
                  cwd: str | None = None, env: list[str] | None = None,
                  user: str | None = None, additional_gids: list[int] | None = None,
                  add_caps: list[str] | None = None, no_new_privs: bool = False
                  ) -> dict[str, Any]:
    """runc exec's flags on top of the container's own process (runc's newProcess)."""
    base = config.get("process", {})
    proc: dict[str, Any] = {
        "terminal": tty,
        "args": args,
        "env": list(base.get("env", [])) + list(env or []),
        "cwd": cwd or base.get("cwd", "/"),
        "user": dict(base.get("user", {"uid": 0, "gid": 0})),
        "capabilities": {k: list(v) for k, v in (base.get("capabilities") or {}).items()},
        "rlimits": list(base.get("rlimits", [])),
        "noNewPrivileges": bool(base.get("noNewPrivileges") or no_new_privs),
    }
    if "oomScoreAdj" in base:
        proc["oomScoreAdj"] = base["oomScoreAdj"]
    if user:
        uid, _, gid = user.partition(":")
        try:
            proc["user"] = {"uid": int(uid), "gid": int(gid) if gid else 0}
        except ValueError:
            raise errors.InvalidArgument(f"--user {user!r}: expected UID[:GID]") from None
    if additional_gids:
        proc["user"]["additionalGids"] = list(additional_gids)
    for cap in add_caps or []:
        for kind in ("bounding", "effective", "permitted", "ambient", "inheritable"):
            if kind == "inheritable" and kind not in proc["capabilities"]:
                continue
            sets = proc["capabilities"].setdefault(kind, [])
            if cap not in sets:
                sets.append(cap)
    return proc


def check_process(proc: dict[str, Any]) -> None:
    runtime_config.check_shape(proc, runtime_config.SCHEMA["process"], "process")
    if not proc.get("args"):
        raise errors.InvalidArgument("process.args must name a program")
    if not str(proc.get("cwd", "/")).startswith("/"):
        raise errors.InvalidArgument("process.cwd must be an absolute path")
    proc.setdefault("cwd", "/")
    proc.setdefault("user", {"uid": 0, "gid": 0})
    unknown: list[str] = []
    last = caps.last_cap()
    for names in (proc.get("capabilities") or {}).values():
        caps.mask(names, last, unknown)
    for name in sorted(set(unknown)):
        print(f"pallet-runtime: warning: ignoring unknown or unavailable capability {name}",
              file=sys.stderr)


def exec_process(st: ContainerState, opts: ExecOptions) -> int:
    """Start the process; returns its host pid."""
    status = st.status()
    if status == PAUSED and not opts.ignore_paused:
        raise errors.FailedPrecondition(f"cannot exec in paused container {st.id} "
                                        "(use --ignore-paused)")
    if status not in (CREATED, RUNNING, PAUSED):
        raise errors.FailedPrecondition(f"cannot exec in a stopped container {st.id}")
    proc = opts.process
    check_process(proc)
    if proc.get("terminal") and not (opts.console_socket or opts.console):
        raise errors.InvalidArgument("--tty is set: --console-socket is required")
    console = stages.connect_console(opts.console_socket) if opts.console_socket \
        else opts.console
    # Namespace fds are opened here, while /proc/<init> is reachable and known to be the
    # container's init: the children only setns into them.
    ns_fds: dict[str, int] = {}
    config = st.config
    try:
        for t in runtime_config.namespaces(config):
            if t == "user" and not _userns_differs(st.pid):
                continue
            ns_fds[t] = os.open(f"/proc/{st.pid}/ns/{NS_FILES[t]}", os.O_RDONLY | os.O_CLOEXEC)
        for fd in range(3, 3 + opts.preserve_fds):
            os.set_inheritable(fd, True)
        if opts.subreaper:
            libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
        parent_sock, child_sock = sync.pair()
        sys.stdout.flush()
        sys.stderr.flush()
        cg = Manager(st.record.get("cgroupPaths", {}))
        stage1, in_v2 = cg.fork()
        if stage1 == 0:
            _child_main(parent_sock, child_sock, st, proc, ns_fds, console, opts)
        child_sock.close()
    finally:
        for fd in ns_fds.values():
            os.close(fd)
    if console is not None and opts.console is None:
        console.close()
    pid = 0
    try:
        cg.add(stage1, v1=False, v2=not in_v2)  # v1: the child joins (Manager.fork)
        sync.send(parent_sock, "go")
        while True:
            msg = sync.recv(parent_sock)
            if msg is None:
                break
            if msg["type"] == "pid":
                pid = msg["pid"]
                stages.reap(stage1)
                stage1 = 0
            elif msg["type"] == "error":
                raise stages.error_from(msg)
    except BaseException:
        if pid:
            stages.kill_and_wait(pid)
        if stage1:
            stages.kill_and_wait(stage1)
            stages.reap(stage1)
        raise
    finally:
        parent_sock.close()
    if not pid:
        raise errors.SystemError_(f"exec in {st.id}: the process was not started")
    if opts.pid_file:
        from pallet.runtime.state import write_atomic

        write_atomic(os.path.abspath(opts.pid_file), str(pid).encode(), 0o644)
    return pid


def _userns_differs(pid: int) -> bool:
    return os.stat(f"/proc/{pid}/ns/user").st_ino != os.stat("/proc/self/ns/user").st_ino


def _child_main(parent_sock: _socket.socket, sock: _socket.socket, st: ContainerState,
                proc: dict[str, Any], ns_fds: dict[str, int], console: _socket.socket | None,
                opts: ExecOptions) -> None:
    gc.disable()
    try:
        parent_sock.close()
        sync.expect(sock, "go")
        Manager(st.record.get("cgroupPaths", {})).join_v1()
        libc.prctl(libc.PR_SET_DUMPABLE, 0)  # see create._init
        tramp = trampoline.sealed_fd()
        # Built before setns(mnt): after it the host's libseccomp is out of reach.
        sc = st.config.get("linux", {}).get("seccomp")
        flt = None
        if sc:
            from pallet.linux import seccomp

            if seccomp.uses_notify(sc):
                raise errors.InvalidArgument(
                    "exec into a container whose seccomp uses SCMP_ACT_NOTIFY is not "
                    "supported yet")
            flt = seccomp.prepare(sc, st.seccomp_cache)
        # After setns(mnt) the host's Python library is out of reach.
        if proc.get("terminal"):
            import fcntl  # noqa: F401
            import struct  # noqa: F401
            import termios  # noqa: F401
        if "user" in ns_fds:
            libc.setns(ns_fds["user"], libc.CLONE_NEWUSER, "user namespace")
        for t in stages.JOIN_ORDER:
            if t in ns_fds:
                libc.setns(ns_fds[t], stages.NS_FLAGS[t], f"{t} namespace")
        for fd in ns_fds.values():
            os.close(fd)
        pid = os.fork()
        if pid == 0:
            try:
                _process(sock, proc, console, opts, tramp, flt)
            except BaseException as e:
                stages.report(sock, e)
            os._exit(1)
        sync.send(sock, "pid", pid=pid)
        os._exit(0)
    except BaseException as e:
        stages.report(sock, e)
        os._exit(1)


def _process(sock: _socket.socket, proc: dict[str, Any], console: _socket.socket | None,
             opts: ExecOptions, tramp: int | None, flt: Any = None) -> None:
    os.chdir("/")
    if proc.get("terminal"):
        assert console is not None
        stages.setup_console(console, proc.get("consoleSize"), bind_console=False)
    else:
        os.setsid()
    keep = {0, 1, 2, sock.fileno(), *range(3, 3 + opts.preserve_fds)}
    if tramp is not None:
        keep.add(tramp)
    path, env = process.finish(proc, keep, (lambda: flt.load() and None) if flt else None)
    # No "ready": the socket is close-on-exec, so the parent's EOF means execve succeeded.
    process.exec_now(path, proc["args"], env, tramp)
