"""JSON through the C accelerator `_json` alone, without the `json` package: its `re` and
`enum` imports cost ~4 ms at start-up (paid by every `pallet run`) and ~1 MiB in every
resident shim. Compact output with ASCII escapes; parsing is json's own C scanner."""

from __future__ import annotations

import _json


class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return float(name.replace("Infinity", "inf"))


_scan = _json.make_scanner(_Ctx())
_str = _json.encode_basestring_ascii


def loads(s: str | bytes) -> object:
    if isinstance(s, bytes | bytearray):
        s = s.decode()
    s = s.strip()
    try:
        obj, end = _scan(s, 0)
    except StopIteration:
        raise ValueError(f"not JSON: {s[:80]!r}") from None
    if end != len(s):
        raise ValueError(f"extra data after JSON: {s[end:end + 40]!r}")
    return obj


def dumps(o: object, indent: int | str | None = None, sort_keys: bool = False) -> str:
    """Compact (no spaces) unless `indent` is given, then laid out as json.dumps lays it
    out with the same indent; non-finite floats as json writes them."""
    pad = " " * indent if isinstance(indent, int) else indent
    return _encode(o, pad, sort_keys, "\n")


def _encode(o: object, pad: str | None, sort: bool, nl: str) -> str:
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, str):
        return _str(o)
    if isinstance(o, int):
        return str(int(o))
    if isinstance(o, float):
        if o != o:
            return "NaN"
        if o in (float("inf"), float("-inf")):
            return "Infinity" if o > 0 else "-Infinity"
        return float.__repr__(o)
    if isinstance(o, dict):
        items = sorted(o.items()) if sort else o.items()
        if pad is None:
            return "{" + ",".join(_str(str(k)) + ":" + _encode(v, pad, sort, nl)
                                  for k, v in items) + "}"
        if not o:
            return "{}"
        inner = nl + pad
        return "{" + ",".join(inner + _str(str(k)) + ": " + _encode(v, pad, sort, inner)
                              for k, v in items) + nl + "}"
    if isinstance(o, list | tuple):
        if pad is None:
            return "[" + ",".join(_encode(v, pad, sort, nl) for v in o) + "]"
        if not o:
            return "[]"
        inner = nl + pad
        return "[" + ",".join(inner + _encode(v, pad, sort, inner) for v in o) + nl + "]"
    raise TypeError(f"cannot encode {type(o).__name__}")
