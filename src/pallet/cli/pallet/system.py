"""`pallet images/tag/rmi/info/version/events/system df/system prune` through palletd, and
`register`, which adds the daemon verbs (and `-H/--host`) to the `pallet` group."""

from __future__ import annotations

import time

import pallet
from pallet.cli.pallet import cmdline
from pallet.cli.pallet.client import Client
from pallet.cli.pallet.containers import CMD, COMMANDS, _filters, _since, client
from pallet.cli.pallet.fmt import SHORT_ID, ago, human_size, print_rows, render

TYPE_CHECKING = False  # `typing` costs ms of imports on every `pallet` command
if TYPE_CHECKING:
    from typing import Any


@cmdline.command("images", context_settings=CMD)
@cmdline.option("-q", "--quiet", is_flag=True, help="only image IDs")
@cmdline.option("-a", "--all", "all_", is_flag=True, help="(all images are shown)")
@cmdline.option("--format", "fmt", default=None, help="table, json, or a template")
@cmdline.option("--no-trunc", is_flag=True, help="do not truncate IDs")
@cmdline.option("-f", "--filter", "filters", multiple=True, help="filter (reference=...)")
@cmdline.argument("repository", required=False)
@cmdline.pass_context
def images_cmd(ctx: cmdline.Context, quiet: bool, all_: bool, fmt: str | None, no_trunc: bool,
               filters: tuple[str, ...], repository: str | None) -> None:
    """List images (through palletd)."""
    c = client(ctx)
    f = _filters(filters) or {}
    if repository:
        f.setdefault("reference", []).append(repository)
    rows = []
    for s in c.get("/images/json", filters=f or None):
        iid = s["Id"] if no_trunc else s["Id"].removeprefix("sha256:")[:SHORT_ID]
        for tag in s["RepoTags"] or ["<none>:<none>"]:
            repo, _, t = tag.rpartition(":")
            rows.append({"Repository": repo, "Tag": t, "ID": iid,
                         "CreatedSince": ago(s["Created"]), "CreatedAt": time.strftime(
                             "%Y-%m-%d %H:%M:%S %z %Z", time.localtime(s["Created"])),
                         "Size": human_size(s["Size"]), "Digest": "<none>",
                         "Containers": "N/A"})
    if quiet:
        for iid in dict.fromkeys(r["ID"] for r in rows):
            cmdline.echo(iid)
        return
    print_rows(rows, fmt, ["Repository", "Tag", "ID", "CreatedSince", "Size"],
               {"ID": "IMAGE ID", "CreatedSince": "CREATED"})


@cmdline.command("tag", context_settings=CMD)
@cmdline.argument("source")
@cmdline.argument("target")
@cmdline.pass_context
def tag_cmd(ctx: cmdline.Context, source: str, target: str) -> None:
    """Create a tag TARGET that refers to SOURCE (through palletd)."""
    from pallet.images import reference

    r = reference.parse_named(target)
    repo = f"{r.domain}/{r.path}"
    client(ctx).post(f"/images/{source}/tag", repo=repo, tag=r.tag or "latest")


@cmdline.command("rmi", context_settings=CMD)
@cmdline.option("-f", "--force", is_flag=True, help="force removal")
@cmdline.option("--no-prune", is_flag=True, help="keep the content (no GC)")
@cmdline.argument("images", nargs=-1, required=True)
@cmdline.pass_context
def rmi_cmd(ctx: cmdline.Context, force: bool, no_prune: bool, images: tuple[str, ...]) -> None:
    """Remove images (through palletd)."""
    c = client(ctx)
    for name in images:
        for item in c.call("DELETE", f"/images/{name}", {"force": force,
                                                         "noprune": no_prune}) or []:
            for k, v in item.items():
                cmdline.echo(f"{k}: {v}")


