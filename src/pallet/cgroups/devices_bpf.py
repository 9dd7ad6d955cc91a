"""Device rules on cgroup v2: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to
the container's cgroup (v2 has no devices.allow/deny files; runc and crun do the same).

The program sees struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;} with
access_type = (access << 16) | type. Rules are checked last-to-first, so the last rule that
matches a request decides, as later rules override earlier ones in the OCI list; a request no
rule matches is denied.
"""

from __future__ import annotations

import ctypes
import os
import struct

from pallet.errors import InvalidArgument

TYPE_CHECKING = False  # `typing` costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

SYS_bpf = 321  # x86_64
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}

# Opcodes (linux/bpf_common.h, linux/bpf.h).
_LDXW = 0x61      # BPF_LDX | BPF_MEM | BPF_W
_AND_K = 0x57     # BPF_ALU64 | BPF_AND | BPF_K
_RSH_K = 0x77     # BPF_ALU64 | BPF_RSH | BPF_K
_MOV_K = 0xB7     # BPF_ALU64 | BPF_MOV | BPF_K
_MOV_X = 0xBF     # BPF_ALU64 | BPF_MOV | BPF_X
_JNE_K = 0x55     # BPF_JMP | BPF_JNE | BPF_K
_JEQ_K = 0x15     # BPF_JMP | BPF_JEQ | BPF_K
_JSET_K = 0x45    # BPF_JMP | BPF_JSET | BPF_K
_EXIT = 0x95      # BPF_JMP | BPF_EXIT


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _access_bits(access: str) -> int:
    bits = 0
    for ch in access or "rwm":
        if ch not in _ACCESS:
            raise InvalidArgument(f"linux.resources.devices: bad access {access!r}")
        bits |= _ACCESS[ch]
    return bits


def _rule_block(rule: dict[str, Any]) -> list[tuple[bytes, bool]]:
    """Instructions for one rule; the bool marks a jump to patch to the block's end."""
    out: list[tuple[bytes, bool]] = []
    kind = rule.get("type", "a") or "a"
    if kind not in ("a", "b", "c"):
        raise InvalidArgument(f"linux.resources.devices: unknown device type {kind!r}")
    if kind != "a":
        out.append((_insn(_JNE_K, dst=2, imm=DEV_BLOCK if kind == "b" else DEV_CHAR), True))
    acc = _access_bits(rule.get("access") or "rwm")
    allow = bool(rule.get("allow"))
    if acc != 7:
        if allow:
            # An allow rule covers a request only if every requested access is in it.
            out.append((_insn(_JSET_K, dst=3, imm=7 & ~acc), True))
        else:
            # A deny rule catches a request asking for any of its accesses.
            out.append((_insn(_MOV_X, dst=6, src=3), False))
            out.append((_insn(_AND_K, dst=6, imm=acc), False))
            out.append((_insn(_JEQ_K, dst=6, imm=0), True))
    major, minor = rule.get("major"), rule.get("minor")
    if kind != "a" and major is not None and major >= 0:
        out.append((_insn(_JNE_K, dst=4, imm=major), True))
    if kind != "a" and minor is not None and minor >= 0:
        out.append((_insn(_JNE_K, dst=5, imm=minor), True))
    out.append((_insn(_MOV_K, dst=0, imm=1 if allow else 0), False))
    out.append((_insn(_EXIT), False))
    return out


def program(rules: list[dict[str, Any]]) -> bytes:
    code = [
        _insn(_LDXW, dst=2, src=1, off=0),
        _insn(_AND_K, dst=2, imm=0xFFFF),
        _insn(_LDXW, dst=3, src=1, off=0),
        _insn(_RSH_K, dst=3, imm=16),
        _insn(_LDXW, dst=4, src=1, off=4),
        _insn(_LDXW, dst=5, src=1, off=8),
    ]
    for rule in reversed(rules):
        block = _rule_block(rule)
        for i, (ins, is_jump) in enumerate(block):
            if is_jump:
                # Jump over the rest of this block (offsets count from the next insn).
                c, regs, _, imm = struct.unpack("<BBhi", ins)
                ins = struct.pack("<BBhi", c, regs, len(block) - i - 1, imm)
            code.append(ins)
        if not any(is_jump for _, is_jump in block):
            # A rule matching every request ends the program: the verifier refuses
            # unreachable instructions after it.
            return b"".join(code)
    code += [_insn(_MOV_K, dst=0, imm=0), _insn(_EXIT)]
    return b"".join(code)


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(SYS_bpf, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def load(rules: list[dict[str, Any]]) -> int:
    """Load the program; returns its fd."""
    code = program(rules)
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)
    attr = (ctypes.c_ubyte * 128)()
    struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
                     ctypes.addressof(insns), ctypes.addressof(license_), 1, len(log),
                     ctypes.addressof(log))
    struct.pack_into("<I", attr, 68, BPF_CGROUP_DEVICE)  # expected_attach_type
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        detail = [log.value.decode(errors="replace").strip().replace("\n", " | ")]
        raise OSError(e.errno, f"loading the device filter: {e.strerror} {detail[0]}") \
            from None


def attach(cgroup_dir: str, rules: list[dict[str, Any]]) -> None:
    prog = load(rules)
    cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attr = (ctypes.c_ubyte * 32)()
        struct.pack_into("<IIII", attr, 0, cg, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        _bpf(BPF_PROG_ATTACH, attr)
    finally:
        os.close(cg)
        os.close(prog)  # the cgroup holds its own reference
