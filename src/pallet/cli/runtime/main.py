"""`pallet-runtime`: runc's command line over pallet.runtime.

Start-up is on every container's critical path: this module imports only argparse and the
stdlib; each verb imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pallet import __version__
from pallet.errors import PalletError

DEFAULT_ROOT = "/run/pallet-runtime"
SPEC_VERSION = "1.2.0"


class Context:
    def __init__(self, ns: argparse.Namespace) -> None:
        self.root = os.path.abspath(ns.root)
        self.log = ns.log
        self.log_format = ns.log_format
        self.debug = ns.debug

    def emit(self, level: str, msg: str) -> None:
        if not self.log:
            return
        try:
            with open(self.log, "a") as f:
                if self.log_format == "json":
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    f.write(json.dumps({"level": level, "msg": msg, "time": stamp}) + "\n")
                else:
                    f.write(f"{level}: {msg}\n")
        except OSError:
            pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pallet-runtime",
        description="An OCI runtime with runc's command line",
    )
    p.add_argument("--version", "-v", action="store_true", help="print the version")
    p.add_argument("--root", default=DEFAULT_ROOT, help="state directory")
    p.add_argument("--log", default="", help="log file (errors are written there too)")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true",
                   help="systemd cgroup driver (refused: not supported yet)")
    p.add_argument("--criu", default="criu", help=argparse.SUPPRESS)
    p.add_argument("--rootless", default="auto", help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="verb", metavar="COMMAND")

    def verb(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_)

    def create_flags(c: argparse.ArgumentParser) -> None:
        c.add_argument("id")
        c.add_argument("--bundle", "-b", default=".")
        c.add_argument("--pid-file", default=None)
        c.add_argument("--console-socket", default=None)
        c.add_argument("--preserve-fds", type=int, default=0)
        c.add_argument("--no-pivot", action="store_true")
        c.add_argument("--no-new-keyring", action="store_true")

    create_flags(verb("create", "create a container"))
    r = verb("run", "create and start a container")
    create_flags(r)
    r.add_argument("--detach", "-d", action="store_true")
    r.add_argument("--keep", action="store_true")
    verb("start", "start a created container").add_argument("id")
    verb("state", "print a container's state").add_argument("id")
    k = verb("kill", "send a signal to a container's init")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    k.add_argument("--all", "-a", action="store_true")
    d = verb("delete", "delete a container")
    d.add_argument("id")
    d.add_argument("--force", "-f", action="store_true")
    ls = verb("list", "list containers")
    ls.add_argument("--format", "-f", default="table", choices=["table", "json"])
    ls.add_argument("--quiet", "-q", action="store_true")
    s = verb("spec", "write a default config.json")
    s.add_argument("--bundle", "-b", default=".")
    s.add_argument("--rootless", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    if ns.version:
        print(f"pallet-runtime version {__version__}\nspec: {SPEC_VERSION}")
        return 0
    if not ns.verb:
        _parser().print_help()
        return 0
    ctx = Context(ns)
    try:
        if ns.systemd_cgroup:
            from pallet.errors import InvalidArgument

            raise InvalidArgument("--systemd-cgroup: the systemd cgroup driver is not supported;"
                                  " use the cgroupfs driver")
        from pallet.cli.runtime import verbs

        return getattr(verbs, ns.verb)(ctx, ns) or 0
    except PalletError as e:
        ctx.emit("error", str(e))
        print(f"pallet-runtime: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        msg = f"{e.filename}: {e.strerror}" if e.filename else (e.strerror or str(e))
        ctx.emit("error", msg)
        print(f"pallet-runtime: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
