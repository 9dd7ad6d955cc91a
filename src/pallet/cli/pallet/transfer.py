"""`pallet pull` and `pallet push`: images between the local store and registries, without
a daemon (the client library drives the content store directly)."""

from __future__ import annotations

import asyncio
import contextlib

from rich.console import Console

from pallet.cli.pallet import cmdline
from pallet.images.service import ImageService
from pallet.oci.image import Platform
from pallet.registry.client.api import Options, pull, push
from pallet.registry.client.credentials import Credentials
from pallet.registry.client.progress import RichProgress


def _svc(ctx: cmdline.Context) -> ImageService:
    return ImageService(ctx.obj["root"], ctx.obj["snapshotter"])


def registry_options(f):
    """The options every registry verb shares."""
    for opt in reversed([
        cmdline.option("--insecure", is_flag=True,
                       help="skip TLS verification and allow plain http (insecure registry)"),
        cmdline.option("--plain-http", is_flag=True, help="use http, not https"),
        cmdline.option("--hosts-dir", default=None, envvar="PALLET_HOSTS_DIR",
                       help="directory of <registry>/hosts.toml [/etc/pallet/certs.d]"),
        cmdline.option("--creds", default=None, metavar="USER[:PASSWORD]",
                       help="credentials instead of ~/.docker/config.json"),
    ]):
        f = opt(f)
    return f


def make_options(insecure: bool, plain_http: bool, hosts_dir: str | None,
                 creds: str | None) -> Options:
    c = None
    if creds is not None:
        user, sep, pw = creds.partition(":")
        if not sep:
            pw = cmdline.prompt("Password", hide_input=True)
        c = Credentials(user, pw)
    return Options(hosts_dir=hosts_dir, insecure=insecure, plain_http=plain_http,
                   credentials=c)


def _progress(quiet: bool) -> contextlib.AbstractContextManager[RichProgress | None]:
    if quiet:
        return contextlib.nullcontext()
    return RichProgress(Console(stderr=True))


@cmdline.command("pull")
@cmdline.argument("ref")
@cmdline.option("--platform", default=None, help="os/arch[/variant] [this machine]")
@cmdline.option("--all-platforms", is_flag=True, help="every manifest of an index")
@cmdline.option("-q", "--quiet", is_flag=True, help="no progress bars")
@cmdline.option("--allow-nondistributable", is_flag=True,
                help="fetch non-distributable (foreign) layers from the URLs their "
                "descriptors list")
@registry_options
@cmdline.pass_context
def pull_cmd(ctx: cmdline.Context, ref: str, platform: str | None, all_platforms: bool,
             quiet: bool, allow_nondistributable: bool, insecure: bool, plain_http: bool,
             hosts_dir: str | None, creds: str | None) -> None:
    """Pull an image from a registry."""
    try:
        plat = Platform.parse(platform) if platform else None
    except ValueError as e:
        raise cmdline.BadParameter(str(e)) from None
    svc = _svc(ctx)
    opts = make_options(insecure, plain_http, hosts_dir, creds)
    opts.foreign_layers = allow_nondistributable
    try:
        with _progress(quiet) as prog:
            res = asyncio.run(pull(svc, ref, opts=opts, platform=plat,
                                   all_platforms=all_platforms, progress=prog))
    finally:
        svc.close()
    cmdline.echo(f"{res.name} {res.target.digest}")


@cmdline.command("push")
@cmdline.argument("src")
@cmdline.argument("dest", required=False)
@cmdline.option("--chunk-size", default=0, show_default=True,
                help="upload blobs larger than this in chunks of this many bytes (0: whole)")
@cmdline.option("--no-mount", is_flag=True, help="upload every blob, never mount one")
@cmdline.option("-q", "--quiet", is_flag=True, help="no progress bars")
@registry_options
@cmdline.pass_context
def push_cmd(ctx: cmdline.Context, src: str, dest: str | None, chunk_size: int, no_mount: bool,
             quiet: bool, insecure: bool, plain_http: bool, hosts_dir: str | None,
             creds: str | None) -> None:
    """Push a local image (to DEST, default: its own name)."""
    svc = _svc(ctx)
    opts = make_options(insecure, plain_http, hosts_dir, creds)
    try:
        with _progress(quiet) as prog:
            res = asyncio.run(push(svc, src, dest, opts=opts, progress=prog,
                                   chunk_size=chunk_size, mount=not no_mount))
    finally:
        svc.close()
    cmdline.echo(f"{res.name} {res.target.digest}")
