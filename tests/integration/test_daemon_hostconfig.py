"""HostConfig fields of `docker run` beyond the first set, through palletd with the real
docker CLI: /dev/shm size and IPC modes, devices and device cgroup rules, sysctls, extra
groups, the OOM score, memory and cpuset knobs, cgroup parent and namespace, joining another
container's PID namespace; and the refusals, with nothing left behind."""

from __future__ import annotations

import os

from daemon_support import make_daemon

palletd = make_daemon()


def run(palletd, *args: str) -> str:
    return palletd.docker("run", "--rm", *args, check=True).stdout


def test_shm_size_and_ipc_modes(palletd):
    out = run(palletd, "--shm-size", "16m", "busybox", "df", "-k", "/dev/shm")
    assert out.splitlines()[1].split()[1] == "16384", out
    out = run(palletd, "busybox", "df", "-k", "/dev/shm")
    assert out.splitlines()[1].split()[1] == "65536", out  # docker's default 64 MiB
    out = run(palletd, "--ipc", "none", "busybox", "sh", "-c",
              "grep -c ' /dev/shm ' /proc/mounts || true")
    assert out.strip() == "0"
    host_ipc = os.readlink("/proc/self/ns/ipc")
    out = run(palletd, "--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc")
    assert out.strip() == host_ipc
    assert run(palletd, "busybox", "readlink", "/proc/self/ns/ipc").strip() != host_ipc



def test_shared_ipc_namespace(palletd):
    """`--ipc shareable` and `--ipc container:<x>`: one IPC namespace and one /dev/shm; a
    donor that is not shareable, or not running, is refused as dockerd refuses."""
    palletd.docker("run", "-d", "--name", "ipcdonor", "--ipc", "shareable", "--shm-size",
                   "8m", "busybox", "sh", "-c", "echo from-donor > /dev/shm/note; sleep 60",
                   check=True)
    palletd.docker("run", "-d", "--name", "ipcplain", "busybox", "sleep", "60", check=True)
    try:
        palletd.wait_for(lambda: palletd.docker("exec", "ipcdonor", "test", "-e",
                                                "/dev/shm/note").returncode == 0,
                         what="the donor's note")
        donor_ns = palletd.docker("exec", "ipcdonor", "readlink", "/proc/self/ns/ipc",
                                  check=True).stdout.strip()
        out = run(palletd, "--ipc", "container:ipcdonor", "busybox", "sh", "-c",
                  "readlink /proc/self/ns/ipc; cat /dev/shm/note; df -k /dev/shm | tail -1")
        ns, note, df = out.splitlines()
        assert ns == donor_ns and note == "from-donor" and df.split()[1] == "8192", out
        p = palletd.docker("run", "--rm", "--ipc", "container:ipcplain", "busybox", "true")
        assert p.returncode != 0 and "non-shareable IPC" in p.stderr, p.stderr
        shm = os.path.join(palletd.root, "containers", palletd.inspect("ipcdonor")["Id"],
                           "mounts", "shm")
        assert os.path.ismount(shm)
        palletd.docker("stop", "-t", "0", "ipcdonor", check=True)
        assert not os.path.ismount(shm)  # released with the donor
        p = palletd.docker("run", "--rm", "--ipc", "container:ipcdonor", "busybox", "true")
        assert p.returncode != 0 and "non running container" in p.stderr, p.stderr
    finally:
        palletd.docker("rm", "-f", "ipcdonor", "ipcplain")


def test_devices_and_cgroup_rules(palletd):
    out = run(palletd, "--device", "/dev/null:/dev/mynull:rw", "busybox", "sh", "-c",
              "ls -l /dev/mynull; echo x > /dev/mynull && echo wrote")
    assert out.startswith("crw") and "1,   3" in out and "wrote" in out, out
    # /dev/loop-control (c 10:237) is outside docker's default rules: a node of it can be
    # made (mknod is allowed for every device) but not opened, until a rule allows it
    probe = ["busybox", "sh", "-c",
             "mknod /tmp/lc c 10 237 && (: < /tmp/lc) 2>&1 && echo opened || true"]
    assert "opened" not in run(palletd, *probe)
    assert "opened" in run(palletd, "--device-cgroup-rule", "c 10:237 r", *probe)
    # a privileged container gets the host's devices (its /dev/ptmx stays the pts link)
    check = "test -c /dev/loop-control && test -L /dev/ptmx && echo host-devices"
    for runtime in ("pallet-runtime", "runc"):
        assert run(palletd, "--runtime", runtime, "--privileged", "busybox", "sh", "-c",
                   check).strip() == "host-devices", runtime
    assert run(palletd, "busybox", "sh", "-c", check + " || echo none").strip() == "none"
    p = palletd.docker("run", "--rm", "--name", "nodev", "--device", "/dev/nosuch",
                       "busybox", "true")
    assert p.returncode != 0, p
    assert 'adding custom device "/dev/nosuch": no such file or directory' in p.stderr
    assert palletd.docker("ps", "-aq").stdout.strip() == ""


