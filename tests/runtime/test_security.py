"""The known escape classes: the host's executable behind /proc/*/exe (CVE-2019-5736),
a host fd reachable as the process's cwd (CVE-2024-21626), host fds leaking into the
container, and mount destinations redirected by symlinks (CVE-2021-30465; see also
test_mounts.py)."""

from __future__ import annotations

import os

import pytest

SLEEPER = ["sleep", "1000"]


def running(runtime, bundle, args=SLEEPER, **kw):
    cid = runtime.new_id()
    b = bundle(list(args), **kw)
    runtime.detached("run", "--detach", "--bundle", str(b), cid, tag=cid).ok()
    return cid, b


def test_shebang_proc_self_exe_does_not_run_the_host_binary(runtime, bundle):
    """A container program whose interpreter is /proc/self/exe gets whatever executable
    the runtime was at its execve. That must not be a host binary (runc: a sealed memfd
    clone of itself; pallet-runtime: a sealed memfd trampoline instead of the host python)."""
    cid, b = running(runtime, bundle)
    evil = b / "rootfs/bin/evil"
    evil.write_text("#!/proc/self/exe\nimport os\nprint('host interpreter ran')\n")
    evil.chmod(0o755)
    r = runtime("exec", cid, "/bin/evil", "x", "y")
    text = (r.stdout + r.stderr).lower()
    assert "python" not in text, r
    assert "host interpreter ran" not in text, r


def test_waiting_init_exe_not_reachable(runtime, bundle):
    """Between create and start the container's pid 1 is the runtime's own init stage. A
    process exec'd into the container then must not reach the runtime's executable through
    /proc/1/exe: the init is non-dumpable (pallet-runtime) or runs from a sealed memfd
    clone (runc)."""
    cid = runtime.new_id()
    runtime.create(cid, bundle(SLEEPER)).ok()
    r = runtime("exec", cid, "sh", "-c", "readlink /proc/1/exe; echo done")
    if r.returncode != 0:
        pytest.skip(f"{runtime.name} does not exec into a created container: {r.stderr}")
    exe = r.stdout.splitlines()[0] if r.stdout.splitlines()[0] != "done" else ""
    # "" (no access), a sealed memfd, or runc 1.1's read-only clone (shown as "/"): nothing
    # that names a writable file of the host.
    assert exe in ("", "/") or exe.startswith("/memfd:"), f"host executable reachable: {exe}"


@pytest.mark.parametrize("fd", range(3, 9))
def test_cwd_through_a_leaked_fd_does_not_reach_the_host(runtime, bundle, fd):
    """CVE-2024-21626: process.cwd /proc/self/fd/N. Either the runtime refuses, or the
    directory the process ends up in is inside the container."""
    b = bundle(["sh", "-c", "pwd -P && ls -d ../../../../etc/pallet-host-marker"],
               edit=lambda c: c["process"].update(cwd=f"/proc/self/fd/{fd}"))
    marker = "/etc/pallet-host-marker"
    with open(marker, "w") as f:
        f.write("host")
    try:
        r = runtime.run(runtime.new_id(), b)
    finally:
        os.unlink(marker)
    if r.returncode == 0:
        assert "pallet-host-marker" not in r.stdout, f"host filesystem reached:\n{r}"
        assert r.stdout.startswith("/") and "unreachable" not in r.stdout, r


def test_no_host_fds_leak_into_the_container(runtime, bundle, tmp_path):
    """Only stdio reaches the container's process (and what --preserve-fds passes)."""
    b = bundle(["sh", "-c", "ls /proc/self/fd"])
    leak = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)  # inheritable? no: CLOEXEC
    os.set_inheritable(leak, True)
    try:
        r = runtime.run(runtime.new_id(), b).ok()
    finally:
        os.close(leak)
    fds = sorted(int(x) for x in r.stdout.split())
    # 0-2, plus the one ls opens to read the directory.
    assert fds[:3] == [0, 1, 2] and len(fds) <= 4, fds


def test_exec_does_not_leak_host_fds(runtime, bundle, tmp_path):
    cid, _ = running(runtime, bundle)
    r = runtime("exec", cid, "sh", "-c", "ls -l /proc/self/fd").ok()
    targets = [line.split("->")[-1].strip() for line in r.stdout.splitlines() if "->" in line]
    host_paths = [t for t in targets if t.startswith(("/tmp", "/work", "/run", "/var"))
                  and not t.startswith("/proc")]
    assert not host_paths, r.stdout
