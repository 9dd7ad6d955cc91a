"""Reading a container's json-file log as `GET /containers/{id}/logs` serves it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from pallet.daemon.images import parse_time
from pallet.daemon.logopts import rotated_paths

POLL = 0.1


@dataclass
class Entry:
    stream: str
    time: str
    data: bytes


def _parse(line: bytes) -> Entry | None:
    try:
        d = json.loads(line)
    except ValueError:
        return None
    return Entry(d.get("stream", "stdout"), d.get("time", ""),
                 d.get("log", "").encode("utf-8", "surrogateescape"))


async def read(path: str, *, stdout: bool = True, stderr: bool = True, since: float = 0,
               until: float = 0, tail: int | None = None, follow: bool = False,
               running: Callable[[], bool] = lambda: False) -> AsyncIterator[Entry]:
    want = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}

    def keep(e: Entry) -> bool:
        if e.stream not in want:
            return False
        if since or until:
            t = parse_time(e.time)
            if since and t < since:
                return False
            if until and t > until:
                return False
        return True

    def parse_new(buf: bytes) -> tuple[list[Entry], bytes]:
        """The entries of the complete lines in buf, and what follows the last newline (an
        entry being written)."""
        lines = buf.split(b"\n")
        rest = lines.pop()
        return [e for e in (_parse(x) for x in lines if x) if e is not None and keep(e)], rest

    # The current file is opened first: it is the one to follow, whatever rotates after.
    try:
        f = open(path, "rb")  # noqa: SIM115 (held across awaits)
    except FileNotFoundError:
        return
    try:
        entries: list[Entry] = []
        for old in rotated_paths(path):
            try:
                with open(old, "rb") as g:
                    entries += parse_new(g.read())[0]
            except FileNotFoundError:
                continue  # rotated away meanwhile
        found, partial = parse_new(f.read())
        entries += found
        if tail is not None:
            entries = entries[-tail:] if tail > 0 else []
        for e in entries:
            yield e
        if not follow:
            return
        quiet = 0
        while True:
            await asyncio.sleep(POLL)
            more = f.read()
            if more:
                quiet = 0
                found, partial = parse_new(partial + more)
                for e in found:
                    yield e
            # checked even after new data: a busy writer may rotate several times a poll
            newer = _rotated_since(path, os.fstat(f.fileno()).st_ino)
            if newer is not None:
                # the writer moved on: what it wrote to the files after ours, then the
                # new current file from its start
                found, _ = parse_new(partial + f.read())
                for name in newer:
                    with contextlib.suppress(FileNotFoundError), open(name, "rb") as g:
                        found += parse_new(g.read())[0]
                try:
                    nf = open(path, "rb")  # noqa: SIM115
                except FileNotFoundError:
                    nf = None
                if nf is not None:
                    f.close()
                    f, partial = nf, b""
                for e in found:
                    yield e
                quiet = 0
            elif not more and (not running() or not os.path.exists(path)):
                quiet += 1
                if quiet >= 2:  # nothing more after it stopped: done
                    return
    finally:
        f.close()


def _rotated_since(path: str, ino: int) -> list[str] | None:
    """None while `path` is still the file with inode `ino`; after a rotation, the rotated
    files newer than that one, oldest first (none when it is gone: max-file 1)."""
    try:
        if os.stat(path).st_ino == ino:
            return None
    except FileNotFoundError:
        return None  # between the writer's rename and create: look again next time
    newer: list[str] = []
    i = 1
    while True:
        try:
            st = os.stat(f"{path}.{i}")
        except FileNotFoundError:
            return []
        if st.st_ino == ino:
            return newer[::-1]
        newer.append(f"{path}.{i}")
        i += 1
