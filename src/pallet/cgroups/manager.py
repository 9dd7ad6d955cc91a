"""Creating a container's cgroup, putting processes in it, listing and removing it."""

from __future__ import annotations

import errno
import os
import sys
import time

MOUNTINFO = "/proc/self/mountinfo"


def host_hierarchies(mountinfo: str = MOUNTINFO) -> dict[str, str]:
    """Hierarchy name -> mount point. v1 hierarchies are named by their controllers
    ("cpu,cpuacct", "name=systemd"); the v2 one is named "" (unified)."""
    out: dict[str, str] = {}
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, super_opts = fields[sep + 1], fields[sep + 3]
            mountpoint = fields[4]
            if fstype == "cgroup2":
                out.setdefault("", mountpoint)
            elif fstype == "cgroup":
                names = [o for o in super_opts.split(",")
                         if o not in ("rw", "ro") and not o.startswith(("release_agent=",
                                                                        "clone_children"))]
                out.setdefault(",".join(names), mountpoint)
    return out


def own_cgroups() -> dict[str, str]:
    """Hierarchy name -> this process's cgroup path, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            out[controllers] = path
    return out


def resolve_path(cgroups_path: str, container_id: str, hierarchy: str,
                 own: dict[str, str] | None = None) -> str:
    """runtime-spec config-linux.md#cgroups-path: an absolute path is relative to the
    hierarchy's root, a relative one to the runtime's own cgroup; unset means /<id>, as
    runc does."""
    if not cgroups_path:
        return "/" + container_id
    if cgroups_path.startswith("/"):
        return os.path.normpath(cgroups_path)
    base = (own if own is not None else own_cgroups()).get(hierarchy, "/")
    return os.path.normpath(os.path.join(base, cgroups_path))


class Manager:
    """The container's directory in each hierarchy (`paths`: hierarchy -> absolute dir)."""

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths

    @classmethod
    def for_config(cls, cgroups_path: str, container_id: str) -> Manager:
        own = own_cgroups()
        paths = {}
        for name, mountpoint in host_hierarchies().items():
            rel = resolve_path(cgroups_path, container_id, name, own)
            paths[name] = os.path.join(mountpoint, rel.lstrip("/"))
        return cls(paths)

    def create(self) -> None:
        for name, path in self.paths.items():
            if "cpuset" in name.split(","):
                _mkdir_cpuset(path)
            else:
                os.makedirs(path, exist_ok=True)
        if self.unified_only:
            from pallet.cgroups.v2 import enable_controllers

            path = self.paths[""]
            enable_controllers(_mountpoint_of(path), path)

    @property
    def unified_only(self) -> bool:
        return list(self.paths) == [""]

    def apply(self, resources: dict) -> None:
        from pallet.cgroups import v1, v2

        if self.unified_only:
            v2.apply(self.paths[""], resources)
        else:
            v1.apply(self.paths, resources)

    def freeze(self, frozen: bool, timeout: float = 10.0) -> None:
        """v1 freezer.state or v2 cgroup.freeze, then wait until the kernel says it is
        done: freezing is asynchronous."""
        v1 = self.paths.get("freezer")
        deadline = time.monotonic() + timeout
        if v1:
            want = "FROZEN" if frozen else "THAWED"
            while True:
                with open(os.path.join(v1, "freezer.state"), "w") as f:
                    f.write(want)
                with open(os.path.join(v1, "freezer.state")) as f:
                    if f.read().strip() == want:
                        return
                if time.monotonic() > deadline:
                    raise OSError(16, f"{v1}: the freezer did not reach {want}")
                time.sleep(0.001)
        v2 = self.paths.get("")
        if v2 is None or not os.path.exists(os.path.join(v2, "cgroup.freeze")):
            raise OSError(95, "no freezer: neither a v1 freezer hierarchy nor cgroup.freeze")
        with open(os.path.join(v2, "cgroup.freeze"), "w") as f:
            f.write("1" if frozen else "0")
        while True:
            with open(os.path.join(v2, "cgroup.events")) as f:
                state = dict(line.split() for line in f if line.strip())
            if state.get("frozen") == ("1" if frozen else "0"):
                return
            if time.monotonic() > deadline:
                raise OSError(16, f"{v2}: cgroup.freeze did not take effect")
            time.sleep(0.001)

    def frozen(self) -> bool:
        v1 = self.paths.get("freezer")
        try:
            if v1:
                with open(os.path.join(v1, "freezer.state")) as f:
                    return f.read().strip() == "FROZEN"
            v2 = self.paths.get("")
            if v2 is not None and self.unified_only:
                with open(os.path.join(v2, "cgroup.freeze")) as f:
                    return f.read().strip() == "1"
        except OSError:
            pass
        return False

    def add(self, pid: int, v1: bool = True, v2: bool = True) -> None:
        for name, path in self.paths.items():
            if v1 if name else v2:
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(pid))

    def fork(self) -> tuple[int, bool]:
        """os.fork() for a child that is to join this cgroup: (pid, whether it was born in
        the v2 one). The parent writes the pid into the v2 cgroup when the kernel could not
        clone into it (`add(pid, v1=False)`); the child joins the v1 hierarchies itself
        (`join_v1`) before it does anything else.

        Why not cgroup.procs everywhere: a write to it takes the kernel's global threadgroup
        rwsem for writing, and the first writer after the rwsem went idle waits for an RCU
        grace period (10-20 ms here, on every container start). A single thread moving
        itself through v1's `tasks` does not take it, nor does a clone into a v2 cgroup."""
        unified = self.paths.get("")
        threading = sys.modules.get("threading")
        if unified is None or (threading is not None and threading.active_count() > 1):
            return os.fork(), False  # the raw clone is for single-threaded callers only
        from pallet.linux import libc

        try:
            fd = os.open(unified, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return os.fork(), False
        try:
            return libc.fork_into_cgroup(fd), True
        except OSError:  # a kernel before 5.7, or the clone refused: the classic way
            return os.fork(), False
        finally:
            os.close(fd)

    def join_v1(self) -> None:
        """Move the calling process, single-threaded, into the v1 hierarchies."""
        for name, path in self.paths.items():
            if name:
                with open(os.path.join(path, "tasks"), "w") as f:
                    f.write("0")

    def pids(self) -> list[int]:
        for path in self.paths.values():
            try:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    return [int(x) for x in f.read().split()]
            except FileNotFoundError:
                continue
        return []

    def exists(self) -> bool:
        return any(os.path.isdir(p) for p in self.paths.values())

    def destroy(self, timeout: float = 5.0) -> None:
        """Remove the container's directories; processes that are still exiting can keep a
        cgroup busy for a moment, so EBUSY is retried."""
        deadline = time.monotonic() + timeout
        for path in self.paths.values():
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise OSError(e.errno, f"remove cgroup {path}: {e.strerror}") from None
                    time.sleep(0.01)


def _mkdir_cpuset(path: str) -> None:
    """A new v1 cpuset cgroup starts with empty cpus and mems and refuses tasks until both
    are set: copy them down from the parent at each level created."""
    parts = path.split("/")
    for i in range(len(parts) - 1, 1, -1):
        if os.path.isdir("/".join(parts[:i])):
            start = i
            break
    else:
        start = 2
    for i in range(start, len(parts) + 1):
        cur = "/".join(parts[:i])
        if os.path.isdir(cur):
            continue
        os.mkdir(cur)
        parent = "/".join(parts[: i - 1])
        for knob in ("cpuset.cpus", "cpuset.mems"):
            with open(os.path.join(parent, knob)) as f:
                value = f.read().strip()
            with open(os.path.join(cur, knob), "w") as f:
                f.write(value)


def _mountpoint_of(path: str) -> str:
    best = "/"
    for mp in host_hierarchies().values():
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
            best = mp
    return best
