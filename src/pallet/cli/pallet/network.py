"""`pallet network create/ls/inspect/rm/connect/disconnect/prune` and `pallet port`, as
docker's, through palletd."""

from __future__ import annotations

import json
from typing import Any

from pallet.cli.pallet import cmdline
from pallet.cli.pallet.containers import CMD, _filters, client
from pallet.cli.pallet.fmt import SHORT_ID, print_rows


@cmdline.group("network", context_settings=CMD)
def network() -> None:
    """Manage networks."""


@network.command("create", context_settings=CMD)
@cmdline.option("-d", "--driver", default="bridge", help="driver (bridge)")
@cmdline.option("--subnet", default=None, help="subnet in CIDR form")
@cmdline.option("--gateway", default=None, help="gateway of the subnet")
@cmdline.option("--internal", is_flag=True, help="no way out of the network")
@cmdline.option("--attachable", is_flag=True, help="(accepted)")
@cmdline.option("-o", "--opt", multiple=True, help="driver options key=value")
@cmdline.option("--label", multiple=True, help="metadata key=value")
@cmdline.argument("name")
@cmdline.pass_context
def create_cmd(ctx: cmdline.Context, driver: str, subnet: str | None, gateway: str | None,
               internal: bool, attachable: bool, opt: tuple[str, ...],
               label: tuple[str, ...], name: str) -> None:
    """Create a network."""
    if gateway and not subnet:
        raise cmdline.BadParameter("--gateway needs --subnet", param_hint="--gateway")
    ipam: dict[str, Any] = {"Driver": "default", "Config": []}
    if subnet:
        ipam["Config"] = [{"Subnet": subnet, **({"Gateway": gateway} if gateway else {})}]
    body = {"Name": name, "CheckDuplicate": True, "Driver": driver, "IPAM": ipam,
            "Internal": internal, "Attachable": attachable,
            "Options": dict(_pair(o) for o in opt), "Labels": dict(_pair(x) for x in label)}
    cmdline.echo(client(ctx).post("/networks/create", body)["Id"])


def _pair(item: str) -> tuple[str, str]:
    k, _, v = item.partition("=")
    return k, v


@network.command("ls", context_settings=CMD)
@cmdline.option("-q", "--quiet", is_flag=True, help="only IDs")
@cmdline.option("-f", "--filter", "filters", multiple=True, help="filter (name=value)")
@cmdline.option("--format", "fmt", default=None, help="table, json, or a template")
@cmdline.option("--no-trunc", is_flag=True, help="do not truncate IDs")
@cmdline.pass_context
def ls_cmd(ctx: cmdline.Context, quiet: bool, filters: tuple[str, ...], fmt: str | None,
           no_trunc: bool) -> None:
    """List networks."""
    nets = client(ctx).get("/networks", filters=_filters(filters))
    rows = [{"ID": n["Id"] if no_trunc else n["Id"][:SHORT_ID], "Name": n["Name"],
             "Driver": n["Driver"], "Scope": n["Scope"], "Internal": n["Internal"],
             "Labels": ",".join(f"{k}={v}" for k, v in (n.get("Labels") or {}).items())}
            for n in sorted(nets, key=lambda n: n["Name"])]
    if quiet:
        for r in rows:
            cmdline.echo(r["ID"])
        return
    print_rows(rows, fmt, ["ID", "Name", "Driver", "Scope"], {"ID": "NETWORK ID"})


@network.command("inspect", context_settings=CMD)
@cmdline.option("-f", "--format", "fmt", default=None, help="a template")
@cmdline.argument("names", nargs=-1, required=True)
@cmdline.pass_context
def inspect_cmd(ctx: cmdline.Context, fmt: str | None, names: tuple[str, ...]) -> None:
    """Show networks in detail."""
    from pallet.cli.pallet.fmt import render

    c = client(ctx)
    out = [c.get(f"/networks/{n}") for n in names]
    if fmt:
        for o in out:
            cmdline.echo(render(fmt, o))
    else:
        cmdline.echo(json.dumps(out, indent=4))


@network.command("rm", context_settings=CMD)
@cmdline.argument("names", nargs=-1, required=True)
@cmdline.pass_context
def rm_cmd(ctx: cmdline.Context, names: tuple[str, ...]) -> None:
    """Remove networks."""
    c = client(ctx)
    for n in names:
        c.call("DELETE", f"/networks/{n}")
        cmdline.echo(n)


@network.command("connect", context_settings=CMD)
@cmdline.option("--alias", multiple=True, help="names of the container on the network")
@cmdline.argument("net")
@cmdline.argument("container")
@cmdline.pass_context
def connect_cmd(ctx: cmdline.Context, alias: tuple[str, ...], net: str, container: str) -> None:
    """Connect a container to a network."""
    client(ctx).post(f"/networks/{net}/connect", {
        "Container": container, "EndpointConfig": {"Aliases": list(alias) or None}})


@network.command("disconnect", context_settings=CMD)
@cmdline.option("-f", "--force", is_flag=True, help="force")
@cmdline.argument("net")
@cmdline.argument("container")
@cmdline.pass_context
def disconnect_cmd(ctx: cmdline.Context, force: bool, net: str, container: str) -> None:
    """Disconnect a container from a network."""
    client(ctx).post(f"/networks/{net}/disconnect", {"Container": container, "Force": force})


@network.command("prune", context_settings=CMD)
@cmdline.option("-f", "--force", is_flag=True, help="do not ask")
@cmdline.option("--filter", "filters", multiple=True, help="until=<time>, label[!]=<k[=v]>")
@cmdline.pass_context
def prune_cmd(ctx: cmdline.Context, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused networks."""
    if not force:
        cmdline.confirm("WARNING! This will remove all custom networks not used by at least "
                        "one container.\nAre you sure you want to continue?", abort=True)
    deleted = client(ctx).post("/networks/prune", filters=_filters(filters)).get(
        "NetworksDeleted") or []
    if deleted:
        cmdline.echo("Deleted Networks:")
        for n in deleted:
            cmdline.echo(n)


@cmdline.command("port", context_settings=CMD)
@cmdline.argument("container")
@cmdline.argument("private", required=False)
@cmdline.pass_context
def port_cmd(ctx: cmdline.Context, container: str, private: str | None) -> None:
    """List the port mappings of a container, or the one of PRIVATE (port[/proto])."""
    ports = client(ctx).get(f"/containers/{container}/json")["NetworkSettings"]["Ports"] or {}
    if private and "/" not in private:
        private += "/tcp"
    found = False
    for key, binds in sorted(ports.items()):
        if private and key != private:
            continue
        for b in binds or []:
            found = True
            cmdline.echo(f"{b['HostIp']}:{b['HostPort']}" if private
                         else f"{key} -> {b['HostIp']}:{b['HostPort']}")
    if private and not found:
        raise cmdline.ClickException(f"no public port '{private}' published for {container}")
