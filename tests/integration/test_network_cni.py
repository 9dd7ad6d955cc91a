"""pallet.network with Debian's CNI plugins: a network namespace joined to a bridge network,
reachable from the host, with a published port, and cleaned up by DEL (also from the cached
result alone, as after a daemon crash). Everything stays on this machine's own bridge."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from pallet.network import config, dns, netns, ports
from pallet.network.cni import CNI, Attachment, CNIError, load_conflist

pytestmark = pytest.mark.root

PLUGINS = "/usr/lib/cni"


@pytest.fixture
def env(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not os.path.exists(f"{PLUGINS}/bridge"):
        pytest.skip("containernetworking-plugins is not installed")
    tag = uuid.uuid4().hex[:6]
    subnet = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
    conf = config.bridge_conflist(f"net-{tag}", f"plt{tag}", subnet,
                                  ipam_dir=str(tmp_path / "ipam"))
    cni = CNI([PLUGINS], cache_dir=str(tmp_path / "results"))
    created: list[str] = []

    def new_ns() -> str:
        path = str(tmp_path / "netns" / uuid.uuid4().hex[:8])
        created.append(netns.create(path))
        return path

    yield cni, conf, new_ns
    # DEL before the netns goes: the bridge plugin finds what to undo (masquerade rules)
    # through the container's interface.
    for a in cni.attachments():
        cni.delete(None, Attachment(a["containerId"], a["netns"], a["ifName"]),
                   network=a["networkName"])
    for path in created:
        netns.remove(path)
    subprocess.run(["ip", "link", "del", f"plt{tag}"], capture_output=True)


def in_ns(path: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net={path}", *argv], capture_output=True, text=True,
                          timeout=20, **kw)


def test_add_gives_an_address_and_a_route(env):
    cni, conf, new_ns = env
    ns = new_ns()
    result = cni.add(conf, Attachment("c1", ns))
    ip = result["ips"][0]["address"].split("/")[0]
    subnet, gateway = config.subnet_of(conf)
    assert ip.startswith(subnet.rsplit(".", 1)[0])
    out = in_ns(ns, "ip", "-j", "addr", "show", "eth0").stdout
    assert ip in out
    assert "default via " + gateway in in_ns(ns, "ip", "route").stdout
    assert in_ns(ns, "busybox", "ping", "-c1", "-W2", gateway).returncode == 0
    host_ping = subprocess.run(["busybox", "ping", "-c1", "-W2", ip], capture_output=True)
    assert host_ping.returncode == 0


def test_two_containers_reach_each_other(env):
    cni, conf, new_ns = env
    a, b = new_ns(), new_ns()
    ra = cni.add(conf, Attachment("a", a))
    cni.add(conf, Attachment("b", b))
    ip_a = ra["ips"][0]["address"].split("/")[0]
    assert in_ns(b, "busybox", "ping", "-c1", "-W2", ip_a).returncode == 0


def test_published_port_reaches_the_container(env):
    cni, conf, new_ns = env
    ns = new_ns()
    port = random.randint(20000, 30000)
    mappings = ports.parse(f"127.0.0.1:{port}:8080/tcp")
    cni.add(conf, Attachment("web", ns, capability_args={"portMappings": mappings}))
    server = subprocess.Popen(["nsenter", f"--net={ns}", "busybox", "nc", "-l", "-p", "8080",
                               "-e", "echo", "hello-from-container"])
    try:
        deadline = time.monotonic() + 10
        data = b""
        while time.monotonic() < deadline and b"hello" not in data:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    data = s.recv(100)
            except OSError:
                time.sleep(0.1)
        assert b"hello-from-container" in data
    finally:
        server.kill()
        server.wait()


def test_del_from_cache_removes_everything(env):
    cni, conf, new_ns = env
    ns = new_ns()
    result = cni.add(conf, Attachment("gone", ns))
    ip = result["ips"][0]["address"].split("/")[0]
    ipam_dir = conf["plugins"][0]["ipam"]["dataDir"]
    assert ip in os.listdir(os.path.join(ipam_dir, conf["name"]))
    assert [a["containerId"] for a in cni.attachments()] == ["gone"]
    # As after a daemon crash: only the cache knows the attachment.
    cni.delete(None, Attachment("gone", ns), network=conf["name"])
    assert ip not in os.listdir(os.path.join(ipam_dir, conf["name"]))
    assert cni.attachments() == []
    assert "eth0" not in in_ns(ns, "ip", "link").stdout


def test_del_runs_the_list_add_ran(env, tmp_path):
    """An attachment without published ports runs the list without portmap; DEL undoes
    that list (the cached one), not the network's whole one, which here could not run."""
    cni, conf, new_ns = env
    ns = new_ns()
    ran = config.for_attachment(conf, {})
    assert [p["type"] for p in ran["plugins"]] == ["bridge", "firewall"]
    assert config.for_attachment(conf, {"portMappings": [{"hostPort": 1}]}) is conf
    older = {**conf, "plugins": [*conf["plugins"], {"type": "tuning"}]}  # older palletd's
    assert config.for_attachment(older, {"portMappings": [{"hostPort": 1}]}) == conf
    cni.add(ran, Attachment("noports", ns))
    broken = json.loads(json.dumps(conf))
    broken["plugins"].insert(1, {"type": "no-such-plugin"})
    cni.delete(broken, Attachment("noports", ns))
    assert cni.attachments() == []
    assert "eth0" not in in_ns(ns, "ip", "link").stdout


