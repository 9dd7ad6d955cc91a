"""Named network namespaces: a new netns kept alive by a bind mount of its nsfs file (what
`ip netns add` does), so CNI plugins and the runtime can join it by path."""

from __future__ import annotations

import os

from pallet.linux import libc

MS_BIND = 4096
MS_SHARED = 1 << 20
MS_REC = 1 << 14


def create(path: str) -> str:
    """A fresh network namespace pinned at `path` (its directory is created)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDONLY | os.O_CLOEXEC, 0o444)
    os.close(fd)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            libc.unshare(libc.CLONE_NEWNET)
            libc.mount(f"/proc/{os.getpid()}/ns/net", path, None, MS_BIND)
            os.write(w, b"0")
        except BaseException as e:
            os.write(w, f"1{e}".encode())
        os._exit(0)
    os.close(w)
    try:
        msg = os.read(r, 4096).decode()
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    if msg != "0":
        os.unlink(path)
        raise OSError(f"create network namespace {path}: {msg[1:] or 'child died'}")
    return path


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
