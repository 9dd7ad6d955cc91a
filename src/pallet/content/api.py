"""The content store's interfaces, as containerd splits them: Provider (read), Ingester
(resumable write, commit against an expected size and digest) and Manager (info, labels,
walk, delete). Implementations live apart; the shared test suite is written against these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from pallet.oci.digest import Digest


@dataclass
class Info:
    digest: Digest
    size: int
    created_at: float
    updated_at: float
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Status:
    """Progress of one ingest, enough to resume it (`offset`) after a crash."""

    ref: str
    offset: int
    total: int | None
    expected: Digest | None
    started_at: float
    updated_at: float


class Writer(Protocol):
    ref: str

    @property
    def offset(self) -> int: ...
    def write(self, data: bytes | bytearray | memoryview) -> int: ...
    def truncate(self, size: int) -> None: ...
    def digest(self) -> Digest: ...
    def status(self) -> Status: ...
    def commit(self, size: int, expected: Digest | None,
               labels: Mapping[str, str] | None = None) -> Digest: ...
    def close(self) -> None: ...


class Provider(Protocol):
    def reader(self, dgst: Digest) -> BinaryIO: ...
    def read_blob(self, dgst: Digest) -> bytes: ...


class Ingester(Protocol):
    def writer(self, ref: str, *, total: int | None = None,
               expected: Digest | None = None) -> Writer: ...
    def status(self, ref: str) -> Status: ...
    def statuses(self) -> list[Status]: ...
    def abort(self, ref: str) -> None: ...


class Manager(Protocol):
    def info(self, dgst: Digest) -> Info: ...
    def update_labels(self, dgst: Digest, labels: Mapping[str, str | None]) -> Info: ...
    def walk(self, fn: Callable[[Info], None] | None = None, *,
             labels: Mapping[str, str | None] | None = None) -> Iterator[Info]: ...
    def delete(self, dgst: Digest) -> None: ...


class Store(Provider, Ingester, Manager, Protocol):
    pass
