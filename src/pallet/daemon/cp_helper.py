"""The file side of `docker cp` and `docker export`: container paths as dockerd reads them,
their stat, and the child process that reads or writes the files chrooted into the
container's root filesystem (as dockerd's docker-tar / docker-untar re-exec does).

Why a child in a chroot: a running container can swap any directory of its tree for a
symlink while a copy walks it (CVE-2018-15664). In the chroot every path the copy uses,
with its symlinks and `..`, is resolved by the kernel inside the container's root, whatever
the container does meanwhile. Everything the child needs is imported before the chroot:
the container's tree has no Python.

    python -m pallet.daemon.cp_helper tar ROOT MOUNTS PATH
        stdout: one JSON line ({"stat": ...} or {"error": kind, "message": ...}), the tar
    python -m pallet.daemon.cp_helper untar ROOT MOUNTS PATH NO_OVERWRITE UID GID
        stdin: a tar (or a compressed one); stdout: one JSON line, {} or the error
    python -m pallet.daemon.cp_helper layer UPPERDIR [] SKIP
        stdout: an overlay upperdir's changes as a layer tar (SKIP: JSON list of paths)
    python -m pallet.daemon.cp_helper stat ROOT MOUNTS PATH
        stdout: one JSON line, {"stat": ...} or the error
    python -m pallet.daemon.cp_helper export ROOT MOUNTS /
        stdout: as tar, the entries named as `docker export` names them (`bin/sh`)

MOUNTS is a JSON list of the container's bind mounts (runtime-spec mounts): they are
mounted over the root first, in the child's own mount namespace, so a copy reads and writes
a volume as the container sees it (dockerd mounts them for a copy too), and nothing outside
the child ever sees those mounts.

Path semantics are dockerd's (`container.ResolvePath`): the path is absolute in the
container; every component but the last is resolved (symlinks followed inside the root);
the last is taken as it is, unless the path ends in `/` or `/.`. Tar entries are named from
the last element (`/etc/passwd` -> `passwd`, `/etc` -> `etc/...`, `/` -> `/`, `/bin/...`).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import importlib
import json
import os
import posixpath
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from pallet.errors import InvalidArgument, NotFound, PalletError
from pallet.images.apply import ApplyOptions, apply_layer
from pallet.images.diff import TarWriter, tar_overlay_upper, tar_tree
from pallet.images.fsview import FullView, split
from pallet.linux import libc
from pallet.linux.paths import resolve_in_root

# Go's os.FileMode type bits: the docker CLI reads the stat's mode with them.
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, \
    1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHAR, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


@dataclass
class ContainerPath:
    """A path as the API names it, split the way dockerd resolves it."""

    abs: str        # absolute, cleaned
    dir: str        # resolved inside the root (symlinks followed)
    base: str       # the last element, never followed; "" when the path names `dir`
    name: str       # Go's filepath.Base of the path: the stat's name and the tar prefix

    @classmethod
    def parse(cls, path: str) -> ContainerPath:
        if not path:
            raise InvalidArgument("path cannot be empty")
        clean = posixpath.normpath("/" + path.lstrip("/"))
        if path == "." or path.endswith("/."):
            return cls(clean, clean, "", ".")
        if path.endswith("/") or clean == "/":
            return cls(clean, clean, "", posixpath.basename(clean) or "/")
        d, b = posixpath.split(clean)
        return cls(clean, d, b, b)


def go_mode(mode: int) -> int:
    out = stat.S_IMODE(mode) & 0o777
    kind = stat.S_IFMT(mode)
    out |= {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFBLK: _GO_DEVICE,
            stat.S_IFCHR: _GO_DEVICE | _GO_CHAR, stat.S_IFIFO: _GO_PIPE,
            stat.S_IFSOCK: _GO_SOCKET}.get(kind, 0)
    for bit, go in ((stat.S_ISUID, _GO_SETUID), (stat.S_ISGID, _GO_SETGID),
                    (stat.S_ISVTX, _GO_STICKY)):
        if mode & bit:
            out |= go
    return out


def go_time(ns: int) -> str:
    """RFC 3339 with nanoseconds, trailing zeros cut (Go's time.RFC3339Nano)."""
    sec, frac = divmod(ns, 1_000_000_000)
    s = datetime.datetime.fromtimestamp(sec, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return s + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def _not_found(p: ContainerPath) -> NotFound:
    return NotFound(f"lstat {p.abs}: no such file or directory")


def stat_path(root: str, path: str) -> dict[str, Any]:
    """`X-Docker-Container-Path-Stat` of `path` in the tree at `root`. The directory is
    opened with RESOLVE_IN_ROOT, so the kernel keeps the lookup inside the root even while
    a running container changes its tree."""
    p = ContainerPath.parse(path)
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            dfd = libc.openat2(rootfd, p.dir.lstrip("/") or ".", os.O_PATH | os.O_DIRECTORY,
                               libc.RESOLVE_IN_ROOT | libc.RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise _not_found(p) from None
            raise
        try:
            st = os.stat(p.base or ".", dir_fd=dfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(p) from None
        finally:
            os.close(dfd)
    finally:
        os.close(rootfd)
    link = ""
    if stat.S_ISLNK(st.st_mode):
        # the link as the container sees it: fully resolved, relative to its root
        host = resolve_in_root(root, p.abs)
        link = "/" + os.path.relpath(host, os.path.abspath(root)).removeprefix(".")
        link = posixpath.normpath(link)
    return {"name": p.name, "size": st.st_size, "mode": go_mode(st.st_mode),
            "mtime": go_time(st.st_mtime_ns), "linkTarget": link}


# --- in the chroot ------------------------------------------------------------------------


def write_tar(path: str, out: BinaryIO) -> None:
    """The tar of `path` (the chroot is the container's root), as `GET .../archive`."""
    p = ContainerPath.parse(path)
    d = resolve_in_root("/", p.dir)
    target = os.path.join(d, p.base) if p.base else d
    tw = TarWriter(out)
    tar_tree(target, p.name, tw)
    tw.close()


def write_export(out: BinaryIO) -> None:
    """The whole tree, entries named from it (`bin/sh`), as `docker export` writes it."""
    tw = TarWriter(out)
    tar_tree("/", "", tw)
    tw.close()


class _Under:
    """The applier's view of the tree for an archive unpacked into directory `dest`: entry
    names start at `dest`, while symlinks (absolute ones, `..`) resolve from the
    container's root, as dockerd's chrooted untar resolves them."""

    def __init__(self, dest: str) -> None:
        self.tree = FullView("/")
        self.prefix = split(dest)
        self.root = dest

    def parent_dir(self, parts: list[str]) -> str:
        return self.tree.parent_dir([*self.prefix, *parts])

    def resolved_dir(self, parts: list[str]) -> list[str]:
        return self.tree.resolved_dir([*self.prefix, *parts])

    def resolve(self, parts: list[str]) -> list[str]:
        return self.tree.resolve([*self.prefix, *parts])

    def prepare_entry(self, host: str, parts: list[str], is_dir: bool) -> bool:
        return self.tree.prepare_entry(host, parts, is_dir)

    def copy_up(self, parts: list[str]) -> str | None:
        return self.tree.copy_up(parts)  # already resolved from the root

    def invalidate(self) -> None:
        self.tree.invalidate()


def extract(path: str, src: BinaryIO, *, no_overwrite: bool, owner: tuple[int, int]) -> None:
    """Unpack the tar on `src` into directory `path` (every component of it followed), as
    `PUT .../archive`. The entries go through the layer applier: no `..`, no write through a
    symlink, parents resolved inside the container (the chroot)."""
    target = resolve_in_root("/", posixpath.normpath("/" + path.lstrip("/")))
    try:
        st = os.lstat(target)
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(ContainerPath.parse(path)) from None
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument("extraction point is not a directory")
    # `.wh.` names are files here; whiteout() and opaque() are never asked of the view
    apply_layer(src, _Under(target), options=ApplyOptions(  # type: ignore[arg-type]
        owner=owner, whiteouts=False, root_meta=False, no_overwrite_dir_non_dir=no_overwrite))


class Skipping:
    """A TarWriter that leaves out some entries: the mountpoints a runtime made in a
    container's tree are not the container's changes."""

    def __init__(self, tw: TarWriter, skip: Callable[[str], bool]) -> None:
        self.tw = tw
        self.skip = skip

    def add(self, rel: str, host: str, st: os.stat_result | None = None) -> None:
        if not self.skip(rel):
            self.tw.add(rel, host, st)

    def whiteout(self, rel_parent: str, name: str) -> None:
        self.tw.whiteout(rel_parent, name)

    def opaque(self, rel_dir: str) -> None:
        self.tw.opaque(rel_dir)


def write_layer(skip: list[str], out: BinaryIO) -> None:
    """The chroot is an overlay upperdir: its changes as a layer tar."""
    tw = TarWriter(out)
    tar_overlay_upper("/", Skipping(tw, set(skip).__contains__))  # type: ignore[arg-type]
    tw.close()


def _mount_binds(root: str, mounts: list[dict[str, Any]]) -> None:
    from pallet.linux import mount as mnt
    from pallet.linux.paths import create_file_in_root, mkdir_all_in_root

    libc.unshare(libc.CLONE_NEWNS)
    # nothing mounted here may propagate back to palletd's namespace
    libc.mount(None, "/", None, mnt.MS_REC | mnt.MS_PRIVATE)
    # parents before children: /data before /data/sub
    for m in sorted(mounts, key=lambda m: len(ContainerPath.parse(m["destination"]).abs)):
        dest = m["destination"]
        target = (mkdir_all_in_root(root, dest) if os.path.isdir(m["source"])
                  else create_file_in_root(root, dest))
        opts = mnt.MountOptions(m.get("options"))
        mnt.bind(m["source"], target, opts)
        mnt.finish_bind(target, opts)


def _enter(root: str, mounts: list[dict[str, Any]]) -> None:
    # what compression.py imports on first use: after the chroot it could not be found
    for mod in ("zstandard", "isal.igzip"):
        with contextlib.suppress(ImportError):
            importlib.import_module(mod)
    if mounts:
        _mount_binds(root, mounts)
    os.chroot(root)
    os.chdir("/")


def main(argv: list[str]) -> int:
    out = sys.stdout.buffer
    try:
        verb, root, mounts, path = argv[:4]
        argv = argv[4:]
        _enter(root, json.loads(mounts))
        if verb == "layer":
            try:
                write_layer(json.loads(path), out)
            except OSError as e:
                print(f"cp_helper: layer: {e}", file=sys.stderr)
                return 1
        elif verb == "stat":
            out.write(json.dumps({"stat": stat_path("/", path)}).encode() + b"\n")
        elif verb in ("tar", "export"):
            out.write(json.dumps({"stat": stat_path("/", path)}).encode() + b"\n")
            out.flush()
            # from here on stdout is the tar: a failure is the exit status and stderr
            try:
                if verb == "tar":
                    write_tar(path, out)
                else:
                    write_export(out)
            except (OSError, PalletError) as e:
                print(f"cp_helper: {verb} {path}: {e}", file=sys.stderr)
                return 1
        elif verb == "untar":
            extract(path, sys.stdin.buffer, no_overwrite=argv[0] == "1",
                    owner=(int(argv[1]), int(argv[2])))
            out.write(b"{}\n")
        else:
            raise InvalidArgument(f"unknown verb {verb!r}")
    except PalletError as e:
        out.write(json.dumps({"error": e.kind, "message": str(e)}).encode() + b"\n")
        return 1
    except OSError as e:
        # the stream may have begun: the parent sees the status; the message is for the log
        msg = f"{e.strerror or e}: {e.filename}" if e.filename else str(e)
        out.write(json.dumps({"error": "system", "message": msg}).encode() + b"\n")
        print(f"cp_helper: {msg}", file=sys.stderr)
        return 1
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
