"""The local protocol between palletd and pallet-shim, shared by both sides.

The shim stays resident once per container, so this module imports only C modules (JSON
through `pallet.jsonlite`, over `_json`, without the `json` package whose `re` import alone
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

from pallet import jsonlite

dumps, loads = jsonlite.dumps, jsonlite.loads  # the protocol's JSON (re-exported)

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


def line(o: object) -> bytes:
    return (dumps(o) + "\n").encode()


def timestamp(ns: int) -> str:
    """RFC 3339 with nanoseconds, UTC, as Docker writes log and state times."""
    import time

    s, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:09d}Z"
