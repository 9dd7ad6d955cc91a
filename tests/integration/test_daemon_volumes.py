"""Volumes and mounts of palletd, driven by the real docker CLI (API 1.41), docker-py and the
pallet CLI: named and anonymous volumes, copy-up, binds, tmpfs, driver options, events."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from daemon_support import Palletd, requirements

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def palletd():
    """busybox, and `volimg`: an image with `VOLUME /data` and /home/app owned 1234:2345."""
    why = requirements()
    if why:
        pytest.skip(why)
    from pallet.images.service import ImageService
    from pallet.testing.images import with_users

    d = Palletd(tempfile.mkdtemp(prefix="pd", dir="/tmp"))
    try:
        d.import_busybox()
        layout = with_users(os.path.join(d.base, "volimg-layout"))
        svc = ImageService(d.root)
        try:
            svc.import_(str(layout), base_name="docker.io/library/volimg")
        finally:
            svc.close()
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def hostdir(palletd):
    path = tempfile.mkdtemp(prefix="hostdir-", dir=palletd.base)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def volume(palletd, name: str) -> dict:
    status, body = palletd.api("GET", f"/volumes/{name}")
    assert status == 200, body
    return body


def volume_names(palletd) -> set[str]:
    return set(palletd.docker("volume", "ls", "-q", check=True).stdout.split())


def mounts_of(palletd, container: str) -> dict[str, dict]:
    return {m["Destination"]: m for m in palletd.inspect(container)["Mounts"]}


# --- the volume API -------------------------------------------------------------------------


def test_volume_create_ls_inspect_rm(palletd):
    assert palletd.docker("volume", "create", "--label", "team=a", "--label", "x",
                          "v1", check=True).stdout.strip() == "v1"
    # creating is idempotent, as in dockerd
    assert palletd.docker("volume", "create", "v1", check=True).stdout.strip() == "v1"
    anon = palletd.docker("volume", "create", check=True).stdout.strip()
    assert HEX64.match(anon)
    info = json.loads(palletd.docker("volume", "inspect", "v1", check=True).stdout)[0]
    assert info["Name"] == "v1" and info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Labels"] == {"team": "a", "x": ""}
    assert info["Mountpoint"] == os.path.join(palletd.root, "volumes", "v1", "_data")
    assert os.path.isdir(info["Mountpoint"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", info["CreatedAt"])

    table = palletd.docker("volume", "ls", check=True).stdout.splitlines()
    assert table[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert ["local", "v1"] in [row.split() for row in table[1:]]
    assert {"v1", anon} <= volume_names(palletd)
    assert palletd.docker("volume", "ls", "-q", "--filter", "label=team=a",
                          check=True).stdout.split() == ["v1"]
    assert palletd.docker("volume", "ls", "-q", "--filter", "label=team=b",
                          check=True).stdout.split() == []
    assert palletd.docker("volume", "ls", "-q", "--filter", "name=v1",
                          check=True).stdout.split() == ["v1"]
    assert "v1" in palletd.docker("volume", "ls", "-q", "--filter", "dangling=true",
                                  "--filter", "driver=local", check=True).stdout.split()
    p = palletd.docker("volume", "ls", "--filter", "dangling=maybe")
    assert p.returncode != 0 and "dangling" in p.stderr

    assert palletd.docker("volume", "rm", "v1", anon, check=True).stdout.split() == \
        ["v1", anon]
    assert not os.path.exists(info["Mountpoint"])
    p = palletd.docker("volume", "inspect", "v1")
    assert p.returncode != 0 and "no such volume" in p.stderr.lower()
    assert palletd.api("DELETE", "/volumes/v1")[0] == 404
    assert palletd.api("DELETE", "/volumes/v1?force=1")[0] == 204


def test_share_between_containers_and_in_use(palletd):
    palletd.docker("run", "--name", "writer", "-v", "shared:/data", "busybox", "sh", "-c",
                   "echo hello > /data/greeting", check=True)
    p = palletd.docker("run", "--rm", "-v", "shared:/data:ro", "busybox", "sh", "-c",
                       "cat /data/greeting; touch /data/x 2>&1 || echo refused")
    assert p.stdout.splitlines()[0] == "hello"
    assert "refused" in p.stdout and "Read-only file system" in p.stdout
    vol = volume(palletd, "shared")
    with open(os.path.join(vol["Mountpoint"], "greeting")) as f:
        assert f.read() == "hello\n"
    m = mounts_of(palletd, "writer")["/data"]
    assert m == {"Type": "volume", "Name": "shared", "Source": vol["Mountpoint"],
                 "Destination": "/data", "Driver": "local", "Mode": "z", "RW": True,
                 "Propagation": ""}
    ps = json.loads(palletd.docker("ps", "-a", "--filter", "name=writer", "--format",
                                   "{{json .Mounts}}", check=True).stdout)
    assert ps == "shared"
    for f in ("volume=shared", "volume=/data"):
        assert palletd.docker("ps", "-aq", "--filter", f, check=True).stdout.strip() == \
            palletd.inspect("writer")["Id"][:12]
    assert palletd.docker("ps", "-aq", "--filter", "volume=other",
                          check=True).stdout.strip() == ""

    # in use by a (stopped) container: 409, with or without force
    p = palletd.docker("volume", "rm", "shared")
    assert p.returncode != 0 and "volume is in use" in p.stderr
    status, body = palletd.api("DELETE", "/volumes/shared?force=1")
    assert status == 409 and "in use" in body["message"]
    assert "shared" in palletd.docker("volume", "ls", "-q", "--filter", "dangling=false",
                                      check=True).stdout.split()
    palletd.docker("rm", "-v", "writer", check=True)  # -v keeps named volumes
    assert "shared" in volume_names(palletd)
    palletd.docker("volume", "rm", "shared", check=True)


def test_copy_up_from_image(palletd):
    # an empty volume gets the image's files at its destination, owner and mode included
    p = palletd.docker("run", "--rm", "-v", "home:/home/tester", "busybox", "sh", "-c",
                       "stat -c '%u:%g' /home/tester", check=True)
    assert p.stdout.strip() == "1000:1000"
    p = palletd.docker("run", "--rm", "-v", "etc:/etc", "--hostname", "overetc", "busybox",
                       "sh", "-c", "cat /etc/hostname /etc/passwd", check=True)
    assert p.stdout.startswith("overetc\n")  # the daemon's /etc files go over the volume
    p.stdout = p.stdout.removeprefix("overetc\n")
    data = volume(palletd, "etc")["Mountpoint"]
    with open(os.path.join(data, "passwd")) as f:
        assert f.read() == p.stdout and "root:" in p.stdout
    # a volume with content is not filled again
    os.unlink(os.path.join(data, "group"))
    p = palletd.docker("run", "--rm", "-v", "etc:/etc", "busybox", "ls", "/etc", check=True)
    assert "passwd" in p.stdout.split() and "group" not in p.stdout.split()
    # nocopy, as a -v mode and as a --mount option
    for args in (["-v", "fresh1:/etc:nocopy"],
                 ["--mount", "type=volume,src=fresh2,dst=/etc,volume-nocopy"]):
        p = palletd.docker("run", "--rm", *args, "busybox", "ls", "/etc", check=True)
        assert "passwd" not in p.stdout.split(), args
    # binds are never filled
    hd = tempfile.mkdtemp(dir=palletd.base)
    palletd.docker("run", "--rm", "-v", f"{hd}:/etc", "busybox", "true", check=True)
    assert "passwd" not in os.listdir(hd)
    palletd.docker("volume", "rm", "home", "etc", "fresh1", "fresh2", check=True)


def test_anonymous_volumes(palletd):
    # the image's VOLUME /data -> an anonymous volume, removed by rm -v
    cid = palletd.docker("create", "--name", "anon", "volimg", check=True).stdout.strip()
    info = palletd.inspect(cid)
    assert "/data" in info["Config"]["Volumes"]
    m = mounts_of(palletd, cid)["/data"]
    assert m["Type"] == "volume" and HEX64.match(m["Name"]) and m["RW"] and m["Mode"] == ""
    assert m["Source"] == volume(palletd, m["Name"])["Mountpoint"]
    palletd.docker("rm", "-v", "anon", check=True)
    assert m["Name"] not in volume_names(palletd)

    # -v /dst: anonymous too; kept by a plain rm, gone with --rm (AutoRemove)
    palletd.docker("run", "--name", "anon2", "-v", "/scratch", "busybox", "sh", "-c",
                   "echo x > /scratch/f", check=True)
    name = mounts_of(palletd, "anon2")["/scratch"]["Name"]
    palletd.docker("rm", "anon2", check=True)
    assert name in volume_names(palletd)
    palletd.docker("volume", "rm", name, check=True)
    before = volume_names(palletd)
    palletd.docker("run", "--rm", "-v", "/scratch", "--mount", "type=volume,dst=/other",
                   "busybox", "true", check=True)
    palletd.wait_for(lambda: volume_names(palletd) == before, what="anonymous volumes gone")

    # a named volume over the image's VOLUME replaces the anonymous one
    palletd.docker("create", "--name", "anon3", "-v", "mine:/data", "volimg", check=True)
    assert mounts_of(palletd, "anon3")["/data"]["Name"] == "mine"
    palletd.docker("rm", "-v", "anon3", check=True)
    palletd.docker("volume", "rm", "mine", check=True)


def test_volumes_from(palletd, hostdir):
    palletd.docker("create", "--name", "donor", "-v", "vf:/v", "-v", f"{hostdir}:/h",
                   "-v", "/anon", "busybox", check=True)
    p = palletd.docker("run", "--rm", "--volumes-from", "donor:ro", "busybox", "sh", "-c",
                       "awk '$2 ~ /^\\/(v|h|anon)$/ {print $2, substr($4, 1, 2)}' /proc/mounts")
    assert sorted(p.stdout.split("\n")[:3]) == ["/anon ro", "/h ro", "/v ro"], p.stderr
    # a -v of the same destination replaces the inherited mount
    palletd.docker("run", "--name", "heir", "--volumes-from", "donor", "-v", "other:/v",
                   "busybox", "sh", "-c", "echo w > /anon/f", check=True)
    mine = mounts_of(palletd, "heir")
    assert mine["/v"]["Name"] == "other" and mine["/h"]["Source"] == hostdir
    assert mine["/anon"]["Name"] == mounts_of(palletd, "donor")["/anon"]["Name"]
    # removing the heir with -v leaves the donor's anonymous volume to the donor
    palletd.docker("rm", "-v", "heir", check=True)
    assert mine["/anon"]["Name"] in volume_names(palletd)
    palletd.docker("rm", "-v", "donor", check=True)
    assert mine["/anon"]["Name"] not in volume_names(palletd)
    # (through the API: the docker CLI takes any 404 of a create for a missing image)
    status, body = palletd.api("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"VolumesFrom": ["nobody"]}})
    assert status == 404 and "No such container: nobody" in body["message"]
    palletd.docker("volume", "rm", "vf", "other", check=True)


def test_volumes_survive_a_daemon_restart(palletd):
    palletd.docker("volume", "create", "--label", "keep=1", "--opt", "type=tmpfs", "--opt",
                   "device=tmpfs", "durable", check=True)
    palletd.docker("create", "--name", "holder", "-v", "durable:/d", "busybox", check=True)
    before = volume(palletd, "durable")
    palletd.kill(signal.SIGTERM)
    palletd.start()
    assert volume(palletd, "durable") == before
    assert mounts_of(palletd, "holder")["/d"]["Name"] == "durable"
    assert palletd.api("DELETE", "/volumes/durable")[0] == 409
    palletd.docker("rm", "holder", check=True)
    palletd.docker("volume", "rm", "durable", check=True)


def test_prune(palletd):
    palletd.docker("volume", "create", "keep-used", check=True)
    palletd.docker("volume", "create", "--label", "tier=x", "gone-labelled", check=True)
    palletd.docker("volume", "create", "gone-plain", check=True)
    palletd.docker("create", "--name", "user", "-v", "keep-used:/d", "busybox", check=True)
    with open(os.path.join(volume(palletd, "gone-plain")["Mountpoint"], "f"), "w") as f:
        f.write("x" * 5000)
    # label filters narrow what goes
    p = palletd.docker("volume", "prune", "-f", "--filter", "label=tier=x", check=True)
    assert "gone-labelled" in p.stdout and "gone-plain" not in p.stdout
    # API 1.41: every unused volume goes, named ones included
    p = palletd.docker("volume", "prune", "-f", check=True)
    assert "Deleted Volumes:" in p.stdout and "gone-plain" in p.stdout
    assert "Total reclaimed space: 5kB" in p.stdout
    assert "keep-used" in volume_names(palletd)
    palletd.docker("rm", "user", check=True)
    status, body = palletd.api("POST", "/volumes/prune")
    assert status == 200 and "keep-used" in body["VolumesDeleted"]


# --- other mounts ---------------------------------------------------------------------------


def test_tmpfs_mounts(palletd):
    p = palletd.docker("run", "--name", "tm", "--mount",
                       "type=tmpfs,dst=/scratch,tmpfs-size=1m,tmpfs-mode=1770",
                       "--tmpfs", "/t2:size=2m,exec", "busybox", "sh", "-c",
                       "grep -E ' /(scratch|t2) ' /proc/mounts; stat -c %a /scratch",
                       check=True)
    lines = p.stdout.splitlines()
    scratch = next(x for x in lines if " /scratch " in x)
    t2 = next(x for x in lines if " /t2 " in x)
    assert scratch.startswith("tmpfs /scratch tmpfs ") and "size=1024k" in scratch
    assert "nosuid" in scratch and "nodev" in scratch and "noexec" in scratch
    assert "size=2048k" in t2 and "noexec" not in t2  # the user's exec wins
    assert lines[-1] == "1770"
    info = palletd.inspect("tm")
    assert info["HostConfig"]["Tmpfs"] == {"/t2": "size=2m,exec"}
    assert info["Mounts"] == [{"Type": "tmpfs", "Source": "", "Destination": "/scratch",
                               "Mode": "", "RW": True, "Propagation": ""}]
    palletd.docker("rm", "tm", check=True)


def test_bind_mounts(palletd, hostdir):
    with open(os.path.join(hostdir, "in"), "w") as f:
        f.write("from host\n")
    p = palletd.docker("run", "--rm", "--mount", f"type=bind,src={hostdir},dst=/h,readonly",
                       "busybox", "sh", "-c", "cat /h/in; (echo x > /h/out) 2>&1 || echo no")
    assert p.stdout.splitlines()[0] == "from host"
    assert "Read-only file system" in p.stdout and not os.path.exists(f"{hostdir}/out")
    palletd.docker("run", "--name", "bw", "-v", f"{hostdir}:/h", "busybox", "sh", "-c",
                   "echo from container > /h/out", check=True)
    with open(os.path.join(hostdir, "out")) as f:
        assert f.read() == "from container\n"
    assert mounts_of(palletd, "bw")["/h"] == {
        "Type": "bind", "Source": hostdir, "Destination": "/h", "Mode": "", "RW": True,
        "Propagation": "rprivate"}
    palletd.docker("rm", "bw", check=True)
    # a single file, over one of the image's
    p = palletd.docker("run", "--rm", "-v", f"{hostdir}/in:/etc/passwd:ro", "busybox", "cat",
                       "/etc/passwd", check=True)
    assert p.stdout == "from host\n"
    # -v creates a missing host directory; --mount refuses it
    missing = os.path.join(hostdir, "made", "by", "v")
    palletd.docker("run", "--rm", "-v", f"{missing}:/m", "busybox", "true", check=True)
    assert os.path.isdir(missing)
    p = palletd.docker("run", "--rm", "--mount", f"type=bind,src={hostdir}/nope,dst=/m",
                       "busybox", "true")
    assert p.returncode != 0 and "bind source path does not exist" in p.stderr


def test_bind_propagation(palletd, hostdir):
    # rshared needs a shared source mount (dockerd's ensureShared); make one
    subprocess.run(["mount", "--bind", hostdir, hostdir], check=True)
    try:
        p = palletd.docker("run", "--rm", "-v", f"{hostdir}:/h:rshared", "busybox", "true")
        assert p.returncode != 0 and "is not a shared mount" in p.stderr
        subprocess.run(["mount", "--make-shared", hostdir], check=True)
        os.mkdir(os.path.join(hostdir, "sub"))
        # a mount made inside the container reaches the host through the shared bind
        palletd.docker("run", "--name", "prop", "--privileged", "-v", f"{hostdir}:/h:rshared",
                       "busybox", "sh", "-c",
                       "mount -t tmpfs none /h/sub && echo inside > /h/sub/f", check=True)
        assert mounts_of(palletd, "prop")["/h"]["Propagation"] == "rshared"
        with open(os.path.join(hostdir, "sub", "f")) as f:
            assert f.read() == "inside\n"
        subprocess.run(["umount", os.path.join(hostdir, "sub")], check=True)
        palletd.docker("rm", "prop", check=True)
    finally:
        subprocess.run(["umount", "-l", hostdir], check=False)


def test_runc_underneath(palletd, hostdir):
    """The same mounts through runc: the OCI mounts palletd writes are not pallet-runtime's
    dialect."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    p = palletd.docker("run", "--rm", "--runtime", "runc", "-v", "rv:/etc", "-v",
                       f"{hostdir}:/h:ro", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m",
                       "--tmpfs", "/u:size=2m", "busybox", "sh", "-c",
                       "cat /etc/passwd >/dev/null && echo x > /etc/w && ls /h && "
                       "grep -E ' /(t|u) ' /proc/mounts | cut -d' ' -f2,4; "
                       "touch /h/no 2>/dev/null || echo ro", check=True)
    assert os.path.exists(os.path.join(volume(palletd, "rv")["Mountpoint"], "w"))
    lines = p.stdout.splitlines()
    assert any(x.startswith("/t ") and "size=1024k" in x for x in lines)
    assert any(x.startswith("/u ") and "size=2048k" in x for x in lines)
    assert lines[-1] == "ro"
    palletd.docker("volume", "rm", "rv", check=True)


