"""`pallet image ...`: import, export, ls, inspect, rm, tag, unpack, bundle.

Docker's words where docker has the verb (`ls`, `inspect`, `rm`, `tag`); import/export take
OCI layouts (dir or tar) and docker-archives, like `docker load`/`save` and skopeo.
"""

from __future__ import annotations

import datetime
import json

from rich.console import Console
from rich.table import Table

from pallet.cli.pallet import cmdline
from pallet.images.service import ImageService
from pallet.oci.image import Platform


def _svc(ctx: cmdline.Context) -> ImageService:
    return ImageService(ctx.obj["root"], ctx.obj["snapshotter"])


def _platform(value: str | None) -> Platform | None:
    try:
        return Platform.parse(value) if value else None
    except ValueError as e:
        raise cmdline.BadParameter(str(e)) from None


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{n}B"
        n /= 1000  # type: ignore[assignment]
    return str(n)


@cmdline.group()
def image() -> None:
    """Manage images."""


@image.command("import")
@cmdline.argument("source")
@cmdline.option("--format", "fmt", type=cmdline.Choice(["oci", "docker-archive"]), default=None,
                help="default: detected")
@cmdline.option("--name", "base_name", default=None,
                help="repository for images named only by a tag in the layout")
@cmdline.pass_context
def import_(ctx: cmdline.Context, source: str, fmt: str | None, base_name: str | None) -> None:
    """Import images from an OCI layout (directory or tar) or a docker-archive."""
    svc = _svc(ctx)
    for imp in svc.import_(source, fmt=fmt, base_name=base_name):
        cmdline.echo(f"{imp.name or '<unnamed>'} {imp.target.digest}")


@image.command("export")
@cmdline.argument("names", nargs=-1, required=True)
@cmdline.option("-o", "--output", required=True, help="destination directory or tar file")
@cmdline.option("--format", "fmt", type=cmdline.Choice(["oci", "oci-archive", "docker-archive"]),
                default="oci", show_default=True)
@cmdline.option("--platform", default=None, help="os/arch[/variant] (docker-archive)")
@cmdline.pass_context
def export(ctx: cmdline.Context, names: tuple[str, ...], output: str, fmt: str,
           platform: str | None) -> None:
    """Export images as an OCI layout (dir), a layout tar, or a docker-archive."""
    _svc(ctx).export(list(names), output, fmt=fmt, platform=_platform(platform))


@image.command("ls")
@cmdline.option("-q", "--quiet", is_flag=True, help="names only")
@cmdline.pass_context
def ls(ctx: cmdline.Context, quiet: bool) -> None:
    """List images."""
    svc = _svc(ctx)
    imgs = svc.list()
    if quiet:
        for i in imgs:
            cmdline.echo(i.name)
        return
    t = Table(box=None, pad_edge=False)
    for col in ("REPOSITORY", "TAG", "DIGEST", "TYPE", "CREATED"):
        t.add_column(col)
    from pallet.images import reference

    for i in imgs:
        r = reference.parse(i.name)
        created = datetime.datetime.fromtimestamp(i.created_at).strftime("%Y-%m-%d %H:%M")
        kind = "index" if "index" in i.target.media_type or "list" in i.target.media_type \
            else "manifest"
        t.add_row(r.familiar().rsplit(":", 1)[0] if r.tag else r.familiar(), r.tag or "<none>",
                  i.target.digest.encoded[:12], kind, created)
    Console(soft_wrap=True).print(t)


@image.command("inspect")
@cmdline.argument("names", nargs=-1, required=True)
@cmdline.option("--platform", default=None, help="os/arch[/variant]")
@cmdline.pass_context
def inspect(ctx: cmdline.Context, names: tuple[str, ...], platform: str | None) -> None:
    """Show an image's target, manifest and config as JSON."""
    svc = _svc(ctx)
    out = [svc.inspect(n, _platform(platform)) for n in names]
    cmdline.echo(json.dumps(out, indent=2))


