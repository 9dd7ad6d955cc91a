"""The mount parsing of palletd (pallet.daemon.mounts) and of the pallet CLI's flags
(pallet.cli.pallet.mountflags): docker's rules, without a daemon."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pallet.cli.pallet import cmdline, mountflags
from pallet.daemon import mounts as m
from pallet.errors import InvalidArgument, NotFound


def test_bind_of_a_host_path():
    p = m.parse_bind("/srv/a/../b:/data:ro,rshared")
    assert (p.Type, p.Source, p.Destination, p.RW, p.Propagation, p.Mode) == (
        "bind", "/srv/b", "/data", False, "rshared", "ro,rshared")
    assert not p.copy_data
    assert m.parse_bind("/srv:/d").Propagation == "rprivate"


def test_bind_of_a_volume():
    p = m.parse_bind("cache:/var/cache")
    assert (p.Type, p.Name, p.Driver, p.Mode, p.RW, p.copy_data, p.anonymous) == (
        "volume", "cache", "local", "z", True, True, False)
    assert not m.parse_bind("cache:/c:nocopy").copy_data
    anon = m.parse_bind("/only/dst")
    assert anon.Type == "volume" and anon.anonymous and anon.Name == ""


@pytest.mark.parametrize("raw,words", [
    ("/dst:ro", "invalid volume specification"),
    ("a:b:c:d", "invalid volume specification"),
    ("vol:rel", "must be absolute"),
    ("vol:/d:rw,ro", "invalid mode"),
    ("vol:/d:bogus", "invalid mode"),
    ("vol:/d:rshared", "bind mounts only"),
    ("x:/d", "invalid characters"),
    ("no/slash:/d", "invalid characters"),
    ("vol:/", "can't be '/'"),
])
def test_bad_binds(raw, words):
    with pytest.raises(InvalidArgument, match=words):
        m.parse_bind(raw)


def test_mount_objects():
    v = m.parse_mount({"Type": "volume", "Source": "v1", "Target": "/d", "VolumeOptions": {
        "NoCopy": True, "Labels": {"a": "b"},
        "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}})
    assert (v.Name, v.copy_data, v.labels, v.driver_opts, v.Mode) == (
        "v1", False, {"a": "b"}, {"type": "tmpfs"}, "z")
    t = m.parse_mount({"Type": "tmpfs", "Target": "/t", "ReadOnly": True,
                       "TmpfsOptions": {"SizeBytes": 3 << 20, "Mode": 0o1777}})
    assert t.data == "ro,mode=1777,size=3m" and not t.RW
    b = m.parse_mount({"Type": "bind", "Source": "/", "Target": "/host",
                       "BindOptions": {"Propagation": "rslave", "NonRecursive": True}})
    assert m.oci_mount(b) == {"destination": "/host", "type": "bind", "source": "/",
                              "options": ["bind", "rw", "rslave"]}


@pytest.mark.parametrize("mount,words", [
    ({"Type": "floppy", "Target": "/x"}, 'type "floppy": mount type unknown'),
    ({"Type": "volume"}, "Target must not be empty"),
    ({"Type": "bind", "Target": "/x"}, "Source must not be empty"),
    ({"Type": "bind", "Source": "/no/such/dir", "Target": "/x"}, "does not exist"),
    ({"Type": "bind", "Source": "/", "Target": "/x", "BindOptions": {"Propagation": "up"}},
     "invalid propagation mode: up"),
    ({"Type": "volume", "Target": "/x", "BindOptions": {}}, "BindOptions"),
    ({"Type": "volume", "Target": "/x", "ReadOnly": True}, "anonymous"),
    ({"Type": "tmpfs", "Source": "s", "Target": "/x"}, "Source must not be specified"),
    ({"Type": "tmpfs", "Target": "x"}, "must be absolute"),
])
def test_bad_mount_objects(mount, words):
    with pytest.raises(InvalidArgument, match=words):
        m.parse_mount(mount)


def test_other_drivers_are_not_found():
    with pytest.raises(NotFound, match="plugin"):
        m.parse_mount({"Type": "volume", "Target": "/x",
                       "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}})


def test_plan_orders_and_deduplicates():
    host = {"Binds": ["a1:/a", "/srv:/b"], "Mounts": [{"Type": "tmpfs", "Target": "/c"}],
            "Tmpfs": {"/t": "size=1m"}}
    # Config.Volumes under a bind or a tmpfs are not volumes of their own (docker-py sends
    # every bind's destination there)
    pts = m.plan(host, {"/a": {}, "/t": {}, "/img": {}})
    assert [(p.Type, p.Destination, p.anonymous) for p in pts] == [
        ("volume", "/a", False), ("bind", "/b", False), ("tmpfs", "/c", False),
        ("volume", "/img", True)]
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /a"):
        m.plan({"Binds": ["a1:/a"], "Mounts": [{"Type": "tmpfs", "Target": "/a/"}]}, None)
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /t"):
        m.plan({"Binds": ["a1:/t"], "Tmpfs": {"/t": ""}}, None)


def test_plan_inherits_volumes_from():
    inherited = [m.MountPoint("volume", "/a", Name="theirs"),
                 m.MountPoint("bind", "/b", Source="/srv", RW=False),
                 m.MountPoint("volume", "/t", Name="hidden")]
    pts = m.plan({"Binds": ["mine:/a"], "Tmpfs": {"/t": ""}}, None, inherited)
    assert [(p.Destination, p.Name or p.Source) for p in pts] == [("/a", "mine"),
                                                                  ("/b", "/srv")]


def test_apply_replaces_defaults_and_sorts_parents_first():
    spec = {"mounts": [{"destination": "/etc/hosts", "type": "bind", "source": "/x"},
                       {"destination": "/proc", "type": "proc", "source": "proc"}]}
    rec = {"HostConfig": {"Tmpfs": {"/a": "exec,size=1m"}}, "_MountPoints": [
        m.MountPoint("bind", "/a/b/c", Source="/s1").to_dict(),
        m.MountPoint("bind", "/etc/hosts", Source="/mine", RW=False).to_dict()]}
    m.apply(spec, rec)
    assert [x["destination"] for x in spec["mounts"]] == ["/proc", "/a", "/etc/hosts",
                                                         "/a/b/c"]
    hosts = spec["mounts"][2]
    assert hosts["source"] == "/mine" and "ro" in hosts["options"]
    assert spec["mounts"][1]["options"] == ["nosuid", "nodev", "rprivate", "exec", "size=1m"]
    # the daemon's own /etc files go over a volume on /etc
    spec = {"mounts": [{"destination": "/etc/hostname", "type": "bind", "source": "/h"}]}
    m.apply(spec, {"HostConfig": {}, "_MountPoints": [
        m.MountPoint("volume", "/etc", Source="/v").to_dict()]})
    assert [x["destination"] for x in spec["mounts"]] == ["/etc", "/etc/hostname"]


def test_old_records_keep_their_binds():
    rec = {"HostConfig": {"Binds": ["/srv:/srv:ro"]}}
    assert m.views(rec) == [{"Type": "bind", "Source": "/srv", "Destination": "/srv",
                             "Mode": "ro", "RW": False, "Propagation": "rprivate"}]


def test_merge_tmpfs_options():
    assert m.merge_tmpfs_options(["noexec", "nosuid", "size=1m", "exec", "size=2m",
                                  "rprivate", "shared"]) == ["nosuid", "exec", "size=2m",
                                                             "shared"]


_MODES = st.lists(st.sampled_from(["rw", "ro", "z", "Z", "rshared", "slave", "nocopy",
                                   "cached"]), max_size=4)


@given(_MODES)
def test_valid_mode_allows_one_of_each_kind(opts):
    kinds = [next(i for i, group in enumerate((("rw", "ro"), ("z", "Z"),
                                               ("rshared", "slave"), ("nocopy",),
                                               ("cached",))) if o in group) for o in opts]
    assert m.valid_mode(",".join(opts)) == (len(kinds) == len(set(kinds)))


@given(st.integers(min_value=1, max_value=1 << 40))
def test_tmpfs_size_keeps_the_byte_count(size):
    data = m.tmpfs_data({"SizeBytes": size}, False)
    n, unit = data.removeprefix("size=")[:-1], data[-1]
    value = int(n) * {"g": 1 << 30, "m": 1 << 20, "k": 1 << 10}[unit] if unit.isalpha() \
        else int(data.removeprefix("size="))
    assert value == size


# --- the CLI flags --------------------------------------------------------------------------


def test_cli_mount_flag():
    assert mountflags.parse_mount(
        "type=volume,src=v1,dst=/d,volume-nocopy,volume-label=a=b,volume-opt=type=tmpfs,"
        "volume-driver=local") == {
        "Type": "volume", "Source": "v1", "Target": "/d", "VolumeOptions": {
            "NoCopy": True, "Labels": {"a": "b"},
            "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}}
    assert mountflags.parse_mount("type=tmpfs,target=/t,tmpfs-size=2m,tmpfs-mode=1777,ro") \
        == {"Type": "tmpfs", "Target": "/t", "ReadOnly": True,
            "TmpfsOptions": {"SizeBytes": 2 << 20, "Mode": 0o1777}}
    assert mountflags.parse_mount("type=bind,source=/s,destination=/d,bind-propagation=rslave"
                                  )["BindOptions"] == {"Propagation": "rslave"}
    for bad in ("type=bind,src=/s", "dst=/d,colour=red", "dst=/d,readonly=maybe", "dst=/d,x"):
        with pytest.raises(cmdline.BadParameter):
            mountflags.parse_mount(bad)


def test_cli_volume_and_tmpfs_flags():
    assert mountflags.volumes(("/a", "v1:/b", "/h:/c:ro")) == (["v1:/b", "/h:/c:ro"],
                                                               {"/a": {}})
    assert mountflags.tmpfs(("/t", "/u:size=1m,mode=700")) == {"/t": "", "/u":
                                                               "size=1m,mode=700"}