def test_volume_driver_options(palletd, hostdir):
    palletd.docker("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
                   "--opt", "o=size=3m", "tv", check=True)
    assert volume(palletd, "tv")["Options"] == {"type": "tmpfs", "device": "tmpfs",
                                                "o": "size=3m"}
    p = palletd.docker("run", "--rm", "-v", "tv:/t", "busybox", "sh", "-c",
                       "grep ' /t ' /proc/mounts; echo x > /t/f", check=True)
    assert p.stdout.startswith("tmpfs /t tmpfs") and "size=3072k" in p.stdout
    data = volume(palletd, "tv")["Mountpoint"]
    assert not os.path.ismount(data)  # unmounted after the last user stopped
    palletd.docker("volume", "create", "--opt", "type=none", "--opt", f"device={hostdir}",
                   "--opt", "o=bind", "bv", check=True)
    palletd.docker("run", "--rm", "-v", "bv:/b", "busybox", "sh", "-c",
                   "echo via volume > /b/f", check=True)
    with open(os.path.join(hostdir, "f")) as f:
        assert f.read() == "via volume\n"
    palletd.docker("volume", "rm", "tv", "bv", check=True)
    assert os.path.exists(os.path.join(hostdir, "f"))  # removing the volume kept the device

    p = palletd.docker("volume", "create", "--opt", "colour=red", "bad")
    assert p.returncode != 0 and 'invalid option key: "colour"' in p.stderr
    p = palletd.docker("volume", "create", "--opt", "type=tmpfs", "bad")
    assert p.returncode != 0 and 'missing required option: "device"' in p.stderr
    p = palletd.docker("volume", "create", "-d", "nfs-plugin", "bad")
    assert p.returncode != 0 and "nfs-plugin" in p.stderr
    assert "bad" not in volume_names(palletd)


