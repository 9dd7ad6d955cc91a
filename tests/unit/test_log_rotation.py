"""json-file rotation: the shim's writer (max-size/max-file) and palletd's reader, which
reads the rotated files oldest first and follows the log across rotations. No root."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from pallet.daemon import logopts
from pallet.daemon.logs import read
from pallet.errors import InvalidArgument
from pallet.shim.logs import LogWriter


def _numbers(path: str) -> list[int]:
    with open(path) as f:
        return [int(json.loads(line)["log"]) for line in f]


def _first_line_size(path: str) -> int:
    with open(path) as f:
        return len(f.readline())


def _written(tmp_path, n: int, stream: str = "stdout", **opts) -> str:
    """A log of the lines 0 .. n-1 written with these rotation options; its path."""
    path = str(tmp_path / "c-json.log")
    w = LogWriter(path, **opts)
    for i in range(n):
        w.write(stream, f"{i}\n".encode())
    w.close()
    return path


def test_writer_rotates_and_bounds_the_files(tmp_path):
    path = _written(tmp_path, 200, max_size=500, max_file=3)
    assert sorted(os.listdir(tmp_path)) == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    entry = _first_line_size(path)
    for p in (path, path + ".1", path + ".2"):
        # a file is rotated before the entry that would start past max-size
        assert os.path.getsize(p) < 500 + entry
    kept = _numbers(path + ".2") + _numbers(path + ".1") + _numbers(path)
    assert kept == list(range(kept[0], 200)) and kept[0] > 0


def test_writer_max_file_one_keeps_only_the_current(tmp_path):
    path = _written(tmp_path, 100, "stderr", max_size=300, max_file=1)
    assert os.listdir(tmp_path) == ["c-json.log"]
    assert _numbers(path)[-1] == 99 and os.path.getsize(path) < 400


def test_writer_without_max_size_never_rotates(tmp_path):
    path = _written(tmp_path, 1000, max_file=5)
    assert os.listdir(tmp_path) == ["c-json.log"] and len(_numbers(path)) == 1000


def _collect(path: str, **kw) -> list[int]:
    async def go() -> list[int]:
        return [int(e.data) async for e in read(path, **kw)]

    return asyncio.run(go())


def test_reader_reads_rotated_files_oldest_first(tmp_path):
    path = _written(tmp_path, 120, max_size=400, max_file=4)
    got = _collect(path)
    entry = _first_line_size(path)
    # the current file and three rotated ones, each about max-size
    assert got == list(range(got[0], 120)) and len(got) > 3 * (400 // entry)
    assert _collect(path, tail=5) == list(range(115, 120))


def test_reader_follows_across_rotations(tmp_path):
    path = str(tmp_path / "c-json.log")
    w = LogWriter(path, max_size=200, max_file=4)
    w.write("stdout", b"0\n")
    running = [True]

    async def writer() -> None:
        # a rotation every third entry: one or two between two polls of the reader, which
        # finds the files it has not read among the rotated ones
        for i in range(1, 100):
            w.write("stdout", f"{i}\n".encode())
            await asyncio.sleep(0.02)
        w.close()
        await asyncio.sleep(0.3)
        running[0] = False

    async def go() -> list[int]:
        t = asyncio.ensure_future(writer())
        got = [int(e.data) async for e in read(path, follow=True, running=lambda: running[0])]
        await t
        return got

    assert asyncio.run(go()) == list(range(100))


def test_log_options():
    assert logopts.parse({"max-size": "10k", "max-file": "3"}) == (10240, 3)
    assert logopts.parse({"max-size": "2m"}) == (2 << 20, 1)
    assert logopts.parse({}) == (0, 1)
    assert logopts.parse({"max-file": "3"}) == (0, 1)  # no max-size: no rotation
    for bad in ({"max-size": "ten"}, {"max-file": "0", "max-size": "1k"},
                {"max-sise": "1k"}, {"max-size": "0"}):
        with pytest.raises(InvalidArgument):
            logopts.parse(bad)
