"""A container's network sandbox: what `--network` asks for, set up before the runtime's
create and torn down after the container exits.

    create:  NetworkMode + NetworkingConfig -> NetworkSettings.Networks (configured, no IP)
    start:   bridge networks: a pinned netns, CNI ADD per network (eth0 carries the
             published ports), /etc/hosts|resolv.conf|hostname, peers' hosts updated
             host: no netns, the host's files; none: the runtime's own empty netns
             container:<x>: x's netns and its /etc files
    exit:    CNI DEL per network (from the cached result), netns removed, peers updated

Blocking work (plugins, files) runs in threads; the daemon's event loop only awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pallet.daemon import links
from pallet.daemon.networks import (
    PREDEFINED,
    Network,
    Networks,
    docker_ports,
    hosts_text,
    resolv_text,
    write_in_place,
)
from pallet.errors import FailedPrecondition, InvalidArgument, NotFound, SystemError_
from pallet.network import config as netconfig
from pallet.network import netns

if TYPE_CHECKING:
    from pallet.daemon.containers import Container

log = logging.getLogger("palletd")


def hostname_of(rec: dict[str, Any]) -> str:
    return rec["Config"].get("Hostname") or rec["Id"][:12]


def mode_of(rec: dict[str, Any]) -> str:
    m = rec["HostConfig"].get("NetworkMode") or "default"
    return "bridge" if m == "default" else m


def _blank_endpoint(n: Network, cfg: dict[str, Any] | None) -> dict[str, Any]:
    cfg = cfg or {}
    return {"IPAMConfig": cfg.get("IPAMConfig"), "Links": cfg.get("Links"),
            "Aliases": list(cfg.get("Aliases") or []) or None, "NetworkID": n.id,
            "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "MacAddress": "", "DriverOpts": cfg.get("DriverOpts")}


_RUNTIME_FIELDS = ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress")


class Sandboxes:
    def __init__(self, networks: Networks, lookup: Callable[[str], Container],
                 running: Callable[[], list[Container]]) -> None:
        self.networks = networks
        self.lookup = lookup
        self.running = running
        self.pending: dict[str, asyncio.Task[None]] = {}

    async def _thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # --- create -------------------------------------------------------------------

    def configure(self, rec: dict[str, Any], networking: dict[str, Any] | None) -> None:
        """NetworkSettings of a new container; refuses what cannot work before any work."""
        host = rec["HostConfig"]
        mode = mode_of(rec)
        endpoints = dict((networking or {}).get("EndpointsConfig") or {})
        if "default" in endpoints:  # the docker CLI names the default network so
            endpoints.setdefault("bridge", endpoints.pop("default"))
        nets: dict[str, Any] = {}
        if mode.startswith("container:"):
            self.lookup(mode.split(":", 1)[1])  # must exist now (docker checks at create)
            if endpoints or host.get("PortBindings") or host.get("PublishAllPorts"):
                raise InvalidArgument("conflicting options: networks or published ports and "
                                      "the network mode container:")
        elif mode in ("host", "none"):
            extra = [k for k in endpoints if k != mode]
            if extra:
                raise InvalidArgument(f"container cannot be disconnected from host network "
                                      f"or connected to host network: {extra[0]}"
                                      if mode == "host" else
                                      f"container sharing network namespace with none cannot "
                                      f"be connected to {extra[0]}")
            n = self.networks.get(mode)
            nets[n.name] = _blank_endpoint(n, endpoints.get(mode))
        else:
            try:
                first = self.networks.get(mode)
            except NotFound:
                # not a 404: the docker CLI takes a 404 from create for a missing image
                raise InvalidArgument(f"network {mode} not found") from None
            nets[first.name] = _blank_endpoint(first, endpoints.pop(first.name, None)
                                               or endpoints.pop(mode, None))
            for name, ep in endpoints.items():
                try:
                    n = self.networks.get(name)
                except NotFound:
                    raise InvalidArgument(f"network {name} not found") from None
                if n.driver != "bridge":
                    raise InvalidArgument(f"container cannot be connected to {n.name} and "
                                          "a bridge network at once")
                nets[n.name] = _blank_endpoint(n, ep)
        for name, ep in nets.items():
            self.networks.check_ip(self.networks.get(name), ep)
        # published ports are checked now; host ports are chosen when the container starts
        self.networks.port_mappings(host, {}, allocate=False)
        exposed = dict(rec["Config"].get("ExposedPorts") or {})
        rec["Config"]["ExposedPorts"] = exposed or None
        rec["NetworkSettings"] = {"Bridge": "", "SandboxID": "", "HairpinMode": False,
                                  "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
                                  "Ports": {}, "SandboxKey": "",
                                  "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
                                  "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
                                  "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0,
                                  "IPv6Gateway": "", "MacAddress": "", "Networks": nets}
        rec["_Ifnames"] = {}

    # --- start --------------------------------------------------------------------

    async def up(self, c: Container, cdir: str
                 ) -> tuple[str | None, dict[str, str], asyncio.Task[None] | None]:
        """The netns path for the runtime (None: its own, or no netns for host), the /etc
        files to bind, and the CNI ADDs under way (None when there are none).

        The ADDs (~70 ms of plugin execs on a bridge) run while the bundle is written and
        the runtime creates the container, which only needs the netns to exist: the caller
        awaits them before `start`, so the process never runs without its network (docker
        too configures it before the process starts). The hosts file is written now and
        rewritten in place (it is bind-mounted) once the addresses are known."""
        await self.settle(c)
        rec = c.rec
        mode = mode_of(rec)
        if mode.startswith("container:"):
            other = self.lookup(mode.split(":", 1)[1])
            if not other.running:
                raise FailedPrecondition(f"cannot join network of a non running container: "
                                         f"{other.id}")
            path = other.rec["NetworkSettings"].get("SandboxKey") or \
                f"/proc/{other.state['Pid']}/ns/net"
            return path, {f"/etc/{n}": os.path.join(os.path.dirname(other.rec["HostsPath"]), n)
                          for n in ("hosts", "resolv.conf", "hostname")}, None
        if mode in ("host", "none"):
            return None, await self._thread(self._write_etc, rec, cdir, mode), None
        path = self.networks.netns_path(c.id)
        await self._thread(self._create_netns, path)
        try:
            etc = await self._thread(self._write_etc, rec, cdir, mode)
        except BaseException:
            await self._thread(netns.remove, path)
            raise
        return path, etc, asyncio.ensure_future(self._attach_all(c, path, mode, etc))

    async def failure(self, attaching: asyncio.Task[None] | None) -> BaseException | None:
        """Until the ADDs `up` started are over; their failure (they have rolled themselves
        back by then), or None. Never cancels them: a half-done ADD must be undone."""
        if attaching is None:
            return None
        await asyncio.wait([attaching])
        return None if attaching.cancelled() else attaching.exception()

    async def _attach_all(self, c: Container, path: str, mode: str,
                          etc: dict[str, str]) -> None:
        rec = c.rec
        settings = rec["NetworkSettings"]
        done: list[tuple[str, str]] = []
        try:
            mappings = await self._thread(self.networks.port_mappings, rec["HostConfig"],
                                          rec["Config"].get("ExposedPorts") or {})
            for i, (name, ep) in enumerate(settings["Networks"].items()):
                n = self.networks.get(ep.get("NetworkID") or name)
                ifname = f"eth{i}"
                got = await self._thread(self.networks.attach, c.id, path, n, ifname,
                                         mappings if i == 0 else None,
                                         self.networks.check_ip(n, ep))
                done.append((name, ifname))
                rec["_Ifnames"][name] = ifname
                ep.update(got)
                if n.user_defined:
                    aliases = [a for a in ep.get("Aliases") or [] if a != c.id[:12]]
                    ep["Aliases"] = [*aliases, c.id[:12]]
            await self._thread(write_in_place, etc["/etc/hosts"], self._hosts(rec))
        except BaseException as e:
            for name, ifname in reversed(done):
                with contextlib.suppress(Exception):
                    await self._thread(self.networks.detach, c.id, path, name, ifname)
            await self._thread(netns.remove, path)
            self._clear(rec)
            if isinstance(e, Exception) and not isinstance(e, SystemError_):
                raise SystemError_(f"failed to set up container networking: {e}") from None
            raise
        settings["SandboxKey"] = path
        settings["SandboxID"] = c.id
        settings["Ports"] = docker_ports(mappings, rec["Config"].get("ExposedPorts") or {})
        rec["_PortMappings"] = mappings
        first = next(iter(settings["Networks"].values()), None)
        if first is not None and mode == "bridge":
            # the legacy top-level fields describe the default bridge endpoint only
            for k in ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress"):
                settings[k] = first[k]
            settings["Bridge"] = self.networks.get("bridge").bridge

    async def announce(self, c: Container) -> None:
        """`c` runs: the peers on its user-defined networks learn its name."""
        await self._thread(self.refresh_peers, c, self._user_networks(c))

    def _create_netns(self, path: str) -> None:
        netns.remove(path)  # a leftover of a crash: unpinned, then made afresh
        netns.create(path)

    def _write_etc(self, rec: dict[str, Any], cdir: str, mode: str) -> dict[str, str]:
        out = {}
        files = {"hostname": hostname_of(rec) + "\n",
                 "resolv.conf": resolv_text(rec["HostConfig"])}
        if mode != "host":
            files["hosts"] = self._hosts(rec)
        for name, text in files.items():
            path = os.path.join(cdir, name)
            write_in_place(path, text)
            out[f"/etc/{name}"] = path
        if mode == "host":
            out["/etc/hosts"] = "/etc/hosts"
        return out

    def _user_networks(self, c: Container) -> set[str]:
        out = set()
        for name in (c.rec.get("NetworkSettings") or {}).get("Networks") or {}:
            with contextlib.suppress(NotFound):
                if self.networks.get(name).user_defined:
                    out.add(name)
        return out

    def _hosts(self, rec: dict[str, Any]) -> str:
        nets = (rec.get("NetworkSettings") or {}).get("Networks") or {}
        ips = [ep["IPAddress"] for ep in nets.values() if ep.get("IPAddress")]
        peers: list[tuple[str, list[str]]] = []
        mine = {n for n in nets if n not in PREDEFINED}
        for p in self.running():
            if p.id == rec["Id"]:
                continue
            pnets = (p.rec.get("NetworkSettings") or {}).get("Networks") or {}
            for name in sorted(mine & set(pnets)):
                ep = pnets.get(name) or {}
                if not ep.get("IPAddress"):
                    continue
                names = [p.name] + [a for a in ep.get("Aliases") or [] if a != p.name]
                peers.append((ep["IPAddress"], names))
        for ip, names in self._linked(rec):
            peers.append((ip, names))
        conf = self.networks.get("bridge").conflist
        gateway = netconfig.subnet_of(conf)[1] if conf else ""
        return hosts_text(hostname_of(rec), rec["Config"].get("Domainname") or "", ips,
                          list(rec["HostConfig"].get("ExtraHosts") or []), peers, gateway)

    # --- legacy links ---------------------------------------------------------------

    def _link_target(self, rec: dict[str, Any], link: str) -> tuple[str, str, Container, str]:
        """(name, alias, the linked container, its address on a network shared with
        `rec`); refused as docker refuses when it does not run or shares no network."""
        name, alias = links.parse(link)
        this = rec["Name"].lstrip("/")
        try:
            other = self.lookup(name)
        except NotFound:
            raise FailedPrecondition(f"could not get container for {name}") from None
        if not other.running:
            raise FailedPrecondition(f"Cannot link to a non running container: /{name} AS "
                                     f"/{this}/{alias}")
        mine = (rec.get("NetworkSettings") or {}).get("Networks") or {}
        theirs = (other.rec.get("NetworkSettings") or {}).get("Networks") or {}
        for net in mine:
            ip = (theirs.get(net) or {}).get("IPAddress")
            if ip:
                return name, alias, other, ip
        raise FailedPrecondition(f"Cannot link to /{name}, as it does not belong to the "
                                 f"network of /{this}")

    def link_environment(self, rec: dict[str, Any]) -> list[str]:
        """The link variables of a container about to start (its links checked)."""
        out: list[str] = []
        this = rec["Name"].lstrip("/")
        for link in rec["HostConfig"].get("Links") or []:
            _name, alias, other, ip = self._link_target(rec, link)
            out += links.environment(this, alias, ip, other.rec["Config"].get("ExposedPorts"),
                                     other.rec["Config"].get("Env"))
        return out

    def _linked(self, rec: dict[str, Any]) -> list[tuple[str, list[str]]]:
        """/etc/hosts entries of the links whose containers run now."""
        out = []
        for link in rec["HostConfig"].get("Links") or []:
            try:
                name, alias, other, ip = self._link_target(rec, link)
            except FailedPrecondition:
                continue
            out.append((ip, list(dict.fromkeys([alias, other.id[:12], name]))))
        return out

    def _rewrite_hosts(self, rec: dict[str, Any]) -> None:
        write_in_place(rec["HostsPath"], self._hosts(rec))

    def rewrite_hosts(self, c: Container) -> None:
        if mode_of(c.rec) == "host":
            return
        try:
            self._rewrite_hosts(c.rec)
        except OSError as e:
            log.warning("updating the hosts file of %s: %s", c.id[:12], e)

    def refresh_peers(self, c: Container, networks: set[str]) -> None:
        """Rewrite the hosts file of every running container that shares one of `networks`
        with `c` (docker's embedded DNS would answer them; see networks.py), or links to
        `c` (docker rewrites those too)."""
        for p in self.running():
            if p.id == c.id:
                continue
            pnets = set((p.rec.get("NetworkSettings") or {}).get("Networks") or {})
            linking = any(links.parse(link)[0] in (c.name, c.id, c.id[:12])
                          for link in p.rec["HostConfig"].get("Links") or [])
            if pnets & networks or linking:
                self.rewrite_hosts(p)

    # --- exit ---------------------------------------------------------------------

    def release(self, c: Container) -> asyncio.Task[None] | None:
        """The container's endpoints are cleared now and DEL runs in the background: an
        exit (and `run --rm`) does not wait for the plugins' iptables work (~200 ms here,
        bench/cni_bench.py). A start of the same container waits for it (`settle`); a crash
        before it ends leaves the cached results, released when palletd comes back."""
        rec = c.rec
        path = (rec.get("NetworkSettings") or {}).get("SandboxKey") or ""
        if not path:
            return None
        ifnames = dict(rec.get("_Ifnames") or {})
        nets = self._user_networks(c)
        self._clear(rec)
        task = asyncio.ensure_future(self._teardown(c, path, ifnames, nets))
        self.pending[c.id] = task
        task.add_done_callback(lambda t: self.pending.pop(c.id, None)
                               if self.pending.get(c.id) is t else None)
        return task

    async def _teardown(self, c: Container, path: str, ifnames: dict[str, str],
                        nets: set[str]) -> None:
        await self._thread(self.refresh_peers, c, nets)
        for name, ifname in ifnames.items():
            try:
                await self._thread(self.networks.detach, c.id, path, name, ifname)
            except Exception as e:
                log.warning("CNI DEL %s/%s of %s: %s", name, ifname, c.id[:12], e)
        await self._thread(netns.remove, path)

    async def down(self, c: Container) -> None:
        task = self.release(c)
        if task is not None:
            await asyncio.shield(task)

    async def settle(self, c: Container | None = None) -> None:
        """Wait for the background DELs of `c` (of every container when None)."""
        tasks = [t for cid, t in list(self.pending.items()) if c is None or cid == c.id]
        if tasks:
            await asyncio.wait(tasks)

    def _clear(self, rec: dict[str, Any]) -> None:
        settings = rec["NetworkSettings"]
        for ep in settings["Networks"].values():
            for k in _RUNTIME_FIELDS:
                ep[k] = 0 if k == "IPPrefixLen" else ""
        for k in (*_RUNTIME_FIELDS, "SandboxKey", "SandboxID", "Bridge"):
            settings[k] = 0 if k == "IPPrefixLen" else ""
        settings["Ports"] = {}
        rec["_Ifnames"] = {}
        rec.pop("_PortMappings", None)

    # --- connect, disconnect --------------------------------------------------------

    async def connect(self, c: Container, n: Network, cfg: dict[str, Any]) -> None:
        mode = mode_of(c.rec)
        nets = c.rec["NetworkSettings"]["Networks"]
        if n.name in nets:
            raise FailedPrecondition(f"endpoint with name {c.name} already exists in network "
                                     f"{n.name}")
        if mode in ("host", "none") or mode.startswith("container:") or n.driver != "bridge":
            raise InvalidArgument(f"container sharing network namespace with another "
                                  f"container or host cannot be connected to {n.name}"
                                  if n.driver == "bridge" else
                                  f"container cannot be connected to network {n.name}")
        ep = _blank_endpoint(n, cfg)
        if c.running and c.rec["NetworkSettings"].get("SandboxKey"):
            used = set(c.rec["_Ifnames"].values())
            ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
            path = c.rec["NetworkSettings"]["SandboxKey"]
            ep.update(await self._thread(self.networks.attach, c.id, path, n, ifname, None,
                                         self.networks.check_ip(n, ep)))
            ep["Aliases"] = [*(ep.get("Aliases") or []), c.id[:12]]
            c.rec["_Ifnames"][n.name] = ifname
            nets[n.name] = ep
            await self._thread(self._rewrite_hosts, c.rec)
            await self._thread(self.refresh_peers, c, {n.name})
        else:
            nets[n.name] = ep

    async def disconnect(self, c: Container, n: Network) -> None:
        nets = c.rec["NetworkSettings"]["Networks"]
        if n.name not in nets:
            raise FailedPrecondition(f"container {c.id} is not connected to network {n.name}")
        if n.name in ("host", "none"):
            raise InvalidArgument(f"container cannot be disconnected from {n.name} network")
        ifname = c.rec["_Ifnames"].pop(n.name, None)
        if ifname and c.running:
            await self._thread(self.networks.detach, c.id,
                               c.rec["NetworkSettings"]["SandboxKey"], n.name, ifname)
        del nets[n.name]
        if c.running:
            await self._thread(self._rewrite_hosts, c.rec)
            await self._thread(self.refresh_peers, c, {n.name} if n.user_defined else set())
