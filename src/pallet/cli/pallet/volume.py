"""`pallet volume create/ls/inspect/rm/prune` through palletd: docker's flags and output."""

from __future__ import annotations

import sys
from typing import Any

from pallet.cli.pallet import cmdline
from pallet.cli.pallet.containers import CMD, _filters, client
from pallet.cli.pallet.fmt import human_size, print_objects, print_rows


def _pairs(items: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for x in items:
        k, sep, v = x.partition("=")
        if what == "--opt" and not sep:
            raise cmdline.BadParameter(f"invalid key/value pair format in driver options: {x}",
                                       param_hint=what)
        out[k] = v
    return out


@cmdline.group("volume")
def volume() -> None:
    """Manage volumes."""


@volume.command("create", context_settings=CMD)
@cmdline.option("-d", "--driver", default="local", show_default=True, help="volume driver")
@cmdline.option("--name", "name_opt", default=None, help="volume name")
@cmdline.option("-o", "--opt", "opts", multiple=True, help="driver options (type=, device=, o=)")
@cmdline.option("--label", "labels", multiple=True, help="metadata key=value")
@cmdline.argument("name", required=False)
@cmdline.pass_context
def create_cmd(ctx: cmdline.Context, driver: str, name_opt: str | None, opts: tuple[str, ...],
               labels: tuple[str, ...], name: str | None) -> None:
    """Create a volume (a random name without NAME)."""
    if name and name_opt and name != name_opt:
        raise cmdline.UsageError("conflicting options: either specify --name or provide "
                                 "positional arg, not both")
    v = client(ctx).post("/volumes/create", {
        "Name": name or name_opt or "", "Driver": driver,
        "DriverOpts": _pairs(opts, "--opt"), "Labels": _pairs(labels, "--label")})
    cmdline.echo(v["Name"])


def _row(v: dict[str, Any]) -> dict[str, Any]:
    return {"Driver": v["Driver"], "Name": v["Name"], "Scope": v.get("Scope", "local"),
            "Mountpoint": v["Mountpoint"], "Labels": ",".join(
                f"{k}={x}" for k, x in (v.get("Labels") or {}).items()),
            "Links": "N/A", "Size": "N/A"}


@volume.command("ls", context_settings=CMD)
@cmdline.option("-q", "--quiet", is_flag=True, help="only volume names")
@cmdline.option("-f", "--filter", "filters", multiple=True,
                help="filter (name=, label=, dangling=, driver=)")
@cmdline.option("--format", "fmt", default=None, help="table, json, or a template")
@cmdline.pass_context
def ls_cmd(ctx: cmdline.Context, quiet: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """List volumes."""
    vols = client(ctx).get("/volumes", filters=_filters(filters))["Volumes"] or []
    rows = [_row(v) for v in vols]
    if quiet:
        for r in rows:
            cmdline.echo(r["Name"])
        return
    print_rows(rows, fmt, ["Driver", "Name"], {"Name": "VOLUME NAME"})


@volume.command("inspect", context_settings=CMD)
@cmdline.option("-f", "--format", "fmt", default=None, help="a {{.Field}} template")
@cmdline.argument("names", nargs=-1, required=True)
@cmdline.pass_context
def inspect_cmd(ctx: cmdline.Context, fmt: str | None, names: tuple[str, ...]) -> None:
    """Low-level information on volumes, as JSON."""
    c = client(ctx)
    out, failed = [], False
    for n in names:
        try:
            out.append(c.get(f"/volumes/{n}"))
        except Exception as e:
            cmdline.echo(f"Error: {e}", err=True)
            failed = True
    print_objects(out, fmt, failed)


@volume.command("rm", context_settings=CMD)
@cmdline.option("-f", "--force", is_flag=True, help="force the removal")
@cmdline.argument("names", nargs=-1, required=True)
@cmdline.pass_context
def rm_cmd(ctx: cmdline.Context, force: bool, names: tuple[str, ...]) -> None:
    """Remove volumes (not one a container uses)."""
    c = client(ctx)
    failed = False
    for n in names:
        try:
            c.call("DELETE", f"/volumes/{n}", {"force": force})
            cmdline.echo(n)
        except Exception as e:
            cmdline.echo(f"Error response from daemon: {e}", err=True)
            failed = True
    if failed:
        sys.exit(1)


@volume.command("prune", context_settings=CMD)
@cmdline.option("-a", "--all", "all_", is_flag=True,
                help="(API 1.41 prunes named volumes too; accepted for docker's flag)")
@cmdline.option("-f", "--force", is_flag=True, help="do not prompt")
@cmdline.option("--filter", "filters", multiple=True, help="label=, label!=")
@cmdline.pass_context
def prune_cmd(ctx: cmdline.Context, all_: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused local volumes."""
    if not force:
        cmdline.confirm("WARNING! This will remove all local volumes not used by at least one "
                        "container.\nAre you sure you want to continue?", abort=True)
    r = client(ctx).post("/volumes/prune", filters=_filters(filters))
    if r.get("VolumesDeleted"):
        cmdline.echo("Deleted Volumes:")
        for n in r["VolumesDeleted"]:
            cmdline.echo(n)
        cmdline.echo()
    cmdline.echo(f"Total reclaimed space: {human_size(r.get('SpaceReclaimed') or 0)}")
