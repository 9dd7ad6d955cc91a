"""`create`: build the container's environment and leave its init waiting on the exec FIFO.

pallet-runtime is a fresh single-threaded interpreter on every call, so it forks directly
(no re-exec). One SOCK_SEQPACKET socketpair carries the whole protocol:

  parent (create)                stage-1 (intermediate)            init (container's pid 1)
  ───────────────────────────────────────────────────────────────────────────────────────────
  fork (into the v2 cgroup) ──▶  (waits)
  "go" ───────────────────────▶  join the v1 cgroups,
                                 setns(user) or unshare(NEWUSER)
         ◀──────────────────────  "idmap"        (a new user namespace only)
  write uid_map, gid_map
  "idmap-done" ───────────────▶  setns(paths), unshare(the rest)
                                 fork ────────────────────────────▶ (child of the new pid ns)
         ◀──────────────────────  "pid" {pid}                       mounts, /dev, devices
                                 _exit(0)
         ◀─────────────────────────────────────────────────────────  "hooks"
  prestart, createRuntime hooks
  "hooks-done" {state} ───────────────────────────────────────────▶ createContainer hooks,
                                                                    pivot_root, console, hostname,
                                                                    sysctl, ro/masked paths,
                                                                    rlimits, fds, user, caps, nnp
         ◀─────────────────────────────────────────────────────────  "ready"
  write state.json, pid file;                                     open(exec.fifo, O_WRONLY)
  exit                                                            blocks until `start` reads;
                                                                  startContainer hooks, execve
  Any stage may instead send "error" {kind, message} and exit: the parent kills what was
  started, removes the cgroup and the state directory, and reports the message.

Why this order: the cgroup is joined before any namespace so the kernel charges everything
from the first page (how it is joined: `Manager.fork`); the user namespace comes first so the
other namespaces are owned by it; pid and time namespaces only apply to children, hence the
second fork.
"""

from __future__ import annotations

import _signal
import _socket
import gc
import os
import sys

from pallet import errors
from pallet.cgroups import Manager
from pallet.linux import caps, libc, paths
from pallet.oci import runtime_config
from pallet.runtime import hooks, process, stages, sync, trampoline
from pallet.runtime.lite import suppress
from pallet.runtime.rootfs import RootfsSetup
from pallet.runtime.state import (
    CREATED,
    CREATING,
    ContainerState,
    check_id,
    now_rfc3339,
    proc_start_time,
    remove_state_dir,
    write_atomic,
)

TYPE_CHECKING = False  # `typing` itself costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

SYS_keyctl = 250
KEYCTL_JOIN_SESSION_KEYRING = 1


class CreateOptions:
    """runc's create flags. `run` also keeps the init as its child (subreaper) and may
    bring its own console socket."""

    def __init__(self, bundle: str, pid_file: str | None = None,
                 console_socket: str | None = None, preserve_fds: int = 0,
                 no_pivot: bool = False, no_new_keyring: bool = False,
                 subreaper: bool = False, console: _socket.socket | None = None) -> None:
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.preserve_fds = preserve_fds
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.subreaper = subreaper
        self.console = console


