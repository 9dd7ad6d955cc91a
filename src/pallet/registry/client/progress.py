"""Progress of blob transfers: a small protocol the pull and push code report to, and its
rich implementation (a bar per layer) for the CLI."""

from __future__ import annotations

from typing import Protocol

from pallet.oci.image import Descriptor


class Progress(Protocol):
    def start(self, desc: Descriptor, what: str) -> None: ...
    def advance(self, desc: Descriptor, n: int) -> None: ...
    def reset(self, desc: Descriptor, offset: int) -> None: ...
    def done(self, desc: Descriptor, status: str) -> None: ...


class NoProgress:
    def start(self, desc: Descriptor, what: str) -> None:
        pass

    def advance(self, desc: Descriptor, n: int) -> None:
        pass

    def reset(self, desc: Descriptor, offset: int) -> None:
        pass

    def done(self, desc: Descriptor, status: str) -> None:
        pass


class RichProgress:
    """One bar per blob: `<short digest> <what> [bar] bytes speed`, ended with a status."""

    def __init__(self, console=None) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._p = Progress(TextColumn("{task.fields[name]}"), TextColumn("{task.description}"),
                           BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                           console=console, transient=False)
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> RichProgress:
        self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._p.stop()

    def start(self, desc: Descriptor, what: str) -> None:
        key = str(desc.digest)
        if key not in self._tasks:
            self._tasks[key] = self._p.add_task(what, total=desc.size,
                                                name=desc.digest.encoded[:12])

    def advance(self, desc: Descriptor, n: int) -> None:
        self._p.advance(self._tasks[str(desc.digest)], n)

    def reset(self, desc: Descriptor, offset: int) -> None:
        self._p.update(self._tasks[str(desc.digest)], completed=offset)

    def done(self, desc: Descriptor, status: str) -> None:
        task = self._tasks[str(desc.digest)]
        self._p.update(task, completed=desc.size, description=status)
