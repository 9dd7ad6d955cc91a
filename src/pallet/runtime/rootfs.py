"""The container's root filesystem: mounts, /dev, pivot_root, masked and read-only paths.

Runs in the init process, inside the new mount namespace, before and after pivot_root.
Every destination is resolved inside the rootfs (pallet.linux.paths) and the mount is made on
`/proc/self/fd/N` of an O_PATH fd opened with RESOLVE_IN_ROOT, so a symlink swapped in after
the check still cannot redirect the mount to the host (CVE-2021-30465 class).
"""

from __future__ import annotations

import errno
import os
import stat

from pallet.linux import libc, paths
from pallet.linux import mount as mnt

TYPE_CHECKING = False  # `typing` itself costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

# runc's default devices: created in every container whose /dev is not the host's.
DEFAULT_DEVICES = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7, "fileMode": 0o666},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8, "fileMode": 0o666},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9, "fileMode": 0o666},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0, "fileMode": 0o666},
]

DEV_SYMLINKS = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
]

_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


class _target_fd:
    """The already created destination as a /proc/self/fd path pinned inside the rootfs.
    (A class, not contextlib: contextlib's imports cost ms on every container start.)"""

    def __init__(self, rootfs: str, dest: str) -> None:
        rel = os.path.relpath(dest, rootfs)
        rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.fd = libc.openat2(rootfd, rel, os.O_PATH,
                                   libc.RESOLVE_IN_ROOT | libc.RESOLVE_NO_MAGICLINKS)
        finally:
            os.close(rootfd)

    def __enter__(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


class RootfsSetup:
    def __init__(self, config: dict[str, Any], bundle: str, *, userns: bool,
                 new_netns: bool, cgroup_paths: dict[str, str], cgroupns: bool,
                 mountns: bool = True) -> None:
        self.config = config
        root = config["root"]["path"]
        self.rootfs = os.path.realpath(os.path.join(bundle, root))
        self.userns = userns
        self.new_netns = new_netns
        self.cgroup_paths = cgroup_paths
        self.cgroupns = cgroupns
        # Without a mount namespace of its own the container shares the caller's mount
        # table: nothing may change "/" or its propagation, and chroot stands in for
        # pivot_root (which would move the root of every process sharing the table).
        self.mountns = mountns
        self.linux = config.get("linux", {})

    # --- before pivot_root -------------------------------------------------------------

    def prepare(self) -> None:
        if self.mountns:
            prop = self.linux.get("rootfsPropagation")
            flags = mnt.PROPAGATION[prop] if prop else mnt.MS_SLAVE | mnt.MS_REC
            libc.mount(None, "/", None, flags)
            self._make_parent_private()
            libc.mount(self.rootfs, self.rootfs, None, mnt.MS_BIND | mnt.MS_REC)
        dev_bound = False
        for i, m in enumerate(self.config.get("mounts", [])):
            try:
                self.mount_one(m)
            except OSError as e:
                raise OSError(e.errno, f"mounts[{i}] {m['destination']}: {e.strerror}") from None
            if m["destination"].rstrip("/") == "/dev" and mnt.MountOptions(
                    m.get("options")).is_bind:
                dev_bound = True
        if not dev_bound:
            self.create_devices(DEFAULT_DEVICES)
            self._dev_symlinks()
        self.create_devices(self.linux.get("devices", []))

    def _make_parent_private(self) -> None:
        """pivot_root refuses a new root whose parent mount is shared; with an rshared
        rootfsPropagation that is the case, so the parent mount alone is made private."""
        best = "/"
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4]
                if (self.rootfs == mp or self.rootfs.startswith(mp.rstrip("/") + "/")) and len(
                        mp) > len(best):
                    best = mp
        libc.mount(None, best, None, mnt.MS_PRIVATE)

    def mount_one(self, m: dict[str, Any]) -> None:
        dest = m["destination"]
        fstype = m.get("type", "")
        source = m.get("source", "")
        opts = mnt.MountOptions(m.get("options"))
        if fstype == "bind":
            opts.flags |= mnt.MS_BIND
        if fstype == "cgroup":
            self._mount_cgroup(dest, opts)
            return
        if opts.is_bind:
            if not os.path.isabs(source):
                source = os.path.join(os.path.dirname(self.rootfs), source)
            if os.path.isdir(source):
                target = paths.mkdir_all_in_root(self.rootfs, dest)
            else:
                target = paths.create_file_in_root(self.rootfs, dest)
            self._bind(source, target, opts)
            return
        target = paths.mkdir_all_in_root(self.rootfs, dest)
        if fstype == "sysfs" and self.userns and not self.new_netns:
            # sysfs can only be mounted by the owner of the network namespace; in a
            # user namespace without its own netns, bind the host's /sys (as runc does).
            opts.flags |= mnt.MS_BIND | mnt.MS_REC
            self._bind("/sys", target, opts)
            return
        try:
            with _target_fd(self.rootfs, target) as t:
                mnt.mount_fs(source, t, fstype, opts)
        except OSError as e:
            if fstype == "mqueue" and e.errno == errno.EPERM and self.userns:
                opts.flags |= mnt.MS_BIND | mnt.MS_REC
                self._bind("/dev/mqueue", target, opts)
                return
            raise
        if opts.propagation:
            with _target_fd(self.rootfs, target) as t:
                mnt.set_propagation(t, opts)

    def _bind(self, source: str, target: str, opts: mnt.MountOptions) -> None:
        with _target_fd(self.rootfs, target) as t:
            mnt.bind(source, t, opts)
        with _target_fd(self.rootfs, target) as t:
            mnt.finish_bind(t, opts)

    def _mount_cgroup(self, dest: str, opts: mnt.MountOptions) -> None:
        """cgroup v1: a tmpfs with one directory per hierarchy holding the container's
        own cgroup (a new mount in a cgroup namespace, a bind of the host directory
        otherwise); cgroup v2: the cgroup2 filesystem itself."""
        target = paths.mkdir_all_in_root(self.rootfs, dest)
        ro = opts.flags & mnt.MS_RDONLY
        flags = opts.flags & ~mnt.MS_RDONLY
        v1 = {k: v for k, v in self.cgroup_paths.items() if k}
        if not v1:
            if self.cgroupns:
                with _target_fd(self.rootfs, target) as t:
                    libc.mount("cgroup2", t, "cgroup2", opts.flags)
            else:
                self._bind(self.cgroup_paths.get("", "/sys/fs/cgroup"), target,
                           mnt.MountOptions([*_flag_names(opts.flags), "rbind"]))
            return
        with _target_fd(self.rootfs, target) as t:
            libc.mount("tmpfs", t, "tmpfs", flags, "mode=755")
        for hierarchy, host_path in self.cgroup_paths.items():
            if hierarchy.startswith("name="):
                sub = hierarchy[len("name="):]
            elif hierarchy == "":
                sub = "unified"
            else:
                sub = hierarchy
            sub_target = paths.mkdir_all_in_root(self.rootfs, os.path.join(dest, sub))
            with _target_fd(self.rootfs, sub_target) as t:
                if self.cgroupns:
                    fstype = "cgroup2" if hierarchy == "" else "cgroup"
                    data = None if hierarchy == "" else hierarchy
                    libc.mount("cgroup", t, fstype, flags | ro, data)
                else:
                    libc.mount(host_path, t, None, mnt.MS_BIND)
            if not self.cgroupns:
                with _target_fd(self.rootfs, sub_target) as t:
                    mnt.remount_bind(t, (flags | ro) & (mnt.MS_RDONLY | mnt.MS_NOSUID |
                                                        mnt.MS_NODEV | mnt.MS_NOEXEC))
            # runc's compatibility links: cpu -> cpu,cpuacct etc. for combined hierarchies.
            if "," in sub:
                for part in sub.split(","):
                    link = os.path.join(paths.resolve_in_root(self.rootfs, dest), part)
                    if not os.path.lexists(link):
                        os.symlink(sub, link)
        if ro:
            with _target_fd(self.rootfs, target) as t:
                mnt.remount_bind(t, flags | mnt.MS_RDONLY)

    def create_devices(self, devices: list[dict[str, Any]]) -> None:
        old = os.umask(0)
        try:
            for d in devices:
                self._create_device(d)
        finally:
            os.umask(old)

    def _create_device(self, d: dict[str, Any]) -> None:
        path = paths.resolve_in_root(self.rootfs, d["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        kind = d.get("type", "c")
        if kind not in _TYPES:
            raise OSError(errno.EINVAL, f"device {d['path']}: unknown type {kind!r}")
        mode = d.get("fileMode", 0o666) & 0o7777
        if self.userns:
            # mknod is not allowed in a user namespace: bind the host's node instead.
            if not os.path.lexists(path):
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            with _target_fd(self.rootfs, path) as t:
                libc.mount(d["path"], t, None, mnt.MS_BIND)
            return
        want_rdev = os.makedev(d.get("major", 0), d.get("minor", 0))
        if os.path.lexists(path):
            # config-linux.md#devices: an existing file that is not the requested device is
            # an error; the same device is replaced (its mode and owner may differ).
            st = os.lstat(path)
            if stat.S_IFMT(st.st_mode) != _TYPES[kind] or (
                    kind != "p" and st.st_rdev != want_rdev):
                raise OSError(errno.EEXIST, f"device {d['path']}: a different file exists there")
            os.unlink(path)
        try:
            os.mknod(path, _TYPES[kind] | mode, want_rdev)
        except OSError as e:
            raise OSError(e.errno, f"mknod {d['path']}: {e.strerror}") from None
        os.chown(path, d.get("uid", 0), d.get("gid", 0))

    def _dev_symlinks(self) -> None:
        dev = paths.resolve_in_root(self.rootfs, "/dev")
        for target, link in DEV_SYMLINKS:
            self._symlink(target, link)
        if os.path.exists(os.path.join(dev, "pts")):
            self._symlink("pts/ptmx", "/dev/ptmx")

    def _symlink(self, target: str, link: str) -> None:
        path = paths.resolve_in_root(self.rootfs, link)
        if os.path.lexists(path):
            if os.path.islink(path) or not os.path.isdir(path):
                os.unlink(path)
            else:
                return
        os.symlink(target, path)

    def prepare_console(self) -> str:
        """The /dev/console file the pty slave is bound on after pivot_root."""
        return paths.create_file_in_root(self.rootfs, "/dev/console")

    # --- pivot_root and after ----------------------------------------------------------

    def pivot(self, no_pivot: bool) -> None:
        if not self.mountns:
            os.chdir(self.rootfs)
            os.chroot(".")
            os.chdir("/")
            return
        if no_pivot:
            os.chdir(self.rootfs)
            libc.mount(self.rootfs, "/", None, mnt.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
            return
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new_root = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
            # pivot_root(".", ".") stacks the old root on top of the new one; it is then
            # detached, after making it a slave so the unmount does not reach the host.
            libc.pivot_root(".", ".")
            os.fchdir(old_root)
            libc.mount(None, ".", None, mnt.MS_SLAVE | mnt.MS_REC)
            libc.umount2(".", libc.MNT_DETACH)
            os.chdir("/")
        finally:
            os.close(old_root)
            os.close(new_root)
        prop = self.linux.get("rootfsPropagation")
        if prop:
            # config-linux.md#rootfs-mount-propagation is about the container's own root
            # mount, which only exists as "/" from here on.
            libc.mount(None, "/", None, mnt.PROPAGATION[prop])

    def finalize(self) -> None:
        if self.config["root"].get("readonly"):
            mnt.remount_bind("/", mnt.MS_RDONLY)

    def readonly_paths(self) -> None:
        for p in self.linux.get("readonlyPaths", []):
            try:
                libc.mount(p, p, None, mnt.MS_BIND | mnt.MS_REC)
            except FileNotFoundError:
                continue
            mnt.remount_bind(p, mnt.MS_RDONLY | mnt.MS_NOSUID | mnt.MS_NODEV | mnt.MS_NOEXEC
                             | mnt.MS_REC)

    def masked_paths(self) -> None:
        for p in self.linux.get("maskedPaths", []):
            try:
                st = os.stat(p)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISDIR(st.st_mode):
                libc.mount("tmpfs", p, "tmpfs", mnt.MS_RDONLY)
            else:
                libc.mount("/dev/null", p, None, mnt.MS_BIND)


def _flag_names(flags: int) -> list[str]:
    out = []
    for name in ("ro", "nosuid", "nodev", "noexec"):
        if flags & mnt.FLAGS[name][1]:
            out.append(name)
    return out
