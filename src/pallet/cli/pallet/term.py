"""Terminal side of attach, run and exec: raw mode, window size (SIGWINCH), detach keys,
copying between stdin/stdout and a hijacked socket, and stdcopy demultiplexing."""

from __future__ import annotations

import os
import sys

# The terminal modules (termios, tty, signal, ...) are imported where used: most commands
# have no terminal to set up, and `signal` alone pulls in `enum`.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    from collections.abc import Callable

DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


def size() -> tuple[int, int] | None:
    """(rows, columns) of the terminal on stdout or stdin."""
    for fd in (1, 0):
        if os.isatty(fd):
            import fcntl
            import struct
            import termios

            try:
                rows, cols, _, _ = struct.unpack(
                    "HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
                if rows and cols:
                    return rows, cols
            except OSError:
                continue
    return None


class raw_mode:  # lowercase: used as the function it was, `with raw_mode(on):`
    """stdin in raw mode during the block, when `enabled` and stdin is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.saved = enabled, None

    def __enter__(self) -> None:
        if self.enabled and os.isatty(0):
            import termios
            import tty

            self.saved = termios.tcgetattr(0)
            tty.setraw(0)

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)


class on_resize:  # lowercase: used as the function it was, `with on_resize(f):`
    """Call `resize(rows, columns)` on SIGWINCH during the block, with a terminal."""

    def __init__(self, resize: Callable[[int, int], None] | None) -> None:
        self.resize, self.active, self.old = resize, False, None

    def __enter__(self) -> None:
        if self.resize is not None and (os.isatty(0) or os.isatty(1)):
            import signal

            self.old = signal.signal(signal.SIGWINCH, self._handler)
            self.active = True

    def _handler(self, signum: int, frame: object) -> None:
        s = size()
        if s and self.resize is not None:
            try:
                self.resize(*s)
            except Exception:
                pass

    def __exit__(self, *exc: object) -> None:
        if self.active:
            import signal

            signal.signal(signal.SIGWINCH, self.old)


class Demux:
    """stdcopy frames -> stdout/stderr (or raw bytes for a tty)."""

    def __init__(self, tty_: bool) -> None:
        self.tty = tty_
        self.buf = b""

    def feed(self, data: bytes) -> None:
        if self.tty:
            _write(1, data)
            return
        self.buf += data
        while len(self.buf) >= 8:
            n = int.from_bytes(self.buf[4:8], "big")
            if len(self.buf) < 8 + n:
                break
            stream, payload = self.buf[0], self.buf[8:8 + n]
            self.buf = self.buf[8 + n:]
            _write(2 if stream == 2 else 1, payload)


def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        data = data[n:]


def copy(sock: _socket.socket, first: bytes, *, tty_: bool, stdin: bool,
         detach_keys: bytes | None = DETACH_KEYS) -> bool:
    """Until the daemon ends the stream (True) or the user typed the detach keys (False)."""
    import select
    from _socket import SHUT_WR  # not `socket`: see uhttp.unix_socket

    demux = Demux(tty_)
    if first:
        demux.feed(first)
    inputs = [sock]
    if stdin:
        inputs.append(sys.stdin)
    window = b""
    while True:
        try:
            ready, _, _ = select.select(inputs, [], [])
        except InterruptedError:
            continue
        if sock in ready:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return True
            demux.feed(data)
        if sys.stdin in ready:
            data = os.read(0, 65536)
            if not data:
                inputs.remove(sys.stdin)
                try:
                    sock.shutdown(SHUT_WR)
                except OSError:
                    pass
                continue
            if tty_ and detach_keys:
                seen = window + data
                i = seen.find(detach_keys)
                if i >= 0:
                    head = seen[len(window):i] if i >= len(window) else b""
                    if head:
                        sock.sendall(head)
                    return False
                window = seen[-(len(detach_keys) - 1):] if len(detach_keys) > 1 else b""
            sock.sendall(data)


def parse_detach_keys(spec: str | None) -> bytes:
    from pallet.daemon.keys import parse_detach_keys as parse

    return parse(spec)
