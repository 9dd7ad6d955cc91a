"""`pallet` entry point: global options and the command groups (one module per group)."""

from __future__ import annotations

import sys

from pallet.cli.pallet import cmdline
from pallet.cli.pallet.system import register as register_daemon_verbs
from pallet.errors import MAPPING, PalletError

# Groups whose modules pull in the registry client and image machinery (aiohttp, rich, ...):
# imported only when the command is used, so `pallet run` does not pay ~250 ms for them.
# Beside each, its summary for `pallet --help`, which lists them without importing them
# (tests/unit/test_cli_cmdline.py checks these against the commands' docstrings).
LAZY: dict[str, tuple[str, str]] = {
    "image": ("pallet.cli.pallet.image:image", "Manage images."),
    "registry": ("pallet.cli.pallet.registry:registry", "Run an OCI registry."),
    "pull": ("pallet.cli.pallet.transfer:pull_cmd", "Pull an image from a registry."),
    "push": ("pallet.cli.pallet.transfer:push_cmd",
             "Push a local image (to DEST, default: its own name)."),
    "login": ("pallet.cli.pallet.login:login_cmd",
              "Log in to a registry (checks the credentials, then stores them)."),
    "logout": ("pallet.cli.pallet.login:logout_cmd", "Remove a registry's stored credentials."),
    "network": ("pallet.cli.pallet.network:network", "Manage networks."),
    "port": ("pallet.cli.pallet.network:port_cmd",
             "List the port mappings of a container, or the one of PRIVATE (port[/proto])."),
    "volume": ("pallet.cli.pallet.volume:volume", "Manage volumes."),
    "cp": ("pallet.cli.pallet.archive:cp_cmd",
           "Copy files/folders between a container and the local filesystem "
           "(CONTAINER:SRC_PATH DEST_PATH|- or SRC_PATH|- CONTAINER:DEST_PATH)."),
    "export": ("pallet.cli.pallet.archive:export_cmd",
               "Export a container's filesystem as a tar archive."),
    "import": ("pallet.cli.pallet.archive:import_cmd",
               "Import the contents from a tarball to create a filesystem image."),
    "save": ("pallet.cli.pallet.archive:save_cmd",
             "Save one or more images to a tar archive (docker-archive)."),
    "load": ("pallet.cli.pallet.archive:load_cmd",
             "Load an image from a tar archive (docker save, or an OCI layout) or STDIN."),
    "commit": ("pallet.cli.pallet.archive:commit_cmd",
               "Create a new image from a container's changes."),
    "diff": ("pallet.cli.pallet.archive:diff_cmd",
             "Inspect changes to files or directories on a container's filesystem."),
    "build": ("pallet.cli.pallet.build:build_cmd",
              "Build an image from a Dockerfile (through palletd)."),
}


class LazyGroup(cmdline.Group):
    def list_commands(self, ctx: cmdline.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY))

    def get_command(self, ctx: cmdline.Context, name: str) -> cmdline.Command | None:
        if name in LAZY and name not in self.commands:
            import importlib

            module, attr = LAZY[name][0].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def command_help(self, ctx: cmdline.Context, name: str) -> str | None:
        if name in LAZY and name not in self.commands:
            return LAZY[name][1]
        return super().command_help(ctx, name)


@cmdline.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@cmdline.option("--root", default="/var/lib/pallet", show_default=True,
                envvar="PALLET_ROOT", help="state directory (content, images, snapshots)")
@cmdline.option("--snapshotter", default=None, help="overlayfs or native (default: overlayfs "
                "when usable)")
@cmdline.pass_context
def cli(ctx: cmdline.Context, root: str, snapshotter: str | None) -> None:
    """pallet: a container stack in Python."""
    ctx.obj = {"root": root, "snapshotter": snapshotter}


register_daemon_verbs(cli)  # run, ps, exec, ... through palletd
for _name in LAZY:
    # The daemon-less image/registry verbs win over palletd's verbs of the same name.
    cli.commands.pop(_name, None)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="pallet")
    except cmdline.Abort:
        sys.exit(130)
    except cmdline.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except PalletError as e:
        cmdline.echo(f"pallet: {e}", err=True)
        sys.exit(MAPPING[e.kind][0])
    except ValueError as e:  # a parse error from the spec models (names the field)
        cmdline.echo(f"pallet: {e}", err=True)
        sys.exit(1)
    except OSError as e:
        cmdline.echo(f"pallet: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