def test_bad_mounts_are_400(palletd):
    def create(host: dict, **cfg) -> tuple[int, dict]:
        return palletd.api("POST", "/containers/create",
                           {"Image": "busybox", "HostConfig": host, **cfg})

    cases = [
        ({"Mounts": [{"Type": "floppy", "Target": "/x"}]}, 'type "floppy"'),
        ({"Mounts": [{"Type": "volume", "Source": "v1", "Target": "rel"}]}, "must be absolute"),
        ({"Mounts": [{"Type": "tmpfs", "Source": "x", "Target": "/t"}]}, "Source"),
        ({"Mounts": [{"Type": "volume", "Target": "/t", "ReadOnly": True}]}, "anonymous"),
        ({"Binds": ["v1:relative"]}, "must be absolute"),
        ({"Binds": ["v1:/a", "w1:/a"]}, "Duplicate mount point: /a"),
        ({"Binds": ["v1:/a"], "Tmpfs": {"/a": ""}}, "Duplicate mount point: /a"),
        ({"Binds": ["v1:/a:rx"]}, "invalid mode: rx"),
        ({"Binds": ["bad$name:/a"]}, "invalid characters"),
        ({"Binds": ["/h:/a:ro:z"]}, "invalid volume specification"),
        ({"Tmpfs": {"rel": ""}}, "must be absolute"),
        ({"Binds": ["v1:/"]}, "destination can't be '/'"),
    ]
    before = volume_names(palletd)
    for host, words in cases:
        status, body = create(host)
        assert status == 400 and words in body["message"], (host, body)
    assert volume_names(palletd) == before  # nothing created on the way to an error
    status, body = create({"Mounts": [{"Type": "volume", "Target": "/t", "VolumeOptions": {
        "DriverConfig": {"Name": "nope"}}}]})
    assert status == 404 and "nope" in body["message"]
    p = palletd.docker("run", "--rm", "--mount", "type=floppy,dst=/x", "busybox", "true")
    assert p.returncode != 0 and "floppy" in p.stderr
    status, body = palletd.api("POST", "/volumes/create", {"Name": "a/b"})
    assert status == 400 and "invalid characters" in body["message"]
    assert palletd.api("GET", "/volumes?filters=%7B%22colour%22%3A%5B%22x%22%5D%7D")[0] == 400


