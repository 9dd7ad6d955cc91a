"""Where a layer is applied: a whole root filesystem, or an overlay upperdir over lowers.

Both views answer the same questions for the applier: what is at a path of the merged
tree, where on the host the parent directory of an entry is (creating it), and how to hide
a path (delete it, or an overlay whiteout). Paths are resolved like `linux.paths` does: each
symlink is followed relative to the view's root and `..` is clamped at it, so an entry can
never reach outside, whatever earlier layers planted.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

_MAX_SYMLINKS = 255
OPAQUE_XATTR = "trusted.overlay.opaque"


def split(rel: str) -> list[str]:
    return [p for p in rel.split("/") if p not in ("", ".")]


def is_overlay_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def remove_any(path: str) -> None:
    """Remove whatever is at `path` without following a symlink there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def clear_for_entry(host: str, is_dir: bool) -> bool:
    """Clear `host` for a new entry; True when a directory is there to merge into."""
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return False
    if is_dir and stat.S_ISDIR(st.st_mode):
        return True
    remove_any(host)
    return False


class _CachedView:
    """What both views keep between entries: created directories and resolved paths, both
    dropped when an entry could have changed them."""

    _dirs: dict[tuple[str, ...], str]
    _resolved: dict[tuple[str, ...], list[str]]

    def invalidate(self) -> None:
        self._dirs.clear()
        self._resolved.clear()

    def resolved_dir(self, parts: list[str]) -> list[str]:
        key = tuple(parts)
        out = self._resolved.get(key)
        if out is None:
            out = self._resolved[key] = resolve(self, parts)
        return out