def _check_config(config: dict[str, Any], bundle: str) -> str:
    """What can be refused before anything is created."""
    rootfs = os.path.join(bundle, config["root"]["path"])
    if not os.path.exists(rootfs):
        raise errors.NotFound(f"root.path {rootfs}: no such file or directory")
    if not os.path.isdir(rootfs):
        raise errors.InvalidArgument(f"root.path {rootfs}: not a directory")
    if "process" not in config:
        raise errors.InvalidArgument("config.json: process is required to create a container")
    nss = runtime_config.namespaces(config)
    linux = config.get("linux", {})
    if "mount" not in nss:
        # These would change the caller's own mounts, which the container shares.
        for what, present in (("root.readonly", config["root"].get("readonly")),
                              ("linux.rootfsPropagation", linux.get("rootfsPropagation")),
                              ("linux.maskedPaths", linux.get("maskedPaths")),
                              ("linux.readonlyPaths", linux.get("readonlyPaths"))):
            if present:
                raise errors.InvalidArgument(f"{what} needs a private mount namespace")
    if config.get("hostname") and "uts" not in nss:
        raise errors.InvalidArgument("hostname: setting it needs a private UTS namespace")
    if config.get("domainname") and "uts" not in nss:
        raise errors.InvalidArgument("domainname: setting it needs a private UTS namespace")
    for key in linux.get("sysctl", {}):
        _check_sysctl(key, nss)
    seen: set[str] = set()
    for r in config["process"].get("rlimits", []):
        process.rlimit_number(r["type"])
        if r["type"] in seen:
            raise errors.InvalidArgument(f"process.rlimits: {r['type']} is given twice")
        seen.add(r["type"])
    unknown: list[str] = []
    last = caps.last_cap()
    for names in (config["process"].get("capabilities") or {}).values():
        caps.mask(names, last, unknown)
    for field, value in (("process.apparmorProfile", config["process"].get("apparmorProfile")),
                         ("process.selinuxLabel", config["process"].get("selinuxLabel")),
                         ("linux.mountLabel", linux.get("mountLabel"))):
        if value:
            # features reports apparmor and selinux as disabled; say so rather than drop it.
            print(f"pallet-runtime: warning: {field} {value!r} ignored: this runtime has no "
                  "LSM support", file=sys.stderr)
    for name in sorted(set(unknown)):
        # config.md: unknown capabilities are a warning, not an error (newer configs on
        # older kernels).
        print(f"pallet-runtime: warning: ignoring unknown or unavailable capability {name}",
              file=sys.stderr)
    if linux.get("seccomp"):
        from pallet.linux import seccomp

        seccomp.validate(linux["seccomp"])
    for t, path in nss.items():
        if path and not os.path.exists(path):
            raise errors.NotFound(f"linux.namespaces: {t} namespace path {path} does not exist")
        if t == "time" and not os.path.exists("/proc/self/ns/time"):
            raise errors.InvalidArgument("linux.namespaces: time namespaces need Linux 5.6")
    if ("user" in nss and not nss["user"]) and not linux.get("uidMappings"):
        raise errors.InvalidArgument("linux.uidMappings: a new user namespace needs mappings")
    if config["process"].get("terminal") is None:
        pass
    return os.path.realpath(rootfs)


def _check_sysctl(key: str, nss: dict[str, str]) -> None:
    """Only namespaced sysctls may be set, and only when the container has that namespace
    (config-linux.md#sysctl leaves this to the runtime; runc's rules)."""
    ipc = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
           "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
    if key in ipc or key.startswith("fs.mqueue."):
        if "ipc" in nss:
            return
        raise errors.InvalidArgument(f"sysctl {key!r} needs a private IPC namespace")
    if key.startswith("net."):
        if "network" in nss:
            return
        raise errors.InvalidArgument(f"sysctl {key!r} needs a private network namespace")
    if key in ("kernel.hostname", "kernel.domainname"):
        raise errors.InvalidArgument(f"sysctl {key!r}: use the hostname/domainname fields")
    raise errors.InvalidArgument(f"sysctl {key!r} is not namespaced: it would change the host")


def create(root: str, container_id: str, opts: CreateOptions) -> ContainerState:
    check_id(container_id)
    bundle = os.path.abspath(opts.bundle)
    config = runtime_config.load(bundle)
    rootfs = _check_config(config, bundle)
    if config["process"].get("terminal") and not (opts.console_socket or opts.console):
        raise errors.InvalidArgument("process.terminal is set: --console-socket is required")
    if not config["process"].get("terminal") and opts.console_socket:
        raise errors.InvalidArgument("--console-socket given but process.terminal is false")
    os.makedirs(root, mode=0o711, exist_ok=True)
    state_dir = os.path.join(root, container_id)
    try:
        os.mkdir(state_dir, 0o711)
    except FileExistsError:
        raise errors.AlreadyExists(f"container with id {container_id} already exists") from None

    cg = Manager.for_config(config.get("linux", {}).get("cgroupsPath", ""), container_id)
    record: dict[str, Any] = {
        "ociVersion": config["ociVersion"],
        "id": container_id,
        "pid": 0,
        "bundle": bundle,
        "rootfs": rootfs,
        "created": now_rfc3339(),
        "owner": "",
        "annotations": config.get("annotations", {}),
        "cgroupPaths": cg.paths,
        "config": config,
    }
    state = ContainerState(root, container_id, record)
    run = _Creation(state, cg, opts)
    try:
        run.start()
    except BaseException as e:
        run.undo()
        if isinstance(e, errors.PalletError):
            raise
        if isinstance(e, OSError):
            raise errors.SystemError_(str(e)) from None
        raise
    return state


