"""A streaming tar reader for layer apply, split over two threads.

    reader thread:  read blob -> hash it -> decompress -> hash the tar -> queue of chunks
    caller:         tar headers (tarfile.TarInfo.fromtarfile) and file data, written with
                    os.write straight from the chunks as they arrived

Why not `tarfile.open(mode="r|")`: its stream reads the decompressor 10 kB at a time and
copies every byte through three buffers; profiled on the big benchmark image, that and
waiting for the decompressor were most of an unpack. Here the reading, hashing and inflating
of the next megabyte overlap with writing the current one (hashlib, read(2) and write(2)
release the GIL), and file data is never copied in Python.

Headers are still parsed by the stdlib (`TarInfo.fromtarfile`, documented for this use), so
pax, GNU long names and base-256 numbers mean what they mean to tarfile.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tarfile
import threading
from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 1 << 20
_DEPTH = 8          # chunks the reader thread may run ahead (8 MB)
_EOF = object()


class _Reader:
    """Pulls chunks from `src` in a thread; `read`/`tell`/`copy_to` for the caller."""

    def __init__(self, src: BinaryIO) -> None:
        self._q: queue.Queue[object] = queue.Queue(_DEPTH)
        self._stop = threading.Event()
        self._buf = memoryview(b"")
        self._pos = 0
        self._eof = False
        self._t = threading.Thread(target=self._run, args=(src,), name="layer-reader",
                                   daemon=True)
        self._t.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, src: BinaryIO) -> None:
        try:
            while chunk := src.read(CHUNK):
                if not self._put(chunk):
                    return
            self._put(_EOF)
        except BaseException as e:  # handed to the caller, raised where it reads
            self._put(e)

    def _next(self) -> bool:
        if self._eof:
            return False
        item = self._q.get()
        if item is _EOF:
            self._eof = True
            return False
        if isinstance(item, BaseException):
            self._eof = True
            raise item
        self._buf = memoryview(item)  # type: ignore[arg-type]
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, n: int) -> bytes:
        if len(self._buf) >= n:
            out = bytes(self._buf[:n])
            self._buf = self._buf[n:]
            self._pos += n
            return out
        parts = []
        while n > 0 and (self._buf or self._next()):
            take = self._buf[:n]
            parts.append(bytes(take))
            self._buf = self._buf[len(take):]
            n -= len(take)
            self._pos += len(take)
        return b"".join(parts)

    def skip(self, n: int) -> int:
        done = 0
        while done < n and (self._buf or self._next()):
            k = min(n - done, len(self._buf))
            self._buf = self._buf[k:]
            done += k
        self._pos += done
        return done

    def copy_to(self, fd: int, n: int) -> int:
        """Write the next `n` bytes to `fd`; returns how many there were (short at EOF)."""
        done = 0
        while done < n and (self._buf or self._next()):
            take = self._buf[: n - done]
            while take:
                w = os.write(fd, take)
                take = take[w:]
                done += w
                self._buf = self._buf[w:]
        self._pos += done
        return done

    def drain(self) -> None:
        """Consume to the end, so the thread finishes hashing the whole stream; then the
        thread is gone and what it read may be looked at."""
        self._pos += len(self._buf)
        self._buf = memoryview(b"")
        while self._next():
            self._pos += len(self._buf)
            self._buf = memoryview(b"")
        self._t.join()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._q.get_nowait()
        self._t.join()


class TruncatedError(EOFError):
    pass


class TarStream:
    """Iterate over `(member, stream)`; a regular file's data is taken with
    `stream.copy_to(fd, member.size)` (or left, and skipped) before the next member."""

    # what TarInfo.fromtarfile reads from its "tarfile" argument
    encoding = tarfile.ENCODING
    errors = "surrogateescape"

    def __init__(self, src: BinaryIO) -> None:
        self.fileobj = _Reader(src)
        self.pax_headers: dict[str, str] = {}
        self.offset = 0

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        while True:
            if self.offset != self.fileobj.tell():
                want = self.offset - self.fileobj.tell()
                if want < 0 or self.fileobj.skip(want) != want:
                    raise TruncatedError("unexpected end of data")
            try:
                m = tarfile.TarInfo.fromtarfile(self)  # type: ignore[arg-type]
            except tarfile.EOFHeaderError:
                return                  # the zero block that ends an archive
            except tarfile.EmptyHeaderError:
                if self.offset == 0:
                    raise tarfile.ReadError("empty file") from None
                return                  # no end-of-archive blocks, as some writers do
            except tarfile.TruncatedHeaderError as e:
                raise TruncatedError(str(e)) from None
            except tarfile.HeaderError as e:
                raise tarfile.ReadError(str(e)) from None
            if m.sparse is not None:
                raise tarfile.ReadError(f"{m.name}: GNU sparse files are not supported")
            yield m

    def copy_to(self, fd: int, m: tarfile.TarInfo) -> None:
        if self.fileobj.copy_to(fd, m.size) != m.size:
            raise TruncatedError(f"{m.name}: unexpected end of data")

    def drain(self) -> None:
        self.fileobj.drain()

    def close(self) -> None:
        self.fileobj.close()