def test_failed_add_is_rolled_back(env, tmp_path):
    cni, conf, new_ns = env
    ns = new_ns()
    broken = json.loads(json.dumps(conf))
    broken["plugins"].append({"type": "no-such-plugin"})
    with pytest.raises(Exception, match="no-such-plugin"):
        cni.add(broken, Attachment("half", ns))
    assert "eth0" not in in_ns(ns, "ip", "link").stdout
    assert cni.attachments() == []


def test_plugin_errors_are_reported():
    if not os.path.exists(f"{PLUGINS}/bridge"):
        pytest.skip("containernetworking-plugins is not installed")
    cni = CNI([PLUGINS], cache_dir="/nonexistent-cache")
    conf = load_conflist(json.dumps({"cniVersion": "1.0.0", "name": "bad",
                                     "plugins": [{"type": "bridge", "ipam": {}}]}))
    with pytest.raises(CNIError, match="bad/bridge"):
        cni.add(conf, Attachment("x", "/proc/self/ns/net-does-not-exist"))


def test_conflist_and_port_parsing_errors():
    with pytest.raises(Exception, match="cniVersion"):
        load_conflist('{"name": "x", "plugins": [{"type": "bridge"}]}')
    with pytest.raises(Exception, match="plugins"):
        load_conflist('{"cniVersion": "1.0.0", "name": "x", "plugins": []}')
    assert ports.parse("8080:80") == [{"hostPort": 8080, "containerPort": 80,
                                       "protocol": "tcp", "hostIP": ""}]
    assert len(ports.parse("8000-8002:80-82/udp")) == 3
    with pytest.raises(Exception, match="differ"):
        ports.parse("8000-8001:80")
    with pytest.raises(Exception, match="protocol"):
        ports.parse("80/icmp")


def test_dns_files():
    hosts = dns.hosts_file("web", ["10.88.0.5"], extra=[("db", "10.0.0.9")],
                           peers=[("10.88.0.6", ["api", "api.alias"])])
    assert "10.88.0.5\tweb" in hosts and "10.0.0.9\tdb" in hosts and "api.alias" in hosts
    resolv = dns.resolv_conf("nameserver 127.0.0.53\nnameserver 1.1.1.1\nsearch lan\n")
    assert resolv == "nameserver 1.1.1.1\nsearch lan\n"
    assert dns.resolv_conf("nameserver 127.0.0.1\n").startswith("nameserver 8.8.8.8")
    assert "nameserver 9.9.9.9" in dns.resolv_conf("", dns=["9.9.9.9"], search=[])


def test_netns_lifecycle(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    path = str(tmp_path / "ns1")
    netns.create(path)
    assert netns.exists(path)
    assert os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino
    netns.remove(path)
    assert not os.path.exists(path)
    assert shutil.which("nsenter")
