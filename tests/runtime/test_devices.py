"""Devices: the default set and linux.devices (config-linux.md Devices, Default Devices)."""

from __future__ import annotations

from .support import diverges

# %F type, %t/%T major/minor in hex, %a mode, %u/%g owner.
STAT = "stat -c '%n|%F|%t|%T|%a|%u|%g'"


def stat_lines(text: str) -> dict[str, dict[str, object]]:
    out = {}
    for line in text.splitlines():
        name, ftype, major, minor, mode, uid, gid = line.split("|")
        out[name] = {"type": ftype, "dev": (int(major, 16), int(minor, 16)),
                     "mode": int(mode, 8), "uid": int(uid), "gid": int(gid)}
    return out


DEFAULT_DEVICES = {
    "/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
    "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0),
}


def test_default_devices(runtime, bundle):
    b = bundle(["sh", "-c", f"{STAT} {' '.join(DEFAULT_DEVICES)}"])
    got = stat_lines(runtime.out(b))
    for path, dev in DEFAULT_DEVICES.items():
        assert got[path]["type"] == "character special file", path
        assert got[path]["dev"] == dev, path
        assert got[path]["mode"] == 0o666, path  # runc's mode for the default devices
        assert (got[path]["uid"], got[path]["gid"]) == (0, 0), path


def test_default_devices_work(runtime, bundle):
    b = bundle(["sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | od -An -tx1; "
                            "head -c 16 /dev/urandom | wc -c; echo x > /dev/full || echo full"])
    out = runtime.out(b).split("\n")
    assert out[0].split() == ["00", "00", "00", "00"]
    assert out[1].strip() == "16"
    assert out[2] == "full"


def test_ptmx_and_pts(runtime, bundle):
    """config-linux.md: /dev/ptmx is a bind mount or symlink of /dev/pts/ptmx."""
    b = bundle(["sh", "-c", "stat -L -c '%t:%T' /dev/ptmx /dev/pts/ptmx; "
                            "readlink /dev/ptmx || echo not-a-link"])
    a, b_, link = runtime.out(b).splitlines()
    assert a == b_ == "5:2"
    assert link in ("pts/ptmx", "/dev/pts/ptmx", "not-a-link")


def test_dev_links_and_dirs(runtime, bundle):
    b = bundle(["sh", "-c",
                "for l in /dev/fd /dev/stdin /dev/stdout /dev/stderr; do readlink $l; done; "
                "stat -c '%F' /dev/pts /dev/shm /dev/mqueue"])
    out = runtime.out(b).splitlines()
    assert out[:4] == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1",
                       "/proc/self/fd/2"]
    assert out[4:] == ["directory"] * 3


def test_dev_has_only_expected_entries(runtime, bundle):
    """The container's /dev is a fresh tmpfs: nothing of the host's /dev shows through."""
    names = set(runtime.out(bundle(["ls", "-A", "/dev"])).split())
    expected = {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
                "mqueue", "fd", "stdin", "stdout", "stderr"}
    assert expected <= names
    assert not (names - expected - {"console", "core"}), names - expected


def test_linux_devices_created(runtime, bundle):
    devices = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640,
         "uid": 1000, "gid": 5},
        {"path": "/dev/sub/dir/loopx", "type": "b", "major": 7, "minor": 200,
         "fileMode": 0o600},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620},
        {"path": "/opt/outside-dev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o644},
    ]
    b = bundle(["sh", "-c", f"{STAT} " + " ".join(d["path"] for d in devices)],
               edit=lambda c: c["linux"].update(devices=devices))
    got = stat_lines(runtime.out(b))
    fuse = got["/dev/fuse"]
    assert fuse["type"] == "character special file" and fuse["dev"] == (10, 229)
    assert fuse["mode"] == 0o640 and (fuse["uid"], fuse["gid"]) == (1000, 5)
    loop = got["/dev/sub/dir/loopx"]
    assert loop["type"] == "block special file" and loop["dev"] == (7, 200)
    assert loop["mode"] == 0o600 and (loop["uid"], loop["gid"]) == (0, 0)
    fifo = got["/dev/myfifo"]
    assert fifo["type"] == "fifo" and fifo["mode"] == 0o620
    # config-linux.md: "The path MAY be anywhere in the container filesystem".
    out = got["/opt/outside-dev"]
    assert out["type"] == "character special file" and out["dev"] == (1, 3)


def test_linux_device_is_usable(runtime, bundle):
    dev = {"path": "/dev/my-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}
    b = bundle(["sh", "-c", "echo gone > /dev/my-null && cat /dev/my-null | wc -c"],
               edit=lambda c: (c["linux"].update(devices=[dev]),
                               c["linux"]["resources"].update(devices=[
                                   {"allow": False, "access": "rwm"},
                                   {"allow": True, "type": "c", "major": 1, "minor": 3,
                                    "access": "rwm"}])))
    assert runtime.out(b).strip() == "0"


def test_device_cgroup_denies_unlisted_device(runtime, bundle):
    """With resources.devices denying all, a device node that exists cannot be opened
    unless it is one of the defaults (runc's default allow list)."""
    dev = {"path": "/dev/loop-denied", "type": "b", "major": 7, "minor": 201}
    b = bundle(["sh", "-c", "head -c1 /dev/loop-denied 2>&1; echo; echo ok > /dev/null && "
                            "echo null-ok"],
               edit=lambda c: c["linux"].update(devices=[dev]))
    err, _, ok = runtime.out(b).partition("\n")
    assert "Operation not permitted" in err
    assert ok.strip() == "null-ok"


def test_device_path_clash_fails(runtime, bundle, request):
    # config-linux.md Devices: "If a file already exists at path that does not match the
    # requested device, the runtime MUST generate an error."
    diverges(request, runtime, ("runc",),
             "runc 1.1 ignores EEXIST from mknod and leaves the existing file")
    dev = {"path": "/etc/passwd", "type": "c", "major": 1, "minor": 3}
    b = bundle(["true"], edit=lambda c: c["linux"].update(devices=[dev]))
    cid = runtime.new_id()
    runtime.run(cid, b).failed("/etc/passwd")


def test_invalid_device_type_fails(runtime, bundle):
    dev = {"path": "/dev/bad", "type": "x", "major": 1, "minor": 3}
    b = bundle(["true"], edit=lambda c: c["linux"].update(devices=[dev]))
    cid = runtime.new_id()
    r = runtime.run(cid, b)
    assert r.returncode != 0, str(r)
    assert r.stderr.strip()
    runtime.assert_nothing_left(cid, b)