@cmdline.command("info", context_settings=CMD)
@cmdline.option("-f", "--format", "fmt", default=None, help="json or a template")
@cmdline.pass_context
def info_cmd(ctx: cmdline.Context, fmt: str | None) -> None:
    """Display system-wide information."""
    i = client(ctx).get("/info")
    if fmt == "json":
        import json

        cmdline.echo(json.dumps(i))
        return
    if fmt:
        cmdline.echo(render(fmt, i))
        return
    lines = [
        "Server:",
        f" Containers: {i['Containers']}",
        f"  Running: {i['ContainersRunning']}",
        f"  Paused: {i['ContainersPaused']}",
        f"  Stopped: {i['ContainersStopped']}",
        f" Images: {i['Images']}",
        f" Server Version: {i['ServerVersion']}",
        f" Storage Driver: {i['Driver']}",
        f" Logging Driver: {i['LoggingDriver']}",
        f" Cgroup Driver: {i['CgroupDriver']}",
        f" Cgroup Version: {i['CgroupVersion']}",
        f" Runtimes: {' '.join(sorted(i['Runtimes']))}",
        f" Default Runtime: {i['DefaultRuntime']}",
        f" Kernel Version: {i['KernelVersion']}",
        f" Operating System: {i['OperatingSystem']}",
        f" OSType: {i['OSType']}",
        f" Architecture: {i['Architecture']}",
        f" CPUs: {i['NCPU']}",
        f" Total Memory: {i['MemTotal'] / 1024 ** 3:.2f}GiB",
        f" Name: {i['Name']}",
        f" ID: {i['ID']}",
        f" Docker Root Dir: {i['DockerRootDir']}",
        f" Live Restore Enabled: {str(i['LiveRestoreEnabled']).lower()}",
    ]
    cmdline.echo("\n".join(lines))
    for w in i.get("Warnings") or []:
        cmdline.echo(f"WARNING: {w}", err=True)


@cmdline.command("version", context_settings=CMD)
@cmdline.option("-f", "--format", "fmt", default=None, help="json or a template")
@cmdline.pass_context
def version_cmd(ctx: cmdline.Context, fmt: str | None) -> None:
    """Show the pallet and palletd version information."""
    import platform

    cl = {"Version": pallet.__version__, "ApiVersion": "1.41",
          "GoVersion": "python" + platform.python_version(), "Os": "linux",
          "Arch": platform.machine()}
    try:
        server: dict[str, Any] | None = client(ctx).get("/version")
    except Exception as e:
        server = None
        err = e
    if fmt == "json":
        import json

        cmdline.echo(json.dumps({"Client": cl, "Server": server}))
        return
    if fmt:
        cmdline.echo(render(fmt, {"Client": cl, "Server": server}))
        return
    cmdline.echo(f"Client:\n Version:           {cl['Version']}\n"
                 f" API version:       {cl['ApiVersion']}\n Python version:    "
                 f"{cl['GoVersion'][6:]}\n OS/Arch:           linux/{cl['Arch']}\n")
    if server is None:
        raise err
    cmdline.echo(f"Server: {server.get('Platform', {}).get('Name', '')}")
    for comp in server.get("Components", []):
        cmdline.echo(f" {comp['Name']}:\n  Version:          {comp['Version']}")
        for k, v in comp.get("Details", {}).items():
            cmdline.echo(f"  {k + ':':18}{v}")


@cmdline.command("events", context_settings=CMD)
@cmdline.option("--since", default=None, help="events since a time")
@cmdline.option("--until", default=None, help="events until a time")
@cmdline.option("-f", "--filter", "filters", multiple=True, help="filter (type=, container=...)")
@cmdline.option("--format", "fmt", default=None, help="json or a template")
@cmdline.pass_context
def events_cmd(ctx: cmdline.Context, since: str | None, until: str | None,
               filters: tuple[str, ...], fmt: str | None) -> None:
    """Get real-time events from palletd."""
    for ev in client(ctx).stream("GET", "/events", {
            "since": _since(since), "until": _since(until), "filters": _filters(filters)}):
        if fmt == "json":
            import json

            cmdline.echo(json.dumps(ev))
        elif fmt:
            cmdline.echo(render(fmt, ev))
        else:
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ev["time"]))
            ts += f".{ev['timeNano'] % 1_000_000_000:09d}"
            attrs = ", ".join(f"{k}={v}" for k, v in sorted(ev["Actor"]["Attributes"].items()))
            cmdline.echo(f"{ts} {ev['Type']} {ev['Action']} {ev['Actor']['ID']} ({attrs})")


@cmdline.group("system")
def system_group() -> None:
    """Manage palletd."""


