"""`palletd`: command line and process set-up of the daemon."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from pallet.daemon.config import (
    DEFAULT_EXEC_ROOT,
    DEFAULT_ROOT,
    DEFAULT_RUNTIME,
    DEFAULT_SOCKET,
    Config,
)
from pallet.errors import PalletError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="palletd", description="pallet's container daemon "
                                "(Docker Engine API on a unix socket)")
    p.add_argument("--root", default=DEFAULT_ROOT, help="persistent state [%(default)s]")
    p.add_argument("--exec-root", default=DEFAULT_EXEC_ROOT,
                   help="runtime state: shims, bundles [%(default)s]")
    p.add_argument("-H", "--host", default=DEFAULT_SOCKET,
                   help="unix socket to serve the API on (unix:// optional) [%(default)s]")
    p.add_argument("--default-runtime", default=DEFAULT_RUNTIME,
                   help="OCI runtime for containers that name none [%(default)s]")
    p.add_argument("--add-runtime", action="append", default=[], metavar="NAME=PATH",
                   help="make another OCI runtime available (runc and crun are found on "
                   "PATH)")
    p.add_argument("--snapshotter", default=None, help="overlayfs or native")
    p.add_argument("--insecure-registry", action="append", default=[],
                   help="registries reached over plain http or without TLS verification")
    p.add_argument("--hosts-dir", default=None, help="registry hosts.toml directory")
    p.add_argument("--log-format", default="json-file", choices=["json-file", "cri"],
                   help="container log format [%(default)s]")
    p.add_argument("-b", "--bridge", default="pallet0",
                   help="bridge device of the default network [%(default)s]")
    p.add_argument("--bip", default="10.213.0.0/16",
                   help="subnet of the default network [%(default)s]")
    p.add_argument("--cni-plugin-dir", action="append", default=None,
                   help="where the CNI plugins are [/usr/lib/cni, /opt/cni/bin]")
    p.add_argument("--debug", "-D", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.INFO,
                        format="%(asctime)s palletd %(levelname)s %(message)s")
    runtimes = {}
    for item in a.add_runtime:
        name, sep, path = item.partition("=")
        if not sep:
            sys.exit(f"palletd: --add-runtime {item!r}: NAME=PATH")
        runtimes[name] = path
    try:
        cfg = Config(root=a.root, exec_root=a.exec_root,
                     socket=a.host.removeprefix("unix://"), default_runtime=a.default_runtime,
                     runtimes=runtimes, snapshotter=a.snapshotter,
                     insecure_registries=a.insecure_registry, hosts_dir=a.hosts_dir,
                     log_format=a.log_format, bridge=a.bridge, bridge_subnet=a.bip,
                     cni_plugin_dirs=a.cni_plugin_dir)
    except PalletError as e:
        sys.exit(f"palletd: {e}")
    asyncio.run(_run(cfg))


async def _run(cfg: Config) -> None:
    from pallet.daemon.server import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP (systemctl reload): there is no configuration file to re-read yet
    loop.add_signal_handler(signal.SIGHUP, lambda: logging.getLogger("palletd").info(
        "SIGHUP: nothing to reload"))
    await serve(cfg, stop)


if __name__ == "__main__":
    main()
