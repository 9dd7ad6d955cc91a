"""`pallet` entry point: global options and the command groups (one module per group)."""

from __future__ import annotations

import sys

import click

from pallet.cli.pallet.system import register as register_daemon_verbs
from pallet.errors import MAPPING, PalletError

# Groups whose modules pull in the registry client and image machinery (aiohttp, rich, ...):
# imported only when the command is used, so `pallet run` does not pay ~250 ms for them.
LAZY = {
    "image": "pallet.cli.pallet.image:image",
    "registry": "pallet.cli.pallet.registry:registry",
    "pull": "pallet.cli.pallet.transfer:pull_cmd",
    "push": "pallet.cli.pallet.transfer:push_cmd",
    "login": "pallet.cli.pallet.login:login_cmd",
    "logout": "pallet.cli.pallet.login:logout_cmd",
    "network": "pallet.cli.pallet.network:network",
    "port": "pallet.cli.pallet.network:port_cmd",
    "volume": "pallet.cli.pallet.volume:volume",
    **{verb: f"pallet.cli.pallet.archive:{verb}_cmd"
       for verb in ("cp", "export", "import", "save", "load", "commit", "diff")},
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY and name not in self.commands:
            import importlib

            module, attr = LAZY[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", default="/var/lib/pallet", show_default=True,
              envvar="PALLET_ROOT", help="state directory (content, images, snapshots)")
@click.option("--snapshotter", default=None, help="overlayfs or native (default: overlayfs "
              "when usable)")
@click.pass_context
def cli(ctx: click.Context, root: str, snapshotter: str | None) -> None:
    """pallet: a container stack in Python."""
    ctx.obj = {"root": root, "snapshotter": snapshotter}


register_daemon_verbs(cli)  # run, ps, exec, ... through palletd
for _name in LAZY:
    # The daemon-less image/registry verbs win over palletd's verbs of the same name.
    cli.commands.pop(_name, None)


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
