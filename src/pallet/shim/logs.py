"""Container log writers of the shim: Docker's json-file format and the CRI format.

json-file: one JSON object per line, `{"log": "<line with its \\n>", "stream": "stdout",
"time": "<RFC 3339 nano>"}`; a line longer than 16 KiB is cut into several entries, the last
one carrying the newline (as dockerd does).
CRI (kubelet's): `<RFC 3339 nano> <stream> <P|F> <content>\\n`; P marks a partial line.

Rotation (json-file's max-size/max-file): before an entry is written to a file that has
reached max-size, <log>.N-2 .. <log>.1 move up by one, <log> becomes <log>.1 and a new <log>
is created (with max-file 1 the old one is just dropped). The new file is a new inode, so a
reader that follows the log sees the rotation (pallet.daemon.logs).
"""

from __future__ import annotations

import _json
import os
import time

from pallet.shim.wire import timestamp

MAX_LINE = 16 * 1024
_enc = _json.encode_basestring


class LogWriter:
    def __init__(self, path: str, fmt: str = "json-file", max_size: int = 0,
                 max_file: int = 1) -> None:
        if fmt not in ("json-file", "cri"):
            raise ValueError(f"log format {fmt!r}: json-file or cri")
        self.fmt = fmt
        self.path = path
        self.max_size = max_size
        self.max_file = max(max_file, 1)
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size
        self.partial = {"stdout": b"", "stderr": b""}

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def _emit(self, entries: list[bytes]) -> None:
        if not self.max_size:
            os.write(self.fd, b"".join(entries))
            return
        chunk: list[bytes] = []
        for e in entries:
            if self.size >= self.max_size:
                if chunk:
                    os.write(self.fd, b"".join(chunk))
                    chunk = []
                self._rotate()
            chunk.append(e)
            self.size += len(e)
        if chunk:
            os.write(self.fd, b"".join(chunk))

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.max_file > 1:
            for i in range(self.max_file - 1, 1, -1):
                try:
                    os.replace(f"{self.path}.{i - 1}", f"{self.path}.{i}")
                except FileNotFoundError:
                    pass
            os.replace(self.path, self.path + ".1")
        else:
            os.unlink(self.path)
        self.fd = self._open()
        self.size = 0

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
            self._emit(out)

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._emit([self._entry(stream, rest, False)])
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
