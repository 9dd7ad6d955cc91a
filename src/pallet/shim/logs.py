"""Container log writers of the shim: Docker's json-file format and the CRI format.

json-file: one JSON object per line, `{"log": "<line with its \\n>", "stream": "stdout",
"time": "<RFC 3339 nano>"}`; a line longer than 16 KiB is cut into several entries, the last
one carrying the newline (as dockerd does).
CRI (kubelet's): `<RFC 3339 nano> <stream> <P|F> <content>\\n`; P marks a partial line.
"""

from __future__ import annotations

import _json
import os
import time

from pallet.shim.wire import timestamp

MAX_LINE = 16 * 1024
_enc = _json.encode_basestring


class LogWriter:
    def __init__(self, path: str, fmt: str = "json-file") -> None:
        if fmt not in ("json-file", "cri"):
            raise ValueError(f"log format {fmt!r}: json-file or cri")
        self.fmt = fmt
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.partial = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial[stream] + data
        out = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            out.append(self._entry(stream, buf[start:nl + 1], True))
            start = nl + 1
        rest = buf[start:]
        while len(rest) >= MAX_LINE:
            out.append(self._entry(stream, rest[:MAX_LINE], False))
            rest = rest[MAX_LINE:]
        self.partial[stream] = rest
        if out:
            os.write(self.fd, b"".join(out))

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                os.write(self.fd, self._entry(stream, rest, False))
                self.partial[stream] = b""

    def _entry(self, stream: str, data: bytes, complete: bool) -> bytes:
        ts = timestamp(time.time_ns())
        if self.fmt == "cri":
            body = data[:-1] if complete else data
            return b"%s %s %s %s\n" % (ts.encode(), stream.encode(),
                                       b"F" if complete else b"P", body)
        text = data.decode("utf-8", "replace")
        return f'{{"log":{_enc(text)},"stream":"{stream}","time":"{ts}"}}\n'.encode()

    def close(self) -> None:
        self.flush()
        os.close(self.fd)
