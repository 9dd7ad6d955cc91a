"""pallet-shim: supervises one container for palletd, and outlives palletd.

Started by palletd (never forked from it: a fresh interpreter, in its own session), it
1. becomes a child subreaper, so the container's init (and exec'd processes), orphaned when
   the runtime CLI exits, are its children and their exit status reaches it;
2. runs `<runtime> create` with the container's stdio (pipes, or a pty whose master arrives
   on a console socket), reports `ok <pid>` on stdout, then waits for `start` on its socket;
3. copies the container's output to the log file (json-file or CRI) and to attached
   clients, and clients' input to the container's stdin;
4. on the init's exit drains the output, writes `exit.json` atomically (exit code and time,
   read by palletd if it was down meanwhile), answers waiters and ends attach streams;
5. exits after `delete` (which runs `<runtime> delete`).
The protocol on its socket is in `pallet.shim.wire`. The loop is a plain `select.poll`
loop: asyncio alone would triple the resident size of a shim.
"""

from __future__ import annotations

import _signal
import _socket
import os
import select
import sys
import time

from pallet.shim import wire
from pallet.shim.logs import LogWriter

PR_SET_CHILD_SUBREAPER = 36
TIOCSWINSZ = 0x5414
DRAIN_GRACE = 2.0  # seconds to wait for output EOF after a process has exited
STREAM_OPS = ("attach", "exec")
IN, OUT, ERRMASK = select.POLLIN, select.POLLOUT, select.POLLERR | select.POLLHUP
SPAWN_SIGDEF = (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGCHLD, _signal.SIGINT,
                _signal.SIGTERM, _signal.SIGHUP)


