"""The container process's own setup, in the init (and later exec) process: rlimits, OOM
score, user and groups, capabilities, no_new_privs, fds, signals, and the final execve."""

from __future__ import annotations

import _signal
import errno
import os
import resource

from pallet.errors import InvalidArgument, NotFound
from pallet.linux import caps, libc

TYPE_CHECKING = False  # `typing` itself costs ms of imports on every runtime start

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def rlimit_number(name: str) -> int:
    num = getattr(resource, name, None)
    if not name.startswith("RLIMIT_") or num is None:
        raise InvalidArgument(f"process.rlimits: unknown rlimit type {name!r}")
    return num


def set_rlimits(rlimits: list[dict[str, Any]]) -> None:
    for r in rlimits:
        num = rlimit_number(r["type"])
        try:
            resource.prlimit(0, num, (r["soft"], r["hard"]))
        except (OSError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) else str(e)
            raise InvalidArgument(
                f"process.rlimits: cannot set {r['type']} to soft {r['soft']} hard {r['hard']}:"
                f" {why}"
            ) from None


def set_oom_score_adj(value: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        raise InvalidArgument(
            f"process.oomScoreAdj: cannot set {value}: {e.strerror}"
            + (" (lowering it needs CAP_SYS_RESOURCE)" if e.errno in (errno.EACCES, errno.EPERM)
               else "")
        ) from None


def env_map(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        k, sep, v = item.partition("=")
        if sep and k:
            out[k] = v
    return out


def home_of(uid: int) -> str:
    """HOME from the container's /etc/passwd, as runc sets it when env lacks it."""
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5]
    except OSError:
        pass
    return "/"


def lookpath(name: str, env: dict[str, str]) -> str:
    if "/" in name:
        if not os.path.exists(name):
            raise NotFound(f"exec: {name!r}: no such file or directory")
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            raise InvalidArgument(f"exec: {name!r}: permission denied")
        return name
    for d in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise NotFound(f'exec: "{name}": executable file not found in $PATH')


def drop_privileges(process: dict[str, Any]) -> None:
    """Bounding set, then user and groups with keepcaps, then the other four sets: the
    bounding set needs CAP_SETPCAP, which the setuid may take away (runc's
    finalizeNamespace order)."""
    capabilities = process.get("capabilities") or {}
    last = caps.last_cap()
    masks = {s: caps.mask(capabilities.get(s), last) for s in caps.SETS}
    caps.drop_bounding(masks["bounding"], last)
    user = process.get("user", {})
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    libc.prctl(libc.PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(user.get("additionalGids") or [])
    except OSError as e:
        # In a user namespace whose setgroups is "deny", groups cannot be set at all.
        if e.errno != errno.EPERM or user.get("additionalGids"):
            raise OSError(e.errno, f"setgroups: {e.strerror}") from None
    try:
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise InvalidArgument(f"process.user: cannot become {uid}:{gid}: {e.strerror} "
                              "(is it mapped in the user namespace?)") from None
    libc.prctl(libc.PR_SET_KEEPCAPS, 0)
    caps.apply(masks["effective"], masks["permitted"], masks["inheritable"], masks["ambient"],
               last)


def close_fds_except(keep: set[int]) -> None:
    """Close every fd of this process but `keep`: an fd left open on a host directory is
    a way out of the rootfs (CVE-2024-21626 class)."""
    lo = 3
    for fd in sorted(k for k in keep if k >= 3):
        if fd > lo:
            os.closerange(lo, fd)
        lo = fd + 1
    libc.close_range(lo)


def reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ and handles SIGINT; ignored signals survive
    execve, so every disposition goes back to the default and the mask is cleared."""
    for sig in range(1, _signal.NSIG):
        if sig in (_signal.SIGKILL, _signal.SIGSTOP):
            continue
        try:
            _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def finish(proc: dict[str, Any], keep_fds: set[int],
           load_seccomp: Callable[[], None] | None = None) -> tuple[str, dict[str, str]]:
    """Everything between the container's environment and execve, shared by the init and
    by `exec`: OOM score and rlimits while still privileged, fds, cwd, the user switch and
    capabilities, umask, no_new_privs. Returns the program's path and environment; the
    lookup happens here so a missing program is an error of create/exec, not a silent exit.

    Seccomp goes last, so the runtime's own calls are not filtered: after no_new_privs when
    the config sets it; otherwise before the user switch, while CAP_SYS_ADMIN still allows
    loading a filter without no_new_privs (runc's order).
    """
    if "oomScoreAdj" in proc:
        set_oom_score_adj(proc["oomScoreAdj"])
    set_rlimits(proc.get("rlimits", []))
    close_fds_except(keep_fds)
    nnp = bool(proc.get("noNewPrivileges"))
    if load_seccomp is not None and not nnp:
        load_seccomp()
    env = env_map(proc.get("env", []))
    uid = proc.get("user", {}).get("uid", 0)
    try:
        os.chdir(proc["cwd"])
        cwd_done = True
    except PermissionError:
        # The cwd may only be reachable by the container's user: try again after the switch.
        cwd_done = False
    except FileNotFoundError:
        raise InvalidArgument(f"process.cwd {proc['cwd']}: no such directory") from None
    drop_privileges(proc)
    if not cwd_done:
        os.chdir(proc["cwd"])
    # A cwd reached through a leaked fd would lie outside the root: getcwd then fails.
    os.getcwd()
    os.umask(proc.get("user", {}).get("umask", 0o022))
    if nnp:
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
        if load_seccomp is not None:
            load_seccomp()
    env.setdefault("HOME", home_of(uid))
    if "PATH" not in env:
        env["PATH"] = DEFAULT_PATH
    return lookpath(proc["args"][0], env), env


def exec_now(path: str, args: list[str], env: dict[str, str],
             trampoline_fd: int | None = None) -> None:
    """The final execve, through the sealed trampoline when there is one (trampoline.c)."""
    reset_signals()
    try:
        if trampoline_fd is not None:
            os.execve(trampoline_fd, ["pallet-exec", path, *args], env)
        os.execve(path, args, env)
    except OSError as e:
        os.write(2, f"pallet-runtime: exec {args[0]}: {e.strerror}\n".encode())
        os._exit(127)