def test_events_and_df(palletd):
    since = str(time.time() - 1)
    palletd.docker("run", "--rm", "-v", "evvol:/e", "busybox", "true", check=True)
    palletd.docker("volume", "rm", "evvol", check=True)
    out = palletd.docker("events", "--since", since, "--until", str(time.time() + 1),
                         "--filter", "volume=evvol", "--format",
                         "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}",
                         check=True).stdout.splitlines()
    assert out == [f"{a} evvol local" for a in ("create", "mount", "unmount", "destroy")]

    palletd.docker("volume", "create", "dfvol", check=True)
    with open(os.path.join(volume(palletd, "dfvol")["Mountpoint"], "f"), "w") as f:
        f.write("y" * 3000)
    palletd.docker("create", "--name", "dfuser", "-v", "dfvol:/d", "busybox", check=True)
    status, body = palletd.api("GET", "/system/df")
    assert status == 200
    v = next(x for x in body["Volumes"] if x["Name"] == "dfvol")
    assert v["UsageData"] == {"Size": 3000, "RefCount": 1}
    df = palletd.docker("system", "df", check=True).stdout
    row = next(line.split() for line in df.splitlines() if line.startswith("Local Volumes"))
    assert row[2:4] == [str(len(body["Volumes"])), "1"]
    palletd.docker("rm", "dfuser", check=True)
    palletd.docker("volume", "rm", "dfvol", check=True)


