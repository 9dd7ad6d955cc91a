"""The runtime's record of a container: `<root>/<id>/state.json` and the exec FIFO.

The status is never stored: it is derived from the init process (alive? the same process,
by its start time?) and from the FIFO (present until `start` consumed it), so a state file
cannot go stale when a container dies behind the runtime's back.
"""

from __future__ import annotations

import os
import time

from pallet import jsonlite
from pallet.errors import InvalidArgument, NotFound

TYPE_CHECKING = False  # `typing` itself costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"

# runc's rule for ids (^[\w+-.]+$): a name that is also a safe directory name.
_ID_EXTRA = frozenset("_+-.")

CREATING, CREATED, RUNNING, STOPPED, PAUSED = "creating", "created", "running", "stopped", "paused"


def check_id(container_id: str) -> None:
    if (not container_id or container_id in (".", "..")
            or not all(c.isalnum() or c in _ID_EXTRA for c in container_id)):
        raise InvalidArgument(f"invalid container id {container_id!r}: use letters, digits "
                              "and _ + - .")


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None when the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


def now_rfc3339(at: float | None = None) -> str:
    t = time.time_ns() if at is None else int(at * 1_000_000_000)
    secs = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1_000_000_000))
    return f"{secs}.{t % 1_000_000_000:09d}Z"


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class ContainerState:
    """The persisted record. `record` holds the public state fields plus the runtime's
    private ones (config, cgroup paths, init start time)."""

    def __init__(self, root: str, container_id: str, record: dict[str, Any]) -> None:
        self.root = root
        self.id = container_id
        self.record = record

    @property
    def dir(self) -> str:
        return os.path.join(self.root, self.id)

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, EXEC_FIFO)

    @property
    def pid(self) -> int:
        return int(self.record.get("pid") or 0)

    @property
    def config(self) -> dict[str, Any]:
        return self.record["config"]

    @property
    def seccomp_cache(self) -> str:
        """Compiled seccomp programs, shared by the containers of this root (a name no
        container id can take)."""
        return os.path.join(self.root, "@seccomp")

    @classmethod
    def load(cls, root: str, container_id: str) -> ContainerState:
        check_id(container_id)
        path = os.path.join(root, container_id, STATE_FILE)
        try:
            with open(path, "rb") as f:
                record = jsonlite.loads(f.read())
        except FileNotFoundError:
            raise NotFound(f"container {container_id} does not exist") from None
        except ValueError as e:
            raise InvalidArgument(f"{path}: corrupt state: {e}") from None
        return cls(root, container_id, record)

    def save(self) -> None:
        write_atomic(os.path.join(self.dir, STATE_FILE), jsonlite.dumps(self.record).encode())

    def alive(self) -> bool:
        pid = self.pid
        if pid <= 0:
            return False
        return proc_start_time(pid) == self.record.get("initStartTime")

    def status(self) -> str:
        if not self.alive():
            return STOPPED
        if os.path.exists(self.fifo):
            return CREATED
        if self._frozen():
            return PAUSED
        return RUNNING

    def _frozen(self) -> bool:
        from pallet.cgroups import Manager

        return Manager(self.record.get("cgroupPaths", {})).frozen()

    def public(self) -> dict[str, Any]:
        """runtime.md#state, plus runc's rootfs/created/owner fields that tools read."""
        status = self.status()
        out: dict[str, Any] = {
            "ociVersion": self.record["ociVersion"],
            "id": self.id,
            "pid": self.pid if status != STOPPED else 0,
            "status": status,
            "bundle": self.record["bundle"],
            "rootfs": self.record["rootfs"],
            "created": self.record["created"],
            "owner": self.record.get("owner", ""),
        }
        if self.record.get("annotations"):
            out["annotations"] = self.record["annotations"]
        return out


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.exists(os.path.join(root, n, STATE_FILE)))


def remove_state_dir(path: str) -> None:
    """The state directory is flat (state.json, exec.fifo, temp files): no shutil needed."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
