"""Named network namespaces: a new netns kept alive by a bind mount of its nsfs file (what
`ip netns add` does), so CNI plugins and the runtime can join it by path."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import threading

from pallet.linux import libc

MS_BIND = 4096
MS_SHARED = 1 << 20
MS_REC = 1 << 14
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def create(path: str) -> str:
    """A fresh network namespace, its loopback up, pinned at `path` (its directory is
    created). Made by a thread of its own that unshares and then ends: no fork of a
    threaded daemon, and the caller's threads never change namespace."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDONLY | os.O_CLOEXEC, 0o444)
    os.close(fd)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            libc.unshare(libc.CLONE_NEWNET)
            libc.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None,
                       MS_BIND)
            _loopback_up()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=work, name="netns")
    t.start()
    t.join()
    if errors:
        remove(path)
        raise OSError(f"create network namespace {path}: {errors[0]}")
    return path


def _loopback_up() -> None:
    """`ip link set lo up` in the calling thread's network namespace (runtimes do it only
    for namespaces they create themselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def remove(path: str) -> None:
    """Unpin and delete; the namespace dies with its last user."""
    try:
        libc.umount2(path, libc.MNT_DETACH)
    except OSError:
        pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def exists(path: str) -> bool:
    """Pinned: the file is a mount point (of nsfs)."""
    return os.path.ismount(path)
