"""Snapshotters after containerd's model: a snapshot is a directory tree named by a key,
Active (writable, from Prepare), View (read-only, from View) or Committed (immutable, from
Commit, and the only kind that can be a parent). Snapshotters return mount descriptions
and never mount; whoever needs the tree mounts them (`mount_all`; or, to apply a layer,
writes to the directories the description names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Kind(StrEnum):
    VIEW = "view"
    ACTIVE = "active"
    COMMITTED = "committed"


@dataclass
class Info:
    name: str
    kind: Kind
    parent: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class Usage:
    size: int = 0    # bytes this snapshot itself holds (not its parents)
    inodes: int = 0


@dataclass
class Mount:
    """A mount description (runtime-spec config.md#mounts without the destination)."""

    type: str
    source: str
    options: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "source": self.source, "options": list(self.options)}

    def option(self, name: str) -> str | None:
        prefix = name + "="
        for o in self.options:
            if o.startswith(prefix):
                return o[len(prefix):]
        return None


def mount_all(mounts: list[Mount], target: str) -> None:
    """Mount a snapshot's `mounts` on `target` (created if missing), in order, as
    containerd's mount.All."""
    import os

    from pallet.linux.mount import MountOptions, bind, finish_bind, mount_fs

    os.makedirs(target, exist_ok=True)
    for m in mounts:
        opts = MountOptions(m.options)
        if m.type == "bind":
            bind(m.source, target, opts)
            finish_bind(target, opts)
        else:
            mount_fs(m.source, target, m.type, opts)


class Snapshotter(Protocol):
    name: str

    def stat(self, key: str) -> Info: ...
    def update(self, key: str, labels: Mapping[str, str | None]) -> Info: ...
    def usage(self, key: str) -> Usage: ...
    def mounts(self, key: str) -> list[Mount]: ...
    def prepare(self, key: str, parent: str | None = None,
                labels: Mapping[str, str] | None = None) -> list[Mount]: ...
    def view(self, key: str, parent: str | None = None,
             labels: Mapping[str, str] | None = None) -> list[Mount]: ...
    def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None: ...
    def remove(self, key: str) -> None: ...
    def walk(self, fn: Callable[[Info], None] | None = None) -> list[Info]: ...
    def close(self) -> None: ...