@image.command("rm")
@cmdline.argument("names", nargs=-1, required=True)
@cmdline.option("--no-prune", is_flag=True, help="keep content and snapshots no name refers to")
@cmdline.pass_context
def rm(ctx: cmdline.Context, names: tuple[str, ...], no_prune: bool) -> None:
    """Remove image names, then what only they kept (content, snapshots), as docker rmi."""
    svc = _svc(ctx)
    for n in names:
        name = svc.get(n).name
        svc.remove(n)
        cmdline.echo(f"Untagged: {name}")
    if not no_prune:
        _deleted(svc.gc())


def _deleted(report) -> None:
    for d, _ in report.content:
        cmdline.echo(f"Deleted: {d}")
    for sn, key, _ in report.snapshots:
        cmdline.echo(f"Deleted snapshot: {sn}/{key}")


@image.command("prune")
@cmdline.option("-a", "--all", "all_images", is_flag=True,
                help="also remove every image no container uses, not only unreferenced data")
@cmdline.option("-f", "--force", is_flag=True, help="do not prompt for confirmation")
@cmdline.option("--dry-run", is_flag=True, help="show what would be removed")
@cmdline.option("--grace", type=float, default=0.0, show_default=True,
                help="keep content and snapshots younger than this many seconds")
@cmdline.pass_context
def prune(ctx: cmdline.Context, all_images: bool, force: bool, dry_run: bool,
          grace: float) -> None:
    """Remove unused images, content and snapshots (mark and sweep from image names,
    gc labels and leases; an in-progress pull or import holds a lease)."""
    if not force and not dry_run:
        what = ("all images without at least one container associated to them"
                if all_images else "all content and snapshots no image refers to")
        cmdline.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to "
                        "continue?", abort=True)
    svc = _svc(ctx)
    untagged, report = svc.prune(all_images=all_images, grace=grace, dry_run=dry_run)
    if untagged or report.content or report.snapshots:
        cmdline.echo("Deleted Images:" if not dry_run else "Would delete:")
    for n in untagged:
        cmdline.echo(f"untagged: {n}")
    _deleted(report)
    cmdline.echo(f"Total reclaimed space: {_size(report.reclaimed)}")


@image.command("tag")
@cmdline.argument("source")
@cmdline.argument("target")
@cmdline.pass_context
def tag(ctx: cmdline.Context, source: str, target: str) -> None:
    """Give an image another name."""
    _svc(ctx).tag(source, target)


@image.command("unpack")
@cmdline.argument("name")
@cmdline.argument("dest", required=False)
@cmdline.option("--platform", default=None, help="os/arch[/variant]")
@cmdline.pass_context
def unpack(ctx: cmdline.Context, name: str, dest: str | None, platform: str | None) -> None:
    """Unpack an image's root filesystem into DEST, or into the snapshotter without DEST
    (prints the chain ID of the top snapshot)."""
    svc = _svc(ctx)
    if dest is None:
        cmdline.echo(svc.unpack(name, _platform(platform)))
    else:
        svc.unpack_to_dir(name, dest, _platform(platform))


@image.command("bundle")
@cmdline.argument("name")
@cmdline.argument("dest")
@cmdline.option("--platform", default=None, help="os/arch[/variant]")
@cmdline.option("--snapshot", is_flag=True,
                help="mount a writable snapshot at DEST/rootfs instead of copying (root)")
@cmdline.argument("args", nargs=-1)
@cmdline.pass_context
def bundle(ctx: cmdline.Context, name: str, dest: str, platform: str | None, snapshot: bool,
           args: tuple[str, ...]) -> None:
    """Create an OCI runtime bundle (DEST/rootfs, DEST/config.json) from an image; ARGS
    replace the image's Cmd."""
    _svc(ctx).bundle(name, dest, args=list(args) or None, platform=_platform(platform),
                     snapshot=snapshot)
