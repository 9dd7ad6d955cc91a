"""Mount flags and options (mount(8), mount(2)) and the mount operations a rootfs needs."""

from __future__ import annotations

import errno
import os

from pallet.linux import libc

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

# option -> (clear, flag): "clear" options turn a flag off (rw clears MS_RDONLY).
FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, MS_POSIXACL),
    "async": (True, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND),
    "defaults": (False, 0),
    "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC),
    "iversion": (False, MS_I_VERSION),
    "lazytime": (False, MS_LAZYTIME),
    "loud": (True, MS_SILENT),
    "mand": (False, MS_MANDLOCK),
    "noacl": (True, MS_POSIXACL),
    "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC),
    "noiversion": (True, MS_I_VERSION),
    "nolazytime": (True, MS_LAZYTIME),
    "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID),
    "nosymfollow": (False, MS_NOSYMFOLLOW),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "silent": (False, MS_SILENT),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "sync": (False, MS_SYNCHRONOUS),
}

PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# Flags a bind remount can change; everything else of `flags` is for the first mount only.
_REMOUNT_MASK = (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME
                 | MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW)

_STATVFS_TO_MS = {
    os.ST_RDONLY: MS_RDONLY, os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC, os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}


class MountOptions:
    """A mount's `options` split into flags, propagation flags and filesystem data."""

    __slots__ = ("data", "flags", "propagation")

    def __init__(self, options: list[str] | None) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        data: list[str] = []
        for opt in options or []:
            if opt in FLAGS:
                clear, flag = FLAGS[opt]
                self.flags = (self.flags & ~flag) if clear else (self.flags | flag)
            elif opt in PROPAGATION:
                self.propagation.append(PROPAGATION[opt])
            else:
                data.append(opt)
        self.data = ",".join(data)

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def locked_flags(path: str) -> int:
    """The flags of the mount at `path` that an unprivileged remount may not clear."""
    st = os.statvfs(path)
    out = 0
    for st_flag, ms_flag in _STATVFS_TO_MS.items():
        if st.f_flag & st_flag:
            out |= ms_flag
    return out & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY | MS_NOATIME | MS_NODIRATIME
                  | MS_RELATIME)


def bind(source: str, target: str, opts: MountOptions) -> None:
    """The bind itself; its flags and propagation come after, with `finish_bind` on a path
    that resolves to the new mount (a pinned fd of the mount point does not)."""
    libc.mount(source, target, None, MS_BIND | (opts.flags & MS_REC))


def finish_bind(target: str, opts: MountOptions) -> None:
    extra = opts.flags & _REMOUNT_MASK
    if extra:
        remount_bind(target, extra)
    set_propagation(target, opts)


def set_propagation(target: str, opts: MountOptions) -> None:
    for p in opts.propagation:
        libc.mount(None, target, None, p)


def remount_bind(target: str, flags: int) -> None:
    try:
        libc.mount(None, target, None, MS_REMOUNT | MS_BIND | flags)
    except OSError as e:
        # In a user namespace the flags the source mount already has are locked: keep them.
        if e.errno != errno.EPERM:
            raise
        libc.mount(None, target, None, MS_REMOUNT | MS_BIND | flags | locked_flags(target))


def mount_fs(source: str, target: str, fstype: str, opts: MountOptions) -> None:
    flags = opts.flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
    libc.mount(source, target, fstype, flags, opts.data or None)