def set_subreaper() -> None:
    """prctl(PR_SET_CHILD_SUBREAPER) through `_ctypes` itself: the `ctypes` package would
    add about 0.45 MiB to every resident shim for this one call."""
    import _ctypes

    class CInt(_ctypes._SimpleCData):
        _type_ = "i"

    class Func(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = CInt

    class Libc:
        _handle = _ctypes.dlopen(None)

    prctl = Func(("prctl", Libc()))
    if prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        e = _ctypes.get_errno()
        raise OSError(e, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(e)}")


def fork_runtime(argv: list[str], fds: tuple[int, int, int]) -> int:
    """pallet-runtime's CLI run in a fork of this shim instead of a new interpreter: the
    same process model as exec'ing it (a child whose exit status is the answer, stdio on
    `fds`, default signal dispositions), without the interpreter start-up on every
    create/start/delete. The runtime's modules are imported in the child only, so the
    resident shim stays small. The shim is single-threaded, which makes the fork safe."""
    pid = os.fork()
    if pid:
        return pid
    code = 127
    try:
        _signal.set_wakeup_fd(-1)
        for sig in SPAWN_SIGDEF:
            _signal.signal(sig, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        # what an exec would have closed (the shim's sockets, logs, pipes): nothing of the
        # shim reaches the runtime, its init stage, or the container
        os.closerange(3, 1 << 20)
        from pallet.cli.runtime.main import main as runtime_main

        code = runtime_main(argv)
        for f in (sys.stdout, sys.stderr):
            f.flush()
    except BaseException as e:  # nothing of this child may return into the shim's loop
        write_quietly(2, f"pallet-runtime (in the shim): {e}\n")
    os._exit(code)


def write_quietly(fd: int, text: str) -> None:
    """A last word on `fd` that cannot fail (on the way to an `os._exit`, or to a peer that
    may be gone)."""
    try:
        os.write(fd, text.encode())
    except OSError:
        pass


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def write_some(fd: int, buf: bytearray) -> None:
    """Write what a non-blocking fd takes now and drop it from `buf`; a broken peer
    (EPIPE, EIO) drops the rest."""
    try:
        del buf[:os.write(fd, buf)]
    except BlockingIOError:
        pass
    except OSError:
        buf.clear()


def set_nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


class Args:
    """`--name value` pairs; repeated `--runtime-arg`; flags `--tty`, `--stdin`."""

    FLAGS = ("tty", "stdin", "runtime_in_process")

    def __init__(self, argv: list[str]) -> None:
        self.runtime_args: list[str] = []
        self.tty = self.stdin = self.runtime_in_process = False
        self.log_format = "json-file"
        self.log_path = ""
        self.log_max_size = "0"
        self.log_max_file = "1"
        self.console_socket = ""
        self.stderr = ""
        vals: dict[str, str] = {}
        it = iter(argv)
        for a in it:
            if not a.startswith("--"):
                raise SystemExit(f"pallet-shim: unexpected argument {a!r}")
            name = a[2:].replace("-", "_")
            if name in self.FLAGS:
                setattr(self, name, True)
            elif name == "runtime_arg":
                self.runtime_args.append(next(it))
            else:
                vals[name] = next(it)
        for k, v in vals.items():
            setattr(self, k, v)
        for need in ("id", "bundle", "dir", "socket", "runtime", "runtime_root"):
            if not getattr(self, need, ""):
                raise SystemExit(f"pallet-shim: --{need.replace('_', '-')} is required")


# --- the objects the loop polls -----------------------------------------------------------


class Output:
    """A readable end of a process's stdout/stderr, or a pty master (`tty`)."""

    def __init__(self, shim: Shim, fd: int, stream: int, proc: Proc) -> None:
        self.shim, self.fd, self.stream, self.proc = shim, fd, stream, proc
        set_nonblocking(fd)

    def mask(self) -> int:
        return IN

    def on_event(self, ev: int) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the pty's last slave is closed
            data = b""
        if not data:
            self.close()
            return
        self.proc.output(self.stream, data)

    def close(self) -> None:
        if self.fd < 0:
            return
        self.shim.drop(self)
        os.close(self.fd)
        self.fd = -1
        self.proc.outputs.discard(self)
        self.proc.maybe_finish()


class Pty(Output):
    """A pty master: the container's output, and where clients' input goes."""

    def __init__(self, shim: Shim, fd: int, proc: Proc) -> None:
        super().__init__(shim, fd, wire.STDOUT, proc)
        self.buf = bytearray()
        self.eof = False

    def mask(self) -> int:
        return (0 if self.eof else IN) | (OUT if self.buf else 0)

    def on_event(self, ev: int) -> None:
        if ev & OUT and self.buf:
            write_some(self.fd, self.buf)
        if ev & (IN | ERRMASK) and not self.eof:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError:  # EIO: the pty's last slave is closed
                data = b""
            if data:
                self.proc.output(self.stream, data)
            else:
                # output is over; the fd stays open for resize until the process is gone
                self.eof = True
                self.proc.outputs.discard(self)
                self.proc.maybe_finish()

    # the Input interface
    def write(self, data: bytes) -> None:
        if self.fd >= 0:
            self.buf += data
            self.shim.watch(self)

    def shut(self) -> None:
        pass


class Input:
    """The writable end of a pipe that clients' stdin goes to."""

    def __init__(self, shim: Shim, fd: int) -> None:
        self.shim, self.fd = shim, fd
        self.buf = bytearray()
        self.closing = False
        set_nonblocking(fd)

    def mask(self) -> int:
        return OUT if self.buf else 0

    def write(self, data: bytes) -> None:
        if self.fd >= 0 and not self.closing:
            self.buf += data
            self.shim.watch(self)

    def on_event(self, ev: int) -> None:
        write_some(self.fd, self.buf)
        if not self.buf and self.closing:
            self.close()

    def shut(self) -> None:
        """Close once what is buffered is written (the container sees EOF)."""
        self.closing = True
        if not self.buf:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            self.shim.drop(self)
            os.close(self.fd)
            self.fd = -1


class Proc:
    """The init, or an exec'd process: its pid, output, stdin and who listens."""

    def __init__(self, shim: Shim, exec_id: str = "") -> None:
        self.shim = shim
        self.exec_id = exec_id
        self.pid = 0
        self.status = "created"
        self.exit_code: int | None = None
        self.exited_at = ""
        self.started_at = ""
        self.outputs: set[Output] = set()
        self.stdin: Input | Pty | None = None
        self.tty_master: Pty | None = None
        self.listeners: list[Conn] = []  # attach streams (init) or the exec's stream
        self.deadline = 0.0
        self.finished = False

    def output(self, stream: int, data: bytes) -> None:
        if self is self.shim.init and self.shim.log is not None:
            self.shim.log.write("stderr" if stream == wire.STDERR else "stdout", data)
        framed = wire.frame(stream, data)
        for c in self.listeners:
            if stream in c.streams:
                c.send(framed)

    def reaped(self, status: int) -> None:
        self.exit_code = exit_code(status)
        self.exited_at = wire.timestamp(time.time_ns())
        self.status = "stopped"
        self.deadline = time.monotonic() + DRAIN_GRACE
        if self is self.shim.init:
            write_atomic(os.path.join(self.shim.args.dir, "exit.json"), wire.line(
                {"exit_code": self.exit_code, "exited_at": self.exited_at, "pid": self.pid}))
        self.maybe_finish()

    def maybe_finish(self, force: bool = False) -> None:
        if self.finished or self.exit_code is None or (self.outputs and not force):
            return
        self.finished = True
        for o in list(self.outputs):
            o.close()
        if self.tty_master is not None:
            self.tty_master.close()
        if self.stdin is not None:
            self.stdin.close()
        if self is self.shim.init:
            if self.shim.log is not None:
                self.shim.log.flush()
            result = wire.line(self.state())
            for w in self.shim.waiters:
                w.send(result)
                w.finish()
            self.shim.waiters.clear()
            for c in self.listeners:
                c.finish()
        else:
            for c in self.listeners:
                c.send(wire.frame(wire.EXIT, wire.dumps(
                    {"exit_code": self.exit_code, "pid": self.pid}).encode()))
                c.finish()
            self.shim.execs.pop(self.exec_id, None)
        self.listeners.clear()

    def state(self) -> dict:
        return {"id": self.shim.args.id, "status": self.status, "pid": self.pid,
                "exit_code": self.exit_code, "exited_at": self.exited_at,
                "started_at": self.started_at}


class Conn:
    """A client of the shim's socket: one request line, then an answer or a stream."""

    def __init__(self, shim: Shim, sock: _socket.socket) -> None:
        self.shim, self.sock, self.fd = shim, sock, sock.fileno()
        sock.setblocking(False)
        self.inbuf = bytearray()
        self.out = bytearray()
        self.req: dict | None = None
        self.stdin: Input | Pty | None = None
        self.stdin_once = False
        self.streams: tuple[int, ...] = ()
        self.reading = True
        self.done = False

    def mask(self) -> int:
        return (IN if self.reading else 0) | (OUT if self.out else 0)

    def send(self, data: bytes) -> None:
        if self.fd >= 0:
            self.out += data
            if len(self.out) > 64 * 1024 * 1024:  # a client that stopped reading
                self.close()
                return
            self.shim.watch(self)

    def finish(self) -> None:
        """Close once the pending output is sent."""
        self.done = True
        self.reading = False
        if not self.out:
            self.close()
        else:
            self.shim.watch(self)

    def on_event(self, ev: int) -> None:
        if ev & OUT and self.out:
            try:
                n = self.sock.send(self.out)
                del self.out[:n]
            except BlockingIOError:
                pass
            except OSError:
                self.close()
                return
            if not self.out and self.done:
                self.close()
                return
        if ev & (IN | ERRMASK) and self.reading:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.reading = False
                self.eof()
                return
            if self.req is None:
                self.inbuf += data
                nl = self.inbuf.find(b"\n")
                if nl < 0:
                    if len(self.inbuf) > 1 << 20:
                        self.close()
                    return
                try:
                    req = wire.loads(bytes(self.inbuf[:nl]))
                    if not isinstance(req, dict):
                        raise ValueError("request is not an object")
                except ValueError as e:
                    self.send(wire.line({"error": str(e)}))
                    self.finish()
                    return
                rest = bytes(self.inbuf[nl + 1:])
                self.inbuf.clear()
                self.req = req
                self.shim.dispatch(self, req)
                if rest:
                    self.on_stdin(rest)
            else:
                self.on_stdin(data)

    def on_stdin(self, data: bytes) -> None:
        if self.stdin is not None:
            self.stdin.write(data)

    def eof(self) -> None:
        if self.stdin is not None and self.stdin_once:
            self.stdin.shut()
        self.stdin = None
        if self.req is None or self in self.shim.waiters or (self.done and not self.out):
            self.close()

    def close(self) -> None:
        if self.fd < 0:
            return
        self.shim.drop(self)
        for p in [self.shim.init, *self.shim.execs.values()]:
            if self in p.listeners:
                p.listeners.remove(self)
        if self in self.shim.waiters:
            self.shim.waiters.remove(self)
        self.sock.close()
        self.fd = -1


class Listener:
    def __init__(self, shim: Shim, path: str) -> None:
        self.shim = shim
        if os.path.lexists(path):
            os.unlink(path)
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o600)
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()

    def mask(self) -> int:
        return IN

    def on_event(self, ev: int) -> None:
        try:
            fd, _addr = self.sock._accept()
        except BlockingIOError:
            return
        self.shim.watch(Conn(self.shim, _socket.socket(fileno=fd)))


class SignalPipe:
    def __init__(self, shim: Shim) -> None:
        self.shim = shim
        self.fd, self.wfd = os.pipe()
        set_nonblocking(self.fd)
        set_nonblocking(self.wfd)
        _signal.set_wakeup_fd(self.wfd)
        _signal.signal(_signal.SIGCHLD, lambda *_: None)

    def mask(self) -> int:
        return IN

    def on_event(self, ev: int) -> None:
        try:
            os.read(self.fd, 4096)
        except BlockingIOError:
            pass
        self.shim.reap()


# --- the supervisor ------------------------------------------------------------------------


class Shim:
    def __init__(self, args: Args) -> None:
        self.args = args
        self.objs: dict[int, object] = {}
        self.init = Proc(self)
        self.execs: dict[str, Proc] = {}
        self.waiters: list[Conn] = []
        self.log: LogWriter | None = None
        self.exiting = False
        self.by_pid: dict[int, Proc] = {}
        self.early: dict[int, int] = {}  # statuses reaped before their pid was known

    def watch(self, obj) -> None:
        if obj.fd >= 0:
            self.objs[obj.fd] = obj

    def drop(self, obj) -> None:
        if self.objs.get(obj.fd) is obj:
            del self.objs[obj.fd]

    # --- the runtime CLI -------------------------------------------------------------------

    def runtime(self, *argv: str, stdio: tuple[int, int, int] | None = None) -> None:
        a = self.args
        log = os.path.join(a.dir, "runtime.log")
        cmd = [a.runtime, "--root", a.runtime_root, "--log", log, "--log-format", "json",
               *a.runtime_args, *argv]
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        fds = stdio or (null, null, null)
        try:
            if a.runtime_in_process:
                pid = fork_runtime(cmd[1:], fds)
            else:
                actions = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(fds)]
                pid = os.posix_spawnp(cmd[0], cmd, dict(os.environ), file_actions=actions,
                                      setsigdef=SPAWN_SIGDEF, setsigmask=())
        finally:
            os.close(null)
        status = self.wait_for(pid)
        if status != 0:
            raise RuntimeError(f"{os.path.basename(a.runtime)} {argv[0]}: "
                               f"{runtime_error(log) or f'exit status {exit_code(status)}'}")

    def wait_for(self, pid: int) -> int:
        """Wait for one child, keeping statuses of other children reaped meanwhile."""
        while True:
            got, status = os.waitpid(-1, 0)
            if got == pid:
                return status
            self.on_exit(got, status)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.on_exit(pid, status)

    def on_exit(self, pid: int, status: int) -> None:
        proc = self.by_pid.pop(pid, None)
        if proc is None:
            self.early[pid] = status
        else:
            proc.reaped(status)

    def track(self, proc: Proc, pid: int) -> None:
        proc.pid = pid
        if pid in self.early:
            proc.reaped(self.early.pop(pid))
        else:
            self.by_pid[pid] = proc

    # --- stdio -----------------------------------------------------------------------------

    def stdio(self, proc: Proc, tty: bool, stdin: bool, console: str
              ) -> tuple[tuple[int, int, int] | None, list[int], _socket.socket | None]:
        """Make the process's stdio; returns (fds for the runtime, our copies of the
        container's ends to close after the runtime ran, console listener)."""
        if tty:
            if os.path.lexists(console):
                os.unlink(console)
            lsock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            lsock.bind(console)
            lsock.listen(1)
            return None, [], lsock
        theirs: list[int] = []
        if stdin:
            r, w = os.pipe()
            proc.stdin = Input(self, w)
            theirs.append(r)
        else:
            theirs.append(os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC))
        for stream in (wire.STDOUT, wire.STDERR):
            r, w = os.pipe()
            o = Output(self, r, stream, proc)
            proc.outputs.add(o)
            self.watch(o)
            theirs.append(w)
        return (theirs[0], theirs[1], theirs[2]), theirs, None

    def receive_master(self, proc: Proc, lsock: _socket.socket, path: str) -> None:
        lsock.settimeout(10)
        try:
            fd, _ = lsock._accept()
            conn = _socket.socket(fileno=fd)
            conn.settimeout(10)
            _msg, anc, _flags, _addr = conn.recvmsg(4096, _socket.CMSG_SPACE(16))
            conn.close()
        finally:
            lsock.close()
            os.unlink(path)
        fds = received_fds(anc)
        if not fds:
            raise RuntimeError("no pty master arrived on the console socket")
        master = fds[0]
        for extra in fds[1:]:
            os.close(extra)
        os.set_inheritable(master, False)
        pty = Pty(self, master, proc)
        proc.tty_master = pty
        proc.outputs.add(pty)
        self.watch(pty)
        proc.stdin = pty

    # --- lifecycle -------------------------------------------------------------------------

    def create(self) -> int:
        a = self.args
        pidfile = os.path.join(a.dir, "init.pid")
        if a.log_path:
            self.log = LogWriter(a.log_path, a.log_format, max_size=int(a.log_max_size),
                                 max_file=int(a.log_max_file))
        console = a.console_socket or os.path.join(a.dir, "console.sock")
        fds, theirs, lsock = self.stdio(self.init, a.tty, a.stdin, console)
        argv = ["create", "--bundle", a.bundle, "--pid-file", pidfile]
        if lsock is not None:
            argv += ["--console-socket", console]
        try:
            self.runtime(*argv, a.id, stdio=fds)
        finally:
            for fd in theirs:
                os.close(fd)
        if lsock is not None:
            self.receive_master(self.init, lsock, console)
        with open(pidfile) as f:
            pid = int(f.read().strip())
        self.track(self.init, pid)
        return pid

    def dispatch(self, conn: Conn, req: dict) -> None:
        op = req.get("op")
        try:
            handler = getattr(self, f"op_{op}", None)
            if handler is None:
                raise ValueError(f"unknown op {op!r}")
            answer = handler(conn, req)
        except Exception as e:
            # a stream op fails with an EXIT frame (the client reads frames), others with a line
            err = {"error": str(e) or type(e).__name__}
            conn.send(wire.frame(wire.EXIT, wire.dumps(err).encode()) if op in STREAM_OPS
                      else wire.line(err))
            conn.finish()
            return
        if answer is not None:
            conn.send(wire.line(answer))
            conn.finish()

    def op_state(self, conn: Conn, req: dict) -> dict:
        return self.init.state()

    def op_start(self, conn: Conn, req: dict) -> dict:
        if self.init.status != "created":
            raise RuntimeError(f"container is {self.init.status}, not created")
        self.runtime("start", self.args.id)
        if self.init.status == "created":
            self.init.status = "running"
        self.init.started_at = wire.timestamp(time.time_ns())
        return self.init.state()

    def op_kill(self, conn: Conn, req: dict) -> dict:
        sig = int(req.get("signal") or _signal.SIGTERM)
        proc = self.execs.get(req["exec"]) if req.get("exec") else self.init
        if proc is None:
            raise LookupError(f"exec {req['exec']}: not found")
        if req.get("all"):
            self.runtime("kill", "--all", self.args.id, str(sig))
        elif proc.exit_code is None and proc.pid:
            os.kill(proc.pid, sig)
        return {"ok": True}

    def op_resize(self, conn: Conn, req: dict) -> dict:
        import fcntl

        proc = self.execs.get(req["exec"]) if req.get("exec") else self.init
        if proc is None or proc.tty_master is None or proc.tty_master.fd < 0:
            raise RuntimeError("no terminal to resize")
        h, w = int(req.get("height", 0)), int(req.get("width", 0))
        ws = b"".join(x.to_bytes(2, sys.byteorder) for x in (h, w, 0, 0))
        fcntl.ioctl(proc.tty_master.fd, TIOCSWINSZ, ws)
        return {"ok": True}

    def op_wait(self, conn: Conn, req: dict) -> dict | None:
        if self.init.finished:
            return self.init.state()
        self.waiters.append(conn)
        return None

    def op_close_stdin(self, conn: Conn, req: dict) -> dict:
        if self.init.stdin is not None and not self.args.tty:
            self.init.stdin.shut()
        return {"ok": True}

    def op_delete(self, conn: Conn, req: dict) -> dict:
        if self.init.exit_code is None and not req.get("force"):
            raise RuntimeError("container is running: stop it first or force")
        argv = ["delete", "--force"] if req.get("force") else ["delete"]
        try:
            self.runtime(*argv, self.args.id)
        except RuntimeError:
            if not req.get("force"):
                raise
        self.exiting = True
        return {"ok": True}

    def op_attach(self, conn: Conn, req: dict) -> None:
        streams = [s for s, on in ((wire.STDOUT, req.get("stdout")),
                                   (wire.STDERR, req.get("stderr"))) if on]
        conn.streams = tuple(streams)
        if req.get("stdin") and self.init.stdin is not None:
            conn.stdin = self.init.stdin
            conn.stdin_once = bool(req.get("stdin_once"))
        if self.init.finished:
            conn.finish()
            return None
        self.init.listeners.append(conn)
        return None

    def op_exec(self, conn: Conn, req: dict) -> None:
        a = self.args
        if self.init.exit_code is not None or self.init.status != "running":
            raise RuntimeError("container is not running")
        eid = str(req["id"])
        proc = Proc(self, eid)
        tty = bool(req.get("tty"))
        spec = os.path.join(a.dir, f"exec-{eid}.json")
        pidfile = os.path.join(a.dir, f"exec-{eid}.pid")
        with open(spec, "w") as f:
            f.write(wire.dumps(req["process"]))
        console = req.get("console_socket") or os.path.join(a.dir, f"exec-{eid}.sock")
        fds, theirs, lsock = self.stdio(proc, tty, bool(req.get("stdin")), console)
        argv = ["exec", "--process", spec, "--pid-file", pidfile, "--detach"]
        if lsock is not None:
            argv += ["--console-socket", console]
        try:
            try:
                self.runtime(*argv, a.id, stdio=fds)
            finally:
                for fd in theirs:
                    os.close(fd)
            if lsock is not None:
                self.receive_master(proc, lsock, console)
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except BaseException:
            for o in list(proc.outputs):
                o.close()
            if proc.stdin is not None:
                proc.stdin.close()
            raise
        finally:
            for p in (spec, pidfile):
                if os.path.exists(p):
                    os.unlink(p)
        conn.streams = (wire.STDOUT, wire.STDERR)
        if proc.stdin is not None:
            conn.stdin = proc.stdin
            conn.stdin_once = True
        proc.listeners.append(conn)
        proc.status = "running"
        self.execs[eid] = proc
        self.track(proc, pid)
        conn.send(wire.frame(wire.STARTED, wire.dumps({"pid": pid}).encode()))
        return None

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        poller = select.poll
        while True:
            if self.exiting and not any(isinstance(o, Conn) and o.out
                                        for o in self.objs.values()):
                return
            now = time.monotonic()
            timeout = None
            for p in [self.init, *self.execs.values()]:
                if p.exit_code is not None and not p.finished:
                    if now >= p.deadline:
                        p.maybe_finish(force=True)
                    else:
                        left = p.deadline - now
                        timeout = left if timeout is None else min(timeout, left)
            if self.exiting:
                timeout = 0.05
            p = poller()
            for fd, obj in self.objs.items():
                m = obj.mask()
                if m:
                    p.register(fd, m)
            events = p.poll(None if timeout is None else int(timeout * 1000) + 1)
            for fd, ev in events:
                obj = self.objs.get(fd)
                if obj is not None:
                    obj.on_event(ev)