# --- docker-py ------------------------------------------------------------------------------


def test_docker_py(palletd):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=f"unix://{palletd.sock}", version="auto")
    try:
        v = client.volumes.create("pyvol", labels={"by": "py"})
        assert v.name == "pyvol" and v.attrs["Labels"] == {"by": "py"}
        assert "pyvol" in [x.name for x in client.volumes.list(filters={"label": "by=py"})]
        out = client.containers.run("busybox", ["sh", "-c", "echo py > /data/f; cat /data/f"],
                                    volumes={"pyvol": {"bind": "/data", "mode": "rw"}},
                                    remove=True)
        assert out == b"py\n"
        out = client.containers.run("busybox", ["cat", "/d/f"], volumes=["pyvol:/d:ro"],
                                    remove=True)
        assert out == b"py\n"
        assert client.volumes.get("pyvol").attrs["Mountpoint"].endswith("/pyvol/_data")
        c = client.containers.create("busybox", volumes=["pyvol:/data"])
        with pytest.raises(docker.errors.APIError) as err:
            client.volumes.get("pyvol").remove()
        assert err.value.status_code == 409
        c.remove()
        client.volumes.get("pyvol").remove()
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get("pyvol")
        with pytest.raises(docker.errors.APIError) as err:
            client.containers.create("busybox", mounts=[{"Type": "floppy", "Target": "/x"}])
        assert err.value.status_code == 400 and "floppy" in str(err.value)
        client.volumes.create("pyprune")
        assert "pyprune" in (client.volumes.prune()["VolumesDeleted"] or [])
    finally:
        client.close()