class FullView(_CachedView):
    """The target directory holds the whole tree: lower layers were applied into it."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._dirs: dict[tuple[str, ...], str] = {}
        self._resolved: dict[tuple[str, ...], list[str]] = {}

    def lookup(self, parts: list[str] | tuple[str, ...]) -> tuple[str, os.stat_result] | None:
        p = os.path.join(self.root, *parts)
        try:
            return p, os.lstat(p)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None

    def host(self, parts: list[str] | tuple[str, ...]) -> str:
        return os.path.join(self.root, *parts)

    def resolve(self, parts: list[str]) -> list[str]:
        return resolve(self, parts)

    def parent_dir(self, parts: list[str]) -> str:
        """Host path of the directory `parts` (resolved), created if missing."""
        key = tuple(parts)
        cached = self._dirs.get(key)
        if cached is not None:
            return cached
        resolved = self.resolved_dir(parts)
        path = self.root
        for comp in resolved:
            path = os.path.join(path, comp)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                continue
            if not stat.S_ISDIR(st.st_mode):
                # tar(1) and containerd refuse this too: only an explicit entry replaces a
                # file by a directory.
                raise NotADirectoryError(errno.ENOTDIR, "parent is not a directory",
                                         os.path.relpath(path, self.root))
        self._dirs[key] = path
        return path

    def prepare_entry(self, host: str, parts: list[str], is_dir: bool) -> bool:
        """Clear the way for a new entry at `host`; True if a directory stays to merge."""
        if clear_for_entry(host, is_dir):
            return True
        self.invalidate()
        return False

    def whiteout(self, parent: list[str], name: str) -> None:
        remove_any(os.path.join(self.parent_dir(parent), name))
        self.invalidate()

    def opaque(self, parent: list[str], keep: set[str]) -> None:
        d = self.parent_dir(parent)
        for child in os.listdir(d):
            if child not in keep:
                remove_any(os.path.join(d, child))
        self.invalidate()

    def copy_up(self, parts: list[str]) -> str | None:
        found = self.lookup(parts)
        return None if found is None else found[0]


class OverlayView(_CachedView):
    """`upper` is a fresh overlay upperdir over `lowers` (topmost first); the layer is
    written into `upper` in overlayfs' own format (whiteouts are 0:0 character devices,
    opaque directories carry trusted.overlay.opaque=y), so the snapshot is ready to mount
    without this process ever mounting it."""

    def __init__(self, upper: str, lowers: list[str]) -> None:
        self.root = os.path.abspath(upper)
        self.layers = [self.root, *(os.path.abspath(x) for x in lowers)]
        self._dirs: dict[tuple[str, ...], str] = {}
        self._resolved: dict[tuple[str, ...], list[str]] = {}

    def lookup(self, parts: list[str] | tuple[str, ...]) -> tuple[str, os.stat_result] | None:
        """The host path and lstat of `parts` in the merged tree, or None."""
        active = list(range(len(self.layers)))
        found: tuple[str, os.stat_result] | None = None
        for depth in range(len(parts)):
            prefix = parts[: depth + 1]
            found = None
            contributing: list[int] = []
            for li in active:
                p = os.path.join(self.layers[li], *prefix)
                try:
                    st = os.lstat(p)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if is_overlay_whiteout(st):
                    break
                if found is None:
                    found = (p, st)
                elif not stat.S_ISDIR(st.st_mode):
                    break  # a lower non-directory under an upper directory is hidden
                if not stat.S_ISDIR(st.st_mode):
                    break
                contributing.append(li)
                if _is_opaque(p):
                    break
            if found is None:
                return None
            active = contributing
        if not parts:
            return self.root, os.lstat(self.root)
        return found

    def host(self, parts: list[str] | tuple[str, ...]) -> str:
        return os.path.join(self.root, *parts)

    def resolve(self, parts: list[str]) -> list[str]:
        return resolve(self, parts)

    def parent_dir(self, parts: list[str]) -> str:
        key = tuple(parts)
        cached = self._dirs.get(key)
        if cached is not None:
            return cached
        resolved = self.resolved_dir(parts)
        path = self.root
        for i, comp in enumerate(resolved):
            path = os.path.join(path, comp)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISDIR(st.st_mode):
                continue
            if st is not None and is_overlay_whiteout(st):
                # this layer hid the path, then writes below it: a new, opaque directory
                os.unlink(path)
                os.mkdir(path, 0o755)
                os.setxattr(path, OPAQUE_XATTR, b"y")
                continue
            merged = self.lookup(resolved[: i + 1]) if st is None else (path, st)
            if merged is None:
                os.mkdir(path, 0o755)
            elif stat.S_ISDIR(merged[1].st_mode):
                os.mkdir(path, 0o755)
                _copy_dir_meta(merged[0], path, merged[1])
            else:
                raise NotADirectoryError(errno.ENOTDIR, "parent is not a directory",
                                         "/".join(resolved[: i + 1]))
        self._dirs[key] = path
        return path

    def prepare_entry(self, host: str, parts: list[str], is_dir: bool) -> bool:
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            st = None
        if st is not None:
            if is_dir and stat.S_ISDIR(st.st_mode):
                return True
            remove_any(host)
            self.invalidate()
            if is_dir and is_overlay_whiteout(st):
                # A directory re-created over this layer's whiteout must not show the
                # lower one's old content.
                os.mkdir(host, 0o755)
                os.setxattr(host, OPAQUE_XATTR, b"y")
                return True
        if is_dir:
            merged = self.lookup(parts)
            if merged is not None and stat.S_ISDIR(merged[1].st_mode):
                os.mkdir(host, 0o755)
                return True
        return False

    def whiteout(self, parent: list[str], name: str) -> None:
        host = os.path.join(self.parent_dir(parent), name)
        remove_any(host)
        os.mknod(host, stat.S_IFCHR | 0o000, 0)
        self.invalidate()

    def opaque(self, parent: list[str], keep: set[str]) -> None:
        d = self.parent_dir(parent)
        # The upper is fresh, so its children all come from this layer; lowers are masked.
        for child in os.listdir(d):
            if child not in keep:
                remove_any(os.path.join(d, child))
        os.setxattr(d, OPAQUE_XATTR, b"y")
        self.invalidate()

    def copy_up(self, parts: list[str]) -> str | None:
        """The upper path of `parts`, copying a lower regular file up first (for a hard
        link, whose target must be on the same filesystem as the link)."""
        found = self.lookup(parts)
        if found is None:
            return None
        path, st = found
        upper = os.path.join(self.root, *parts)
        if path == upper:
            return upper
        self.parent_dir(parts[:-1])
        if stat.S_ISREG(st.st_mode):
            shutil.copy2(path, upper, follow_symlinks=False)
            os.chown(upper, st.st_uid, st.st_gid)
            os.chmod(upper, stat.S_IMODE(st.st_mode))
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(path), upper)
            os.lchown(upper, st.st_uid, st.st_gid)
        else:
            return None
        return upper


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
            return False
        raise


def _copy_dir_meta(src: str, dst: str, st: os.stat_result) -> None:
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    try:
        os.chown(dst, st.st_uid, st.st_gid)
    except PermissionError:
        pass
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def resolve(view: FullView | OverlayView, parts: list[str]) -> list[str]:
    """`parts` with every symlink followed inside the view's root; `..` stops at the root."""
    todo = list(parts)
    out: list[str] = []
    links = 0
    while todo:
        comp = todo.pop(0)
        if comp == "..":
            if out:
                out.pop()
            continue
        found = view.lookup([*out, comp])
        if found is None or not stat.S_ISLNK(found[1].st_mode):
            out.append(comp)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise OSError(errno.ELOOP, f"too many symlinks resolving {'/'.join(parts)}")
        target = os.readlink(found[0])
        if target.startswith("/"):
            out = []
        todo = split(target) + todo
    return out