def runtime_error(log: str) -> str:
    """The last error message in the runtime's JSON log."""
    try:
        with open(log, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    for raw in reversed(lines):
        try:
            entry = wire.loads(raw)
        except ValueError:
            if raw.strip():
                return raw.decode(errors="replace").strip()
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", ""))
    return ""


# what a create, start, delete or exec in a fork of the shim imports: loaded once in the
# zygote, shared by every shim forked from it
RUNTIME_MODULES = ("pallet.cli.runtime.main", "pallet.cli.runtime.verbs",
                   "pallet.runtime.create", "pallet.runtime.container", "pallet.runtime.exec",
                   "pallet.cgroups.v1", "pallet.cgroups.v2", "pallet.linux.seccomp",
                   "_sha256")


def received_fds(anc: list[tuple[int, int, bytes]]) -> list[int]:
    return [int.from_bytes(data[i:i + 4], sys.byteorder)
            for level, kind, data in anc
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
            for i in range(0, len(data) - len(data) % 4, 4)]


def set_title(title: str) -> None:
    """Rewrite what /proc/PID/cmdline shows (a forked shim would otherwise show the
    zygote's command line), within the bytes the kernel gave the original argv: through
    /proc/self/mem, since prctl(PR_SET_MM) needs CAP_SYS_RESOURCE."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (48, 49)
        raw = title.replace(" ", "\0").encode()[:end - start - 1]
        fd = os.open("/proc/self/mem", os.O_RDWR | os.O_CLOEXEC)
        try:
            os.pwrite(fd, raw.ljust(end - start, b"\0"), start)
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError):
        pass  # cosmetic


def zygote() -> None:
    """`--zygote <marker>`: the template every shim is forked from. palletd keeps one, its
    stdin a SOCK_SEQPACKET socket: each message is a shim's arguments (a JSON list) with the
    write end of a pipe for the shim's `ok <pid>` line. Forking a resident interpreter
    takes the shim's start-up and the runtime's imports off a container's start, and the
    shims share the zygote's pages (interpreter, modules) copy-on-write instead of each
    holding its own copy. It exits at EOF: when palletd goes, so does it; the shims stay."""
    import gc

    for name in RUNTIME_MODULES:
        try:
            __import__(name)
        except Exception:  # a fork imports what it needs, as without a zygote
            pass
    # what is imported now is never collected: the collector must not write into (and so
    # unshare) the pages of these objects in every shim
    gc.collect()
    gc.freeze()
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)  # shims are reaped by the kernel
    ctl = _socket.socket(fileno=0)
    while True:
        msg, anc, _flags, _addr = ctl.recvmsg(65536, _socket.CMSG_SPACE(4 * 4))
        fds = received_fds(anc)
        if not msg and not fds:
            os._exit(0)
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            continue
        try:
            if os.fork() == 0:
                shim_child(ctl, msg, fds[0])
        except OSError as e:  # EAGAIN, ENOMEM: this start fails, the zygote stays
            write_quietly(fds[0], f"error pallet-shim: fork: {e.strerror}\n")
        os.close(fds[0])


def shim_child(ctl: _socket.socket, msg: bytes, result_fd: int) -> None:
    """A shim forked from the zygote: its own session, stdin /dev/null, stdout the pipe
    palletd reads `ok <pid>` or `error <msg>` from."""
    code = 1
    try:
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
        ctl.detach()
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(result_fd, 1)
        os.close(null)
        os.close(result_fd)
        os.setsid()
        argv = wire.loads(msg)
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError("the shim's arguments are not a list of strings")
        run(argv, forked=True)
        code = 0
    except BaseException as e:  # nothing of this child may return into the zygote's loop
        write_quietly(1, f"error pallet-shim: {e}\n")
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--zygote"]:
        zygote()
    run(argv)


def run(argv: list[str], forked: bool = False) -> None:
    args = Args(argv)
    if forked:  # its command line is the zygote's: name the container (by its directory)
        set_title(f"pallet-shim {args.dir}")
    if args.stderr:  # a forked shim learns its log only now
        fd = os.open(args.stderr, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     0o644)
        os.dup2(fd, 2)
        os.close(fd)
    os.makedirs(args.dir, exist_ok=True)
    shim = Shim(args)
    try:
        set_subreaper()
        sig = SignalPipe(shim)
        shim.watch(sig)
        shim.watch(Listener(shim, args.socket))
        pid = shim.create()
    except BaseException as e:
        msg = str(e).replace("\n", " ") or type(e).__name__
        try:  # whatever the runtime left behind
            shim.runtime("delete", "--force", args.id)
        except Exception:
            pass
        os.write(1, f"error {msg}\n".encode())
        if os.path.lexists(args.socket):
            os.unlink(args.socket)
        os._exit(1)
    os.write(1, f"ok {pid}\n".encode())
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    shim.run()
    if os.path.lexists(args.socket):
        os.unlink(args.socket)
    os._exit(0)


if __name__ == "__main__":
    main()