class _Creation:
    """The parent's side of the protocol, and its rollback."""

    def __init__(self, state: ContainerState, cg: Manager, opts: CreateOptions) -> None:
        self.state = state
        self.cg = cg
        self.opts = opts
        self.stage1 = 0
        self.init_pid = 0
        self.fifo_fd = -1
        self.hooks_started = False

    def start(self) -> None:
        st, opts = self.state, self.opts
        os.mkfifo(st.fifo, 0o622)
        os.chmod(st.fifo, 0o622)
        # Opened here and inherited: the init may run as a user that cannot reach --root.
        self.fifo_fd = os.open(st.fifo, os.O_PATH | os.O_CLOEXEC)
        linux = st.config.get("linux", {})
        try:
            self.cg.create()
        except PermissionError as e:
            # Rootless: without a delegated cgroup the container simply has none, as with
            # runc, unless it asks for limits that need one.
            if os.geteuid() == 0 or linux.get("resources", {}).keys() - {"devices"}:
                raise errors.FailedPrecondition(
                    f"cannot create the container's cgroup: {e.strerror} ({e.filename}); "
                    "resource limits need a cgroup this user may write") from None
            self.cg.paths = {}
            st.record["cgroupPaths"] = {}
            linux = {k: v for k, v in linux.items() if k != "resources"}
        if linux.get("resources"):
            self.cg.apply(linux["resources"])
        console = stages.connect_console(opts.console_socket) if opts.console_socket \
            else opts.console
        parent_sock, child_sock = sync.pair()
        if opts.subreaper:
            libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
        for fd in range(3, 3 + opts.preserve_fds):
            try:
                os.set_inheritable(fd, True)
            except OSError:
                raise errors.InvalidArgument(f"--preserve-fds: fd {fd} is not open") from None
        sys.stdout.flush()
        sys.stderr.flush()
        pid, in_v2 = self.cg.fork()
        if pid == 0:
            _child_main(parent_sock, child_sock, st, opts, console, self.cg.paths,
                        self.fifo_fd)
        self.stage1 = pid
        child_sock.close()
        os.close(self.fifo_fd)
        if console is not None and opts.console is None:
            console.close()
        try:
            self.cg.add(pid, v1=False, v2=not in_v2)  # v1: the child joins (Manager.fork)
            sync.send(parent_sock, "go")
            self._serve(parent_sock)
        finally:
            parent_sock.close()
        st.record["pid"] = self.init_pid
        st.record["initStartTime"] = proc_start_time(self.init_pid)
        st.save()
        if opts.pid_file:
            write_atomic(os.path.abspath(opts.pid_file), f"{self.init_pid}".encode(), 0o644)

    def _serve(self, sock: _socket.socket) -> None:
        config = self.state.config
        while True:
            msg = sync.recv(sock)
            if msg is None:
                raise errors.SystemError_("container init exited before it was ready")
            kind = msg["type"]
            if kind == "error":
                raise stages.error_from(msg)
            if kind == "idmap":
                _write_idmaps(msg["pid"], config)
                sync.send(sock, "idmap-done")
            elif kind == "pid":
                self.init_pid = msg["pid"]
                stages.reap(self.stage1)
                self.stage1 = 0
            elif kind == "hooks":
                self.hooks_started = True
                public = self.state.public()
                public.update(status=CREATING, pid=self.init_pid)
                hooks.run_hooks(config, "prestart", public)
                hooks.run_hooks(config, "createRuntime", public)
                sync.send(sock, "hooks-done", state=public)
            elif kind == "seccomp":
                self._seccomp_listener(sock)
            elif kind == "ready":
                return
            else:
                raise errors.SystemError_(f"sync: unexpected message {kind!r}")

    def _seccomp_listener(self, sock: _socket.socket) -> None:
        """SCMP_ACT_NOTIFY: the init's listener fd goes to the agent at listenerPath with
        the container state (config-linux.md#seccomp); the fd comes in a datagram of its own
        because sync.recv drops ancillary data."""
        from pallet.linux import seccomp

        _, fds = sync.recv_fds(sock, 64, 1)
        if not fds:
            raise errors.SystemError_("seccomp: the init sent no listener fd")
        sc = self.state.config["linux"]["seccomp"]
        public = self.state.public()
        public.update(status=CREATING, pid=self.init_pid)
        try:
            seccomp.send_to_listener(sc["listenerPath"], fds[0], public,
                                     sc.get("listenerMetadata", ""))
        finally:
            os.close(fds[0])
        sync.send(sock, "seccomp-done")

    def undo(self, error: BaseException | None = None) -> None:
        public = self.state.public() if self.hooks_started else None
        if self.init_pid:
            stages.kill_and_wait(self.init_pid)
        if self.stage1:
            with suppress(OSError):
                os.kill(self.stage1, _signal.SIGKILL)
            stages.reap(self.stage1)
        with suppress(OSError):
            for pid in self.cg.pids():
                stages.kill_and_wait(pid)
            self.cg.destroy()
        remove_state_dir(self.state.dir)
        if public is not None:
            # runtime.md lifecycle: a failed create hook continues at step 12, destroy,
            # and step 13 runs the poststop hooks.
            public["status"] = "stopped"
            hooks.run_poststop(self.state.config, public)


