"""The sealed exec trampoline (trampoline.c): built once at install, copied into a sealed
memfd by every init and exec, and used for the final execve so that a container can never
reach the host's python binary through /proc/self/exe (CVE-2019-5736 class)."""

from __future__ import annotations

import fcntl
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "trampoline.c")
BINARY = os.path.join(HERE, "pallet-exec")

_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def sealed_fd() -> int | None:
    """A close-on-exec, write-sealed memfd holding the trampoline, or None if it was not
    built (then the runtime execs directly: `features` and the tests show the difference)."""
    try:
        with open(BINARY, "rb") as f:
            code = f.read()
    except FileNotFoundError:
        return None
    fd = os.memfd_create("pallet-exec", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, code)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    return fd


def build(dest: str = BINARY) -> None:
    """Compile trampoline.c (x86_64, no libc: a few hundred bytes)."""
    import subprocess  # only at install time; it costs ms to import

    tmp = dest + ".tmp"
    subprocess.run(["gcc", "-static", "-nostdlib", "-ffreestanding", "-Os",
                    "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-fno-pie",
                    "-no-pie", "-Wl,--build-id=none", "-Wl,-n", "-Wl,-z,noseparate-code", "-s",
                    "-o", tmp, SOURCE], check=True)
    os.replace(tmp, dest)


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else BINARY)
    print(BINARY if len(sys.argv) < 2 else sys.argv[1])
