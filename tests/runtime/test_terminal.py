"""process.terminal with --console-socket: the runtime sends the pty master over the socket
(SCM_RIGHTS), the container gets the slave as stdio and /dev/console."""

from __future__ import annotations

import os
import threading

from .support import ConsoleSocket, read_pty


def with_terminal(cfg):
    cfg["process"]["terminal"] = True
    cfg["process"]["consoleSize"] = {"height": 30, "width": 100}


def create_with_console(runtime, b, tmp_path):
    sock = ConsoleSocket(tmp_path / "console.sock")
    got: dict[str, int | BaseException] = {}

    def receive():
        try:
            got["fd"] = sock.receive_master()
        except BaseException as e:  # reported below, in the test's thread
            got["error"] = e

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    cid = runtime.new_id()
    try:
        runtime.create(cid, b, "--console-socket", str(sock.path)).ok()
        t.join(timeout=30)
    finally:
        sock.close()
    assert "fd" in got, f"no pty master received: {got.get('error')}"
    return cid, got["fd"]


def test_console_socket_gets_pty_master(runtime, bundle, tmp_path):
    b = bundle(["sh", "-c",
                "tty; for f in 0 1 2; do test -t $f && echo fd$f-tty; done; stty size; "
                "stat -c '%F %t' /dev/console"],
               edit=with_terminal)
    cid, master = create_with_console(runtime, b, tmp_path)
    try:
        assert os.isatty(master)
        runtime.start(cid).ok()
        out = read_pty(master).decode().replace("\r\n", "\n").splitlines()
    finally:
        os.close(master)
    assert out[0].startswith("/dev/pts/"), out
    assert out[1:4] == ["fd0-tty", "fd1-tty", "fd2-tty"], out
    assert out[4] == "30 100", out
    # config-linux.md Default Devices: /dev/console is the pty when terminal is set.
    assert out[5] == "character special file 88", out  # major 136 = 0x88: a unix98 pty slave


def test_terminal_input(runtime, bundle, tmp_path):
    b = bundle(["sh", "-c", "read line; echo got:$line"], edit=with_terminal)
    cid, master = create_with_console(runtime, b, tmp_path)
    try:
        runtime.start(cid).ok()
        os.write(master, b"hello\n")
        out = read_pty(master).decode()
    finally:
        os.close(master)
    assert "got:hello" in out


def test_terminal_without_console_socket_fails(runtime, bundle):
    b = bundle(["true"], edit=with_terminal)
    cid = runtime.new_id()
    runtime.create(cid, b).failed("console")
    runtime.assert_nothing_left(cid, b)


def test_console_socket_without_terminal_fails(runtime, bundle, tmp_path):
    sock = ConsoleSocket(tmp_path / "console.sock")
    try:
        b = bundle(["true"])
        cid = runtime.new_id()
        runtime.create(cid, b, "--console-socket", str(sock.path)).failed("console")
        runtime.assert_nothing_left(cid, b)
    finally:
        sock.close()


def test_no_console_without_terminal(runtime, bundle):
    """runc creates /dev/console only for a terminal; the process gets the caller's stdio."""
    out = runtime.out(bundle(["sh", "-c", "test -e /dev/console && echo console; "
                                          "test -t 0 || echo no-tty"]))
    assert out == "no-tty\n"
