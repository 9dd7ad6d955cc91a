"""The raw system calls Python 3.11's `os` lacks, through ctypes with the real errno kept.

Every failure raises OSError(errno, "<operation> <what>") so that the caller's message names
the operation and the path, not only the errno.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

# x86_64 syscall numbers for the calls libc (glibc 2.36) has no wrapper for.
SYS_pivot_root = 155
SYS_capget = 125
SYS_capset = 126
SYS_close_range = 436
SYS_openat2 = 437
SYS_seccomp = 317
SYS_clone3 = 435
SECCOMP_SET_MODE_FILTER = 1

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
CLONE_INTO_CGROUP = 0x200000000

MNT_DETACH = 2
CLOSE_RANGE_CLOEXEC = 1 << 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _b(s: str | bytes | None) -> bytes | None:
    return s.encode() if isinstance(s, str) else s


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def setns(fd: int, nstype: int, what: str = "") -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns {what}")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    ret = _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    _check(ret, f"mount {source or fstype or ''} on {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    ret = _libc.syscall(SYS_pivot_root, _b(new_root), _b(put_old))
    _check(ret, f"pivot_root {new_root}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)), f"setdomainname {name!r}")


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    ret = _libc.syscall(SYS_close_range, ctypes.c_uint(first), ctypes.c_uint(last),
                        ctypes.c_uint(flags))
    _check(ret, "close_range")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    ret = _libc.syscall(SYS_openat2, ctypes.c_int(dirfd), _b(path), ctypes.byref(how),
                        ctypes.c_size_t(ctypes.sizeof(how)))
    return _check(ret, f"open {path}")


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(SYS_capset, ctypes.byref(hdr), data), "capset")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_mode_filter(flags: int, program: bytes) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program): install a classic BPF program
    (8-byte instructions) in the calling thread; returns the syscall's result (the listener
    fd with SECCOMP_FILTER_FLAG_NEW_LISTENER)."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    return _check(_libc.syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, ctypes.c_uint(flags),
                                ctypes.byref(prog)), "seccomp(SECCOMP_SET_MODE_FILTER)")


def seccomp_flag_known(flags: int) -> bool:
    """Whether the kernel knows these filter flags (EFAULT on a NULL program, not EINVAL)."""
    _libc.syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, ctypes.c_uint(flags), None)
    return ctypes.get_errno() == 14


class _CloneArgs(ctypes.Structure):
    """struct clone_args up to `cgroup` (CLONE_ARGS_SIZE_VER2)."""

    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
        "tls", "set_tid", "set_tid_size", "cgroup")]


# The GIL stays held across calls through PyDLL, as os.fork holds it across fork().
_pylibc = ctypes.PyDLL(None, use_errno=True)
_pylibc.syscall.restype = ctypes.c_long


def fork_into_cgroup(cgroup_fd: int) -> int:
    """os.fork() with the child born in the cgroup v2 directory `cgroup_fd` (clone3 with
    CLONE_INTO_CGROUP, Linux >= 5.7): unlike a write to cgroup.procs, it does not take the
    kernel's threadgroup rwsem for writing. Only for a single-threaded caller: glibc's fork
    bookkeeping (atfork handlers, the cached tid of the child's thread) is not done; the
    interpreter's (PyOS_BeforeFork/AfterFork_*) is. Raises OSError when the kernel refuses
    (older kernels: ENOSYS, E2BIG, EINVAL)."""
    api = ctypes.pythonapi
    for name in ("PyOS_BeforeFork", "PyOS_AfterFork_Parent", "PyOS_AfterFork_Child"):
        getattr(api, name).restype = None
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=17, cgroup=cgroup_fd)  # SIGCHLD
    api.PyOS_BeforeFork()
    pid = _pylibc.syscall(SYS_clone3, ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3(CLONE_INTO_CGROUP): {os.strerror(err)}")
    return pid