def test_sysctls_groups_and_oom_score(palletd):
    out = run(palletd, "--sysctl", "net.ipv4.ip_forward=1", "--sysctl",
              "net.ipv4.ping_group_range=0 2147483647", "busybox", "cat",
              "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/ping_group_range")
    assert out.split() == ["1", "0", "2147483647"]
    out = run(palletd, "-u", "tester", "--group-add", "tty", "--group-add", "4242",
              "busybox", "id", "-G")
    assert set(out.split()) == {"1000", "100", "5", "4242"}, out
    p = palletd.docker("run", "--rm", "--group-add", "nosuchgroup", "busybox", "true")
    assert p.returncode != 0 and "Unable to find group nosuchgroup" in p.stderr, p.stderr
    assert run(palletd, "--oom-score-adj", "500", "busybox", "cat",
               "/proc/self/oom_score_adj").strip() == "500"
    p = palletd.docker("run", "--rm", "--oom-score-adj", "2000", "busybox", "true")
    assert p.returncode != 0 and "range for oom score adj is [-1000, 1000]" in p.stderr


def test_memory_cpuset_and_cgroup_placement(palletd):
    palletd.docker("run", "-d", "--name", "knobs", "-m", "64m", "--memory-reservation", "32m",
                   "--memory-swappiness", "10", "--oom-kill-disable", "--cpuset-mems", "0",
                   "--cgroup-parent", "pallet-test-parent", "--cgroupns", "private",
                   "busybox", "sleep", "60", check=True)
    try:
        cid = palletd.inspect("knobs")["Id"]
        mem = f"/sys/fs/cgroup/memory/pallet-test-parent/{cid}"
        if os.path.isdir("/sys/fs/cgroup/memory"):  # this host's v1 memory hierarchy
            def read(name: str) -> str:
                with open(os.path.join(mem, name)) as f:
                    return f.read().strip()
            assert read("memory.limit_in_bytes") == str(64 << 20)
            assert read("memory.soft_limit_in_bytes") == str(32 << 20)
            assert read("memory.swappiness") == "10"
            assert "oom_kill_disable 1" in read("memory.oom_control")
            with open(f"/sys/fs/cgroup/cpuset/pallet-test-parent/{cid}/cpuset.mems") as f:
                assert f.read().strip() == "0"
        ns = palletd.docker("exec", "knobs", "readlink", "/proc/self/ns/cgroup",
                            check=True).stdout.strip()
        assert ns != os.readlink("/proc/self/ns/cgroup")
        # the verbs that read the container's cgroups find it under its parent
        assert "sleep 60" in palletd.docker("top", "knobs", check=True).stdout
        mem = palletd.docker("stats", "--no-stream", "--format", "{{.MemUsage}}", "knobs",
                             check=True).stdout
        assert mem.strip().endswith("/ 64MiB") and not mem.startswith("0B"), mem
        palletd.docker("pause", "knobs", check=True)
        assert palletd.inspect("knobs")["State"]["Status"] == "paused"
        palletd.kill()
        palletd.start()
        assert palletd.inspect("knobs")["State"]["Status"] == "paused"  # found frozen
        palletd.docker("unpause", "knobs", check=True)
    finally:
        palletd.docker("rm", "-f", "knobs")
        for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            for sub in [""] + (os.listdir(root) if os.path.isdir(root) else []):
                d = os.path.join(root, sub, "pallet-test-parent")
                if os.path.isdir(d):
                    os.rmdir(d)
    p = palletd.docker("run", "--rm", "--cgroup-parent", "../escape", "busybox", "true")
    assert p.returncode != 0 and "may not contain '..'" in p.stderr, p.stderr


