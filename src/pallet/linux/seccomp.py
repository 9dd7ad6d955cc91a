"""`linux.seccomp` (config-linux.md#seccomp) through Debian's libseccomp.so.2, by ctypes.

The library is opened lazily: `validate` runs in the runtime's parent without it, and the
init compiles the profile to BPF through `prepare` while the host's /usr/lib is still
reachable (before pivot_root), or finds the program in the runtime's cache, then calls
`Filter.load` (seccomp(2) itself) as late as the configuration allows.

Semantics follow runc (libcontainer/seccomp): the native architecture is always in the
filter; syscall names libseccomp does not know are skipped; a rule whose action equals the
default action is skipped; a rule whose args compare one argument more than once becomes
one rule per comparison (OR), otherwise one rule with all of them (AND); loading never sets
no_new_privs itself; SCMP_ACT_NOTIFY may not be the default action nor catch `write`.

libseccomp returns -errno; every failure raises with the field and the libseccomp call named.
"""

from __future__ import annotations

import _socket
import ctypes
import os
import sys

from pallet.errors import (
    FailedPrecondition,
    InvalidArgument,
    PalletError,
    SystemError_,
    Unavailable,
)

TYPE_CHECKING = False  # `typing` itself costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

EPERM = 1

# seccomp.h of libseccomp 2.5.4 (Debian 12's libseccomp-dev).
_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000  # | (errno & 0xffff)
_ACT_TRACE = 0x7FF00000  # | (errno & 0xffff)
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000
_ACT_NOTIFY = 0x7FC00000

ACTIONS = {
    "SCMP_ACT_KILL": _ACT_KILL_THREAD,  # libseccomp's SCMP_ACT_KILL is KILL_THREAD
    "SCMP_ACT_KILL_PROCESS": _ACT_KILL_PROCESS,
    "SCMP_ACT_KILL_THREAD": _ACT_KILL_THREAD,
    "SCMP_ACT_TRAP": _ACT_TRAP,
    "SCMP_ACT_ERRNO": _ACT_ERRNO,
    "SCMP_ACT_TRACE": _ACT_TRACE,
    "SCMP_ACT_ALLOW": _ACT_ALLOW,
    "SCMP_ACT_LOG": _ACT_LOG,
    "SCMP_ACT_NOTIFY": _ACT_NOTIFY,
}
# The actions that carry a return code; errnoRet on any other is an error (the spec's MUST).
WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,  # (arg & value) == valueTwo
}

# The spec's list (libseccomp 2.6.0); the library in use may know fewer (2.5.4 lacks
# LOONGARCH64, M68K, SH, SHEB): those fail at load, naming the version.
ARCHES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
)

# enum scmp_filter_attr.
_FLTATR_CTL_NNP = 3
_FLTATR_CTL_OPTIMIZE = 8
_FLTATR_API_SYSRAWRC = 9

# seccomp(2)'s filter flags (linux/seccomp.h), passed to the kernel as they are.
_FILTER_FLAG_TSYNC = 1
_FILTER_FLAG_NEW_LISTENER = 8
_FILTER_FLAG_TSYNC_ESRCH = 16
_FILTER_FLAG_WAIT_KILLABLE_RECV = 32
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": _FILTER_FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": _FILTER_FLAG_WAIT_KILLABLE_RECV,
}

_NR_SCMP_ERROR = -1
MAX_ARGS = 6
# runc turns on libseccomp's binary-tree optimisation above this many syscalls (2.5.x
# misbehaves with it on an empty filter).
_OPTIMIZE_ABOVE = 32

_U64 = (1 << 64) - 1


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


_lib: Any = None


