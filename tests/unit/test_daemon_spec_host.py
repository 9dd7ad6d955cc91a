"""pallet.daemon.spec: HostConfig fields -> runtime-spec, and dockerd's refusals."""

from __future__ import annotations

import pytest

from pallet.daemon import spec
from pallet.errors import InvalidArgument


@pytest.mark.parametrize(("text", "rule"), [
    ("c 1:3 mr", {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "mr"}),
    ("a *:* rwm", {"allow": True, "type": "a", "access": "rwm"}),
    ("b 8:* r", {"allow": True, "type": "b", "major": 8, "access": "r"}),
])
def test_device_cgroup_rule(text, rule):
    assert spec.device_cgroup_rule(text) == rule


@pytest.mark.parametrize("bad", ["c 1:3", "x 1:3 r", "c 1:3 rwx", "c -1:3 r", ""])
def test_device_cgroup_rule_refused(bad):
    with pytest.raises(InvalidArgument, match="invalid device cgroup format"):
        spec.device_cgroup_rule(bad)


def test_resources_of_a_new_container():
    res = spec.resources({"Memory": 64 << 20, "MemoryReservation": 32 << 20,
                          "MemorySwappiness": 10, "OomKillDisable": True, "CpuQuota": 50000,
                          "CpusetMems": "0", "PidsLimit": 0,
                          "DeviceCgroupRules": ["c 10:237 r"]})
    assert res["memory"] == {"limit": 64 << 20, "reservation": 32 << 20, "swappiness": 10,
                             "disableOOMKiller": True}
    assert res["cpu"] == {"quota": 50000, "period": spec.CPU_PERIOD, "mems": "0"}
    assert "pids" not in res  # 0: unlimited, nothing to write
    assert res["devices"][-1] == {"allow": True, "type": "c", "major": 10, "minor": 237,
                                  "access": "r"}
    assert spec.resources({"MemorySwappiness": -1}).get("memory") is None
    assert spec.resources({"MemorySwap": -1}).get("memory") is None  # nothing to limit
    assert spec.resources({"Memory": 64 << 20, "MemorySwap": -1})["memory"] == {
        "limit": 64 << 20, "swap": -1}
    assert spec.resources({"Privileged": True})["devices"] == [{"allow": True,
                                                                "access": "rwm"}]


def test_host_devices():
    devs, rules = spec.host_devices({"Devices": [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "rw"}]})
    assert devs[0]["path"] == "/dev/x" and (devs[0]["type"], devs[0]["major"],
                                            devs[0]["minor"]) == ("c", 1, 3)
    assert rules == [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
    with pytest.raises(InvalidArgument, match='device "/etc/hostname": not a device node'):
        spec.host_devices({"Devices": [{"PathOnHost": "/etc/hostname"}]})


@pytest.mark.parametrize(("host", "message"), [
    ({"OomScoreAdj": -1001}, r"range for oom score adj is \[-1000, 1000\]"),
    ({"MemorySwappiness": 101}, "valid memory swappiness range is 0-100"),
    ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
    ({"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"}]},
     "invalid device specification"),
    ({"CgroupnsMode": "shared"}, "invalid cgroup namespace mode: shared"),
    ({"IpcMode": "container:"}, "invalid IPC mode"),
    ({"IpcMode": "weird"}, "invalid IPC mode: weird"),
    ({"PidMode": "container:"}, "invalid PID mode"),
    ({"CgroupParent": "a/../../b"}, "may not contain '..'"),
    ({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
    ({"MemorySwap": 1 << 30}, "always set the Memory limit when using Memoryswap"),
    ({"Memory": 1 << 30, "MemorySwap": 1 << 29}, "Minimum memoryswap limit should be larger"),
    ({"Memory": 1 << 30, "MemoryReservation": 1 << 31}, "can not be less than memory "
     "reservation"),
    ({"OomScoreAdj": "high"}, "HostConfig.OomScoreAdj must be an integer"),
])
def test_check_host_refuses_as_dockerd(host, message, monkeypatch):
    # a host with block I/O weights (where they are not, dockerd drops them first)
    monkeypatch.setattr(spec, "blkio_weight_supported", lambda: True)
    with pytest.raises(InvalidArgument, match=message):
        spec.check_host(host)


def test_check_host_accepts_the_defaults_the_docker_cli_sends():
    spec.check_host({"OomScoreAdj": 0, "MemorySwappiness": None, "BlkioWeight": 0,
                     "CgroupnsMode": "", "IpcMode": "", "PidMode": "", "CgroupParent": "",
                     "Devices": [], "DeviceCgroupRules": None, "Sysctls": None})


def test_check_host_refusals_and_warnings():
    with pytest.raises(InvalidArgument, match=r'device driver "nvidia" with capabilities: '
                                              r"\[\[gpu utility\]\]"):
        spec.check_host({"DeviceRequests": [{"Driver": "nvidia",
                                             "Capabilities": [["gpu", "utility"]]}]})
    with pytest.raises(InvalidArgument, match="--storage-opt is supported only"):
        spec.check_host({"StorageOpt": {"size": "1G"}})
    host = {"KernelMemory": 1 << 20}
    assert "kernel memory limit is deprecated" in spec.check_host(host)[0]
    assert host["KernelMemory"] == 0


def test_block_io_throttles_name_the_device():
    res = spec.resources({"BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1024}]})
    assert res["blockIO"] == {"throttleReadBpsDevice": [{"major": 1, "minor": 3,
                                                         "rate": 1024}]}
    with pytest.raises(InvalidArgument, match="BlkioDeviceWriteIOps: '/dev/nosuch'"):
        spec.resources({"BlkioDeviceWriteIOps": [{"Path": "/dev/nosuch", "Rate": 1}]})
