"""Files in and out of containers and images against palletd: `docker cp` (both ways,
running and stopped containers, symlink escapes), `export`/`import`, `commit`, `diff`,
`save`/`load` with the real docker CLI, docker-py and skopeo, and the `pallet` CLI."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest
from daemon_support import DOCKER, UnixHTTP, make_daemon, serve_directory

palletd = make_daemon()


def _run_out(palletd, *args: str) -> str:
    return palletd.docker("run", "--rm", *args, check=True).stdout


def _request(palletd, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    c = UnixHTTP(palletd.sock, 60)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def _tar(entries: list[tuple[str, str, bytes | str]]) -> bytes:
    """A tar of (name, "file"|"dir"|"sym", data or link target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            if kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, str(data)
                t.addfile(ti)
            elif kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            else:
                raw = data if isinstance(data, bytes) else data.encode()
                ti.size = len(raw)
                t.addfile(ti, io.BytesIO(raw))
    return buf.getvalue()


def _state(palletd) -> tuple[list[str], list[str], list[str]]:
    """What a refused upload must not change: image names, blobs, spool files."""
    _, imgs = palletd.api("GET", "/images/json")
    blobs = sorted(str(p) for p in Path(palletd.root, "content").rglob("blobs/*/*"))
    tmp = Path(palletd.root, "tmp")
    spool = sorted(os.listdir(tmp)) if tmp.exists() else []
    return sorted(t for i in imgs for t in i["RepoTags"]), blobs, spool


# --- docker cp ----------------------------------------------------------------------------


def test_cp_file_both_ways_running(palletd, tmp_path):
    palletd.docker("run", "-d", "--name", "cpf", "busybox", "sleep", "1000", check=True)
    src = tmp_path / "hello.txt"
    src.write_text("hello from the host\n")
    palletd.docker("cp", str(src), "cpf:/tmp/", check=True)
    assert palletd.docker("exec", "cpf", "cat", "/tmp/hello.txt",
                          check=True).stdout == "hello from the host\n"
    # a destination that does not exist names the copy
    palletd.docker("cp", str(src), "cpf:/tmp/renamed.txt", check=True)
    assert palletd.docker("exec", "cpf", "cat", "/tmp/renamed.txt").stdout == \
        "hello from the host\n"
    # files copied in belong to root (dockerd's default), whoever owned them here
    assert palletd.docker("exec", "cpf", "stat", "-c", "%u:%g %a", "/tmp/hello.txt",
                          check=True).stdout.strip() == f"0:0 {oct(src.stat().st_mode)[-3:]}"
    palletd.docker("exec", "cpf", "sh", "-c", "echo made inside > /tmp/in.txt", check=True)
    out = tmp_path / "out.txt"
    palletd.docker("cp", "cpf:/tmp/in.txt", str(out), check=True)
    assert out.read_text() == "made inside\n"
    # to stdout: a tar with the file under its base name
    p = subprocess.run([DOCKER, "cp", "cpf:/etc/passwd", "-"], env=palletd.env,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as t:
        assert t.getnames() == ["passwd"]
        assert b"root:x:0:0" in t.extractfile("passwd").read()  # type: ignore[union-attr]
    palletd.docker("rm", "-f", "cpf", check=True)
    # -a (copyUIDGID): the files belong to the container's user
    palletd.docker("run", "-d", "-u", "nobody", "--name", "cpu", "busybox", "sleep", "1000",
                   check=True)
    palletd.docker("cp", "-a", str(src), "cpu:/tmp/mine.txt", check=True)
    assert palletd.docker("exec", "cpu", "stat", "-c", "%u:%g", "/tmp/mine.txt",
                          check=True).stdout.strip() == "65534:65534"
    palletd.docker("rm", "-f", "cpu", check=True)


def test_cp_directory_both_ways(palletd, tmp_path):
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A\n")
    (src / "sub" / "b.txt").write_text("B\n")
    os.symlink("a.txt", src / "link")
    os.link(src / "a.txt", src / "hard.txt")
    palletd.docker("run", "-d", "--name", "cpd", "busybox", "sleep", "1000", check=True)
    palletd.docker("cp", str(src), "cpd:/tmp", check=True)  # /tmp/tree
    palletd.docker("cp", str(src), "cpd:/new", check=True)  # absent: /new is the tree
    listing = palletd.docker("exec", "cpd", "sh", "-c",
                             "cat /tmp/tree/sub/b.txt /new/a.txt; readlink /new/link",
                             check=True).stdout
    assert listing == "B\nA\na.txt\n"
    # a hard link stays one (its target is named from the destination)
    inodes = palletd.docker("exec", "cpd", "stat", "-c", "%i", "/new/a.txt", "/new/hard.txt",
                            check=True).stdout.split()
    assert len(inodes) == 2 and inodes[0] == inodes[1]
    back = tmp_path / "back"
    palletd.docker("cp", "cpd:/new", str(back), check=True)
    assert (back / "sub" / "b.txt").read_text() == "B\n"
    assert os.readlink(back / "link") == "a.txt"
    # the contents of a directory (`dir/.`): the destination keeps its own mode
    palletd.docker("cp", f"{src}/.", "cpd:/tmp", check=True)
    assert palletd.docker("exec", "cpd", "sh", "-c", "stat -c %a /tmp; cat /tmp/a.txt",
                          check=True).stdout == "1777\nA\n"
    # the contents of a directory (`dir/.`) into an existing one
    into = tmp_path / "into"
    into.mkdir()
    palletd.docker("cp", "cpd:/new/sub/.", str(into), check=True)
    assert sorted(os.listdir(into)) == ["b.txt"]
    # the whole root: entries `/`, `/bin`, ..., named after the destination
    whole = tmp_path / "whole"
    palletd.docker("cp", "cpd:/", str(whole), check=True)
    assert (whole / "new" / "sub" / "b.txt").read_text() == "B\n"
    assert (whole / "bin" / "busybox").is_file()
    palletd.docker("rm", "-f", "cpd", check=True)


def test_cp_stopped_and_created_containers(palletd, tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("echo copied before start\n")
    palletd.docker("create", "--name", "cps", "busybox", "sh", "/script.sh", check=True)
    palletd.docker("cp", str(script), "cps:/script.sh", check=True)
    assert palletd.docker("start", "-a", "cps", check=True).stdout == \
        "copied before start\n"
    # exited: the rootfs is mounted for the copy and unmounted again
    palletd.wait_for(lambda: palletd.inspect("cps")["State"]["Status"] == "exited",
                     what="the exit")
    out = tmp_path / "script.back"
    palletd.docker("cp", "cps:/script.sh", str(out), check=True)
    assert out.read_text() == "echo copied before start\n"
    rootfs = Path(palletd.inspect("cps")["GraphDriver"]["Data"]["MergedDir"])
    # the docker CLI is done when it has read the tar, maybe before the daemon unmounted
    palletd.wait_for(lambda: not os.path.ismount(rootfs), what="the unmount")
    # and it starts again afterwards
    assert palletd.docker("start", "-a", "cps", check=True).stdout == \
        "copied before start\n"
    palletd.docker("rm", "cps", check=True)


def test_cp_symlink_escape_stays_inside(palletd, tmp_path):
    marker = tmp_path / "host-marker"
    marker.write_text("host\n")
    palletd.docker("run", "-d", "--name", "esc", "busybox", "sh", "-c",
                   "ln -s / /tmp/root; ln -s ../../../../../../../etc /tmp/etc;"
                   f" ln -s {tmp_path} /tmp/hostdir; echo container > /etc/marker;"
                   " touch /tmp/ready; sleep 1000", check=True)
    palletd.wait_for(lambda: palletd.docker("exec", "esc", "ls", "/tmp/ready").returncode
                     == 0, what="setup")
    evil = tmp_path / "evil.txt"
    evil.write_text("evil\n")
    # writes through the container's symlinks land in the container's /etc, not the host's
    palletd.docker("cp", str(evil), "esc:/tmp/etc/pallet-evil.txt", check=True)
    palletd.docker("cp", str(evil), "esc:/tmp/root/etc/", check=True)
    assert not os.path.exists("/etc/pallet-evil.txt") and not os.path.exists("/etc/evil.txt")
    assert palletd.docker("exec", "esc", "cat", "/etc/pallet-evil.txt", "/etc/evil.txt",
                          check=True).stdout == "evil\nevil\n"
    # a symlink to a host directory is a path in the container, which does not exist there
    p = palletd.docker("cp", str(evil), "esc:/tmp/hostdir/")
    assert p.returncode != 0
    assert sorted(os.listdir(tmp_path)) == ["evil.txt", "host-marker"]
    # reads through them give the container's files
    for path in ("/tmp/etc/marker", "/tmp/root/etc/marker"):
        out = tmp_path / "read.out"
        palletd.docker("cp", f"esc:{path}", str(out), check=True)
        assert out.read_text() == "container\n"
        out.unlink()
    p = palletd.docker("cp", f"esc:/tmp/hostdir/{marker.name}", str(tmp_path / "x"))
    assert p.returncode != 0 and "Could not find the file" in p.stderr
    # an archive's own `..` and symlinks cannot lead out either
    status, _, body = _request(palletd, "PUT", "/v1.41/containers/esc/archive?path=/tmp",
                               _tar([("../../../../tmp/pallet-dotdot", "file", "x")]))
    assert status == 400 and b"escape" in body
    name = f"pallet-through-link-{os.getpid()}"
    status, _, body = _request(palletd, "PUT", "/v1.41/containers/esc/archive?path=/tmp",
                               _tar([("up", "sym", "/"), (f"up/{name}", "file", "x"),
                                     ("host", "sym", str(tmp_path)),
                                     (f"host/{name}", "file", "x")]))
    assert status == 200, body
    assert not os.path.exists(f"/{name}") and not os.path.exists(tmp_path / name)
    assert not os.path.exists("/tmp/pallet-dotdot")
    # the archive's links resolve in the container, as in dockerd's chrooted untar
    found = palletd.docker("exec", "esc", "find", "/", "-xdev", "-name", name,
                           check=True).stdout.split()
    assert sorted(found) == sorted([f"/{name}", f"{tmp_path}/{name}"])
    palletd.docker("rm", "-f", "esc", check=True)


def _helpers(palletd) -> list[int]:
    """This daemon's copy helpers still running."""
    out = []
    for pid in palletd.our_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"pallet.daemon.cp_helper" in f.read():
                    out.append(pid)
        except OSError:
            continue
    return out


def test_client_gone_midway_leaves_nothing(palletd):
    palletd.docker("run", "--name", "big", "busybox", "dd", "if=/dev/zero", "of=/big",
                   "bs=1M", "count=32", check=True)
    palletd.wait_for(lambda: palletd.inspect("big")["State"]["Status"] == "exited",
                     what="the exit")
    c = UnixHTTP(palletd.sock, 60)
    c.request("GET", "/v1.41/containers/big/archive?path=/big")
    r = c.getresponse()
    assert r.status == 200 and len(r.read(65536)) == 65536
    c.close()  # the client goes away with most of the tar unread
    rootfs = Path(palletd.inspect("big")["GraphDriver"]["Data"]["MergedDir"])
    palletd.wait_for(lambda: not os.path.ismount(rootfs) and not _helpers(palletd),
                     what="the helper to end and the rootfs to be unmounted")
    # the container's lock was let go: it starts again
    palletd.docker("start", "-a", "big", check=True)
    palletd.docker("rm", "big", check=True)


def test_cp_reaches_bind_mounts(palletd, tmp_path):
    vol, ro = tmp_path / "vol", tmp_path / "ro"
    vol.mkdir()
    ro.mkdir()
    (vol / "host.txt").write_text("from the host\n")
    palletd.docker("create", "--name", "vols", "-v", f"{vol}:/data", "-v", f"{ro}:/ro:ro",
                   "busybox", "cat", "/data/copied.txt", check=True)
    # into the volume of a container that has never run
    src = tmp_path / "copied.txt"
    src.write_text("into the volume\n")
    palletd.docker("cp", str(src), "vols:/data/", check=True)
    assert (vol / "copied.txt").read_text() == "into the volume\n"
    assert palletd.docker("start", "-a", "vols", check=True).stdout == "into the volume\n"
    out = tmp_path / "host.back"
    palletd.docker("cp", "vols:/data/host.txt", str(out), check=True)
    assert out.read_text() == "from the host\n"
    p = palletd.docker("cp", str(src), "vols:/ro/")
    assert p.returncode != 0 and "read-only" in p.stderr
    assert os.listdir(ro) == []
    # the helper's mounts stayed in its own namespace
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if f" {vol} " in line or "/data " in line.split(" - ")[0]]
    palletd.docker("rm", "vols", check=True)
    # a named volume: the copy is in the volume, which another container then sees
    palletd.docker("volume", "create", "cpvol", check=True)
    palletd.docker("create", "--name", "nv", "-v", "cpvol:/data", "busybox", "true",
                   check=True)
    palletd.docker("cp", str(src), "nv:/data/", check=True)
    assert _run_out(palletd, "-v", "cpvol:/v", "busybox", "cat", "/v/copied.txt") == \
        "into the volume\n"
    palletd.docker("rm", "nv", check=True)
    palletd.docker("volume", "rm", "cpvol", check=True)


def test_archive_api_errors_and_stat(palletd, tmp_path):
    palletd.docker("run", "-d", "--name", "api", "busybox", "sh", "-c",
                   "ln -s ../etc/passwd /tmp/pw; sleep 1000", check=True)
    palletd.wait_for(lambda: _request(palletd, "HEAD", "/v1.41/containers/api/archive"
                                      "?path=/tmp/pw")[0] == 200, what="the symlink")
    status, headers, _ = _request(palletd, "HEAD", "/v1.41/containers/api/archive?path=/tmp/pw")
    st = json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))
    # the link itself, and where it leads inside the container
    assert st["name"] == "pw" and st["linkTarget"] == "/etc/passwd"
    assert st["mode"] & (1 << 27) and st["size"] == len("../etc/passwd")  # os.ModeSymlink
    status, headers, _ = _request(palletd, "HEAD", "/v1.41/containers/api/archive?path=/etc")
    st = json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))
    assert st["mode"] & (1 << 31) and st["mode"] & 0o777 == 0o755
    status, _, _ = _request(palletd, "HEAD", "/v1.41/containers/api/archive?path=/nope")
    assert status == 404
    status, _, body = _request(palletd, "GET", "/v1.41/containers/api/archive?path=/nope")
    assert status == 404 and b"Could not find the file /nope in container api" in body
    status, _, body = _request(palletd, "PUT", "/v1.41/containers/api/archive?path=/etc/passwd",
                               _tar([("f", "file", "x")]))
    assert status == 400 and b"not a directory" in body
    status, _, body = _request(palletd, "PUT", "/v1.41/containers/api/archive?path=/tmp",
                               b"this is not a tar archive" * 40)
    assert status == 400, body
    # noOverwriteDirNonDir: a file does not replace a directory
    status, _, body = _request(
        palletd, "PUT", "/v1.41/containers/api/archive?path=/&noOverwriteDirNonDir=true",
        _tar([("tmp", "file", "x")]))
    assert status == 400 and b"cannot overwrite directory" in body
    palletd.docker("rm", "-f", "api", check=True)
    palletd.docker("run", "-d", "--read-only", "-v", f"{tmp_path}:/data", "--name", "ro",
                   "busybox", "sleep", "1000", check=True)
    status, _, body = _request(palletd, "PUT", "/v1.41/containers/ro/archive?path=/tmp",
                               _tar([("f", "file", "x")]))
    assert status == 403 and b"read-only" in body
    # a volume of a read-only container takes files
    status, _, body = _request(palletd, "PUT", "/v1.41/containers/ro/archive?path=/data",
                               _tar([("f", "file", "x")]))
    assert status == 200, body
    assert (tmp_path / "f").read_text() == "x"
    palletd.docker("rm", "-f", "ro", check=True)


