"""Capabilities by name (capabilities(7)) and how the five sets are applied."""

from __future__ import annotations

import errno

from pallet.linux import libc

NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
BY_NAME = {n: i for i, n in enumerate(NAMES)}
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def mask(names: list[str] | None, last: int, unknown: list[str] | None = None) -> int:
    """Names to a bit mask. Names this kernel or table does not know are collected in
    `unknown` and left out, as runc does, so a newer config still runs on an older kernel."""
    bits = 0
    for name in names or []:
        n = BY_NAME.get(name.upper() if name.upper().startswith("CAP_") else f"CAP_{name.upper()}")
        if n is None or n > last:
            if unknown is not None:
                unknown.append(name)
            continue
        bits |= 1 << n
    return bits


def drop_bounding(keep: int, last: int) -> None:
    for n in range(last + 1):
        if keep & (1 << n):
            continue
        if libc.prctl(libc.PR_CAPBSET_READ, n) == 1:
            libc.prctl(libc.PR_CAPBSET_DROP, n)


def apply(effective: int, permitted: int, inheritable: int, ambient: int, last: int) -> None:
    libc.capset(effective, permitted, inheritable)
    for n in range(last + 1):
        if ambient & (1 << n):
            try:
                libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_RAISE, n)
            except OSError as e:
                # A capability must be permitted and inheritable to be ambient; runc skips
                # the ones that are not rather than failing the container.
                if e.errno not in (errno.EPERM, errno.EINVAL):
                    raise
