"""Stand-ins for stdlib helpers whose imports cost milliseconds on every runtime call
(contextlib pulls in functools and collections)."""

from __future__ import annotations


class suppress:
    def __init__(self, *exceptions: type[BaseException]) -> None:
        self.exceptions = exceptions

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> bool:
        return exc_type is not None and issubclass(exc_type, self.exceptions)
