"""`run`: create + start, then (unless detached) stay as the container's parent: forward
signals, proxy the terminal when there is no console socket, and return its exit status."""

from __future__ import annotations

import _signal
import _socket
import os
import sys

from pallet.errors import InvalidArgument
from pallet.runtime import container, sync
from pallet.runtime.create import create
from pallet.runtime.lite import suppress

TYPE_CHECKING = False  # `typing` itself costs ms of imports on every runtime start

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pallet.cli.runtime.flags import Namespace
    from pallet.cli.runtime.main import Context

FORWARDED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1,
             _signal.SIGUSR2, _signal.SIGWINCH, _signal.SIGCONT)


def run(ctx: Context, ns: Namespace, make_opts: Callable[..., Any]) -> int:
    from pallet.oci import runtime_config

    config = runtime_config.load(os.path.abspath(ns.bundle))
    terminal = bool(config.get("process", {}).get("terminal"))
    own_console = terminal and not ns.console_socket
    if own_console and ns.detach:
        raise InvalidArgument("run --detach with process.terminal needs --console-socket")
    ours = theirs = None
    if own_console:
        ours, theirs = own_console()
    st = create(ctx.root, ns.id, make_opts(ns, subreaper=not ns.detach, console=theirs))
    master = None
    if ours is not None:
        assert theirs is not None
        theirs.close()
        master = receive_master(ours)
    try:
        container.start(st)
    except BaseException:
        container.delete(st, force=True)
        raise
    if ns.detach:
        return 0
    status = supervise(st.pid, master)
    if not ns.keep:
        container.delete(st, force=True)
    return status


def supervise(pid: int, master: int | None) -> int:
    """Stay the process's parent until it exits: forward signals, proxy its terminal, and
    return its status the way a shell reports it."""

    def forward(sig: int, _frame: object) -> None:
        with suppress(ProcessLookupError):
            os.kill(pid, sig)

    for sig in FORWARDED:
        _signal.signal(sig, forward)
    if master is not None:
        _proxy(master, pid)
    return _wait(pid)


def own_console() -> tuple[_socket.socket, _socket.socket]:
    """A socketpair standing in for --console-socket when we proxy the terminal ourselves."""
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)


def receive_master(ours: _socket.socket) -> int:
    _, fds = sync.recv_fds(ours, 4096, 1)
    ours.close()
    return fds[0]


def _wait(pid: int) -> int:
    """Reap until the init is reaped: as subreaper we also inherit its orphans."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if got == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else \
                128 + os.WTERMSIG(status)


def _proxy(master: int, pid: int) -> None:
    import select
    import termios
    import tty

    stdin = sys.stdin.fileno()
    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
    try:
        fds = [master, stdin]
        while True:
            ready, _, _ = select.select(fds, [], [])
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    fds.remove(stdin)
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        os.close(master)
