"""The json-file log driver's options (HostConfig.LogConfig.Config), as dockerd's
jsonfilelog reads them: `max-size` (docker's RAMInBytes: 10k = 10240) and `max-file`; the
shim's log writer rotates with them, palletd's reader reads the rotated files back."""

from __future__ import annotations

import os
import re
from typing import Any

from pallet.errors import InvalidArgument

# Accepted (the others are dockerd's; pallet keeps them in the record but has no use for
# them yet); anything else is refused as dockerd refuses it.
KNOWN = ("max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex",
         "tag")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
          "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: a number with an optional binary unit (k, kb, kib, ...)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", text.strip().lower())
    if not m:
        raise InvalidArgument(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse(config: dict[str, Any] | None) -> tuple[int, int]:
    """(max_size in bytes or 0 for unbounded, max_file >= 1)."""
    cfg = config or {}
    for key in cfg:
        if key not in KNOWN:
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    max_size = 0
    if cfg.get("max-size"):
        max_size = ram_in_bytes(str(cfg["max-size"]))
        if max_size <= 0:
            raise InvalidArgument("max-size must be a positive number")
    max_file = 1
    if cfg.get("max-file"):
        try:
            max_file = int(cfg["max-file"])
        except ValueError:
            raise InvalidArgument(f"invalid max-file: {cfg['max-file']!r}") from None
        if max_file < 1:
            raise InvalidArgument("max-file cannot be less than 1")
        if max_file > 1 and not max_size:
            # dockerd ignores max-file without max-size; so does the writer
            max_file = 1
    return max_size, max_file


def rotated_paths(path: str, max_file: int | None = None) -> list[str]:
    """The rotated files that exist, oldest first: <path>.N-1 ... <path>.1."""
    out = []
    i = 1
    while max_file is None or i < max_file:
        p = f"{path}.{i}"
        if not os.path.exists(p):
            break
        out.append(p)
        i += 1
    return out[::-1]
