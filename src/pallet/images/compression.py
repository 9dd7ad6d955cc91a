"""Layer compression: detect it, stream through it both ways (gzip, zstd, none).

Streams only: layers can be large, and nothing is decompressed to a temporary file.
"""

from __future__ import annotations

import gzip
import io
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
        return _Guard(_gunzip(raw), found), found  # type: ignore[return-value]
    if found == mt.ZSTD:
        import zstandard

        dctx = zstandard.ZstdDecompressor()
        return _Guard(dctx.stream_reader(raw, read_across_frames=True, read_size=1 << 20),
                      found), found  # type: ignore[return-value]
    return raw, found


def _gunzip(raw: BinaryIO) -> BinaryIO:
    """ISA-L's inflate (python-isal) where installed: about 3x zlib's speed, measured on
    the big benchmark image (bench/images_bench.py); zlib otherwise. Both read multi-member
    streams and check each member's CRC and length."""
    try:
        from isal import igzip
    except ImportError:  # pragma: no cover - isal is a dependency; zlib still works
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return igzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]


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
