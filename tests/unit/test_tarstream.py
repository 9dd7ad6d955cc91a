"""The threaded tar reader under layer apply: header formats tarfile knows, data written
straight to files, errors of the reader thread raised where the caller reads, and no thread
left behind when an apply stops half-way."""

import gzip
import io
import os
import tarfile
import threading

import pytest

from pallet.images.apply import LayerError, apply_layer
from pallet.images.tarstream import CHUNK, TarStream
from pallet.oci import mediatypes as mt
from pallet.testing.images import entry, layer, make_tar


def _tar(fmt: int, files: dict[str, bytes], *, end: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    if not end:
        # what some writers produce: the last member, then nothing
        raw = raw.rstrip(b"\0")
        raw += b"\0" * (-len(raw) % 512)
    return raw


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_formats_and_long_names(tmp_path, fmt):
    long = "d/" + "n" * 150 if fmt != tarfile.USTAR_FORMAT else "d/" + "n" * 90
    files = {long: b"long", "big": os.urandom(3 * CHUNK + 17), "empty": b""}
    apply_layer(io.BytesIO(_tar(fmt, files)), str(tmp_path))
    for name, data in files.items():
        assert (tmp_path / name).read_bytes() == data


def test_archive_without_end_blocks(tmp_path):
    raw = _tar(tarfile.PAX_FORMAT, {"a": b"x" * 700, "b": b"yz"}, end=False)
    assert not raw.endswith(b"\0" * 1024)
    apply_layer(io.BytesIO(raw), str(tmp_path))
    assert (tmp_path / "b").read_bytes() == b"yz"


def test_unread_data_is_skipped():
    raw = _tar(tarfile.PAX_FORMAT, {"a": os.urandom(CHUNK + 5), "b": b"second"})
    ts = TarStream(io.BytesIO(raw))
    try:
        names = [m.name for m in ts]   # never takes a's data: the stream skips it
    finally:
        ts.close()
    assert names == ["a", "b"]


def test_reader_thread_error_is_raised_in_caller(tmp_path):
    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.n = 0

        def read(self, n=-1):
            self.n += 1
            if self.n > 2:
                raise ValueError("disk said no")
            return _tar(tarfile.PAX_FORMAT, {"f": b"a" * (4 * CHUNK)})[:CHUNK]

    with pytest.raises(ValueError, match="disk said no"):
        apply_layer(Failing(), str(tmp_path))


def test_truncated_member_data(tmp_path):
    raw = _tar(tarfile.PAX_FORMAT, {"f": os.urandom(100_000)})
    with pytest.raises(LayerError, match="truncated"):
        apply_layer(io.BytesIO(raw[:50_000]), str(tmp_path))


def test_no_thread_left_after_a_refused_entry(tmp_path):
    before = threading.active_count()
    blob, desc, _ = layer([entry("a", "file", os.urandom(2 * CHUNK)),
                           entry("../escape", "file", b"x"),
                           entry("b", "file", os.urandom(20 * CHUNK))], mt.GZIP)
    with pytest.raises(LayerError, match="escape"):
        apply_layer(io.BytesIO(blob), str(tmp_path), desc=desc)
    assert threading.active_count() == before
    assert not (tmp_path / "b").exists()


def test_gzip_multi_member_and_crc(tmp_path):
    tar = make_tar([entry("f", "file", b"hello" * 1000)])
    two = gzip.compress(tar[:1024]) + gzip.compress(tar[1024:])
    apply_layer(io.BytesIO(two), str(tmp_path))
    assert (tmp_path / "f").read_bytes() == b"hello" * 1000
    bad = bytearray(gzip.compress(tar))
    bad[-8] ^= 0xFF  # the CRC32 of the member
    (tmp_path / "x").mkdir()
    with pytest.raises(LayerError, match="gzip data is corrupt"):
        apply_layer(io.BytesIO(bytes(bad)), str(tmp_path / "x"))