# --- diff, commit, export/import ----------------------------------------------------------


def test_diff_shows_added_changed_deleted(palletd):
    palletd.docker("run", "--name", "dif", "busybox", "sh", "-c",
                   "echo new > /tmp/added; echo more >> /etc/group; rm /bin/ls; mkdir -p /a/b",
                   check=True)
    lines = palletd.docker("diff", "dif", check=True).stdout.splitlines()
    for want in ("C /tmp", "A /tmp/added", "C /etc", "C /etc/group", "C /bin", "D /bin/ls",
                 "A /a", "A /a/b"):
        assert want in lines, lines
    # the runtime's mountpoints are not the container's changes
    assert not [x for x in lines if x.split()[1] in ("/etc/hostname", "/etc/hosts",
                                                      "/etc/resolv.conf", "/proc", "/sys")]
    assert lines == sorted(lines, key=lambda x: x.split()[1])
    palletd.docker("rm", "dif", check=True)
    # a directory removed and made again hides everything below it (overlay: opaque)
    palletd.docker("run", "--name", "dif2", "busybox", "sh", "-c",
                   "rm -rf /usr/sbin && mkdir /usr/sbin", check=True)
    assert palletd.docker("diff", "dif2", check=True).stdout.splitlines() == \
        ["C /usr", "C /usr/sbin"]
    palletd.docker("rm", "dif2", check=True)