def _write_idmaps(pid: int, config: dict[str, Any]) -> None:
    linux = config.get("linux", {})

    def fmt(maps: list[dict[str, int]]) -> str:
        return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)

    if os.geteuid() != 0:
        # An unprivileged writer of gid_map must first give up setgroups (user_namespaces(7)).
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
    for name, key in (("uid_map", "uidMappings"), ("gid_map", "gidMappings")):
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(fmt(linux.get(key, [])))
        except OSError as e:
            raise errors.InvalidArgument(f"linux.{key}: writing {name}: {e.strerror}") from None


# --- the children ------------------------------------------------------------------------


def _child_main(parent_sock: _socket.socket, sock: _socket.socket, st: ContainerState,
                opts: CreateOptions, console: _socket.socket | None,
                cgroup_paths: dict[str, str], fifo_fd: int) -> None:
    """Stage-1 and (after the second fork) init. Never returns: every path ends in
    os._exit or execve, and any exception goes back to the parent as a message."""
    gc.disable()
    try:
        parent_sock.close()
        _stage1(sock, st, opts, console, cgroup_paths, fifo_fd)
        os._exit(0)
    except BaseException as e:
        stages.report(sock, e)
        os._exit(1)


def _stage1(sock: _socket.socket, st: ContainerState, opts: CreateOptions,
            console: _socket.socket | None, cgroup_paths: dict[str, str], fifo_fd: int) -> None:
    config = st.config
    sync.expect(sock, "go")
    Manager(cgroup_paths).join_v1()
    nss = runtime_config.namespaces(config)
    if "user" in nss:
        if nss["user"]:
            stages.join(nss["user"], "user")
        else:
            libc.unshare(libc.CLONE_NEWUSER)
            sync.send(sock, "idmap", pid=os.getpid())
            sync.expect(sock, "idmap-done")
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
    for t in stages.JOIN_ORDER:
        if nss.get(t):
            stages.join(nss[t], t)
    flags = 0
    for t, path in nss.items():
        if not path and t != "user":
            flags |= stages.NS_FLAGS[t]
    if flags:
        libc.unshare(flags)
    if "time" in nss and not nss["time"]:
        _write_time_offsets(config.get("linux", {}).get("timeOffsets", {}))
    pid = os.fork()
    if pid == 0:
        try:
            _init(sock, st, opts, console, cgroup_paths, nss, fifo_fd)
        except BaseException as e:
            stages.report(sock, e)
        os._exit(1)
    sync.send(sock, "pid", pid=pid)


def _write_time_offsets(offsets: dict[str, dict[str, int]]) -> None:
    lines = "".join(f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}\n"
                    for clock, o in offsets.items())
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(lines)


