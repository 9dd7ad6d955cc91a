"""Digests (image-spec descriptor.md#digests): `algorithm:encoded`, parsed in one place.

Only the registered algorithms are accepted for content addressing (sha256, sha512), with
their exact lowercase-hex lengths: a digest is a file name in the content store, so an
unchecked string would be a path.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO

# The grammar of descriptor.md; the registered algorithms then narrow `encoded`.
_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_ENCODED = {"sha256": re.compile(r"^[a-f0-9]{64}$"), "sha512": re.compile(r"^[a-f0-9]{128}$")}

SHA256 = "sha256"
SHA512 = "sha512"
CANONICAL = SHA256
ALGORITHMS = tuple(_ENCODED)


class DigestError(ValueError):
    """A string that is not a valid digest of a supported algorithm."""


@dataclass(frozen=True, order=True)
class Digest:
    algorithm: str
    encoded: str

    def __post_init__(self) -> None:
        pattern = _ENCODED.get(self.algorithm)
        if pattern is None:
            raise DigestError(f"unsupported digest algorithm {self.algorithm!r}")
        if not pattern.match(self.encoded):
            raise DigestError(
                f"invalid {self.algorithm} digest {self.encoded!r}: "
                f"want {_hex_len(self.algorithm)} lowercase hex characters"
            )

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    @property
    def hex(self) -> str:
        return self.encoded

    def short(self, n: int = 12) -> str:
        return self.encoded[:n]

    def hasher(self) -> Digester:
        return Digester(self.algorithm)


def _hex_len(algorithm: str) -> int:
    return hashlib.new(algorithm).digest_size * 2


def parse(value: str | Digest) -> Digest:
    """`value` as a Digest, or DigestError naming what is wrong with it."""
    if isinstance(value, Digest):
        return value
    if not isinstance(value, str):
        raise DigestError(f"digest must be a string, not {type(value).__name__}")
    if not _GRAMMAR.match(value):
        raise DigestError(f"invalid digest {value!r}: want algorithm:encoded")
    algorithm, _, encoded = value.partition(":")
    return Digest(algorithm, encoded)


def is_valid(value: str) -> bool:
    try:
        parse(value)
    except DigestError:
        return False
    return True


def from_bytes(data: bytes, algorithm: str = CANONICAL) -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


def from_file(f: BinaryIO, algorithm: str = CANONICAL, bufsize: int = 1 << 20) -> Digest:
    d = Digester(algorithm)
    while chunk := f.read(bufsize):
        d.update(chunk)
    return d.digest()


class Digester:
    """Running hash and byte count of everything written through it."""

    __slots__ = ("_h", "algorithm", "size")

    def __init__(self, algorithm: str = CANONICAL) -> None:
        if algorithm not in _ENCODED:
            raise DigestError(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._h.hexdigest())


class HashingWriter:
    """A write-only stream that forwards to `out` (or nowhere) and digests what passes."""

    def __init__(self, out: BinaryIO | None = None, algorithm: str = CANONICAL) -> None:
        self._out = out
        self.digester = Digester(algorithm)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._out is not None:
            self._out.write(data)
        self.digester.update(data)
        return len(data)

    def flush(self) -> None:
        if self._out is not None:
            self._out.flush()

    @property
    def size(self) -> int:
        return self.digester.size

    def digest(self) -> Digest:
        return self.digester.digest()


class HashingReader:
    """A read-only stream over `src` that digests what is read, to verify at EOF."""

    def __init__(self, src: BinaryIO, algorithm: str = CANONICAL) -> None:
        self._src = src
        self.digester = Digester(algorithm)

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self.digester.update(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def drain(self, bufsize: int = 1 << 20) -> None:
        """Read to EOF: a digest covers the whole blob, not just the part a parser used."""
        while self.read(bufsize):
            pass

    @property
    def size(self) -> int:
        return self.digester.size

    def digest(self) -> Digest:
        return self.digester.digest()
