"""One function per runc verb: argv in, pallet.runtime calls out."""

from __future__ import annotations

import os

from pallet import jsonlite
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
    print(jsonlite.dumps(st.public(), indent=2))
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
        print(jsonlite.dumps(states or None))  # runc prints null for no containers
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
    write_atomic(path, (jsonlite.dumps(doc, indent="\t") + "\n").encode(), 0o644)
    return 0




def exec(ctx: Context, ns: Namespace) -> int:
    from pallet.cli.runtime import run as run_mod
    from pallet.errors import InvalidArgument
    from pallet.runtime.exec import ExecOptions, build_process, exec_process

    st = ContainerState.load(ctx.root, ns.id)
    if ns.process:
        try:
            with open(ns.process) as f:
                proc = jsonlite.loads(f.read())
        except OSError as e:
            raise InvalidArgument(f"--process {ns.process}: {e.strerror}") from None
        except ValueError as e:
            raise InvalidArgument(f"--process {ns.process}: invalid JSON: {e}") from None
        if not isinstance(proc, dict):
            raise InvalidArgument(f"--process {ns.process}: not a JSON object")
    else:
        if not ns.extra_args:
            raise InvalidArgument("exec: no command given")
        try:
            gids = [int(g) for g in ns.additional_gids]
        except ValueError:
            raise InvalidArgument("--additional-gids: expected numbers") from None
        proc = build_process(st.config, args=ns.extra_args, tty=ns.tty, cwd=ns.cwd,
                             env=ns.env, user=ns.user, additional_gids=gids,
                             add_caps=ns.cap, no_new_privs=ns.no_new_privs)
    own = bool(proc.get("terminal")) and not ns.console_socket
    if own and ns.detach:
        raise InvalidArgument("exec --detach with --tty needs --console-socket")
    ours = theirs = None
    if own:
        ours, theirs = run_mod.own_console()
    opts = ExecOptions(proc, console_socket=ns.console_socket, console=theirs,
                       pid_file=ns.pid_file, preserve_fds=ns.preserve_fds, detach=ns.detach,
                       ignore_paused=ns.ignore_paused, subreaper=not ns.detach)
    pid = exec_process(st, opts)
    if ns.detach:
        return 0
    master = None
    if ours is not None:
        assert theirs is not None
        theirs.close()
        master = run_mod.receive_master(ours)
    return run_mod.supervise(pid, master)


def ps(ctx: Context, ns: Namespace) -> int:
    from pallet.runtime import container as ops

    st = ContainerState.load(ctx.root, ns.id)
    pids = ops.pids(st)
    if ns.format == "json":
        print(jsonlite.dumps(pids))
        return 0
    import subprocess

    out = subprocess.run(["ps", *(ns.extra_args or ["-ef"])], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        from pallet.errors import InvalidArgument

        raise InvalidArgument(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        from pallet.errors import InvalidArgument

        raise InvalidArgument("ps: its output has no PID column")
    col = header.index("PID")
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0


def pause(ctx: Context, ns: Namespace) -> int:
    container.pause(ContainerState.load(ctx.root, ns.id))
    return 0


def resume(ctx: Context, ns: Namespace) -> int:
    container.resume(ContainerState.load(ctx.root, ns.id))
    return 0


def events(ctx: Context, ns: Namespace) -> int:
    from pallet.runtime import events as ev

    st = ContainerState.load(ctx.root, ns.id)
    if ns.stats:
        print(jsonlite.dumps(ev.stats_event(st)))
        return 0
    ev.follow(st, ev.parse_interval(ns.interval))
    return 0


def update(ctx: Context, ns: Namespace) -> int:
    from pallet.runtime import update as upd

    st = ContainerState.load(ctx.root, ns.id)
    upd.update(st, upd.resources_from_flags(ns))
    return 0


def features(ctx: Context, ns: Namespace) -> int:
    from pallet.runtime.features import features as feats

    print(jsonlite.dumps(feats(), indent=4))
    return 0


def checkpoint(ctx: Context, ns: Namespace) -> int:
    from pallet.runtime import checkpoint as cp

    cp.checkpoint(ContainerState.load(ctx.root, ns.id), dict(vars(ns)))
    return 0


def restore(ctx: Context, ns: Namespace) -> int:
    from pallet.runtime import checkpoint as cp

    cp.restore(ctx.root, ns.id, ns.bundle, dict(vars(ns)))
    return 0
