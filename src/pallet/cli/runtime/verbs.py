"""One function per runc verb: argv in, pallet.runtime calls out."""

from __future__ import annotations

import json
import os

from pallet.errors import AlreadyExists
from pallet.runtime import container
from pallet.runtime.state import ContainerState, list_ids

TYPE_CHECKING = False  # `typing` itself costs ms of imports on every runtime start

if TYPE_CHECKING:
    from pallet.cli.runtime.flags import Namespace
    from pallet.cli.runtime.main import Context


def _create_opts(ns: Namespace, **kw: object):
    from pallet.runtime.create import CreateOptions

    return CreateOptions(bundle=ns.bundle, pid_file=ns.pid_file,
                         console_socket=ns.console_socket, preserve_fds=ns.preserve_fds,
                         no_pivot=ns.no_pivot, no_new_keyring=ns.no_new_keyring, **kw)


def create(ctx: Context, ns: Namespace) -> int:
    from pallet.runtime.create import create as do_create

    do_create(ctx.root, ns.id, _create_opts(ns))
    return 0


def start(ctx: Context, ns: Namespace) -> int:
    container.start(ContainerState.load(ctx.root, ns.id))
    return 0


def run(ctx: Context, ns: Namespace) -> int:
    from pallet.cli.runtime import run as run_mod

    return run_mod.run(ctx, ns, _create_opts)


def state(ctx: Context, ns: Namespace) -> int:
    st = ContainerState.load(ctx.root, ns.id)
    print(json.dumps(st.public(), indent=2))
    return 0


def kill(ctx: Context, ns: Namespace) -> int:
    st = ContainerState.load(ctx.root, ns.id)
    container.kill(st, container.parse_signal(ns.signal), ns.all)
    return 0


def delete(ctx: Context, ns: Namespace) -> int:
    st = ContainerState.load(ctx.root, ns.id)
    container.delete(st, ns.force)
    return 0


def list(ctx: Context, ns: Namespace) -> int:
    states = []
    for cid in list_ids(ctx.root):
        try:
            states.append(ContainerState.load(ctx.root, cid).public())
        except Exception:
            continue
    if ns.quiet:
        for s in states:
            print(s["id"])
        return 0
    if ns.format == "json":
        print(json.dumps(states or None))  # runc prints null for no containers
        return 0
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    for s in states:
        rows.append((s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"],
                     s["owner"] or "root"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def spec(ctx: Context, ns: Namespace) -> int:
    from pallet.oci.spec_default import default_spec
    from pallet.runtime.state import write_atomic

    path = os.path.join(ns.bundle, "config.json")
    if os.path.exists(path):
        raise AlreadyExists(f"{path} already exists: remove it first")
    doc = default_spec(rootless=ns.rootless)
    write_atomic(path, (json.dumps(doc, indent="\t") + "\n").encode(), 0o644)
    return 0


