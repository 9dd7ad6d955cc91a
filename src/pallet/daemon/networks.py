"""Networks of palletd: Docker's network objects over CNI configuration lists.

Every bridge network is a conflist (bridge + host-local + portmap + firewall, see
`pallet.network.config`) run with the standard plugins, as containerd and CRI-O do. The
predefined networks are docker's three: `bridge` (the default), `host` and `none`.

A started container on bridge networks gets a network namespace pinned under the exec root,
and one CNI ADD per network (eth0, eth1, ...). The result of each ADD is cached by
`pallet.network.cni` so DEL gets exactly what ADD returned, also after a daemon crash.

Names of containers on user-defined networks resolve through /etc/hosts: each container's
hosts file lists its peers (name, aliases, short id) and is rewritten in place when a peer
comes or goes. Why not a DNS responder per network (docker's 127.0.0.11): a hosts file
needs no process that must keep running across a daemon restart, and every libc resolver
(busybox's too) reads it; `nslookup`, which asks a DNS server directly, does not see peers.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import subprocess
from typing import Any

from pallet.daemon.filters import label_matches
from pallet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pallet.network import config as netconfig
from pallet.network import dns, netns
from pallet.network import ports as _ports
from pallet.network.cni import CNI, Attachment
from pallet.runtime.state import now_rfc3339

log = logging.getLogger("palletd")
PREDEFINED = ("bridge", "host", "none")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# Subnets for user-defined networks without one: /24s here, skipping any that overlaps a
# route of the host or another network (docker's pools are 172.17-31/16, which
# a host often uses already).
POOL = ipaddress.ip_network("10.212.0.0/16")


def host_routes() -> list[ipaddress.IPv4Network]:
    out = []
    with contextlib.suppress(OSError), open("/proc/net/route") as f:
        for line in list(f)[1:]:
            fields = line.split()
            if len(fields) < 8 or fields[1] == "00000000":
                continue
            dest = socket.inet_ntoa(int(fields[1], 16).to_bytes(4, "little"))
            mask = socket.inet_ntoa(int(fields[7], 16).to_bytes(4, "little"))
            with contextlib.suppress(ValueError):
                out.append(ipaddress.ip_network(f"{dest}/{mask}", strict=False))
    return out


def free_port(proto: str, host_ip: str) -> int:
    """An ephemeral host port nobody is bound to (docker's allocator picks from the same
    range)."""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host_ip or "0.0.0.0", 0))
        return int(s.getsockname()[1])


class Network:
    def __init__(self, rec: dict[str, Any]) -> None:
        self.rec = rec

    @property
    def id(self) -> str:
        return self.rec["Id"]

    @property
    def name(self) -> str:
        return self.rec["Name"]

    @property
    def driver(self) -> str:
        return self.rec["Driver"]

    @property
    def conflist(self) -> dict[str, Any] | None:
        return self.rec.get("_Conflist")

    @property
    def user_defined(self) -> bool:
        return self.name not in PREDEFINED

    @property
    def bridge(self) -> str:
        c = self.conflist
        return c["plugins"][0]["bridge"] if c else ""


class Networks:
    def __init__(self, root: str, exec_root: str, *, bridge: str = netconfig.DEFAULT_BRIDGE,
                 subnet: str = netconfig.DEFAULT_SUBNET,
                 plugin_dirs: list[str] | None = None) -> None:
        self.dir = os.path.join(root, "networks")
        self.ipam_dir = os.path.join(root, "cni", "ipam")
        self.netns_dir = os.path.join(exec_root, "netns")
        self.cni = CNI(plugin_dirs, os.path.join(root, "cni", "results"))
        os.makedirs(self.dir, exist_ok=True)
        self.by_id: dict[str, Network] = {}
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".json"):
                with open(os.path.join(self.dir, name)) as f:
                    n = Network(json.load(f))
                self.by_id[n.id] = n
        have = {n.name for n in self.by_id.values()}
        if "bridge" not in have:
            # docker's --bip is the gateway's address with the prefix; a bare subnet works too
            try:
                iface = ipaddress.ip_interface(subnet)
            except ValueError as e:
                raise InvalidArgument(f"--bip {subnet!r}: {e}") from None
            gw = None if iface.ip == iface.network.network_address else str(iface.ip)
            self._save(self._record("bridge", "bridge", netconfig.bridge_conflist(
                "bridge", bridge, str(iface.network), gw, ipam_dir=self.ipam_dir),
                options={"com.docker.network.bridge.default_bridge": "true",
                         "com.docker.network.bridge.name": bridge}))
        for name, driver in (("host", "host"), ("none", "null")):
            if name not in have:
                self._save(self._record(name, driver, None))

    # --- records --------------------------------------------------------------------

    def _record(self, name: str, driver: str, conf: dict[str, Any] | None, *,
                internal: bool = False, labels: dict[str, str] | None = None,
                options: dict[str, str] | None = None, attachable: bool = False,
                nid: str | None = None) -> Network:
        ipam_cfg = []
        if conf is not None:
            sub, gw = netconfig.subnet_of(conf)
            ipam_cfg = [{"Subnet": sub, "Gateway": gw}]
        return Network({
            "Name": name, "Id": nid or secrets.token_hex(32), "Created": now_rfc3339(),
            "Scope": "local", "Driver": driver, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": ipam_cfg},
            "Internal": internal, "Attachable": attachable, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Options": options or {}, "Labels": labels or {}, "_Conflist": conf,
        })

    def _save(self, n: Network) -> None:
        path = os.path.join(self.dir, n.id + ".json")
        with open(path + ".tmp", "w") as f:
            json.dump(n.rec, f)
        os.replace(path + ".tmp", path)
        self.by_id[n.id] = n

    def get(self, ref: str) -> Network:
        if ref in self.by_id:
            return self.by_id[ref]
        for n in self.by_id.values():
            if n.name == ref:
                return n
        hits = [n for n in self.by_id.values() if ref and n.id.startswith(ref)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(hits)} matches found "
                                  "based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def _taken_subnets(self) -> list[ipaddress.IPv4Network]:
        out = []
        for n in self.by_id.values():
            for c in n.rec["IPAM"]["Config"]:
                out.append(ipaddress.ip_network(c["Subnet"]))
        return out

    def _free_subnet(self) -> str:
        taken = self._taken_subnets() + host_routes()
        for sub in POOL.subnets(new_prefix=24):
            if not any(sub.overlaps(t) for t in taken):
                return str(sub)
        raise FailedPrecondition("could not find an available, non-overlapping IPv4 address "
                                 "pool among the defaults to assign to the network")

    def create(self, body: dict[str, Any]) -> Network:
        name = body.get("Name") or ""
        if not NAME_RE.match(name):
            raise InvalidArgument(f"invalid network name {name!r}: only "
                                  "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if any(n.name == name for n in self.by_id.values()):
            raise AlreadyExists(f"network with name {name} already exists")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            raise InvalidArgument(f"network driver {driver!r} is not supported: only "
                                  "bridge networks can be created")
        if body.get("EnableIPv6"):
            raise InvalidArgument("IPv6 networks are not supported")
        ipam = body.get("IPAM") or {}
        if (ipam.get("Driver") or "default") != "default":
            raise InvalidArgument(f"IPAM driver {ipam['Driver']!r} is not supported")
        configs = ipam.get("Config") or []
        if len(configs) > 1:
            raise InvalidArgument("one IPAM config (subnet) per network is supported")
        subnet = configs[0].get("Subnet") if configs else None
        gateway = configs[0].get("Gateway") if configs else None
        if subnet:
            try:
                net = ipaddress.ip_network(subnet, strict=True)
            except ValueError as e:
                raise InvalidArgument(f"invalid subnet {subnet!r}: {e}") from None
            for t in self._taken_subnets():
                if net.overlaps(t):
                    raise FailedPrecondition(f"Pool overlaps with other one on this address "
                                             f"space ({subnet} and {t})")
        else:
            subnet = self._free_subnet()
        nid = secrets.token_hex(32)
        options = dict(body.get("Options") or {})
        bridge = options.get("com.docker.network.bridge.name") or f"br-{nid[:12]}"
        conf = netconfig.bridge_conflist(name, bridge, subnet, gateway or None,
                                         internal=bool(body.get("Internal")),
                                         ipam_dir=self.ipam_dir,
                                         labels=body.get("Labels") or {})
        n = self._record(name, "bridge", conf, internal=bool(body.get("Internal")),
                         labels=body.get("Labels") or {}, options=options,
                         attachable=bool(body.get("Attachable")), nid=nid)
        n.rec["_UserSubnet"] = bool(configs and configs[0].get("Subnet"))
        self._save(n)
        return n

    def remove(self, n: Network) -> None:
        if not n.user_defined:
            raise FailedPrecondition(f"{n.name} is a pre-defined network and cannot be "
                                     "removed")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.dir, n.id + ".json"))
        del self.by_id[n.id]
        # What the network changed on the host goes with it: the bridge (the bridge
        # plugin creates it on the first ADD and never removes it) and its leases.
        if n.bridge:
            subprocess.run(["ip", "link", "del", "dev", n.bridge], capture_output=True)
        import shutil

        shutil.rmtree(os.path.join(self.ipam_dir, n.name), ignore_errors=True)

    def inspect(self, n: Network, containers: dict[str, dict[str, Any]]) -> dict[str, Any]:
        out = {k: v for k, v in n.rec.items() if not k.startswith("_")}
        out["Containers"] = containers
        return out

    def list(self, filters: dict[str, list[str]]) -> list[Network]:
        def ok(n: Network, key: str, v: str) -> bool:
            if key == "name":
                return v in n.name
            if key == "id":
                return n.id.startswith(v)
            if key == "driver":
                return n.driver == v
            if key == "type":
                return (v == "custom") == n.user_defined
            if key == "scope":
                return v == "local"
            if key == "label":
                return label_matches(n.rec["Labels"], v)
            if key == "dangling":
                return True  # decided by the caller, who knows the containers
            raise InvalidArgument(f"invalid filter '{key}'")

        def match(n: Network, key: str, values: list[str]) -> bool:
            combine = all if key == "label" else any  # as docker: labels ANDed
            return not values or combine(ok(n, key, v) for v in values)

        return [n for n in self.by_id.values()
                if all(match(n, k, vs) for k, vs in filters.items())]

    # --- a container's side ---------------------------------------------------------

    def netns_path(self, cid: str) -> str:
        return os.path.join(self.netns_dir, cid)

    def port_mappings(self, host: dict[str, Any], exposed: dict[str, Any], *,
                      allocate: bool = True) -> list[dict[str, Any]]:
        """HostConfig.PortBindings (and -P's exposed ports) as portmap's portMappings; a
        host port of "" or "0" gets a free ephemeral one now (stays 0 without
        `allocate`: the check at create)."""
        bindings: dict[str, list[dict[str, Any]]] = {
            k: list(v or [{}]) for k, v in (host.get("PortBindings") or {}).items()}
        if host.get("PublishAllPorts"):
            for k in exposed or {}:
                bindings.setdefault(k, [{}])
        out = []
        for key, binds in bindings.items():
            port, _, proto = key.partition("/")
            proto = proto or "tcp"
            for b in binds:
                host_ip = (b or {}).get("HostIp") or ""
                host_port = str((b or {}).get("HostPort") or "")
                spec = f"{host_port}:{port}/{proto}" if host_port not in ("", "0") \
                    else f"{port}/{proto}"
                for m in _ports.parse(spec):
                    m["hostIP"] = host_ip
                    if not m["hostPort"] and allocate:
                        m["hostPort"] = free_port(proto, host_ip)
                    out.append(m)
        return out

    def attach(self, cid: str, netns_path: str, n: Network, ifname: str,
               mappings: list[dict[str, Any]] | None = None, ip: str = ""
               ) -> dict[str, Any]:
        """CNI ADD of `cid`'s `ifname` on `n`; the endpoint settings docker reports. `ip`
        (docker's --ip) goes to host-local as the IP argument."""
        conf = n.conflist
        if conf is None:
            raise InvalidArgument(f"network {n.name} has no configuration to attach to")
        caps: dict[str, Any] = {}
        if mappings:
            caps["portMappings"] = mappings
        args = {"IgnoreUnknown": "1", **({"IP": ip} if ip else {})}
        att = Attachment(cid, netns_path, ifname, args=args, capability_args=caps)
        result = self.cni.add(netconfig.for_attachment(conf, caps), att)
        return endpoint_from_result(n, result, ifname)

    def check_ip(self, n: Network, ep: dict[str, Any]) -> str:
        """EndpointSettings.IPAMConfig.IPv4Address, checked as dockerd does."""
        ip = ((ep.get("IPAMConfig") or {}).get("IPv4Address") or "").strip()
        if not ip:
            return ""
        if not n.user_defined or not n.rec.get("_UserSubnet"):
            raise InvalidArgument("user specified IP address is supported only when "
                                  "connecting to networks with user configured subnets")
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {ip}") from None
        sub = ipaddress.ip_network(n.rec["IPAM"]["Config"][0]["Subnet"])
        if addr not in sub:
            raise InvalidArgument(f"no configured subnet contains IP address {ip}")
        return ip

    def detach(self, cid: str, netns_path: str, network_name: str, ifname: str) -> None:
        n = next((x for x in self.by_id.values() if x.name == network_name), None)
        att = Attachment(cid, netns_path, ifname)
        self.cni.delete(n.conflist if n else None, att, network=network_name)

    def release_stale(self, running: set[str]) -> None:
        """After a crash: DEL what containers that no longer run still hold."""
        for a in self.cni.attachments():
            if a.get("containerId") in running:
                continue
            cid, ifname = a["containerId"], a["ifName"]
            try:
                self.cni.delete(a.get("config"), Attachment(cid, a.get("netns", ""), ifname))
            except Exception as e:  # a failing plugin must not stop the daemon coming up
                log.warning("CNI DEL of stale %s/%s: %s", cid[:12], ifname, e)
            netns.remove(self.netns_path(cid))


def endpoint_from_result(n: Network, result: dict[str, Any], ifname: str
                         ) -> dict[str, Any]:
    """Docker's EndpointSettings from a CNI result (1.0.0 or 0.4.0)."""
    ip, prefix, gw, mac = "", 0, "", ""
    idx = None
    for i, iface in enumerate(result.get("interfaces") or []):
        if iface.get("name") == ifname and iface.get("sandbox"):
            idx, mac = i, iface.get("mac", "")
    for a in result.get("ips") or []:
        if idx is not None and a.get("interface") not in (None, idx):
            continue
        addr = ipaddress.ip_interface(a["address"])
        if addr.version == 4:
            ip, prefix, gw = str(addr.ip), addr.network.prefixlen, a.get("gateway", "")
            break
    return {"NetworkID": n.id, "EndpointID": secrets.token_hex(32), "Gateway": gw,
            "IPAddress": ip, "IPPrefixLen": prefix, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": mac}


def hosts_text(hostname: str, domainname: str, ips: list[str], extra: list[str],
               peers: list[tuple[str, list[str]]], host_gateway: str = "") -> str:
    """Docker's /etc/hosts: localhost lines, --add-host entries, this container's own
    address(es), then the peers on its user-defined networks."""
    pairs = []
    for e in extra:
        name, sep, addr = e.partition(":")
        if not sep or not name or not addr:
            raise InvalidArgument(f"invalid extra host {e!r}: expected name:ip")
        if addr == "host-gateway":  # docker's name for the default bridge's gateway
            if not host_gateway:
                raise InvalidArgument("--add-host host-gateway: the default bridge network "
                                      "has no gateway")
            addr = host_gateway
        pairs.append((name, addr))
    me = f"{hostname}.{domainname} {hostname}" if domainname else hostname
    return dns.hosts_file(me, ips, pairs, peers)


def resolv_text(host: dict[str, Any]) -> str:
    try:
        with open("/etc/resolv.conf") as f:
            text = f.read()
    except OSError:
        text = ""
    return dns.resolv_conf(text, host.get("Dns") or None,
                           host.get("DnsSearch") if host.get("DnsSearch") else None,
                           host.get("DnsOptions") if host.get("DnsOptions") else None)


def write_in_place(path: str, text: str) -> None:
    """Rewrite a file that is bind-mounted into running containers: the same inode (a
    rename would leave the containers with the old file)."""
    with open(path, "w") as f:
        f.write(text)


def docker_ports(mappings: list[dict[str, Any]], exposed: dict[str, Any]
                 ) -> dict[str, list[dict[str, str]] | None]:
    out: dict[str, list[dict[str, str]] | None] = {k: None for k in exposed or {}}
    for m in mappings:
        key = f"{m['containerPort']}/{m['protocol']}"
        out.setdefault(key, None)
        lst = out[key] or []
        lst.append({"HostIp": m.get("hostIP") or "0.0.0.0", "HostPort": str(m["hostPort"])})
        out[key] = lst
    return out
