"""`pallet` entry point: global options and the command groups (one module per group)."""

from __future__ import annotations

import sys

import click

from pallet.cli.pallet.image import image
from pallet.cli.pallet.login import login_cmd, logout_cmd
from pallet.cli.pallet.registry import registry
from pallet.cli.pallet.system import register as register_daemon_verbs
from pallet.cli.pallet.transfer import pull_cmd, push_cmd
from pallet.errors import MAPPING, PalletError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", default="/var/lib/pallet", show_default=True,
              envvar="PALLET_ROOT", help="state directory (content, images, snapshots)")
@click.option("--snapshotter", default=None, help="overlayfs or native (default: overlayfs "
              "when usable)")
@click.pass_context
def cli(ctx: click.Context, root: str, snapshotter: str | None) -> None:
    """pallet: a container stack in Python."""
    ctx.obj = {"root": root, "snapshotter": snapshotter}


cli.add_command(image)
cli.add_command(registry)
for _cmd in (pull_cmd, push_cmd, login_cmd, logout_cmd):
    cli.add_command(_cmd)
register_daemon_verbs(cli)  # run, ps, exec, ... through palletd


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="pallet", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except PalletError as e:
        click.echo(f"pallet: {e}", err=True)
        sys.exit(MAPPING[e.kind][0])
    except ValueError as e:  # a parse error from the spec models (names the field)
        click.echo(f"pallet: {e}", err=True)
        sys.exit(1)
    except OSError as e:
        click.echo(f"pallet: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