# --- the pallet CLI -------------------------------------------------------------------------


def test_pallet_cli(palletd, hostdir):
    assert palletd.pallet("volume", "create", "--label", "a=b", "-o", "type=tmpfs", "-o",
                          "device=tmpfs", "pv", check=True).stdout.strip() == "pv"
    ls = palletd.pallet("volume", "ls", check=True).stdout.splitlines()
    assert ls[0].split() == ["DRIVER", "VOLUME", "NAME"] and ["local", "pv"] in \
        [x.split() for x in ls]
    assert palletd.pallet("volume", "ls", "-q", "-f", "label=a=b",
                          check=True).stdout.split() == ["pv"]
    info = json.loads(palletd.pallet("volume", "inspect", "pv", check=True).stdout)
    assert info[0]["Options"]["type"] == "tmpfs" and info[0]["Labels"] == {"a": "b"}
    assert palletd.pallet("volume", "inspect", "-f", "{{.Driver}}", "pv",
                          check=True).stdout.strip() == "local"
    p = palletd.pallet("run", "--rm", "-v", "pv:/p", "--mount",
                       f"type=bind,source={hostdir},target=/h,readonly", "--tmpfs",
                       "/t:size=1m", "busybox", "sh", "-c",
                       "grep -E ' /(p|h|t) ' /proc/mounts | cut -d' ' -f2,3,4")
    assert p.returncode == 0, p.stderr
    got = {line.split()[0]: line.split()[1:] for line in p.stdout.splitlines()}
    assert got["/p"][0] == "tmpfs" and got["/t"][0] == "tmpfs" and "size=1024k" in got["/t"][1]
    assert got["/h"][1].startswith("ro,")
    cid = palletd.pallet("create", "-v", "/anon", "busybox", check=True).stdout.strip()
    name = mounts_of(palletd, cid)["/anon"]["Name"]
    palletd.pallet("rm", "-v", cid, check=True)
    assert name not in volume_names(palletd)
    p = palletd.pallet("volume", "rm", "pv", "nosuch")
    assert p.returncode == 1 and "nosuch" in p.stderr
    palletd.pallet("volume", "create", "pp", check=True)
    assert palletd.pallet("inspect", "-f", "{{.Name}} {{.Driver}}", "pp",
                          check=True).stdout.strip() == "pp local"
    p = palletd.pallet("volume", "prune", "-f", check=True)
    assert "pp" in p.stdout and "Total reclaimed space" in p.stdout
    assert palletd.pallet("volume", "ls", "-q", check=True).stdout.split() == []
    palletd.pallet("volume", "create", "pq", check=True)
    p = palletd.pallet("system", "prune", "-f", "--volumes", check=True)
    assert "Deleted Volumes:\npq\n" in p.stdout
