import hashlib
import io

import pytest

from pallet.oci import digest

SHA256_EMPTY = "sha256:" + hashlib.sha256(b"").hexdigest()


def test_parse_roundtrip_sha256_and_sha512():
    d = digest.parse(SHA256_EMPTY)
    assert d.algorithm == "sha256"
    assert str(d) == SHA256_EMPTY
    s512 = "sha512:" + hashlib.sha512(b"x").hexdigest()
    assert str(digest.parse(s512)) == s512


@pytest.mark.parametrize("bad", [
    "", "sha256", "sha256:", "sha256:abc", "md5:" + "0" * 32,
    "sha256:" + "A" * 64,            # uppercase hex is not canonical
    "sha256:" + "0" * 63, "sha512:" + "0" * 64, "sha256:" + "0" * 64 + "/..",
    "SHA256:" + "0" * 64, "sha256:../../etc/passwd",
])
def test_parse_rejects(bad):
    with pytest.raises(digest.DigestError):
        digest.parse(bad)


def test_error_names_the_problem():
    with pytest.raises(digest.DigestError, match="unsupported digest algorithm 'md5'"):
        digest.parse("md5:" + "0" * 32)
    with pytest.raises(digest.DigestError, match="64 lowercase hex"):
        digest.parse("sha256:abcd")


def test_from_bytes_and_file_agree():
    data = b"hello world" * 1000
    d = digest.from_bytes(data)
    assert d == digest.from_file(io.BytesIO(data))
    assert d.encoded == hashlib.sha256(data).hexdigest()
    assert digest.from_bytes(data, "sha512").encoded == hashlib.sha512(data).hexdigest()


def test_hashing_writer_forwards_and_counts():
    out = io.BytesIO()
    w = digest.HashingWriter(out)
    w.write(b"abc")
    w.write(memoryview(b"def"))
    assert out.getvalue() == b"abcdef"
    assert w.size == 6
    assert w.digest() == digest.from_bytes(b"abcdef")


def test_hashing_reader_drain_covers_whole_stream():
    r = digest.HashingReader(io.BytesIO(b"0123456789"))
    assert r.read(3) == b"012"
    r.drain()
    assert r.size == 10
    assert r.digest() == digest.from_bytes(b"0123456789")


def test_digest_equality_and_hash():
    assert digest.parse(SHA256_EMPTY) == digest.parse(SHA256_EMPTY)
    assert len({digest.parse(SHA256_EMPTY), digest.parse(SHA256_EMPTY)}) == 1


def test_is_valid():
    assert digest.is_valid(SHA256_EMPTY)
    assert not digest.is_valid("sha256:zz")
