"""Network configuration lists for pallet's bridge networks (the shape podman and nerdctl
write): bridge + host-local IPAM, portmap for published ports, firewall."""

from __future__ import annotations

import ipaddress
from typing import Any

from pallet.errors import InvalidArgument

CNI_VERSION = "1.0.0"
DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE = "pallet0"
DEFAULT_SUBNET = "10.88.0.0/16"


def bridge_conflist(name: str, bridge: str, subnet: str, gateway: str | None = None, *,
                    internal: bool = False, ipam_dir: str | None = None,
                    labels: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        net = ipaddress.ip_network(subnet, strict=True)
    except ValueError as e:
        raise InvalidArgument(f"subnet {subnet!r}: {e}") from None
    if gateway is None:
        gateway = str(next(net.hosts()))
    elif ipaddress.ip_address(gateway) not in net:
        raise InvalidArgument(f"gateway {gateway} is not in subnet {subnet}")
    if len(bridge) > 15:
        raise InvalidArgument(f"bridge name {bridge!r} is longer than 15 characters")
    ipam: dict[str, Any] = {
        "type": "host-local",
        "ranges": [[{"subnet": str(net), "gateway": gateway}]],
        # An internal network has no way out: no default route, no gateway on the bridge.
        "routes": [] if internal else [{"dst": "0.0.0.0/0"}],
    }
    if ipam_dir:
        ipam["dataDir"] = ipam_dir
    conf: dict[str, Any] = {
        "cniVersion": CNI_VERSION,
        "name": name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": not internal,
             "ipMasq": not internal, "hairpinMode": True, "ipam": ipam},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "firewall", "backend": "iptables"},
        ],
    }
    if labels or internal:
        conf["args"] = {"pallet": {"labels": labels or {}, "internal": internal}}
    return conf


def for_attachment(conf: dict[str, Any], capability_args: dict[str, Any]) -> dict[str, Any]:
    """The conflist one attachment runs: without portmap when it publishes no port (a
    portmap ADD and DEL without mappings do nothing but cost an exec each, ~6 ms here), and
    without a configless `tuning` (which older palletd wrote into its networks). DEL runs
    the list ADD ran, from the result cache."""
    plugins = [p for p in conf["plugins"]
               if not (p.get("type") == "portmap" and not capability_args.get("portMappings"))
               and p != {"type": "tuning"}]
    return conf if len(plugins) == len(conf["plugins"]) else {**conf, "plugins": plugins}


def loopback_conflist() -> dict[str, Any]:
    return {"cniVersion": CNI_VERSION, "name": "lo", "plugins": [{"type": "loopback"}]}


def subnet_of(conf: dict[str, Any]) -> tuple[str, str]:
    rng = conf["plugins"][0]["ipam"]["ranges"][0][0]
    return rng["subnet"], rng.get("gateway", "")
