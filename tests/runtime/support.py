"""Driving an OCI runtime through its runc-compatible command line, for the runtime suite.

Everything here is runtime-agnostic: a `Runtime` is a command (``runc``, ``pallet-runtime``,
...) plus a private ``--root``; tests build bundles with `pallet.testing.busybox` and look at
the container from inside with busybox applets.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _spec_dir() -> Path:
    """The runtime-spec checkout: $OCI_RUNTIME_SPEC_DIR, else shared/ beside the repository
    (as laid for developers and CI), else /work/shared."""
    candidates = [os.environ.get("OCI_RUNTIME_SPEC_DIR", ""),
                  str(Path(__file__).resolve().parents[3] / "shared/specs/runtime-spec"),
                  "/work/shared/specs/runtime-spec"]
    for c in candidates:
        if c and (Path(c) / "schema/state-schema.json").exists():
            return Path(c)
    return Path(candidates[-1])


SPEC_DIR = _spec_dir()
SCHEMA_DIR = SPEC_DIR / "schema"

# A runtime call that takes longer than this is a hang, not a slow machine.
TIMEOUT = 30

# Linux capability numbers (include/uapi/linux/capability.h), in order.
CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]


def cap_mask(names: list[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITIES.index(name)
    return mask


def status_field(status_text: str, name: str) -> str:
    """One field of /proc/<pid>/status text, e.g. ``status_field(t, "CapEff")``."""
    for line in status_text.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    raise KeyError(f"{name} not in /proc/self/status output:\n{status_text}")


@dataclass
class MountInfo:
    mount_id: int
    parent_id: int
    major_minor: str
    root: str
    mount_point: str
    options: set[str]
    optional: list[str]
    fstype: str
    source: str
    super_options: set[str]


def parse_mountinfo(text: str) -> list[MountInfo]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        left, _, right = line.partition(" - ")
        f = left.split()
        r = right.split()
        out.append(
            MountInfo(
                mount_id=int(f[0]),
                parent_id=int(f[1]),
                major_minor=f[2],
                root=f[3],
                mount_point=f[4],
                options=set(f[5].split(",")),
                optional=f[6:],
                fstype=r[0],
                source=r[1],
                super_options=set(r[2].split(",")) if len(r) > 2 else set(),
            )
        )
    return out


def mount_at(mounts: list[MountInfo], point: str) -> MountInfo:
    """The topmost mount at `point` (the one a lookup of the path sees)."""
    found = [m for m in mounts if m.mount_point == point]
    if not found:
        raise AssertionError(f"nothing mounted at {point}: {[m.mount_point for m in mounts]}")
    return found[-1]


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (f"$ {shlex.join(self.args)}\nexit {self.returncode}\n"
                f"stdout: {self.stdout!r}\nstderr: {self.stderr!r}")

    def ok(self) -> Result:
        assert self.returncode == 0, str(self)
        return self

    def failed(self, *keywords: str | tuple[str, ...]) -> Result:
        """Assert a non-zero exit and an error message on stderr naming every keyword.

        A keyword given as a tuple is satisfied by any one of its members. Matching ignores
        case: runtimes word their messages differently, the suite only asks that the message
        names the problem.
        """
        assert self.returncode != 0, f"expected a failure:\n{self}"
        assert self.stderr.strip(), f"failed without a message on stderr:\n{self}"
        low = self.stderr.lower()
        for k in keywords:
            alts = k if isinstance(k, tuple) else (k,)
            assert any(a.lower() in low for a in alts), f"stderr does not name {k!r}:\n{self}"
        return self


@dataclass
class Runtime:
    """One runtime under test with a --root of its own."""

    name: str
    argv: list[str]
    root: Path
    workdir: Path
    created: list[str] = field(default_factory=list)

    def new_id(self, prefix: str = "pt") -> str:
        cid = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.created.append(cid)
        return cid

    def base(self) -> list[str]:
        return [*self.argv, "--root", str(self.root)]

    def __call__(self, *args: str, timeout: float = TIMEOUT,
                 cwd: str | os.PathLike[str] | None = None, setup: str | None = None) -> Result:
        """Run a verb whose output we read; the call must not leave a process holding stdout.

        `setup` is a shell snippet run just before the runtime in the same process (e.g.
        ``umask 077``), so the test process itself is never changed.
        """
        argv = [*self.base(), *args]
        full = argv if setup is None else ["sh", "-c", f'{setup}; exec "$@"', "sh", *argv]
        p = subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, cwd=cwd)
        return Result(argv, p.returncode, p.stdout, p.stderr)

    def detached(self, *args: str, tag: str, timeout: float = TIMEOUT,
                 cwd: str | os.PathLike[str] | None = None) -> Result:
        """Run a verb that leaves a container process behind (create, run --detach).

        The container inherits the runtime's stdio, so they go to files (a pipe would keep
        subprocess waiting for the container to exit). stderr of the runtime itself is read
        back once it has exited; the container may append to the same files later.
        """
        out, err = self._io_files(tag)
        argv = [*self.base(), *args]
        with open(out, "wb") as fo, open(err, "wb") as fe:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                               timeout=timeout, cwd=cwd)
        return Result(argv, p.returncode, out.read_text(errors="replace"),
                      err.read_text(errors="replace"))

    def _io_files(self, tag: str) -> tuple[Path, Path]:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in tag) or "_"
        return self.workdir / f"{safe}.out", self.workdir / f"{safe}.err"

    def container_output(self, tag: str) -> str:
        return self._io_files(tag)[0].read_text(errors="replace")

    # -- verbs -------------------------------------------------------------------------
    def create(self, cid: str, bundle: Path, *flags: str) -> Result:
        return self.detached("create", "--bundle", str(bundle), *flags, cid, tag=cid)

    def start(self, cid: str) -> Result:
        return self("start", cid)

    def run(self, cid: str, bundle: Path, *flags: str, timeout: float = TIMEOUT,
            setup: str | None = None) -> Result:
        return self("run", "--bundle", str(bundle), *flags, cid, timeout=timeout, setup=setup)

    def state(self, cid: str) -> dict[str, Any]:
        r = self("state", cid).ok()
        return json.loads(r.stdout)

    def kill(self, cid: str, signal: str | None = None, *flags: str) -> Result:
        return self("kill", *flags, cid, *([signal] if signal else []))

    def delete(self, cid: str, *flags: str) -> Result:
        return self("delete", *flags, cid)

    def list_ids(self) -> list[str]:
        r = self("list", "--format", "json").ok()
        return [c["id"] for c in (json.loads(r.stdout) or [])]

    def wait_status(self, cid: str, status: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.state(cid)
            if st["status"] == status:
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"{cid} still {st['status']!r}, wanted {status!r}")
            time.sleep(0.02)

    def out(self, bundle: Path, *flags: str, timeout: float = TIMEOUT,
            setup: str | None = None) -> str:
        """`run` in the foreground; the container's stdout (the run must succeed)."""
        cid = self.new_id()
        r = self.run(cid, bundle, *flags, timeout=timeout, setup=setup)
        assert r.returncode == 0, str(r)
        return r.stdout

    def features(self) -> dict[str, Any] | None:
        """`features` output (runtime-spec features.md), or None if the runtime has none."""
        r = self("features")
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def assert_nothing_left(self, cid: str, bundle: Path | None = None,
                            cgroup: str | None = None) -> None:
        """After a failed create/run: no state, no listed container, no cgroup, no process."""
        if self.root.exists():
            assert not (self.root / cid).exists(), f"state of {cid} left under --root"
            # pallet-runtime's compiled seccomp programs are shared by containers and stay
            left = [p.name for p in self.root.iterdir() if p.name != "@seccomp"]
            assert left == [], f"left under --root: {left}"
        r = self("list", "-q").ok()
        assert r.stdout.strip() == "", f"list still shows: {r.stdout!r}"
        r = self("state", cid)
        assert r.returncode != 0, f"state still answers for {cid}: {r.stdout}"
        if cgroup is not None:
            left = [d for d in cgroup_dirs(cgroup) if d.exists()]
            assert not left, f"cgroup left behind: {left}"
        if bundle is not None:
            rootfs = os.path.realpath(bundle / "rootfs")
            procs = processes_rooted_at(rootfs)
            assert not procs, f"processes left with root {rootfs}: {procs}"

    def cleanup(self) -> None:
        """Force-delete every container this test made (idempotent; never raises on one)."""
        while self.created:
            cid = self.created.pop()
            try:
                self("delete", "--force", cid, timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                pass


def base_config(args: list[str] | None = None) -> dict[str, Any]:
    """The `spec` starter config (pallet's copy of runc's) without a terminal."""
    from pallet.oci.spec_default import default_spec

    cfg = default_spec(terminal=False)
    if args is not None:
        cfg["process"]["args"] = list(args)
    return cfg


def cgroup_hierarchies() -> list[Path]:
    """Where a cgroupsPath lands: a few v1 controllers, or the v2 unified root."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base]
    return [base / c for c in ("memory", "pids", "cpu", "devices", "freezer")
            if (base / c / "tasks").exists()]


def cgroup_dirs(cgroups_path: str) -> list[Path]:
    return [h / cgroups_path.lstrip("/") for h in cgroup_hierarchies()]


def remove_cgroup(cgroups_path: str) -> None:
    """Best-effort cleanup of a cgroup a broken runtime left behind (leaf first)."""
    for d in cgroup_dirs(cgroups_path):
        for sub in sorted(d.glob("**/"), key=lambda p: -len(p.parts)):
            try:
                sub.rmdir()
            except OSError:
                pass


def processes_rooted_at(rootfs: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/root") == rootfs:
                found.append(int(entry))
        except OSError:
            continue
    return found


def has_capability(name: str) -> bool:
    text = Path("/proc/self/status").read_text()
    return bool(int(status_field(text, "CapEff"), 16) & cap_mask([name]))


def diverges(request, runtime: Runtime, runtimes: tuple[str, ...], reason: str) -> None:
    """The spec asks for what this test asserts, and a runtime is known not to do it.

    The test still runs; on those runtimes it is a strict xfail, so it turns red the day the
    runtime starts following the spec (and this note must go).
    """
    import pytest

    if runtime.name in runtimes:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"{runtime.name}: {reason}"))


def wait_for(pred, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class ConsoleSocket:
    """The receiving end of --console-socket: the runtime sends the pty master over
    SCM_RIGHTS (runc's utils.SendFd: one message, the fd in ancillary data)."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.sock.settimeout(TIMEOUT)

    def receive_master(self) -> int:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
        assert len(fds) == 1, f"expected one fd over the console socket, got {fds}"
        return fds[0]

    def close(self) -> None:
        self.sock.close()


def read_pty(master: int, timeout: float = 10) -> bytes:
    """Everything the container writes to its terminal, until it closes (EIO)."""
    import select

    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if not r:
            continue
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def schema_validator(name: str):
    """A jsonschema validator for schema/<name>, with the spec's relative $refs resolved."""
    import jsonschema
    import pytest

    if not (SCHEMA_DIR / name).exists():
        pytest.skip(f"runtime-spec schema {SCHEMA_DIR / name} not found "
                    "(set OCI_RUNTIME_SPEC_DIR)")
    from referencing import Registry
    from referencing.jsonschema import DRAFT4

    resources = []
    for p in SCHEMA_DIR.glob("*.json"):
        resources.append((p.name, DRAFT4.create_resource(json.loads(p.read_text()))))
    registry = Registry().with_resources(resources)
    schema = json.loads((SCHEMA_DIR / name).read_text())
    return jsonschema.Draft4Validator(schema, registry=registry)


def assert_valid(name: str, doc: Any) -> None:
    errors = sorted(schema_validator(name).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