def _init(sock: _socket.socket, st: ContainerState, opts: CreateOptions,
          console: _socket.socket | None, cgroup_paths: dict[str, str],
          nss: dict[str, str], fifo_fd: int) -> None:
    config = st.config
    proc = config["process"]
    linux = config.get("linux", {})
    # After pivot_root the host's Python library is out of reach: import now whatever the
    # rest of the init needs.
    if proc.get("terminal"):
        import fcntl  # noqa: F401
        import struct  # noqa: F401
        import termios  # noqa: F401
    if config.get("hooks", {}).get("startContainer"):
        import subprocess  # noqa: F401
    setup = RootfsSetup(config, st.record["bundle"], userns="user" in nss,
                        new_netns=("network" in nss and not nss["network"]),
                        cgroup_paths=cgroup_paths, cgroupns="cgroup" in nss,
                        mountns="mount" in nss)
    # Non-dumpable before any container process can see this one: its /proc entries then
    # need CAP_SYS_PTRACE, and its exe (the host's python) stays out of reach.
    libc.prctl(libc.PR_SET_DUMPABLE, 0)
    tramp = trampoline.sealed_fd()
    if not opts.no_new_keyring:
        _join_session_keyring(st.id)
    # libseccomp is loaded and the filter built while the host's libraries are reachable.
    flt = None
    if linux.get("seccomp"):
        from pallet.linux import seccomp

        flt = seccomp.prepare(linux["seccomp"], st.seccomp_cache)
    setup.prepare()
    # runc creates a missing cwd (as root, before the user switch).
    paths.mkdir_all_in_root(setup.rootfs, proc["cwd"])
    if proc.get("terminal"):
        setup.prepare_console()
    sync.send(sock, "hooks")
    state = sync.expect(sock, "hooks-done")["state"]
    state["pid"] = os.getpid()  # hooks in the container see the init as it sees itself
    hooks.run_hooks(config, "createContainer", state)
    setup.pivot(opts.no_pivot)
    if proc.get("terminal"):
        assert console is not None
        stages.setup_console(console, proc.get("consoleSize"))
    else:
        os.setsid()
    setup.finalize()
    if config.get("hostname"):
        _socket.sethostname(config["hostname"])
    if config.get("domainname"):
        libc.setdomainname(config["domainname"])
    for key, value in linux.get("sysctl", {}).items():
        try:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        except OSError as e:
            raise errors.InvalidArgument(f"linux.sysctl {key}={value}: {e.strerror}") from None
    setup.readonly_paths()
    setup.masked_paths()
    keep = {0, 1, 2, sock.fileno(), fifo_fd, *range(3, 3 + opts.preserve_fds)}
    if tramp is not None:
        keep.add(tramp)
    path, env = process.finish(proc, keep, _seccomp_loader(flt, sock))
    if not os.path.isdir("/proc/self/fd"):
        raise errors.InvalidArgument("the container has no /proc: the runtime needs proc "
                                     "mounted at /proc to wait for `start`")
    sync.send(sock, "ready")
    sock.close()
    # Blocks until `start` opens the FIFO for reading; then the startContainer hooks run
    # and their outcome goes back to `start` over the FIFO: "0", or "1" and the message.
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.close(fifo_fd)
    try:
        state["status"] = CREATED
        hooks.run_hooks(config, "startContainer", state)
    except errors.PalletError as e:
        os.write(fd, b"1" + str(e).encode())
        os._exit(1)
    os.write(fd, b"0")
    os.close(fd)
    process.exec_now(path, proc["args"], env, tramp)


def _seccomp_loader(flt: Any, sock: _socket.socket) -> Any:
    """The callback process.finish calls at the right moment to load the filter; a NOTIFY
    listener fd is handed to the parent, which passes it on to the agent."""
    if flt is None:
        return None

    def load() -> None:
        fd = flt.load()
        if fd is not None:
            sync.send(sock, "seccomp")
            sync.send_fds(sock, b"seccomp-fd", [fd])
            os.close(fd)
            sync.expect(sock, "seccomp-done")

    return load


def _join_session_keyring(container_id: str) -> None:
    import ctypes

    lib = ctypes.CDLL(None, use_errno=True)
    # Errors are ignored as runc does where keyrings are unavailable (ENOSYS, EACCES).
    lib.syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, f"_ses.{container_id}".encode())


