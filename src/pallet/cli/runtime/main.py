"""`pallet-runtime`: runc's command line over pallet.runtime.

Start-up is on every container's critical path: this module imports only the small parser
and the stdlib; each verb imports what it needs when it runs, and the process ends with
os._exit once its output is flushed (interpreter teardown costs milliseconds).
"""

from __future__ import annotations

import os
import sys

from pallet import __version__
from pallet.cli.runtime.flags import (
    Command,
    Flag,
    Namespace,
    UsageError,
    parse_command,
    parse_flags,
)
from pallet.errors import PalletError

DEFAULT_ROOT = "/run/pallet-runtime"
SPEC_VERSION = "1.2.0"

GLOBAL_FLAGS = [
    Flag(("--version", "-v"), bool, help="print the version"),
    Flag(("--help", "-h"), bool, help="show help"),
    Flag(("--root",), str, DEFAULT_ROOT, "state directory"),
    Flag(("--log",), str, "", "log file (errors are written there too)"),
    Flag(("--log-format",), str, "text", "text or json"),
    Flag(("--debug",), bool, help="debug output"),
    Flag(("--systemd-cgroup",), bool, help="systemd cgroup driver (refused: not supported)"),
    Flag(("--criu",), str, "criu", "path to criu"),
    Flag(("--rootless",), str, "auto", "ignored: rootless is detected"),
]

_CREATE_FLAGS = [
    Flag(("--bundle", "-b"), str, ".", "path to the bundle"),
    Flag(("--pid-file",), str, None, "write the init's pid here"),
    Flag(("--console-socket",), str, None, "unix socket that receives the pty master"),
    Flag(("--preserve-fds",), int, 0, "pass this many fds (from 3) to the container"),
    Flag(("--no-pivot",), bool, help="use MS_MOVE+chroot instead of pivot_root"),
    Flag(("--no-new-keyring",), bool, help="keep the caller's session keyring"),
]

COMMANDS = {c.name: c for c in [
    Command("create", "create a container", _CREATE_FLAGS, ["id"]),
    Command("run", "create and start a container", [
        *_CREATE_FLAGS,
        Flag(("--detach", "-d"), bool, help="do not wait for the container"),
        Flag(("--keep",), bool, help="do not delete the container after it exits"),
    ], ["id"]),
    Command("start", "start a created container", [], ["id"]),
    Command("state", "print a container's state", [], ["id"]),
    Command("kill", "send a signal to a container's init", [
        Flag(("--all", "-a"), bool, help="signal every process of the container"),
    ], ["id"], {"signal": "SIGTERM"}),
    Command("delete", "delete a container", [
        Flag(("--force", "-f"), bool, help="kill a running container first"),
    ], ["id"]),
    Command("list", "list containers", [
        Flag(("--format", "-f"), str, "table", "table or json"),
        Flag(("--quiet", "-q"), bool, help="only ids"),
    ], []),
    Command("exec", "run a process in a running container", [
        Flag(("--console-socket",), str, None, "unix socket that receives the pty master"),
        Flag(("--cwd",), str, None, "working directory in the container"),
        Flag(("--env", "-e"), list, help="set an environment variable (repeatable)"),
        Flag(("--tty", "-t"), bool, help="allocate a pseudo-TTY"),
        Flag(("--user", "-u"), str, None, "UID[:GID]"),
        Flag(("--additional-gids", "-g"), list, help="additional gid (repeatable)"),
        Flag(("--process", "-p"), str, None, "process.json to run (overrides the rest)"),
        Flag(("--detach", "-d"), bool, help="do not wait for the process"),
        Flag(("--pid-file",), str, None, "write the process's pid here"),
        Flag(("--process-label",), str, None, "SELinux label (not supported, ignored)"),
        Flag(("--apparmor",), str, None, "AppArmor profile (not supported, ignored)"),
        Flag(("--no-new-privs",), bool, help="set no_new_privs"),
        Flag(("--cap", "-c"), list, help="add a capability (repeatable)"),
        Flag(("--preserve-fds",), int, 0, "pass this many fds (from 3) to the process"),
        Flag(("--ignore-paused",), bool, help="exec even if the container is paused"),
        Flag(("--cgroup",), str, None, "sub-cgroup to run in (not supported)"),
    ], ["id"], rest=True),
    Command("ps", "list the processes of a container", [
        Flag(("--format", "-f"), str, "table", "table or json"),
    ], ["id"], rest=True),
    Command("pause", "freeze every process of a container", [], ["id"]),
    Command("resume", "thaw a paused container", [], ["id"]),
    Command("events", "print a container's events and stats as JSON", [
        Flag(("--interval",), str, "5s", "stats interval"),
        Flag(("--stats",), bool, help="print stats once and exit"),
    ], ["id"]),
    Command("update", "change a running container's resource limits", [
        Flag(("--resources", "-r"), str, None, "linux.resources JSON file ('-' for stdin)"),
        Flag(("--memory",), str, None, "memory limit (bytes, k/m/g suffixes)"),
        Flag(("--memory-reservation",), str, None, "memory soft limit"),
        Flag(("--memory-swap",), str, None, "memory+swap limit"),
        Flag(("--kernel-memory",), str, None, "kernel memory limit (v1)"),
        Flag(("--kernel-memory-tcp",), str, None, "kernel TCP memory limit (v1)"),
        Flag(("--cpu-shares",), str, None, "CPU shares"),
        Flag(("--cpu-quota",), str, None, "CFS quota (µs per period)"),
        Flag(("--cpu-period",), str, None, "CFS period (µs)"),
        Flag(("--cpu-rt-period",), str, None, "realtime period"),
        Flag(("--cpu-rt-runtime",), str, None, "realtime runtime"),
        Flag(("--cpuset-cpus",), str, None, "CPUs"),
        Flag(("--cpuset-mems",), str, None, "memory nodes"),
        Flag(("--pids-limit",), str, None, "maximum number of tasks"),
        Flag(("--blkio-weight",), str, None, "block IO weight"),
    ], ["id"]),
    Command("checkpoint", "checkpoint a running container with CRIU", [
        Flag(("--image-path",), str, None, "where to write the images"),
        Flag(("--work-path",), str, None, "where CRIU writes its logs"),
        Flag(("--leave-running",), bool, help="keep the container running"),
        Flag(("--tcp-established",), bool, help="allow open TCP connections"),
        Flag(("--ext-unix-sk",), bool, help="allow external unix sockets"),
        Flag(("--shell-job",), bool, help="allow shell jobs"),
        Flag(("--file-locks",), bool, help="handle file locks"),
    ], ["id"]),
    Command("restore", "restore a container from a CRIU checkpoint", [
        Flag(("--image-path",), str, None, "the checkpoint's images"),
        Flag(("--work-path",), str, None, "where CRIU writes its logs"),
        Flag(("--bundle", "-b"), str, ".", "path to the bundle"),
        Flag(("--detach", "-d"), bool, help="(always detached)"),
        Flag(("--tcp-established",), bool, help="restore open TCP connections"),
        Flag(("--ext-unix-sk",), bool, help="allow external unix sockets"),
        Flag(("--shell-job",), bool, help="allow shell jobs"),
        Flag(("--file-locks",), bool, help="handle file locks"),
    ], ["id"]),
    Command("features", "describe what this runtime supports (JSON)", [], []),
    Command("spec", "write a default config.json", [
        Flag(("--bundle", "-b"), str, ".", "where to write it"),
        Flag(("--rootless",), bool, help="for an unprivileged user"),
    ], []),
]}


