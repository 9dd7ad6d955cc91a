"""Reading a container's json-file log as `GET /containers/{id}/logs` serves it."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from pallet.daemon.images import parse_time

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

    try:
        f = open(path, "rb")  # noqa: SIM115 (held across awaits)
    except FileNotFoundError:
        return
    with f:
        data = f.read()
        offset = len(data)
        lines = data.split(b"\n")
        partial = lines.pop()  # after the last newline: an entry being written
        entries = [e for e in (_parse(x) for x in lines if x) if e is not None and keep(e)]
        if tail is not None:
            entries = entries[-tail:] if tail > 0 else []
        for e in entries:
            yield e
        if not follow:
            return
        quiet = 0
        while True:
            await asyncio.sleep(POLL)
            f.seek(offset)
            more = f.read()
            if more:
                quiet = 0
                offset += len(more)
                buf = partial + more
                lines = buf.split(b"\n")
                partial = lines.pop()
                for x in lines:
                    e = _parse(x) if x else None
                    if e is not None and keep(e):
                        yield e
            elif not running() or not os.path.exists(path):
                quiet += 1
                if quiet >= 2:  # nothing more after it stopped: done
                    return
