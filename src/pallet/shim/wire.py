"""The local protocol between palletd and pallet-shim, shared by both sides.

The shim stays resident once per container, so this module imports only C modules: `_json`
gives the scanner and string escaping without the `json` package (whose `re` import alone
costs about 1 MiB per process).

A connection to the shim's socket starts with one request line, a JSON object with `op`:

| op          | request fields                        | answer                              |
| ----------- | ------------------------------------- | ----------------------------------- |
| state       |                                       | one line: status, pid, exit_code... |
| start       |                                       | one line: the state, or error       |
| kill        | signal, all, exec                     | one line                            |
| resize      | height, width, exec                   | one line                            |
| wait        |                                       | one line once the init has exited  |
| delete      | force                                 | one line, then the shim exits       |
| close_stdin |                                       | one line                            |
| attach      | stdin, stdout, stderr, stdin_once     | a stream (below)                    |
| exec        | id, process (runtime-spec), tty, stdin| a stream: STARTED ... EXIT frames   |

A stream op that fails answers one EXIT frame `{"error": ...}` and closes.

A stream: the shim sends frames in Docker's stdcopy layout (`stream, 0, 0, 0, length32`,
payload); the other direction carries raw stdin bytes, and a half-close ends stdin. A tty's
output is sent as STDOUT frames too; palletd unframes it for raw-stream clients. The shim
closes an attach stream once the init has exited and its output is drained.
"""

from __future__ import annotations

import _json

STDIN = 0
STDOUT = 1
STDERR = 2
# shim -> palletd only, never forwarded: an exec's pid once it runs, and its exit status
# (JSON objects)
STARTED = 0x7E
EXIT = 0x7F

HEADER = 8


def frame(stream: int, data: bytes) -> bytes:
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


def parse_frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Take the complete frames off the front of `buf` (which keeps any partial one)."""
    out = []
    while len(buf) >= HEADER:
        n = int.from_bytes(buf[4:8], "big")
        if len(buf) < HEADER + n:
            break
        out.append((buf[0], bytes(buf[HEADER:HEADER + n])))
        del buf[:HEADER + n]
    return out


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


def dumps(o: object) -> str:
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
        return repr(o)
    if isinstance(o, dict):
        return "{" + ",".join(_str(str(k)) + ":" + dumps(v) for k, v in o.items()) + "}"
    if isinstance(o, list | tuple):
        return "[" + ",".join(dumps(v) for v in o) + "]"
    raise TypeError(f"cannot encode {type(o).__name__}")


def line(o: object) -> bytes:
    return (dumps(o) + "\n").encode()


def timestamp(ns: int) -> str:
    """RFC 3339 with nanoseconds, UTC, as Docker writes log and state times."""
    import time

    s, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:09d}Z"
