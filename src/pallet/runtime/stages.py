"""Pieces shared by the forked stages of `create` and `exec`: namespaces by name, joining
one by path, errors sent back to the parent as data, reaping, and the console."""

from __future__ import annotations

import _signal
import _socket
import os
import time

from pallet import errors
from pallet.linux import libc
from pallet.runtime import sync
from pallet.runtime.lite import suppress
from pallet.runtime.state import proc_start_time

TYPE_CHECKING = False  # `typing` itself costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

NS_FLAGS = {
    "user": libc.CLONE_NEWUSER,
    "pid": libc.CLONE_NEWPID,
    "network": libc.CLONE_NEWNET,
    "mount": libc.CLONE_NEWNS,
    "ipc": libc.CLONE_NEWIPC,
    "uts": libc.CLONE_NEWUTS,
    "cgroup": libc.CLONE_NEWCGROUP,
    "time": libc.CLONE_NEWTIME,
}
# Joining by path: the mount namespace last, since it changes how later paths resolve.
JOIN_ORDER = ("ipc", "uts", "network", "pid", "cgroup", "time", "mount")


def error_from(msg: dict[str, Any]) -> errors.PalletError:
    kind = msg.get("kind", "system")
    cls = {c.kind: c for c in (errors.NotFound, errors.AlreadyExists, errors.InvalidArgument,
                               errors.FailedPrecondition)}.get(kind, errors.SystemError_)
    return cls(msg.get("message", "container init failed"))


def reap(pid: int) -> None:
    with suppress(ChildProcessError):
        os.waitpid(pid, 0)


def kill_and_wait(pid: int, timeout: float = 5.0) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, _signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while proc_start_time(pid) is not None and time.monotonic() < deadline:
        with suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        time.sleep(0.005)


def report(sock: _socket.socket, e: BaseException) -> None:
    if isinstance(e, errors.PalletError):
        kind, message = e.kind, e.message
    elif isinstance(e, OSError):
        kind, message = "system", e.strerror if e.strerror and not e.filename else str(e)
        if e.filename:
            message = f"{e.filename}: {e.strerror}"
    else:
        kind, message = "system", f"{type(e).__name__}: {e}"
    with suppress(OSError):
        sync.send(sock, "error", kind=kind, message=message)


def join(path: str, t: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc.setns(fd, NS_FLAGS[t], f"{t} namespace {path}")
    finally:
        os.close(fd)


def setup_console(console: _socket.socket, size: dict[str, int] | None,
                  bind_console: bool = True) -> None:
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    name = os.ttyname(slave)
    if size:
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0))
    if bind_console and os.path.exists("/dev/console"):
        libc.mount(name, "/dev/console", None, 4096)  # MS_BIND
    sync.send_fds(console, name.encode(), [master])
    os.close(master)
    console.close()
    os.login_tty(slave)




def connect_console(path: str) -> _socket.socket:
    """The caller's --console-socket, which receives the pty master (runc's protocol)."""
    console = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        console.connect(path)
    except OSError as e:
        console.close()
        raise errors.InvalidArgument(f"--console-socket {path}: {e.strerror}") from None
    return console