def _library() -> Any:
    """libseccomp.so.2 with its prototypes, opened on first use."""
    global _lib
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as e:
        raise FailedPrecondition(
            f"linux.seccomp: cannot load libseccomp.so.2 (install libseccomp2): {e}") from None
    ctx, u32, c_int, c_uint = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint
    protos = {
        "seccomp_version": (ctypes.POINTER(_Version), []),
        "seccomp_api_get": (c_uint, []),
        "seccomp_init": (ctx, [u32]),
        "seccomp_release": (None, [ctx]),
        "seccomp_arch_resolve_name": (u32, [ctypes.c_char_p]),
        "seccomp_arch_add": (c_int, [ctx, u32]),
        "seccomp_attr_set": (c_int, [ctx, c_int, u32]),
        "seccomp_syscall_resolve_name": (c_int, [ctypes.c_char_p]),
        "seccomp_rule_add_array": (c_int, [ctx, u32, c_int, c_uint, ctypes.POINTER(_ArgCmp)]),
        "seccomp_export_pfc": (c_int, [ctx, c_int]),
        "seccomp_export_bpf": (c_int, [ctx, c_int]),
    }
    for name, (restype, argtypes) in protos.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    _lib = lib
    return lib


def version() -> tuple[int, int, int]:
    v = _library().seccomp_version().contents
    return (v.major, v.minor, v.micro)


def _version_text() -> str:
    return ".".join(map(str, version()))


def _check(rc: int, what: str) -> int:
    if rc < 0:
        raise SystemError_(f"linux.seccomp: {what}: {os.strerror(-rc)}")
    return rc


# --- validation (no libseccomp needed) ------------------------------------------------------


def _uint(value: object, field: str, limit: int) -> int:
    if type(value) is not int or not 0 <= value <= limit:
        raise InvalidArgument(f"{field}: {value!r} is not an integer in 0..{limit}")
    return value


def _errno_ret(obj: dict[str, Any], key: str, action: str, field: str) -> None:
    if key not in obj or obj[key] is None:
        return
    # The kernel keeps 16 bits (SECCOMP_RET_DATA); libseccomp would silently mask the rest,
    # and a masked errnoRet of 0 turns a denial into a fake success.
    _uint(obj[key], f"{field}.{key}", 0xFFFF)
    if action not in WITH_ERRNO:
        raise InvalidArgument(f"{field}.{key}: {action} does not take an errno return code "
                              f"(only {' and '.join(WITH_ERRNO)} do)")