def test_commit_then_run(palletd):
    palletd.docker("run", "--name", "com", "-e", "FROM_RUN=1", "busybox", "sh", "-c",
                   "echo committed > /data.txt; rm /bin/ls", check=True)
    iid = palletd.docker("commit", "-a", "me", "-m", "the message", "-c",
                         'CMD ["cat", "/data.txt"]', "-c", "ENV EXTRA=yes", "com",
                         "committed:1", check=True).stdout.strip()
    assert iid.startswith("sha256:") and len(iid) == 71
    assert _run_out(palletd, "committed:1") == "committed\n"
    assert "FROM_RUN=1" in _run_out(palletd, "committed:1", "env")
    assert "EXTRA=yes" in _run_out(palletd, "committed:1", "env")
    assert palletd.docker("run", "--rm", "committed:1", "ls").returncode != 0  # deleted
    info = json.loads(palletd.docker("inspect", "committed:1", check=True).stdout)[0]
    assert info["Id"] == iid and info["Author"] == "me"
    base = json.loads(palletd.docker("inspect", "busybox", check=True).stdout)[0]
    assert info["RootFS"]["Layers"][:-1] == base["RootFS"]["Layers"]
    assert len(info["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"]) + 1
    # a running container's changes too; the commit leaves it running
    palletd.docker("run", "-d", "--name", "com2", "busybox", "sh", "-c",
                   "echo live > /live.txt; sleep 1000", check=True)
    palletd.wait_for(lambda: palletd.docker("exec", "com2", "cat", "/live.txt").returncode
                     == 0, what="live.txt")
    palletd.docker("commit", "com2", "committed:2", check=True)
    assert _run_out(palletd, "committed:2", "cat", "/live.txt") == "live\n"
    # paused for the commit (the default), running again after it
    assert palletd.inspect("com2")["State"]["Running"]
    assert palletd.docker("exec", "com2", "echo", "thawed", timeout=20,
                          check=True).stdout == "thawed\n"
    palletd.docker("commit", "--pause=false", "com2", "committed:3", check=True)
    assert _run_out(palletd, "committed:3", "cat", "/live.txt") == "live\n"
    palletd.docker("rm", "-f", "com", "com2", check=True)
    palletd.docker("rmi", "committed:1", "committed:2", "committed:3", check=True)


