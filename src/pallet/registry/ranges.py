"""Byte ranges of the distribution-spec: the `Content-Range` of a chunk upload
(`<start>-<end>`, inclusive, spec "Pushing a blob in chunks"), the `Range: 0-<end>` a
registry answers with, and the RFC 9110 `Range: bytes=` of a resumed blob pull."""

from __future__ import annotations

import re

_CHUNK = re.compile(r"^(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?$")
_BYTES = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


class RangeError(ValueError):
    """A malformed or unsatisfiable range."""


def parse_content_range(value: str) -> tuple[int, int]:
    """`start-end` of a chunk (inclusive both ends), as (start, end).

    The spec's form is `^[0-9]+-[0-9]+$`; the `bytes ` prefix and `/total` suffix of
    RFC 9110 are accepted too, since some clients send them."""
    m = _CHUNK.match(value.strip())
    if m is None:
        raise RangeError(f"invalid Content-Range {value!r}: want <start>-<end>")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise RangeError(f"invalid Content-Range {value!r}: end before start")
    return start, end


def upload_range(offset: int) -> str:
    """The `Range` header of an upload holding `offset` bytes: the last byte's position.

    With nothing uploaded yet there is no last byte; distribution answers `0-0` then (and
    clients read it as "start at 0"), so do the same."""
    return f"0-{max(offset - 1, 0)}"


def parse_upload_range(value: str) -> int:
    """The next offset to upload from, given a registry's `Range: 0-<end>` answer."""
    m = re.match(r"^(?:bytes=)?0-([0-9]+)$", value.strip())
    if m is None:
        raise RangeError(f"invalid upload Range {value!r}")
    return int(m.group(1)) + 1


def parse_byte_range(value: str, size: int) -> tuple[int, int]:
    """One RFC 9110 byte range against a representation of `size` bytes, as (start, end)
    inclusive. RangeError if it is malformed, multi-part, or unsatisfiable (-> 416)."""
    m = _BYTES.match(value.strip())
    if m is None:
        raise RangeError(f"unsupported Range {value!r}: want one bytes=<first>-<last>")
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        raise RangeError(f"invalid Range {value!r}")
    if first == "":  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeError(f"unsatisfiable Range {value!r} of {size} bytes")
        return max(size - n, 0), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        raise RangeError(f"invalid Range {value!r}: last before first")
    if start >= size:
        raise RangeError(f"unsatisfiable Range {value!r} of {size} bytes")
    return start, end


def content_range(start: int, end: int, size: int) -> str:
    return f"bytes {start}-{end}/{size}"
