"""Terminal side of attach, run and exec: raw mode, window size (SIGWINCH), detach keys,
copying between stdin/stdout and a hijacked socket, and stdcopy demultiplexing."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import termios
import tty
from collections.abc import Callable, Iterator

DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


def size() -> tuple[int, int] | None:
    """(rows, columns) of the terminal on stdout or stdin."""
    for fd in (1, 0):
        if os.isatty(fd):
            try:
                rows, cols, _, _ = struct.unpack(
                    "HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
                if rows and cols:
                    return rows, cols
            except OSError:
                continue
    return None


@contextlib.contextmanager
def raw_mode(enabled: bool) -> Iterator[None]:
    if not enabled or not os.isatty(0):
        yield
        return
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def on_resize(resize: Callable[[int, int], None] | None) -> Iterator[None]:
    if resize is None or not (os.isatty(0) or os.isatty(1)):
        yield
        return

    def handler(signum: int, frame: object) -> None:
        s = size()
        if s:
            with contextlib.suppress(Exception):
                resize(*s)

    old = signal.signal(signal.SIGWINCH, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, old)


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
            select.select([], [fd], [])
            continue
        data = data[n:]


def copy(sock: socket.socket, first: bytes, *, tty_: bool, stdin: bool,
         detach_keys: bytes | None = DETACH_KEYS) -> bool:
    """Until the daemon ends the stream (True) or the user typed the detach keys (False)."""
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
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
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