def _dangling(palletd) -> list[str]:
    """IDs of the images `docker images` shows as <none>:<none>."""
    _, imgs = palletd.api("GET", "/images/json")
    out = [i["Id"] for i in imgs if not i["RepoTags"]]
    listed = palletd.docker("images", "--no-trunc", check=True).stdout.splitlines()[1:]
    assert sorted(out) == sorted(ln.split()[2] for ln in listed if ln.startswith("<none>"))
    return out


def test_untagged_images(palletd, tmp_path):
    """commit and import without a name, load of an untagged archive: dangling images, as
    docker keeps them; a tag names one, prune removes them."""
    palletd.docker("run", "--name", "unt", "busybox", "sh", "-c", "echo untagged > /u.txt",
                   check=True)
    iid = palletd.docker("commit", "unt", check=True).stdout.strip()
    palletd.docker("rm", "unt", check=True)
    assert iid in _dangling(palletd)
    assert _run_out(palletd, iid, "cat", "/u.txt") == "untagged\n"
    info = json.loads(palletd.docker("inspect", iid, check=True).stdout)[0]
    assert info["RepoTags"] == [] and info["Id"] == iid
    # saved by ID the archive names no tag; loaded back it is dangling again
    out = tmp_path / "untagged.tar"
    palletd.docker("save", "-o", str(out), iid, check=True)
    palletd.docker("rmi", iid, check=True)
    assert palletd.docker("inspect", iid).returncode != 0
    p = palletd.docker("load", "-i", str(out), check=True)
    assert p.stdout.strip() == f"Loaded image ID: {iid}"
    assert _run_out(palletd, iid, "cat", "/u.txt") == "untagged\n"
    # a tag names it: no longer dangling
    palletd.docker("tag", iid, "named-now:1", check=True)
    assert iid not in _dangling(palletd)
    palletd.docker("rmi", "named-now:1", check=True)
    # import without a name, then prune takes it (and nothing named)
    exported = tmp_path / "x.tar"
    palletd.docker("create", "--name", "unt2", "busybox", check=True)
    palletd.docker("export", "-o", str(exported), "unt2", check=True)
    palletd.docker("rm", "unt2", check=True)
    iid2 = palletd.docker("import", str(exported), check=True).stdout.strip()
    assert iid2 in _dangling(palletd)
    palletd.docker("image", "prune", "-f", check=True)
    assert palletd.docker("inspect", iid2).returncode != 0
    assert palletd.docker("inspect", "busybox", check=True).returncode == 0


