"""Networks through palletd with the real docker CLI and docker-py: the default bridge
(CNI with Debian's plugins), published ports reachable from the host, user-defined networks
with name resolution, connect/disconnect, none/host/container modes, /etc files, and that
every removal path releases what CNI ADD took."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest
from daemon_support import make_daemon

palletd = make_daemon()

HTTPD = "mkdir -p /www && echo hello-from-{name} > /www/index.html && exec httpd -f -p 80 -h /www"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def cni_cache(palletd) -> list[str]:
    d = os.path.join(palletd.root, "cni", "results")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def released(palletd) -> None:
    """Every CNI attachment released and every netns unpinned (DEL runs just after the
    exit, in the background)."""
    palletd.wait_for(lambda: cni_cache(palletd) == [] and os.listdir(
        os.path.join(palletd.exec_root, "netns")) == [], what="CNI DEL")


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name],
                          capture_output=True).returncode == 0


def test_predefined_networks_are_listed(palletd):
    out = palletd.docker("network", "ls", "--format", "{{.Name}} {{.Driver}}",
                         check=True).stdout.split("\n")
    assert {"bridge bridge", "host host", "none null"} <= set(out)
    bridge = json.loads(palletd.docker("network", "inspect", "bridge", check=True).stdout)[0]
    assert bridge["IPAM"]["Config"][0]["Subnet"] == palletd.subnet


def test_default_bridge_gives_an_address_and_a_way_to_the_gateway(palletd):
    subnet = ipaddress.ip_network(palletd.subnet)
    gateway = str(next(subnet.hosts()))
    p = palletd.docker("run", "--rm", "busybox", "sh", "-c",
                       f"ip -4 -o addr show eth0; ping -c1 -W2 {gateway} >/dev/null && "
                       "echo reach; cat /etc/hosts", check=True)
    addr = p.stdout.split("inet ")[1].split()[0]
    assert ipaddress.ip_interface(addr).ip in subnet
    assert "reach" in p.stdout
    assert f"{addr.split('/')[0]}\t" in p.stdout  # its own name in its hosts file
    released(palletd)  # --rm: DEL ran, the cached result is gone


def test_inspect_shows_the_address_while_running_only(palletd):
    palletd.docker("run", "-d", "--name", "insp", "busybox", "sleep", "60", check=True)
    try:
        st = palletd.inspect("insp")["NetworkSettings"]
        ip = st["Networks"]["bridge"]["IPAddress"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(palletd.subnet)
        assert st["IPAddress"] == ip and st["SandboxKey"]
        assert len(cni_cache(palletd)) == 1
        palletd.docker("stop", "-t", "0", "insp", check=True)
        st = palletd.inspect("insp")["NetworkSettings"]
        assert st["Networks"]["bridge"]["IPAddress"] == "" and st["SandboxKey"] == ""
        released(palletd)
        # a restart gets an address again
        palletd.docker("start", "insp", check=True)
        assert palletd.inspect("insp")["NetworkSettings"]["IPAddress"]
    finally:
        palletd.docker("rm", "-f", "insp")
    released(palletd)


def test_published_port_is_reachable_from_the_host(palletd):
    port = free_port()
    palletd.docker("run", "-d", "--name", "pub", "-p", f"127.0.0.1:{port}:80", "busybox",
                   "sh", "-c", HTTPD.format(name="pub"), check=True)
    try:
        assert fetch(f"http://127.0.0.1:{port}/") == "hello-from-pub\n"
        assert palletd.docker("port", "pub", check=True).stdout.strip() == \
            f"80/tcp -> 127.0.0.1:{port}"
        ps = palletd.docker("ps", "--format", "{{.Ports}}", "--filter", "name=pub",
                            check=True).stdout
        assert f"127.0.0.1:{port}->80/tcp" in ps
    finally:
        palletd.docker("rm", "-f", "pub", check=True)
    with pytest.raises(OSError):
        fetch(f"http://127.0.0.1:{port}/", timeout=0.5)


def test_publish_all_exposed_ports_gets_a_free_host_port(palletd):
    palletd.docker("run", "-d", "--name", "pall", "--expose", "80", "-P", "busybox", "sh",
                   "-c", HTTPD.format(name="pall"), check=True)
    try:
        out = palletd.docker("port", "pall", "80", check=True).stdout.split()[0]
        host_port = int(out.rsplit(":", 1)[1])
        assert host_port > 0
        assert fetch(f"http://127.0.0.1:{host_port}/") == "hello-from-pall\n"
    finally:
        palletd.docker("rm", "-f", "pall", check=True)


def test_user_network_name_resolution_and_removal(palletd):
    palletd.docker("network", "create", "--subnet", "10.215.77.0/24", "appnet", check=True)
    net = json.loads(palletd.docker("network", "inspect", "appnet", check=True).stdout)[0]
    bridge = "br-" + net["Id"][:12]
    try:
        palletd.docker("run", "-d", "--name", "web", "--network", "appnet",
                       "--network-alias", "www", "busybox", "sh", "-c",
                       HTTPD.format(name="web"), check=True)
        for host in ("web", "www"):
            p = palletd.docker("run", "--rm", "--network", "appnet", "busybox", "wget", "-qO-",
                               f"http://{host}/", check=True)
            assert p.stdout == "hello-from-web\n"
        # containers on the default bridge do not resolve names (as docker)
        p = palletd.docker("run", "--rm", "busybox", "wget", "-T", "2", "-qO-", "http://web/")
        assert p.returncode != 0
        assert link_exists(bridge)
        inspected = json.loads(palletd.docker("network", "inspect", "appnet").stdout)[0]
        assert [c["Name"] for c in inspected["Containers"].values()] == ["web"]
        # in use: refused
        p = palletd.docker("network", "rm", "appnet")
        assert p.returncode != 0 and "active endpoints" in p.stderr
        # a peer that starts later sees web, and web's hosts file learns the peer
        palletd.docker("run", "-d", "--name", "peer", "--network", "appnet", "busybox",
                       "sleep", "60", check=True)
        hosts = palletd.docker("exec", "web", "cat", "/etc/hosts", check=True).stdout
        assert "peer" in hosts
        palletd.docker("rm", "-f", "peer", check=True)
        hosts = palletd.docker("exec", "web", "cat", "/etc/hosts", check=True).stdout
        assert "peer" not in hosts
    finally:
        palletd.docker("rm", "-f", "web", "peer")
    palletd.docker("network", "rm", "appnet", check=True)
    assert not link_exists(bridge)  # what the network changed on the host is undone
    assert "appnet" not in palletd.docker("network", "ls").stdout


def test_connect_and_disconnect_a_running_container(palletd):
    palletd.docker("network", "create", "side", check=True)
    try:
        palletd.docker("run", "-d", "--name", "cd", "busybox", "sleep", "60", check=True)
        palletd.docker("network", "connect", "side", "cd", check=True)
        nets = palletd.inspect("cd")["NetworkSettings"]["Networks"]
        assert set(nets) == {"bridge", "side"} and nets["side"]["IPAddress"]
        out = palletd.docker("exec", "cd", "ip", "-4", "-o", "addr", check=True).stdout
        assert nets["side"]["IPAddress"] in out and "eth1" in out
        palletd.docker("network", "disconnect", "side", "cd", check=True)
        out = palletd.docker("exec", "cd", "ip", "-o", "link", check=True).stdout
        assert "eth1" not in out and "eth0" in out
        assert set(palletd.inspect("cd")["NetworkSettings"]["Networks"]) == {"bridge"}
    finally:
        palletd.docker("rm", "-f", "cd")
        palletd.docker("network", "rm", "side")
    released(palletd)


def test_none_host_and_container_modes(palletd):
    out = palletd.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link",
                         check=True).stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    out = palletd.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link",
                         check=True).stdout
    assert "lo:" in out and len(out.splitlines()) > 1
    palletd.docker("run", "-d", "--name", "owner", "busybox", "sleep", "60", check=True)
    try:
        ip = palletd.inspect("owner")["NetworkSettings"]["IPAddress"]
        out = palletd.docker("run", "--rm", "--network", "container:owner", "busybox", "ip",
                             "-4", "-o", "addr", check=True).stdout
        assert ip in out
    finally:
        palletd.docker("rm", "-f", "owner")


def test_dns_options_hosts_and_hostname(palletd):
    p = palletd.docker("run", "--rm", "--dns", "192.0.2.53", "--dns-search", "example.test",
                       "--add-host", "db.local:192.0.2.7", "--add-host", "me:host-gateway",
                       "--hostname", "box1", "busybox",
                       "sh", "-c", "cat /etc/resolv.conf /etc/hosts; hostname", check=True)
    assert "nameserver 192.0.2.53" in p.stdout and "search example.test" in p.stdout
    assert "192.0.2.7\tdb.local" in p.stdout
    gateway = str(next(ipaddress.ip_network(palletd.subnet).hosts()))
    assert f"{gateway}\tme" in p.stdout
    assert p.stdout.strip().endswith("box1")


def test_bad_network_requests_are_refused(palletd):
    p = palletd.docker("network", "create", "--subnet", "10.215.300.0/24", "bad")
    assert p.returncode != 0 and "subnet" in p.stderr.lower()
    p = palletd.docker("run", "--rm", "--network", "nosuch", "busybox", "true")
    assert p.returncode != 0 and "network nosuch not found" in p.stderr
    assert palletd.docker("ps", "-aq").stdout.strip() == ""
    p = palletd.docker("network", "rm", "bridge")
    assert p.returncode != 0 and "pre-defined" in p.stderr
    palletd.docker("network", "create", "dup", check=True)
    try:
        p = palletd.docker("network", "create", "dup")
        assert p.returncode != 0 and "already exists" in p.stderr
        p = palletd.docker("run", "--rm", "-p", "99999:80", "busybox", "true")
        assert p.returncode != 0
    finally:
        palletd.docker("network", "rm", "dup")


def test_stale_attachments_are_released_after_a_daemon_crash(palletd):
    palletd.docker("run", "-d", "--name", "crash", "busybox", "sleep", "60", check=True)
    try:
        pid = palletd.inspect("crash")["State"]["Pid"]
        assert len(cni_cache(palletd)) == 1
        palletd.kill()
        os.kill(pid, 9)  # the container dies while nobody watches
        time.sleep(0.3)
        palletd.start()
        palletd.wait_for(lambda: palletd.inspect("crash")["State"]["Status"] == "exited",
                         what="recovered exit")
        released(palletd)
    finally:
        palletd.docker("rm", "-f", "crash")


def test_docker_py_networks_and_ports(palletd):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=f"unix://{palletd.sock}", version="1.41")
    net = client.networks.create("pynet", driver="bridge", labels={"team": "a"})
    try:
        assert client.networks.get("pynet").attrs["Labels"] == {"team": "a"}
        assert "pynet" in [n.name for n in client.networks.list(filters={"label": "team=a"})]
        port = free_port()
        c = client.containers.run("busybox", ["sh", "-c", HTTPD.format(name="py")],
                                  detach=True, ports={"80/tcp": ("127.0.0.1", port)},
                                  network="pynet")
        try:
            assert fetch(f"http://127.0.0.1:{port}/") == "hello-from-py\n"
            c.reload()
            assert c.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
            net.reload()
            assert [x.id for x in net.containers] == [c.id]
        finally:
            c.remove(force=True)
    finally:
        net.remove()
    client.close()


def test_pallet_cli_networks_ports_and_dns(palletd):
    port = free_port()
    palletd.pallet("network", "create", "--subnet", "10.215.88.0/24", "--label", "k=v", "pnet",
                   check=True)
    try:
        ls = palletd.pallet("network", "ls", "--format", "{{.Name}}", check=True).stdout
        assert "pnet" in ls.split()
        palletd.pallet("run", "-d", "--name", "pweb", "--network", "pnet", "--network-alias",
                       "site", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
                       HTTPD.format(name="pweb"), check=True)
        assert fetch(f"http://127.0.0.1:{port}/") == "hello-from-pweb\n"
        assert palletd.pallet("port", "pweb", "80", check=True).stdout.strip() == \
            f"127.0.0.1:{port}"
        ps = palletd.pallet("ps", "--format", "{{.Ports}}", check=True).stdout
        assert f"127.0.0.1:{port}->80/tcp" in ps
        p = palletd.pallet("run", "--rm", "--network", "pnet", "--add-host", "x.test:192.0.2.9",
                           "--link", "pweb:legacy", "busybox", "sh", "-c",
                           "wget -qO- http://site/; grep x.test /etc/hosts; wget -qO- "
                           "http://legacy/", check=True)
        assert "hello-from-pweb" in p.stdout and "192.0.2.9" in p.stdout
        assert p.stdout.count("hello-from-pweb") == 2  # through the link's alias too
        subnet = json.loads(palletd.pallet("network", "inspect", "pnet", check=True).stdout)[0]
        assert subnet["IPAM"]["Config"][0]["Subnet"] == "10.215.88.0/24"
    finally:
        palletd.pallet("rm", "-f", "pweb")
    palletd.pallet("network", "rm", "pnet", check=True)
    assert "pnet" not in palletd.pallet("network", "ls").stdout


def test_internal_network_has_no_way_out(palletd):
    palletd.docker("network", "create", "--internal", "--subnet", "10.215.99.0/24", "inner",
                   check=True)
    try:
        out = palletd.docker("run", "--rm", "--network", "inner", "busybox", "ip", "route",
                             check=True).stdout
        assert "default" not in out and "10.215.99.0/24" in out
        bridge = json.loads(palletd.docker("network", "inspect", "inner").stdout)[0]
        assert bridge["Internal"] is True
    finally:
        palletd.docker("network", "rm", "inner", check=True)


def test_static_address_on_a_user_network(palletd):
    palletd.docker("network", "create", "--subnet", "10.215.66.0/24", "fixed", check=True)
    try:
        out = palletd.docker("run", "--rm", "--network", "fixed", "--ip", "10.215.66.77",
                             "busybox", "ip", "-4", "-o", "addr", "show", "eth0",
                             check=True).stdout
        assert "10.215.66.77/24" in out
        out = palletd.pallet("run", "--rm", "--network", "fixed", "--ip", "10.215.66.79",
                             "busybox", "ip", "-4", "-o", "addr", "show", "eth0",
                             check=True).stdout
        assert "10.215.66.79/24" in out
        p = palletd.docker("run", "--rm", "--ip", "10.215.66.78", "busybox", "true")
        assert p.returncode != 0 and "user configured subnets" in p.stderr
        p = palletd.docker("run", "--rm", "--network", "fixed", "--ip", "10.9.9.9", "busybox",
                           "true")
        assert p.returncode != 0 and "no configured subnet" in p.stderr
        assert palletd.docker("ps", "-aq").stdout.strip() == ""
    finally:
        palletd.docker("network", "rm", "fixed", check=True)


def test_a_failed_add_while_the_runtime_creates_leaves_nothing(palletd):
    """The ADDs run while the runtime creates the container (palletd awaits them before
    `start`): an ADD that fails, here host-local refusing an address in use, fails the start
    with the network and the reason named, and the created container, its shim, netns and
    CNI results are gone; the other container is untouched."""
    palletd.docker("network", "create", "--subnet", "10.215.67.0/24", "taken", check=True)
    try:
        palletd.docker("run", "-d", "--name", "first", "--network", "taken", "--ip",
                       "10.215.67.10", "busybox", "sleep", "60", check=True)
        shims, cache = palletd.shim_pids(), cni_cache(palletd)
        p = palletd.docker("run", "--name", "second", "--network", "taken", "--ip",
                           "10.215.67.10", "busybox", "true")
        assert p.returncode != 0 and "CNI ADD taken" in p.stderr, p.stderr
        assert "10.215.67.10 is not available" in p.stderr, p.stderr
        second = palletd.inspect("second")
        assert not second["State"]["Running"] and "CNI ADD" in second["State"]["Error"]
        assert not os.path.exists(os.path.join(palletd.exec_root, "netns", second["Id"]))
        assert palletd.wait_for(lambda: palletd.shim_pids() == shims, what="the shim to go")
        assert cni_cache(palletd) == cache
        out = palletd.docker("exec", "first", "ip", "-4", "-o", "addr", "show", "eth0",
                             check=True).stdout
        assert "10.215.67.10/24" in out
        palletd.docker("rm", "-f", "first", "second", check=True)
        released(palletd)
    finally:
        palletd.docker("rm", "-f", "first", "second")
        palletd.docker("network", "rm", "taken", check=True)


def test_legacy_links(palletd):
    """`--link name:alias`: the linked container's address in /etc/hosts under the alias,
    its id and name, docker's link variables; refused as docker refuses."""
    palletd.docker("run", "-d", "--name", "linkdb", "-e", "SECRET=s3", "--expose", "6379",
                   "--expose", "53/udp", "busybox", "sleep", "60", check=True)
    try:
        db = palletd.inspect("linkdb")
        ip = db["NetworkSettings"]["IPAddress"]
        out = palletd.docker("run", "--rm", "--name", "linkweb", "--link", "linkdb:cache",
                             "busybox", "sh", "-c",
                             "grep -w cache /etc/hosts; env | sort; ping -c1 -W2 cache",
                             check=True).stdout
        assert f"{ip}\tcache {db['Id'][:12]} linkdb" in out, out
        for want in (f"CACHE_PORT=tcp://{ip}:6379",  # the lowest TCP port, as docker
                     f"CACHE_PORT_6379_TCP=tcp://{ip}:6379",
                     f"CACHE_PORT_6379_TCP_ADDR={ip}", "CACHE_PORT_6379_TCP_PORT=6379",
                     "CACHE_PORT_6379_TCP_PROTO=tcp", f"CACHE_PORT_53_UDP=udp://{ip}:53",
                     "CACHE_ENV_SECRET=s3", "CACHE_NAME=/linkweb/cache"):
            assert want in out.splitlines(), (want, out)
        assert "CACHE_ENV_PATH" not in out and "1 packets received" in out
        # the container's own variables win over the links'
        out = palletd.docker("run", "--rm", "-e", "CACHE_NAME=mine", "--link", "linkdb:cache",
                             "busybox", "sh", "-c", "echo $CACHE_NAME", check=True).stdout
        assert out.strip() == "mine"
        # a linking container's hosts file follows the linked one across its restart
        palletd.docker("run", "-d", "--name", "linkw1", "--link", "linkdb:cache", "busybox",
                       "sleep", "60", check=True)
        palletd.docker("restart", "-t", "0", "linkdb", check=True)
        ip2 = palletd.inspect("linkdb")["NetworkSettings"]["IPAddress"]
        assert ip2 != ip  # host-local hands out the next address, not the one just freed
        palletd.wait_for(lambda: f"{ip2}\tcache" in palletd.docker(
            "exec", "linkw1", "cat", "/etc/hosts", check=True).stdout, what="the new address")
        # `docker rm --link`: the link goes, both containers stay
        p = palletd.docker("rm", "--link", "/linkw1/nosuch")
        assert p.returncode != 0 and "No such container: linkw1/nosuch" in p.stderr, p.stderr
        palletd.docker("rm", "--link", "/linkw1/cache", check=True)
        assert palletd.inspect("linkw1")["HostConfig"]["Links"] is None
        assert palletd.inspect("linkdb")["State"]["Running"]
        hosts = palletd.docker("exec", "linkw1", "cat", "/etc/hosts", check=True).stdout
        assert "\tcache" not in hosts, hosts
        palletd.pallet("create", "--name", "linkw3", "--link", "linkdb:a", "--link",
                       "linkdb:b", "busybox", "true", check=True)
        palletd.pallet("rm", "-l", "linkw3/a", check=True)  # the pallet CLI's own
        assert palletd.inspect("linkw3")["HostConfig"]["Links"] == ["/linkdb:/linkw3/b"]
        # inspect shows docker's form; a stopped target refuses the start
        palletd.docker("create", "--name", "linkw2", "--link", "linkdb", "busybox", "true",
                       check=True)
        assert palletd.inspect("linkw2")["HostConfig"]["Links"] == ["/linkdb:/linkw2/linkdb"]
        palletd.docker("stop", "-t", "0", "linkdb", check=True)
        p = palletd.docker("start", "linkw2")
        assert p.returncode != 0, p.stdout
        assert "Cannot link to a non running container: /linkdb AS /linkw2/linkdb" in p.stderr
        p = palletd.docker("run", "--rm", "--link", "nosuch:x", "busybox", "true")
        assert p.returncode != 0 and "could not get container for nosuch" in p.stderr, p.stderr
        p = palletd.docker("run", "--rm", "--network", "host", "--link", "linkdb",
                           "busybox", "true")
        assert p.returncode != 0 and "conflicting options" in p.stderr, p.stderr
    finally:
        palletd.docker("rm", "-f", "linkdb", "linkw1", "linkw2", "linkw3")


def test_network_survives_a_daemon_restart(palletd):
    """A running container keeps its address and published port across a palletd restart;
    stopping it afterwards releases what ADD took before the restart."""
    port = free_port()
    palletd.docker("run", "-d", "--name", "keep", "-p", f"127.0.0.1:{port}:80", "busybox",
                   "sh", "-c", HTTPD.format(name="keep"), check=True)
    try:
        ip = palletd.inspect("keep")["NetworkSettings"]["IPAddress"]
        assert fetch(f"http://127.0.0.1:{port}/") == "hello-from-keep\n"
        palletd.kill()
        palletd.start()
        st = palletd.inspect("keep")
        assert st["State"]["Running"] and st["NetworkSettings"]["IPAddress"] == ip
        assert fetch(f"http://127.0.0.1:{port}/") == "hello-from-keep\n"
        assert len(cni_cache(palletd)) == 1
        palletd.docker("stop", "-t", "0", "keep", check=True)
        released(palletd)
    finally:
        palletd.docker("rm", "-f", "keep")
