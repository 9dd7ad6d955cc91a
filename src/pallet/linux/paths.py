"""Resolving container paths inside a root directory, as if it were `/` (no escape).

A rootfs is untrusted: any component of a mount destination may be a symlink planted to
point at the host (CVE-2021-30465 class). Every path the runtime touches inside the rootfs
goes through `resolve_in_root`, which follows symlinks relative to the root and clamps `..`.
"""

from __future__ import annotations

import os
import stat

_MAX_SYMLINKS = 255


def resolve_in_root(root: str, unsafe: str) -> str:
    """The host path of `unsafe` interpreted inside `root`. Components that do not exist yet
    are appended literally, so the result is always under `root`."""
    root = os.path.abspath(root)
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise OSError(40, f"too many levels of symbolic links in {unsafe}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return os.path.join(root, *resolved)


def mkdir_all_in_root(root: str, unsafe: str, mode: int = 0o755) -> str:
    """Create `unsafe` (and its parents) inside `root`; returns the host path."""
    path = resolve_in_root(root, unsafe)
    os.makedirs(path, mode=mode, exist_ok=True)
    # A component may have been swapped for a symlink between resolve and mkdir; re-resolving
    # must land on the same place or the path was tampered with.
    if resolve_in_root(root, unsafe) != path:
        raise OSError(40, f"{unsafe} changed while it was being created")
    return path


def create_file_in_root(root: str, unsafe: str) -> str:
    path = resolve_in_root(root, unsafe)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.lexists(path):
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        os.close(fd)
    return path