def test_export_import_run(palletd, tmp_path):
    palletd.docker("run", "--name", "exp", "busybox", "sh", "-c",
                   "echo exported > /etc/exported", check=True)
    out = tmp_path / "rootfs.tar"
    palletd.docker("export", "-o", str(out), "exp", check=True)
    with tarfile.open(out) as t:
        names = set(t.getnames())
    assert {"bin/busybox", "etc/exported", "etc/passwd"} <= names
    iid = palletd.docker("import", "-c", 'CMD ["cat", "/etc/exported"]', "-m", "from a tar",
                         str(out), "imported:1", check=True).stdout.strip()
    assert iid.startswith("sha256:")
    assert _run_out(palletd, "imported:1") == "exported\n"
    info = json.loads(palletd.docker("inspect", "imported:1", check=True).stdout)[0]
    assert info["Id"] == iid and len(info["RootFS"]["Layers"]) == 1
    assert info["Config"]["Cmd"] == ["cat", "/etc/exported"]
    # from stdin, gzip-compressed
    gz = tmp_path / "rootfs.tar.gz"
    subprocess.run(["gzip", "-k", str(out)], check=True)
    with open(gz, "rb") as f:
        p = subprocess.run([DOCKER, "import", "-", "imported:2"], stdin=f,
                           env=palletd.env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert _run_out(palletd, "imported:2", "cat", "/etc/exported") == "exported\n"
    palletd.docker("rm", "exp", check=True)
    palletd.docker("rmi", "imported:1", "imported:2", check=True)


def test_import_from_a_url(palletd, tmp_path):
    """`docker import http://...`: palletd downloads the tar (as dockerd does); a URL that
    answers 404 is refused, naming it, and stores nothing."""
    palletd.docker("run", "--name", "urlexp", "busybox", "sh", "-c",
                   "echo from-a-url > /etc/origin", check=True)
    served = tmp_path / "www"
    served.mkdir()
    palletd.docker("export", "-o", str(served / "rootfs.tar"), "urlexp", check=True)
    palletd.docker("rm", "urlexp", check=True)

    with serve_directory(str(served)) as base:
        before = _state(palletd)
        p = palletd.docker("import", f"{base}/missing.tar", "fromurl:0")
        assert p.returncode != 0 and f"Get {base}/missing.tar: 404" in p.stderr, p.stderr
        assert _state(palletd) == before
        palletd.docker("import", "-c", 'CMD ["cat", "/etc/origin"]', f"{base}/rootfs.tar",
                       "fromurl:1", check=True)
        assert _run_out(palletd, "fromurl:1") == "from-a-url\n"
        info = json.loads(palletd.docker("history", "--no-trunc", "--format", "{{json .}}",
                                         "fromurl:1", check=True).stdout.splitlines()[0])
        assert info["Comment"] == f"Imported from {base}/rootfs.tar"
        palletd.docker("rmi", "fromurl:1", check=True)


def test_bad_import_and_load_leave_nothing(palletd, tmp_path):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(os.urandom(4096))
    before = _state(palletd)
    p = palletd.docker("import", str(garbage), "garbage:1")
    assert p.returncode != 0 and "not a tar archive" in p.stderr
    p = palletd.docker("load", "-i", str(garbage))
    assert p.returncode != 0 and "invalid archive" in p.stderr
    # a real tar that is not an image
    notimage = tmp_path / "notimage.tar"
    notimage.write_bytes(_tar([("hello.txt", "file", "hi")]))
    p = palletd.docker("load", "-i", str(notimage))
    assert p.returncode != 0 and "invalid archive" in p.stderr
    # a docker-archive whose layer is missing: refused, its config not kept
    broken = tmp_path / "broken.tar"
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": ["sha256:" + "ab" * 32]}}).encode()
    broken.write_bytes(_tar([
        ("manifest.json", "file", json.dumps([{"Config": "c.json", "RepoTags": ["broken:1"],
                                                "Layers": ["l/layer.tar"]}])),
        ("c.json", "file", cfg)]))
    p = palletd.docker("load", "-i", str(broken))
    assert p.returncode != 0 and "l/layer.tar" in p.stderr
    assert _state(palletd) == before
    status, _, body = _request(palletd, "POST", "/v1.41/images/create?fromSrc=ftp://"
                               "127.0.0.1/x.tar&repo=x")
    assert status == 400 and b"http or https" in body
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    p = palletd.docker("import", f"http://127.0.0.1:{port}/x.tar", "x:1")
    assert p.returncode != 0 and f"Get http://127.0.0.1:{port}/x.tar" in p.stderr, p.stderr
    status, _, body = _request(palletd, "POST", "/v1.41/images/load", os.urandom(2048))
    assert status == 400 and json.loads(body)["message"].startswith("invalid archive")


# --- save / load --------------------------------------------------------------------------


def test_save_rmi_load_run(palletd, tmp_path):
    palletd.docker("run", "--name", "sv", "busybox", "sh", "-c", "echo saved > /saved.txt",
                   check=True)
    palletd.docker("commit", "-c", 'CMD ["cat", "/saved.txt"]', "sv", "saved:1", check=True)
    palletd.docker("rm", "sv", check=True)
    iid = json.loads(palletd.docker("inspect", "saved:1", check=True).stdout)[0]["Id"]
    out = tmp_path / "images.tar"
    palletd.docker("save", "-o", str(out), "saved:1", "busybox:latest", check=True)
    with tarfile.open(out) as t:
        manifest = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
        repositories = json.load(t.extractfile("repositories"))  # type: ignore[arg-type]
    assert sorted(tag for m in manifest for tag in m["RepoTags"]) == ["busybox:latest",
                                                                      "saved:1"]
    assert "saved" in repositories and "busybox" in repositories
    if shutil.which("skopeo"):
        info = json.loads(subprocess.run(
            ["skopeo", "inspect", f"docker-archive:{out}:saved:1"], capture_output=True,
            text=True, check=True).stdout)
        assert info["Layers"] and "cat" not in info.get("Env", [])
        cfg = json.loads(subprocess.run(
            ["skopeo", "inspect", "--config", f"docker-archive:{out}:saved:1"],
            capture_output=True, text=True, check=True).stdout)
        assert cfg["config"]["Cmd"] == ["cat", "/saved.txt"]
    palletd.docker("rmi", "saved:1", check=True)
    assert palletd.docker("inspect", "saved:1").returncode != 0
    p = palletd.docker("load", "-i", str(out), check=True)
    assert "Loaded image: saved:1" in p.stdout and "Loaded image: busybox:latest" in p.stdout
    assert json.loads(palletd.docker("inspect", "saved:1", check=True).stdout)[0]["Id"] == iid
    assert _run_out(palletd, "saved:1") == "saved\n"
    palletd.docker("rmi", "saved:1", check=True)


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_load_oci_layout_tar(palletd, tmp_path):
    palletd.docker("save", "-o", str(tmp_path / "bb.tar"), "busybox", check=True)
    oci = tmp_path / "bb-oci.tar"
    subprocess.run(["skopeo", "copy", f"docker-archive:{tmp_path / 'bb.tar'}",
                    f"oci-archive:{oci}:docker.io/library/ocibox:1"], check=True,
                   capture_output=True)
    p = palletd.docker("load", "-i", str(oci), check=True)
    assert "Loaded image: ocibox:1" in p.stdout
    assert _run_out(palletd, "ocibox:1", "echo", "from oci") == "from oci\n"
    palletd.docker("rmi", "ocibox:1", check=True)


# --- docker-py and the pallet CLI ---------------------------------------------------------


def test_dockerpy_archive_and_images(palletd):
    docker = pytest.importorskip("docker", reason="docker-py (PyPI `docker`) is not installed")
    client = docker.DockerClient(base_url=f"unix://{palletd.sock}", version="auto")
    try:
        ct = client.containers.run("busybox", ["sleep", "1000"], detach=True, name="dpy")
        assert ct.put_archive("/tmp", _tar([("dpy/one.txt", "file", "one\n")]))
        assert ct.exec_run(["cat", "/tmp/dpy/one.txt"]).output == b"one\n"
        bits, st = ct.get_archive("/tmp/dpy")
        assert st["name"] == "dpy" and st["mode"] & (1 << 31)
        with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as t:
            assert sorted(t.getnames()) == ["dpy", "dpy/one.txt"]
        with pytest.raises(docker.errors.NotFound):
            ct.get_archive("/no/such/path")
        img = ct.commit("dpy-image", "v1", changes=["CMD cat /tmp/dpy/one.txt"])
        assert client.containers.run("dpy-image:v1", remove=True) == b"one\n"
        assert [c["Path"] for c in ct.diff()] == ["/tmp", "/tmp/dpy", "/tmp/dpy/one.txt"]
        untagged = ct.commit()
        assert untagged.tags == [] and untagged.id != img.id
        client.images.remove(untagged.id)
        data = b"".join(img.save(named=True))
        ct.remove(force=True)
        client.images.remove("dpy-image:v1")
        loaded = client.images.load(data)
        assert [i.id for i in loaded] == [img.id]
        assert "dpy-image:v1" in loaded[0].tags
        client.images.remove("dpy-image:v1")
    finally:
        for c in client.containers.list(all=True):
            c.remove(force=True)
        client.close()


def test_pallet_cli_verbs(palletd, tmp_path):
    src = tmp_path / "p.txt"
    src.write_text("via pallet\n")
    palletd.pallet("run", "-d", "--name", "pcli", "busybox", "sleep", "1000", check=True)
    p = palletd.pallet("cp", str(src), "pcli:/tmp/", check=True)
    assert "Successfully copied" in p.stderr
    back = tmp_path / "back.txt"
    palletd.pallet("cp", "pcli:/tmp/p.txt", str(back), check=True)
    assert back.read_text() == "via pallet\n"
    assert palletd.pallet("diff", "pcli", check=True).stdout.splitlines() == \
        ["C /tmp", "A /tmp/p.txt"]
    # symlinks: -L copies what a link leads to under the link's name; a link as the
    # destination is written through, inside the container
    palletd.pallet("exec", "pcli", "ln", "-s", "/tmp/p.txt", "/tmp/link", check=True)
    palletd.pallet("cp", "-L", "pcli:/tmp/link", str(tmp_path), check=True)
    assert (tmp_path / "link").read_text() == "via pallet\n"
    src.write_text("second\n")
    palletd.pallet("cp", str(src), "pcli:/tmp/link", check=True)
    assert palletd.pallet("exec", "pcli", "sh", "-c", "readlink /tmp/link; cat /tmp/p.txt",
                          check=True).stdout == "/tmp/p.txt\nsecond\n"
    src.write_text("via pallet\n")
    palletd.pallet("cp", str(src), "pcli:/tmp/p.txt", check=True)
    iid = palletd.pallet("commit", "-c", "CMD cat /tmp/p.txt", "pcli", "pcli-img:1",
                         check=True).stdout.strip()
    assert iid.startswith("sha256:")
    assert palletd.pallet("run", "--rm", "pcli-img:1", check=True).stdout == "via pallet\n"
    exported = tmp_path / "pcli.tar"
    palletd.pallet("export", "-o", str(exported), "pcli", check=True)
    palletd.pallet("import", "-c", 'CMD ["cat", "/tmp/p.txt"]', str(exported), "pcli-imp:1",
                   check=True)
    saved = tmp_path / "saved.tar"
    palletd.pallet("save", "-o", str(saved), "pcli-imp:1", check=True)
    palletd.pallet("rm", "-f", "pcli", check=True)
    palletd.pallet("rmi", "pcli-img:1", "pcli-imp:1", check=True)
    assert palletd.pallet("load", "-i", str(saved), check=True).stdout == \
        "Loaded image: pcli-imp:1\n"
    assert palletd.pallet("run", "--rm", "pcli-imp:1", check=True).stdout == "via pallet\n"
    palletd.pallet("rmi", "pcli-imp:1", check=True)


def test_requests_are_docker_shaped(palletd):
    """A raw look at two responses the docker CLI depends on."""
    palletd.docker("run", "-d", "--name", "raw", "busybox", "sleep", "1000", check=True)
    c = UnixHTTP(palletd.sock, 60)
    try:
        c.request("GET", "/v1.41/containers/raw/export")
        r: http.client.HTTPResponse = c.getresponse()
        assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
        with tarfile.open(fileobj=io.BytesIO(r.read())) as t:
            assert "bin/sh" in t.getnames()
    finally:
        c.close()
    status, headers, body = _request(palletd, "POST", "/v1.41/images/create?fromSrc=-"
                                     "&repo=raw-import&tag=t1", _tar([("f", "file", "x")]))
    assert status == 200 and headers["Content-Type"] == "application/json"
    last = json.loads(body.splitlines()[-1])
    assert last["status"].startswith("sha256:")
    palletd.docker("rm", "-f", "raw", check=True)
    palletd.docker("rmi", "raw-import:t1", check=True)