def _string_list(value: object, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{field}: must be an array of strings")
    return value


def validate(seccomp: dict[str, Any]) -> None:
    """Refuse, naming the field, what the spec or libseccomp would refuse. Unknown syscall
    names are not refused (runc skips them: a profile may list newer syscalls)."""
    f = "linux.seccomp"
    if not isinstance(seccomp, dict):
        raise InvalidArgument(f"{f}: must be an object")
    default = seccomp.get("defaultAction")
    if default is None:
        raise InvalidArgument(f"{f}.defaultAction: is required")
    if default not in ACTIONS:
        raise InvalidArgument(f"{f}.defaultAction: unknown action {default!r}")
    if default == "SCMP_ACT_NOTIFY":
        # The init talks to the runtime after loading; a notifying default would block it.
        raise InvalidArgument(f"{f}.defaultAction: SCMP_ACT_NOTIFY cannot be the default "
                              "action")
    _errno_ret(seccomp, "defaultErrnoRet", default, f)
    for i, arch in enumerate(_string_list(seccomp.get("architectures") or [],
                                          f"{f}.architectures")):
        if arch not in ARCHES:
            raise InvalidArgument(f"{f}.architectures[{i}]: unknown architecture {arch!r}")
    for i, flag in enumerate(_string_list(seccomp.get("flags") or [], f"{f}.flags")):
        if flag not in FLAGS:
            raise InvalidArgument(f"{f}.flags[{i}]: unknown flag {flag!r}")
    listener = seccomp.get("listenerPath")
    if listener is not None and not isinstance(listener, str):
        raise InvalidArgument(f"{f}.listenerPath: must be a string")
    metadata = seccomp.get("listenerMetadata")
    if metadata is not None and not isinstance(metadata, str):
        raise InvalidArgument(f"{f}.listenerMetadata: must be a string")
    if metadata and not listener:
        raise InvalidArgument(f"{f}.listenerMetadata: must not be set without listenerPath")
    syscalls = seccomp.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise InvalidArgument(f"{f}.syscalls: must be an array")
    notify = False
    for i, call in enumerate(syscalls):
        cf = f"{f}.syscalls[{i}]"
        if not isinstance(call, dict):
            raise InvalidArgument(f"{cf}: must be an object")
        names = _string_list(call.get("names"), f"{cf}.names")
        if not names or not all(names):
            raise InvalidArgument(f"{cf}.names: must hold at least one non-empty name")
        action = call.get("action")
        if action not in ACTIONS:
            raise InvalidArgument(f"{cf}.action: unknown action {action!r}")
        _errno_ret(call, "errnoRet", action, cf)
        if action == "SCMP_ACT_NOTIFY":
            notify = True
            if "write" in names:
                # The init writes to the runtime after loading (runc's rule too).
                raise InvalidArgument(f"{cf}: SCMP_ACT_NOTIFY cannot be used for write")
        args = call.get("args") or []
        if not isinstance(args, list):
            raise InvalidArgument(f"{cf}.args: must be an array")
        for j, arg in enumerate(args):
            af = f"{cf}.args[{j}]"
            if not isinstance(arg, dict):
                raise InvalidArgument(f"{af}: must be an object")
            for key in ("index", "value", "op"):
                if key not in arg:
                    raise InvalidArgument(f"{af}.{key}: is required")
            _uint(arg["index"], f"{af}.index", MAX_ARGS - 1)
            _uint(arg["value"], f"{af}.value", _U64)
            if arg.get("valueTwo") is not None:
                _uint(arg["valueTwo"], f"{af}.valueTwo", _U64)
            if arg["op"] not in OPERATORS:
                raise InvalidArgument(f"{af}.op: unknown operator {arg['op']!r}")
    if notify and not listener:
        raise InvalidArgument(f"{f}.listenerPath: SCMP_ACT_NOTIFY needs a listenerPath for "
                              "the seccomp agent")


def uses_notify(seccomp: dict[str, Any]) -> bool:
    return any(c.get("action") == "SCMP_ACT_NOTIFY" for c in seccomp.get("syscalls") or [])


# --- building and loading ---------------------------------------------------------------------


def _action(name: str, errno_ret: int | None) -> int:
    base = ACTIONS[name]
    if name in WITH_ERRNO:
        return base | ((EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    return base


class Filter:
    """A filter compiled to classic BPF (libseccomp's code generator), not yet in the
    kernel. `load` installs it in the calling thread with seccomp(2), once."""

    def __init__(self, program: bytes, flags: int, notify: bool) -> None:
        self.program: bytes | None = program
        self.flags = flags
        self.notify = notify

    def load(self) -> int | None:
        """Returns the notification listener fd (O_CLOEXEC, the caller's to close) when a
        rule uses SCMP_ACT_NOTIFY, else None."""
        from pallet.linux import libc

        program, self.program = self.program, None
        if program is None:
            raise SystemError_("linux.seccomp: the filter was already loaded or released")
        flags = self.flags
        if self.notify:
            flags |= _FILTER_FLAG_NEW_LISTENER
            if flags & _FILTER_FLAG_TSYNC:
                flags |= _FILTER_FLAG_TSYNC_ESRCH  # the kernel refuses TSYNC alone with it
        else:
            flags &= ~_FILTER_FLAG_WAIT_KILLABLE_RECV  # only means something to a listener
        try:
            fd = libc.seccomp_set_mode_filter(flags, program)
        except OSError as e:
            hint = (" (without noNewPrivileges it needs CAP_SYS_ADMIN)" if e.errno == 13
                    else f" (flags {flags:#x}: this kernel may not know one)"
                    if e.errno == 22 and flags else "")
            raise SystemError_(f"linux.seccomp: loading the filter: "
                               f"{os.strerror(e.errno or 0)}{hint}") from None
        return fd if self.notify else None

    def release(self) -> None:
        self.program = None


def prepare(seccomp: dict[str, Any], cache_dir: str | None = None) -> Filter:
    """Validate and compile the filter; call it while the host's libseccomp is reachable
    (before pivot_root). libseccomp's compilation of a profile like docker's takes ~12 ms
    (rules added one by one through ctypes, then its BPF generator); the program depends only
    on the profile, the library and the machine, so with `cache_dir` it is kept there and
    the next container with the same profile loads it without libseccomp."""
    validate(seccomp)
    flags = 0
    for flag in seccomp.get("flags") or []:
        flags |= FLAGS[flag]
    notify = uses_notify(seccomp)
    path = _cache_path(cache_dir, seccomp) if cache_dir else None
    program = _cached(path) if path else None
    if program is None:
        program, lib_id = _compile(seccomp)
        if path:
            _store(path, lib_id, program)
    return Filter(program, flags, notify)


def pfc(seccomp: dict[str, Any]) -> str:
    """The filter as libseccomp's pseudo-filter-code text (for debugging and tests)."""
    return _export(seccomp, "seccomp_export_pfc").decode()


def _compile(seccomp: dict[str, Any]) -> tuple[bytes, str]:
    """The BPF program, and the identity of the libseccomp that generated it."""
    program = _export(seccomp, "seccomp_export_bpf")
    if not program or len(program) % 8:
        raise SystemError_(f"linux.seccomp: libseccomp generated a program of "
                           f"{len(program)} bytes")
    return program, _library_id()


def _export(seccomp: dict[str, Any], how: str) -> bytes:
    lib = _library()
    f = "linux.seccomp"
    default = _action(seccomp["defaultAction"], seccomp.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise InvalidArgument(f"{f}.defaultAction: libseccomp {_version_text()} refuses "
                              f"{seccomp['defaultAction']} on this kernel (API level "
                              f"{lib.seccomp_api_get()})")
    fd = -1
    try:
        _build(lib, ctx, seccomp)
        fd = os.memfd_create("seccomp", os.MFD_CLOEXEC)
        _check(getattr(lib, how)(ctx, fd), how)
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        if fd >= 0:
            os.close(fd)
        lib.seccomp_release(ctx)


# --- the compiled-program cache ---------------------------------------------------------------

_CACHE_FORMAT = b"pallet-seccomp-bpf 1"
_MAX_PROGRAM = 4096 * 8  # BPF_MAXINSNS instructions of 8 bytes


def _cache_path(cache_dir: str, seccomp: dict[str, Any]) -> str:
    from pallet import jsonlite

    try:
        from _sha256 import sha256  # hashlib would load OpenSSL: ~3 ms on every create
    except ImportError:
        from hashlib import sha256

    u = os.uname()
    key = sha256(b"\0".join((
        _CACHE_FORMAT, u.machine.encode(), u.release.encode(),
        jsonlite.dumps(seccomp, sort_keys=True).encode()))).hexdigest()
    return os.path.join(cache_dir, key + ".bpf")


def _library_id() -> str:
    """The loaded libseccomp's path, inode, size and mtime: a library upgrade invalidates
    the programs it generated."""
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split(maxsplit=5)[-1].strip()
            if "/libseccomp.so" in path:
                st = os.stat(path)
                return f"{path} {st.st_ino} {st.st_size} {st.st_mtime_ns}"
    return ""


def _cached(path: str) -> bytes | None:
    """The program in the cache file, if it is there, well-formed and generated by the
    libseccomp installed now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        # only a program this user wrote and no one else could change
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        data = os.read(fd, _MAX_PROGRAM + 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    head, sep, program = data.partition(b"\n")
    parts = head.split(b" ")
    if (not sep or len(parts) != 6 or b" ".join(parts[:2]) != _CACHE_FORMAT
            or not program or len(program) % 8 or len(program) > _MAX_PROGRAM):
        return None
    try:
        st = os.stat(parts[2])
    except OSError:
        return None
    if parts[3:] != [str(v).encode() for v in (st.st_ino, st.st_size, st.st_mtime_ns)]:
        return None
    return program


def _store(path: str, lib_id: str, program: bytes) -> None:
    """Best effort (a read-only or foreign-owned root only costs the compilation)."""
    if not lib_id:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _CACHE_FORMAT + b" " + lib_id.encode() + b"\n" + program)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _build(lib: Any, ctx: int, seccomp: dict[str, Any]) -> None:
    f = "linux.seccomp"
    # The runtime sets no_new_privs itself when process.noNewPrivileges asks for it.
    _check(lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 0), "seccomp_attr_set(CTL_NNP)")
    # The kernel's own errno from seccomp_load, not libseccomp's generic ECANCELED.
    lib.seccomp_attr_set(ctx, _FLTATR_API_SYSRAWRC, 1)
    for i, arch in enumerate(seccomp.get("architectures") or []):
        token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
        if not token:
            raise InvalidArgument(f"{f}.architectures[{i}]: {arch} is not supported by "
                                  f"libseccomp {_version_text()}")
        rc = lib.seccomp_arch_add(ctx, token)
        if rc < 0 and -rc != 17:  # EEXIST: the native architecture is always there
            _check(rc, f"architectures[{i}] {arch}: seccomp_arch_add")
    syscalls = seccomp.get("syscalls") or []
    if sum(len(c["names"]) for c in syscalls) > _OPTIMIZE_ABOVE:
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, 2)  # best effort, as runc
    default = _action(seccomp["defaultAction"], seccomp.get("defaultErrnoRet"))
    for i, call in enumerate(syscalls):
        action = _action(call["action"], call.get("errnoRet"))
        if action == default:
            continue  # libseccomp refuses a rule that repeats the default action
        rules = _conditions(call.get("args") or [])
        for name in call["names"]:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == _NR_SCMP_ERROR:
                continue  # unknown to this libseccomp: skipped, as runc does
            for conds in rules:
                array = (_ArgCmp * len(conds))(*conds) if conds else None
                rc = lib.seccomp_rule_add_array(ctx, action, nr, len(conds), array)
                if rc < 0:
                    raise InvalidArgument(f"{f}.syscalls[{i}]: adding the rule for {name}: "
                                          f"{os.strerror(-rc)}")


def _conditions(args: list[dict[str, Any]]) -> list[list[_ArgCmp]]:
    """The comparisons of one syscalls[] entry as rules: one rule with all of them, or, when
    an argument is compared twice (libseccomp refuses that in one rule), one rule each."""
    conds = [_ArgCmp(a["index"], OPERATORS[a["op"]], a["value"], a.get("valueTwo") or 0)
             for a in args]
    indexes = [a["index"] for a in args]
    if len(set(indexes)) < len(indexes):
        return [[c] for c in conds]
    return [conds]


def load(seccomp: dict[str, Any]) -> int | None:
    """Compile and load in one go (a process that keeps the host's filesystem)."""
    return prepare(seccomp).load()


# --- the seccomp agent ----------------------------------------------------------------------


def send_to_listener(listener_path: str, fd: int, state: dict[str, Any],
                     metadata: str = "") -> None:
    """Send the container process state (config-linux.md#containerprocessstate) with the
    listener fd in SCM_RIGHTS over one fresh AF_UNIX stream connection, then close it.

    `state` is the runtime state (runtime.md#state) of the creating container."""
    from pallet import jsonlite as json

    msg: dict[str, Any] = {"ociVersion": state["ociVersion"], "fds": ["seccompFd"],
                           "pid": state["pid"], "state": state}
    if metadata:
        msg["metadata"] = metadata
    data = json.dumps(msg).encode()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(listener_path)
        rights = fd.to_bytes(4, sys.byteorder, signed=True)
        sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        while sent < len(data):
            sent += sock.send(data[sent:])
    except OSError as e:
        raise Unavailable(f"linux.seccomp.listenerPath {listener_path}: sending the seccomp "
                          f"fd: {e.strerror or e}") from None
    finally:
        sock.close()


def features() -> dict[str, Any]:
    """The `linux.seccomp` part of `features` (features-linux.md)."""
    from pallet.linux import libc

    try:
        version()
    except (OSError, PalletError):
        return {"enabled": False}
    # a flag the kernel knows fails on the NULL program with EFAULT, an unknown one with
    # EINVAL (libseccomp's probe); WAIT_KILLABLE_RECV is only valid with a listener
    supported = [f for f, v in FLAGS.items() if libc.seccomp_flag_known(
        v | (_FILTER_FLAG_NEW_LISTENER if v == _FILTER_FLAG_WAIT_KILLABLE_RECV else 0))]
    return {
        "enabled": True,
        "actions": sorted(ACTIONS),
        "operators": sorted(OPERATORS),
        "archs": sorted(ARCHES),
        "knownFlags": sorted(FLAGS),
        "supportedFlags": sorted(supported),
    }
