"""Layer compression: detect it, stream through it both ways (gzip, zstd, none).

Streams only: layers can be large, and nothing is decompressed to a temporary file.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import shutil
import subprocess
import threading
from typing import BinaryIO

from pallet.errors import InvalidArgument
from pallet.oci import mediatypes as mt

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def detect(head: bytes) -> str:
    if head.startswith(_GZIP_MAGIC):
        return mt.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return mt.ZSTD
    return mt.UNCOMPRESSED


class _Peekable(io.RawIOBase):
    """`src` with its first bytes read ahead for detection, then replayed."""

    def __init__(self, src: BinaryIO, n: int = 8) -> None:
        self._src = src
        self.head = src.read(n)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._pos < len(self.head):
            k = min(len(b), len(self.head) - self._pos)
            b[:k] = self.head[self._pos:self._pos + k]
            self._pos += k
            return k
        data = self._src.read(len(b))
        b[: len(data)] = data
        return len(data)


def decompress_stream(src: BinaryIO, compression: str | None = None) -> tuple[BinaryIO, str]:
    """A reader of the uncompressed bytes of `src`; `compression` None means detect it.

    The media type decides when known, but the magic must agree: a tar labelled gzip
    would otherwise fail later with a confusing tar error.
    """
    peek = _Peekable(src)
    found = detect(peek.head)
    if compression is not None and compression != found:
        raise CorruptData(f"media type says {compression} but the data is {found}")
    raw: BinaryIO = io.BufferedReader(peek, 1 << 20)  # type: ignore[arg-type]
    if found == mt.GZIP:
        if _PIGZ:
            return _Guard(_PigzReader(raw), found), found  # type: ignore[return-value]
        return _Guard(gzip.GzipFile(fileobj=raw, mode="rb"), found), found  # type: ignore[return-value]
    if found == mt.ZSTD:
        import zstandard

        dctx = zstandard.ZstdDecompressor()
        return _Guard(dctx.stream_reader(raw, read_across_frames=True, read_size=1 << 20),
                      found), found  # type: ignore[return-value]
    return raw, found


_PIGZ = shutil.which("pigz")


class _PigzReader:
    """gzip decompressed by a pigz process: inflate runs beside this interpreter's tar
    parsing and hashing instead of in turn with them (measured: bench/images_bench.py).
    A thread feeds it from `src`, so the caller still sees and hashes every input byte."""

    def __init__(self, src: BinaryIO) -> None:
        self._p = subprocess.Popen([_PIGZ or "pigz", "-dc"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._err: BaseException | None = None
        self._t = threading.Thread(target=self._feed, args=(src,), daemon=True)
        self._t.start()

    def _feed(self, src: BinaryIO) -> None:
        stdin = self._p.stdin
        assert stdin is not None
        try:
            while chunk := src.read(1 << 20):
                stdin.write(chunk)
        except BrokenPipeError:
            pass  # pigz stopped (bad data); its exit status says why
        except BaseException as e:
            self._err = e
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def read(self, n: int = -1) -> bytes:
        assert self._p.stdout is not None
        data = self._p.stdout.read(n) if n >= 0 else self._p.stdout.read()
        if not data or (n > 0 and len(data) < n):
            self._finish()
        return data

    def _finish(self) -> None:
        self._t.join()
        rc = self._p.wait()
        if self._err is not None:
            raise self._err
        if rc != 0:
            assert self._p.stderr is not None
            msg = self._p.stderr.read().decode(errors="replace").strip()
            raise CorruptData(f"gzip: {msg or f'pigz exited {rc}'}")

    def close(self) -> None:
        if self._p.poll() is None:
            self._p.kill()
        self._p.wait()
        for f in (self._p.stdout, self._p.stderr):
            if f is not None:
                f.close()
        self._t.join()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class CorruptData(InvalidArgument):
    """Compressed data that does not decompress."""


class _Guard:
    """Decompressor errors come as zlib.error, gzip.BadGzipFile, zstandard.ZstdError,
    EOFError: one error kind for the caller, saying what was being read."""

    def __init__(self, src: BinaryIO, what: str) -> None:
        self._src, self._what = src, what

    def read(self, n: int = -1) -> bytes:
        try:
            return self._src.read(n)
        except InvalidArgument:
            raise
        except Exception as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise  # a real I/O error below, not bad data
            raise CorruptData(f"{self._what} data is corrupt or truncated: {e}") from None

    def close(self) -> None:
        close = getattr(self._src, "close", None)
        if close is not None:
            close()


class _NoClose(io.RawIOBase):
    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._out.write(b)
        return len(b)


def compress_stream(out: BinaryIO, compression: str, *, level: int | None = None) -> BinaryIO:
    """A writer that compresses into `out`; closing it finishes the stream, not `out`."""
    if compression == mt.GZIP:
        # mtime=0: the same tar gives the same blob, so identical layers dedupe.
        return gzip.GzipFile(fileobj=_NoClose(out), mode="wb", mtime=0,  # type: ignore[return-value]
                             compresslevel=6 if level is None else level)
    if compression == mt.ZSTD:
        import zstandard

        cctx = zstandard.ZstdCompressor(level=3 if level is None else level)
        return cctx.stream_writer(out, closefd=False)  # type: ignore[return-value]
    if compression == mt.UNCOMPRESSED:
        return _NoClose(out)  # type: ignore[return-value]
    raise InvalidArgument(f"unknown compression {compression!r}")
