"""Detach keys (`--detach-keys`), shared by palletd and the CLI."""

from __future__ import annotations

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


def parse_detach_keys(spec: str | None) -> bytes:
    """Docker's `--detach-keys` syntax: comma-separated `ctrl-<x>` or single characters."""
    if not spec:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for part in spec.split(","):
        if part.startswith("ctrl-") and len(part) == 6:
            ch = part[5]
            code = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(ch)
            out.append(code if code is not None else (ord(ch.lower()) - ord("a") + 1))
        elif len(part) == 1:
            out.append(ord(part))
        else:
            raise ValueError(f"invalid detach keys {spec!r}")
    return bytes(out)