@system_group.command("df", context_settings=CMD)
@cmdline.option("--format", "fmt", default=None, help="json or a template")
@cmdline.pass_context
def df_cmd(ctx: cmdline.Context, fmt: str | None) -> None:
    """Show disk usage."""
    d = client(ctx).get("/system/df")
    imgs, cs, vols = d["Images"], d["Containers"], d.get("Volumes") or []
    active_imgs = [i for i in imgs if i.get("Containers", 0) > 0]
    img_size = d["LayersSize"]
    rows = [
        {"Type": "Images", "TotalCount": len(imgs), "Active": len(active_imgs),
         "Size": human_size(img_size), "Reclaimable": human_size(
             sum(i["Size"] for i in imgs if i.get("Containers", 0) <= 0))},
        {"Type": "Containers", "TotalCount": len(cs),
         "Active": sum(1 for c in cs if c["State"] == "running"),
         "Size": human_size(sum(c.get("SizeRw") or 0 for c in cs)),
         "Reclaimable": human_size(sum(c.get("SizeRw") or 0 for c in cs
                                       if c["State"] != "running"))},
        {"Type": "Local Volumes", "TotalCount": len(vols),
         "Active": sum(1 for v in vols if v["UsageData"]["RefCount"] > 0),
         "Size": human_size(sum(v["UsageData"]["Size"] for v in vols)),
         "Reclaimable": human_size(sum(v["UsageData"]["Size"] for v in vols
                                       if v["UsageData"]["RefCount"] == 0))},
        {"Type": "Build Cache", "TotalCount": 0, "Active": 0, "Size": "0B",
         "Reclaimable": "0B"},
    ]
    print_rows(rows, fmt, ["Type", "TotalCount", "Active", "Size", "Reclaimable"],
               {"TotalCount": "TOTAL"})


@system_group.command("prune", context_settings=CMD)
@cmdline.option("-a", "--all", "all_", is_flag=True, help="remove all unused images")
@cmdline.option("-f", "--force", is_flag=True, help="do not prompt")
@cmdline.option("--volumes", is_flag=True, help="remove unused volumes too")
@cmdline.option("--filter", "filters", multiple=True, help="until=<time>, label[!]=<k[=v]>")
@cmdline.pass_context
def prune_cmd(ctx: cmdline.Context, all_: bool, force: bool, volumes: bool,
              filters: tuple[str, ...]) -> None:
    """Remove stopped containers, unused networks, unused images (dangling ones, all with
    -a), unused volumes (with --volumes) and unreferenced content, as docker does."""
    from pallet.cli.pallet.containers import _filters

    if not force:
        cmdline.confirm("This will remove all stopped containers, all networks not used by "
                        "a container"
                        + (", all volumes not used by a container" if volumes else "")
                        + (" and all images without a container" if all_ else "")
                        + ". Are you sure you want to continue?", abort=True)
    f = _filters(filters) or {}
    c = client(ctx)
    cs = c.post("/containers/prune", filters=f or None)
    ns = c.post("/networks/prune", filters=f or None)
    # volumes take the label filters only
    vf = {k: v for k, v in f.items() if k.startswith("label")}
    vs = c.post("/volumes/prune", filters=vf or None) if volumes else {}
    ims = c.post("/images/prune", filters={**f, "dangling": ["false" if all_ else "true"]})
    if cs.get("ContainersDeleted"):
        cmdline.echo("Deleted Containers:")
        for x in cs["ContainersDeleted"]:
            cmdline.echo(x)
        cmdline.echo()
    if ns.get("NetworksDeleted"):
        cmdline.echo("Deleted Networks:")
        for x in ns["NetworksDeleted"]:
            cmdline.echo(x)
        cmdline.echo()
    if vs.get("VolumesDeleted"):
        cmdline.echo("Deleted Volumes:")
        for x in vs["VolumesDeleted"]:
            cmdline.echo(x)
        cmdline.echo()
    if ims.get("ImagesDeleted"):
        cmdline.echo("Deleted Images:")
        for item in ims["ImagesDeleted"]:
            for k, v in item.items():
                cmdline.echo(f"{k.lower()}: {v}")
        cmdline.echo()
    total = sum(r.get("SpaceReclaimed") or 0 for r in (cs, vs, ims))
    cmdline.echo(f"Total reclaimed space: {human_size(total)}")


def _set_host(ctx: cmdline.Context, param: cmdline.Parameter, value: str | None) -> None:
    ctx.meta["pallet.host"] = value


def register(group: cmdline.Group) -> None:
    """Add the daemon verbs and `-H/--host` (env PALLET_HOST) to the `pallet` group,
    without touching verbs others registered."""
    group.params.append(cmdline.Option(
        ["-H", "--host"], envvar="PALLET_HOST", default=None, expose_value=False,
        is_eager=True, callback=_set_host,
        help="palletd socket (unix://...) [unix:///run/pallet/pallet.sock]"))
    from pallet.cli.pallet.ops import COMMANDS as OPS

    for cmd in [*COMMANDS, *OPS, images_cmd, tag_cmd, rmi_cmd, info_cmd, version_cmd,
                events_cmd, system_group]:
        if cmd.name not in group.commands:
            group.add_command(cmd)


__all__ = ["Client", "register"]