def usage() -> str:
    lines = ["usage: pallet-runtime [global flags] COMMAND [flags] [args]", "",
             "An OCI runtime with runc's command line.", "", "commands:"]
    lines += [f"  {c.name:10} {c.help}" for c in COMMANDS.values()]
    lines += ["", "global flags:"]
    lines += [f"  {', '.join(f.names):28} {f.help}" for f in GLOBAL_FLAGS]
    return "\n".join(lines)


def default_root(given: str) -> str:
    """runc's rule: an unprivileged caller keeps its state under $XDG_RUNTIME_DIR."""
    if given == DEFAULT_ROOT and os.geteuid() != 0 and os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "pallet-runtime")
    return given


class Context:
    def __init__(self, ns: Namespace) -> None:
        self.root = os.path.abspath(default_root(ns.root))
        self.log = ns.log
        self.log_format = ns.log_format
        self.debug = ns.debug

    def emit(self, level: str, msg: str) -> None:
        if not self.log:
            return
        import time

        from pallet import jsonlite as json

        try:
            with open(self.log, "a") as f:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                # runc's (logrus) shapes: containerd and podman read these back.
                if self.log_format == "json":
                    f.write(json.dumps({"level": level, "msg": msg, "time": stamp}) + "\n")
                else:
                    f.write(f"time={json.dumps(stamp)} level={level} msg={json.dumps(msg)}\n")
        except OSError:
            pass


def _run(argv: list[str]) -> int:
    ns = Namespace()
    try:
        rest = parse_flags(argv, GLOBAL_FLAGS, ns, stop_at_positional=True)
        if ns.version:
            print(f"pallet-runtime version {__version__}\nspec: {SPEC_VERSION}")
            return 0
        if not rest or ns.help or rest[0] in ("help", "--help"):
            print(usage())
            return 0
        cmd = COMMANDS.get(rest[0])
        if cmd is None:
            raise UsageError(f"no such command: {rest[0]}\n\n{usage()}")
        if "--help" in rest[1:] or "-h" in rest[1:]:
            print(cmd.usage())
            return 0
        parse_command(cmd, rest[1:], ns)
    except UsageError as e:
        print(f"pallet-runtime: {e}", file=sys.stderr)
        return 2
    ctx = Context(ns)
    try:
        if ns.systemd_cgroup:
            from pallet.errors import InvalidArgument

            raise InvalidArgument("--systemd-cgroup: the systemd cgroup driver is not supported;"
                                  " use the cgroupfs driver")
        from pallet.cli.runtime import verbs

        return getattr(verbs, cmd.name)(ctx, ns) or 0
    except PalletError as e:
        ctx.emit("error", str(e))
        print(f"pallet-runtime: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        msg = f"{e.filename}: {e.strerror}" if e.filename else (e.strerror or str(e))
        ctx.emit("error", msg)
        print(f"pallet-runtime: {msg}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    code = _run(sys.argv[1:] if argv is None else argv)
    if argv is not None:
        return code
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)


if __name__ == "__main__":
    main()
