"""Resolving container paths inside a root directory, as if it were `/` (no escape).

A rootfs is untrusted: any component of a mount destination may be a symlink planted to
point at the host (CVE-2021-30465 class). Every path the runtime touches inside the rootfs
goes through `resolve_in_root`, which follows symlinks relative to the root and clamps `..`.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # `typing` costs ms of imports on every runtime start
if TYPE_CHECKING:
    from collections.abc import Callable

_MAX_SYMLINKS = 255


def resolve_in_root(root: str, unsafe: str,
                    escape: Callable[[str, str], None] | None = None) -> str:
    """The host path of `unsafe` interpreted inside `root`. Components that do not exist yet
    (or sit under a non-directory) are appended literally, so the result is always under
    `root`. Where the path would leave `root` (a `..` above it, or a symlink to an absolute
    target) it is clamped to `root`, unless `escape(path so far, ".." or the target)` raises
    (a build context refuses what a rootfs clamps)."""
    root = os.path.abspath(root)
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            elif escape is not None:
                escape("", "..")
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
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
            if escape is not None:
                escape("/".join([*resolved, part]), target)
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