def test_pid_namespace_of_another_container(palletd):
    palletd.docker("run", "-d", "--name", "pidtarget", "busybox", "sleep", "4321",
                   check=True)
    try:
        out = run(palletd, "--pid", "container:pidtarget", "busybox", "ps", "-o", "args")
        assert "sleep 4321" in out, out
        assert "sleep 4321" not in run(palletd, "busybox", "ps", "-o", "args")
        palletd.docker("stop", "-t", "0", "pidtarget", check=True)
        p = palletd.docker("run", "--rm", "--pid", "container:pidtarget", "busybox", "true")
        assert p.returncode != 0 and "non running container" in p.stderr, p.stderr
    finally:
        palletd.docker("rm", "-f", "pidtarget")
    p = palletd.docker("run", "--rm", "--pid", "container:nosuch", "busybox", "true")
    assert p.returncode != 0 and "No such container: nosuch" in p.stderr, p.stderr




def test_the_pallet_cli_sends_the_same_fields(palletd):
    out = palletd.pallet(
        "run", "--rm", "--shm-size", "8m", "--sysctl", "net.ipv4.ip_forward=1",
        "--group-add", "tty", "--oom-score-adj", "300", "--device", "/dev/null:/dev/n2:rw",
        "--device-cgroup-rule", "c 10:237 r", "--ipc", "private", "--cgroupns", "private",
        "busybox", "sh", "-c",
        "df -k /dev/shm | tail -1; cat /proc/sys/net/ipv4/ip_forward; id -G; "
        "cat /proc/self/oom_score_adj; ls -l /dev/n2", check=True).stdout.splitlines()
    assert out[0].split()[1] == "8192", out
    assert out[1:4] == ["1", "0 5", "300"], out
    assert out[4].startswith("crw") and "1,   3" in out[4], out
    p = palletd.pallet("create", "--device", "/dev/a:/dev/b:rw:x", "busybox")
    assert p.returncode == 2 and "invalid device specification" in p.stderr, p.stderr
    p = palletd.pallet("create", "--sysctl", "novalue", "busybox")
    assert p.returncode == 2 and "invalid sysctl" in p.stderr, p.stderr
    assert palletd.docker("ps", "-aq").stdout.strip() == ""


def test_what_cannot_be_honoured_is_refused_or_warned(palletd):
    """dockerd's answers for options a host or a snapshotter cannot honour: GPUs and
    storage options refused; a kernel memory limit, and block I/O weights on a kernel
    without them, dropped with a warning. Block I/O throttles are set."""
    p = palletd.docker("run", "--rm", "--gpus", "all", "busybox", "true")
    assert p.returncode != 0, p
    assert 'could not select device driver "" with capabilities: [[gpu]]' in p.stderr
    p = palletd.docker("run", "--rm", "--storage-opt", "size=1G", "busybox", "true")
    assert p.returncode != 0 and "--storage-opt is supported only" in p.stderr, p.stderr
    p = palletd.docker("create", "--name", "kmem", "--kernel-memory", "50m", "busybox")
    try:
        assert p.returncode == 0, p.stderr
        assert "kernel memory limit is deprecated" in p.stderr
    finally:
        palletd.docker("rm", "-f", "kmem")
    weights = spec_supported()
    p = palletd.docker("run", "--rm", "--blkio-weight", "300", "busybox", "true")
    assert p.returncode == 0, p.stderr
    assert ("Weight discarded" in p.stderr) is not weights, p.stderr
    info = palletd.docker("info", "--format", "{{json .Warnings}}", check=True).stdout
    assert ("No blkio weight support" in info) is not weights, info
    dev = next((d for d in ("/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/loop0")
                if os.path.exists(d)), None)
    if dev and os.path.isdir("/sys/fs/cgroup/blkio"):
        palletd.docker("run", "-d", "--name", "thr", "--device-read-bps", f"{dev}:1mb",
                       "--device-write-iops", f"{dev}:100", "busybox", "sleep", "60",
                       check=True)
        try:
            cid = palletd.inspect("thr")["Id"]
            st = os.stat(dev)
            base = f"/sys/fs/cgroup/blkio/pallet/{cid}"
            with open(f"{base}/blkio.throttle.read_bps_device") as f:
                assert f.read().split() == [f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}",
                                            str(1 << 20)]
            with open(f"{base}/blkio.throttle.write_iops_device") as f:
                assert f.read().split()[1] == "100"
        finally:
            palletd.docker("rm", "-f", "thr")


def spec_supported() -> bool:
    from pallet.daemon.spec import blkio_weight_supported

    return blkio_weight_supported()
