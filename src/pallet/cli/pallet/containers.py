"""`pallet run/create/start/stop/restart/kill/rm/ps/logs/exec/attach/inspect/wait`: docker's
words, flags and output, as a client of palletd (`pallet.cli.pallet.client`)."""

from __future__ import annotations

import sys
import time

from pallet.cli.pallet import cmdline, mountflags, term
from pallet.cli.pallet.client import Client, cid
from pallet.cli.pallet.fmt import (
    SHORT_ID,
    ago,
    parse_size,
    print_objects,
    print_rows,
)
from pallet.errors import InvalidArgument, NotFound

TYPE_CHECKING = False  # `typing` costs ms of imports on every `pallet` command
if TYPE_CHECKING:
    from typing import Any

CMD = {"help_option_names": ["--help"]}  # -h is --hostname, as in docker
RUN = {**CMD, "allow_interspersed_args": False}


def client(ctx: cmdline.Context) -> Client:
    root = ctx.find_root()
    return Client(root.meta.get("pallet.host"), (root.obj or {}).get("root"))


# --- create options -----------------------------------------------------------------------


def _create_options(f: Any) -> Any:
    opts = [
        cmdline.option("-i", "--interactive", is_flag=True, help="keep STDIN open"),
        cmdline.option("-t", "--tty", is_flag=True, help="allocate a pseudo-TTY"),
        cmdline.option("--name", default=None, help="container name"),
        cmdline.option("-e", "--env", multiple=True, help="set environment variables"),
        cmdline.option("--env-file", multiple=True, type=cmdline.Path(exists=True, dir_okay=False),
                       help="read environment variables from a file"),
        cmdline.option("-w", "--workdir", default=None, help="working directory"),
        cmdline.option("-u", "--user", default=None, help="user[:group] (name or id)"),
        cmdline.option("--entrypoint", default=None, help="overwrite the image's ENTRYPOINT"),
        cmdline.option("-h", "--hostname", default=None, help="container host name"),
        cmdline.option("-l", "--label", multiple=True, help="metadata key=value"),
        cmdline.option("--restart", default="no",
                       help="no, on-failure[:max-retries], always, unless-stopped"),
        cmdline.option("--rm", "auto_remove", is_flag=True,
                       help="remove the container when it exits"),
        cmdline.option("--cpus", type=float, default=None, help="number of CPUs"),
        cmdline.option("-m", "--memory", default=None, help="memory limit (e.g. 64m)"),
        cmdline.option("--pids-limit", type=int, default=None, help="tune the pids limit"),
        cmdline.option("--ulimit", multiple=True, help="ulimit, e.g. nofile=1024:2048"),
        cmdline.option("--read-only", is_flag=True, help="read-only root filesystem"),
        cmdline.option("--cap-add", multiple=True, help="add Linux capabilities"),
        cmdline.option("--cap-drop", multiple=True, help="drop Linux capabilities"),
        cmdline.option("--security-opt", multiple=True, help="security options"),
        cmdline.option("--privileged", is_flag=True, help="extended privileges"),
        cmdline.option("--init", is_flag=True, help="run an init (docker-init) as PID 1"),
        cmdline.option("--runtime", default=None, help="OCI runtime (pallet-runtime, runc)"),
        cmdline.option("--pull", type=cmdline.Choice(["missing", "always", "never"]),
                       default="missing", show_default=True, help="pull the image"),
        cmdline.option("-v", "--volume", multiple=True,
                       help="bind mount or volume: /host:/ctr[:ro], name:/ctr, /ctr"),
        cmdline.option("--mount", multiple=True, help="type=bind|volume|tmpfs,dst=...[,...]"),
        cmdline.option("--tmpfs", multiple=True, help="a tmpfs: /ctr[:size=64m,...]"),
        cmdline.option("--network", default=None,
                       help="bridge (default), none, host, container:<name>, or a network"),
        cmdline.option("--network-alias", multiple=True, help="a name on the network"),
        cmdline.option("--ip", default=None, help="IPv4 address on a user-defined network"),
        cmdline.option("-p", "--publish", multiple=True,
                       help="publish a port: [ip:][hostPort:]containerPort[/proto]"),
        cmdline.option("-P", "--publish-all", is_flag=True,
                       help="publish every exposed port to a free host port"),
        cmdline.option("--expose", multiple=True, help="expose a port or a range"),
        cmdline.option("--dns", multiple=True, help="DNS servers"),
        cmdline.option("--dns-search", multiple=True, help="DNS search domains"),
        cmdline.option("--dns-option", multiple=True, help="DNS options"),
        cmdline.option("--add-host", multiple=True, help="an /etc/hosts entry (host:ip)"),
        cmdline.option("--link", multiple=True,
                       help="a legacy link to another container (name[:alias])"),
        cmdline.option("--log-driver", default=None, help="json-file (the only driver)"),
        cmdline.option("--log-opt", multiple=True, help="log options: max-size=10m, max-file=3"),
        cmdline.option("--stop-signal", default=None, help="signal to stop the container"),
        cmdline.option("--stop-timeout", type=int, default=None,
                       help="seconds to wait before killing on stop"),
        cmdline.option("--platform", default=None, help="os/arch of the image"),
        cmdline.option("--health-cmd", default=None, help="command to run to check health"),
        cmdline.option("--health-interval", default=None, help="time between checks (30s)"),
        cmdline.option("--health-timeout", default=None, help="longest a check may run (30s)"),
        cmdline.option("--health-start-period", default=None,
                       help="start-up time during which failures do not count"),
        cmdline.option("--health-retries", type=int, default=None,
                       help="failures in a row that make it unhealthy (3)"),
        cmdline.option("--no-healthcheck", is_flag=True, help="disable the image's HEALTHCHECK"),
        cmdline.option("--cpu-shares", type=int, default=None, help="relative CPU weight"),
        cmdline.option("--cpuset-cpus", default=None, help="CPUs to run on (0-3, 0,1)"),
        cmdline.option("--cpuset-mems", default=None, help="memory nodes to use"),
        cmdline.option("--memory-swap", default=None, help="memory+swap limit (-1: no limit)"),
        cmdline.option("--memory-reservation", default=None, help="memory soft limit"),
        cmdline.option("--memory-swappiness", type=int, default=None, help="0 to 100"),
        cmdline.option("--oom-kill-disable", is_flag=True, help="disable the OOM killer"),
        cmdline.option("--oom-score-adj", type=int, default=None, help="-1000 to 1000"),
        cmdline.option("--shm-size", default=None, help="size of /dev/shm (64m)"),
        cmdline.option("--ipc", default=None, help="IPC namespace: private, host or none"),
        cmdline.option("--pid", default=None, help="PID namespace: host or container:<x>"),
        cmdline.option("--uts", default=None, help="UTS namespace: host"),
        cmdline.option("--cgroupns", default=None, help="cgroup namespace: host or private"),
        cmdline.option("--cgroup-parent", default=None, help="parent cgroup of the container"),
        cmdline.option("--device", multiple=True,
                       help="a host device: /dev/x[:/dev/in-container][:rwm]"),
        cmdline.option("--device-cgroup-rule", multiple=True,
                       help="a device cgroup rule: 'c 1:3 rwm'"),
        cmdline.option("--sysctl", multiple=True, help="a namespaced sysctl: name=value"),
        cmdline.option("--group-add", multiple=True, help="an additional group"),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _env(env: tuple[str, ...], env_files: tuple[str, ...]) -> list[str]:
    import os

    out: list[str] = []
    for path in env_files:
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if line and not line.startswith("#"):
                    out.append(line if "=" in line else f"{line}={os.environ.get(line, '')}")
    for e in env:
        out.append(e if "=" in e else f"{e}={os.environ.get(e, '')}")
    return out


def _restart(policy: str) -> dict[str, Any]:
    name, _, count = policy.partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped"):
        raise cmdline.BadParameter(f"invalid restart policy {policy!r}", param_hint="--restart")
    return {"Name": name, "MaximumRetryCount": int(count) if count else 0}


def _device(text: str) -> dict[str, str]:
    """`--device src[:dst][:perms]`, as the docker CLI reads it."""
    parts = text.split(":")
    src, dst, perms = parts[0], "", "rwm"
    if len(parts) == 3:
        dst, perms = parts[1], parts[2]
    elif len(parts) == 2:
        if parts[1] and not set(parts[1]) - set("rwm"):
            perms = parts[1]
        else:
            dst = parts[1]
    elif len(parts) > 3:
        raise cmdline.BadParameter(f"invalid device specification: {text}",
                                   param_hint="--device")
    return {"PathOnHost": src, "PathInContainer": dst or src, "CgroupPermissions": perms}


def _kernel_options(host: dict[str, Any], o: dict[str, Any]) -> None:
    """Namespaces, devices, sysctls and the finer resource knobs of `run`/`create`."""
    sysctls = {}
    for item in o["sysctl"]:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise cmdline.BadParameter(f"invalid sysctl {item!r} (name=value)",
                                       param_hint="--sysctl")
        sysctls[k] = v
    def size(text: str | None) -> int | None:
        return None if text is None else -1 if text == "-1" else parse_size(text)

    host.update({k: v for k, v in {
        "MemorySwap": size(o["memory_swap"]),
        "MemoryReservation": size(o["memory_reservation"]), "ShmSize": size(o["shm_size"]),
        "CpuShares": o["cpu_shares"], "CpusetCpus": o["cpuset_cpus"],
        "CpusetMems": o["cpuset_mems"], "MemorySwappiness": o["memory_swappiness"],
        "OomKillDisable": o["oom_kill_disable"] or None, "OomScoreAdj": o["oom_score_adj"],
        "IpcMode": o["ipc"], "PidMode": o["pid"], "UTSMode": o["uts"],
        "CgroupnsMode": o["cgroupns"], "CgroupParent": o["cgroup_parent"],
        "Devices": [_device(d) for d in o["device"]] or None,
        "DeviceCgroupRules": list(o["device_cgroup_rule"]) or None,
        "Sysctls": sysctls or None, "GroupAdd": list(o["group_add"]) or None,
    }.items() if v is not None})


def _healthcheck(o: dict[str, Any]) -> dict[str, Any] | None:
    """Config.Healthcheck from the --health-* flags, as the docker CLI builds it."""
    timing = {"Interval": o["health_interval"], "Timeout": o["health_timeout"],
              "StartPeriod": o["health_start_period"]}
    if o["no_healthcheck"]:
        if o["health_cmd"] or any(timing.values()) or o["health_retries"] is not None:
            raise cmdline.UsageError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not o["health_cmd"] and not any(timing.values()) and o["health_retries"] is None:
        return None
    from pallet.build.dockerfile import parse_duration

    out: dict[str, Any] = {"Test": ["CMD-SHELL", o["health_cmd"]] if o["health_cmd"] else []}
    for key, text in timing.items():
        if text:
            flag = "--health-" + {"StartPeriod": "start-period"}.get(key, key.lower())
            try:
                out[key] = parse_duration(text)
            except ValueError as e:
                raise cmdline.BadParameter(str(e), param_hint=flag) from None
            if out[key] < 0:
                raise cmdline.BadParameter(f"{flag} cannot be negative", param_hint=flag)
    if o["health_retries"] is not None:
        if o["health_retries"] < 0:
            raise cmdline.BadParameter("--health-retries cannot be negative",
                                       param_hint="--health-retries")
        out["Retries"] = o["health_retries"]
    return out


def _ulimits(items: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for u in items:
        name, _, vals = u.partition("=")
        soft, _, hard = vals.partition(":")
        try:
            out.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
        except ValueError:
            raise cmdline.BadParameter(f"invalid ulimit {u!r}", param_hint="--ulimit") from None
    return out


def _network_options(host: dict[str, Any], o: dict[str, Any]) -> dict[str, Any]:
    """-p/-P/--expose/--dns*/--add-host/--link into HostConfig; the exposed ports
    returned."""
    from pallet.network import ports

    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in o["publish"]:
        try:
            maps = ports.parse(spec)
        except InvalidArgument as e:
            raise cmdline.BadParameter(str(e), param_hint="--publish") from None
        for m in maps:
            key = f"{m['containerPort']}/{m['protocol']}"
            exposed[key] = {}
            bindings.setdefault(key, []).append(
                {"HostIp": m["hostIP"], "HostPort": str(m["hostPort"] or "")})
    for spec in o["expose"]:
        port, _, proto = spec.partition("/")
        lo, _, hi = port.partition("-")
        for n in range(int(lo), int(hi or lo) + 1):
            exposed[f"{n}/{proto or 'tcp'}"] = {}
    host.update({"PortBindings": bindings or None, "PublishAllPorts": o["publish_all"],
                 "Dns": list(o["dns"]) or None, "DnsSearch": list(o["dns_search"]) or None,
                 "DnsOptions": list(o["dns_option"]) or None,
                 "ExtraHosts": list(o["add_host"]) or None, "Links": list(o["link"]) or None})
    return exposed


def create_body(image: str, command: tuple[str, ...], o: dict[str, Any], *, detach: bool
                ) -> dict[str, Any]:
    attach = not detach
    binds, anonymous = mountflags.volumes(o["volume"])
    host: dict[str, Any] = {
        "AutoRemove": o["auto_remove"], "RestartPolicy": _restart(o["restart"]),
        "ReadonlyRootfs": o["read_only"], "CapAdd": list(o["cap_add"]) or None,
        "CapDrop": list(o["cap_drop"]) or None, "SecurityOpt": list(o["security_opt"]) or None,
        "Privileged": o["privileged"], "Init": True if o["init"] else None,
        "Runtime": o["runtime"] or "", "Binds": binds or None,
        "Mounts": [mountflags.parse_mount(m) for m in o["mount"]] or None,
        "Tmpfs": mountflags.tmpfs(o["tmpfs"]) or None,
        "NetworkMode": o["network"] or "default", "Ulimits": _ulimits(o["ulimit"]) or None,
    }
    exposed = _network_options(host, o)
    _kernel_options(host, o)
    if o["log_driver"] or o["log_opt"]:
        host["LogConfig"] = {"Type": o["log_driver"] or "json-file",
                             "Config": dict(x.partition("=")[::2] for x in o["log_opt"])}
    if o["cpus"]:
        host["NanoCpus"] = int(o["cpus"] * 1e9)
    if o["memory"]:
        host["Memory"] = parse_size(o["memory"])
    if o["pids_limit"]:
        host["PidsLimit"] = o["pids_limit"]
    body: dict[str, Any] = {
        "Image": image, "Cmd": list(command) or None, "Env": _env(o["env"], o["env_file"]),
        "WorkingDir": o["workdir"] or "", "User": o["user"] or "",
        "Hostname": o["hostname"] or "", "Tty": o["tty"], "OpenStdin": o["interactive"],
        "StdinOnce": o["interactive"] and attach, "AttachStdin": o["interactive"] and attach,
        "AttachStdout": attach, "AttachStderr": attach,
        "Labels": dict(x.split("=", 1) if "=" in x else (x, "") for x in o["label"]),
        "Volumes": anonymous or None, "HostConfig": host,
    }
    if exposed:
        body["ExposedPorts"] = exposed
    if o["network_alias"] or o["ip"]:
        body["NetworkingConfig"] = {"EndpointsConfig": {host["NetworkMode"]: {
            "Aliases": list(o["network_alias"]) or None,
            "IPAMConfig": {"IPv4Address": o["ip"]} if o["ip"] else None}}}
    if o["entrypoint"] is not None:
        body["Entrypoint"] = [o["entrypoint"]] if o["entrypoint"] else [""]
    if o["stop_signal"]:
        body["StopSignal"] = o["stop_signal"]
    health = _healthcheck(o)
    if health is not None:
        body["Healthcheck"] = health
    if o["stop_timeout"] is not None:
        body["StopTimeout"] = o["stop_timeout"]
    if o["tty"] and (s := term.size()):
        host["ConsoleSize"] = list(s)
    return body


def pull_image(c: Client, image: str, platform: str | None = None) -> None:
    from pallet.images import reference

    r = reference.parse(image)
    params = {"fromImage": f"{r.domain}/{r.path}" if r.domain != "docker.io" else r.path,
              "tag": str(r.digest) if r.digest else r.tag, "platform": platform}
    for msg in c.stream("POST", "/images/create", params, headers={"X-Registry-Auth": "e30="}):
        if "error" in msg:
            raise InvalidArgument(msg["error"])
        status = msg.get("status", "")
        if "progressDetail" in msg and msg.get("progressDetail"):
            continue
        cmdline.echo((f"{msg['id']}: " if msg.get("id") else "") + status, err=True)


def _create(c: Client, image: str, command: tuple[str, ...], o: dict[str, Any],
            detach: bool) -> str:
    body = create_body(image, command, o, detach=detach)
    params = {"name": o["name"], "platform": o["platform"]}
    if o["pull"] == "always":
        pull_image(c, image, o["platform"])
    try:
        return c.post("/containers/create", body, **params)["Id"]
    except NotFound as e:
        if o["pull"] == "never" or "No such image" not in str(e):
            raise
    cmdline.echo(f"Unable to find image '{image}' locally", err=True)
    pull_image(c, image, o["platform"])
    return c.post("/containers/create", body, **params)["Id"]


class _Wait:
    """`POST /containers/{id}/wait`, sent now and read later (the daemon answers the
    headers at once, the status at the exit)."""

    def __init__(self, c: Client, id_: str, condition: str) -> None:
        self.conn, self.resp = c.send("POST", f"/containers/{id_}/wait",
                                      {"condition": condition})

    def result(self) -> int:
        try:
            raw = self.resp.read()
        finally:
            self.conn.close()
        from pallet import jsonlite as json

        d = json.loads(raw.strip().splitlines()[-1]) if raw.strip() else {}
        if d.get("Error"):
            raise InvalidArgument(str(d["Error"].get("Message")))
        return int(d.get("StatusCode", 0))


def _resize_fn(c: Client, path: str) -> Any:
    def resize(h: int, w: int) -> None:
        c.post(path, h=h, w=w)
    return resize


def attach_stream(c: Client, id_: str, *, tty: bool, stdin: bool, detach_keys: bytes,
                  before_copy: Any = None) -> bool:
    sock, first = c.hijack(f"/containers/{id_}/attach",
                           {"stream": True, "stdin": stdin, "stdout": True, "stderr": True})
    if before_copy is not None:
        before_copy()
    resize = _resize_fn(c, f"/containers/{id_}/resize") if tty else None
    with term.raw_mode(tty and stdin), term.on_resize(resize):
        if tty and (s := term.size()):
            import threading

            threading.Thread(target=lambda: _quiet(resize, *s), daemon=True).start()
        try:
            return term.copy(sock, first, tty_=tty, stdin=stdin, detach_keys=detach_keys)
        finally:
            sock.close()


def _quiet(fn: Any, *a: Any) -> None:
    time.sleep(0.05)
    try:
        fn(*a)
    except Exception:
        pass


# --- verbs ----------------------------------------------------------------------------------


@cmdline.command("run", context_settings=RUN)
@cmdline.option("-d", "--detach", is_flag=True, help="run in the background, print the ID")
@cmdline.option("--detach-keys", default=None, help="key sequence to detach (ctrl-p,ctrl-q)")
@_create_options
@cmdline.argument("image")
@cmdline.argument("command", nargs=-1, type=cmdline.UNPROCESSED)
@cmdline.pass_context
def run_cmd(ctx: cmdline.Context, detach: bool, detach_keys: str | None, image: str,
            command: tuple[str, ...], **o: Any) -> None:
    """Create and run a new container from an image."""
    c = client(ctx)
    if detach and o["auto_remove"] and o["restart"] != "no":
        raise cmdline.UsageError("--rm and --restart cannot be combined")
    id_ = _create(c, image, command, o, detach)
    if detach:
        c.post(f"/containers/{id_}/start")
        cmdline.echo(id_)
        return
    keys = term.parse_detach_keys(detach_keys)
    waiter = _Wait(c, id_, "removed" if o["auto_remove"] else "next-exit")
    state: dict[str, Any] = {}

    def start() -> None:
        try:
            c.post(f"/containers/{id_}/start")
        except Exception as e:  # reported after the stream ends
            state["error"] = e

    ended = attach_stream(c, id_, tty=o["tty"], stdin=o["interactive"], detach_keys=keys,
                          before_copy=start)
    if "error" in state:
        raise state["error"]
    if not ended:
        cmdline.echo("", err=True)
        return
    sys.exit(waiter.result())


@cmdline.command("create", context_settings=RUN)
@_create_options
@cmdline.argument("image")
@cmdline.argument("command", nargs=-1, type=cmdline.UNPROCESSED)
@cmdline.pass_context
def create_cmd(ctx: cmdline.Context, image: str, command: tuple[str, ...], **o: Any) -> None:
    """Create a new container."""
    cmdline.echo(_create(client(ctx), image, command, o, detach=True))


@cmdline.command("start", context_settings=CMD)
@cmdline.option("-a", "--attach", is_flag=True, help="attach STDOUT/STDERR")
@cmdline.option("-i", "--interactive", is_flag=True, help="attach STDIN")
@cmdline.argument("containers", nargs=-1, required=True)
@cmdline.pass_context
def start_cmd(ctx: cmdline.Context, attach: bool, interactive: bool,
              containers: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    c = client(ctx)
    if attach or interactive:
        info = c.get(f"/containers/{cid(containers[0])}/json")
        id_ = info["Id"]
        waiter = _Wait(c, id_, "next-exit")
        attach_stream(c, id_, tty=info["Config"]["Tty"], stdin=interactive,
                      detach_keys=term.DETACH_KEYS,
                      before_copy=lambda: c.post(f"/containers/{id_}/start"))
        sys.exit(waiter.result())
    for name in containers:
        c.post(f"/containers/{cid(name)}/start")
        cmdline.echo(name)


def _each(ctx: cmdline.Context, names: tuple[str, ...], fn: Any) -> None:
    failed = False
    for name in names:
        try:
            fn(name)
            cmdline.echo(name)
        except Exception as e:
            cmdline.echo(str(e), err=True)
            failed = True
    if failed:
        sys.exit(1)


@cmdline.command("stop", context_settings=CMD)
@cmdline.option("-t", "--time", "timeout", type=int, default=None, help="seconds to wait")
@cmdline.option("-s", "--signal", "sig", default=None, help="signal to send")
@cmdline.argument("containers", nargs=-1, required=True)
@cmdline.pass_context
def stop_cmd(ctx: cmdline.Context, timeout: int | None, sig: str | None,
             containers: tuple[str, ...]) -> None:
    """Stop one or more running containers."""
    c = client(ctx)
    _each(ctx, containers, lambda n: c.post(f"/containers/{cid(n)}/stop", t=timeout,
                                            signal=sig))


@cmdline.command("restart", context_settings=CMD)
@cmdline.option("-t", "--time", "timeout", type=int, default=None, help="seconds to wait")
@cmdline.argument("containers", nargs=-1, required=True)
@cmdline.pass_context
def restart_cmd(ctx: cmdline.Context, timeout: int | None, containers: tuple[str, ...]) -> None:
    """Restart one or more containers."""
    c = client(ctx)
    _each(ctx, containers, lambda n: c.post(f"/containers/{cid(n)}/restart", t=timeout))


@cmdline.command("kill", context_settings=CMD)
@cmdline.option("-s", "--signal", "sig", default=None, help="signal to send (default KILL)")
@cmdline.argument("containers", nargs=-1, required=True)
@cmdline.pass_context
def kill_cmd(ctx: cmdline.Context, sig: str | None, containers: tuple[str, ...]) -> None:
    """Kill one or more running containers."""
    c = client(ctx)
    _each(ctx, containers, lambda n: c.post(f"/containers/{cid(n)}/kill", signal=sig))


@cmdline.command("rm", context_settings=CMD)
@cmdline.option("-f", "--force", is_flag=True, help="kill a running container first")
@cmdline.option("-v", "--volumes", is_flag=True, help="remove its anonymous volumes too")
@cmdline.option("-l", "--link", is_flag=True, help="remove the link /parent/alias instead")
@cmdline.argument("containers", nargs=-1, required=True)
@cmdline.pass_context
def rm_cmd(ctx: cmdline.Context, force: bool, volumes: bool, link: bool,
           containers: tuple[str, ...]) -> None:
    """Remove one or more containers."""
    c = client(ctx)
    _each(ctx, containers, lambda n: c.call(
        "DELETE", f"/containers/{n.strip('/') if link else cid(n)}",
        {"force": force, "v": volumes, "link": link}))


def _filters(items: tuple[str, ...]) -> dict[str, list[str]] | None:
    out: dict[str, list[str]] = {}
    for f in items:
        k, sep, v = f.partition("=")
        if not sep:
            raise cmdline.BadParameter(f"bad format of filter (expected name=value): {f}")
        out.setdefault(k, []).append(v)
    return out or None


def _ps_row(s: dict[str, Any], trunc: bool) -> dict[str, Any]:
    cmd = s["Command"]
    if trunc and len(cmd) > 20:
        cmd = cmd[:19] + "…"
    return {
        "ID": s["Id"][:SHORT_ID] if trunc else s["Id"], "Image": s["Image"],
        "Command": f'"{cmd}"', "CreatedAt": time.strftime(
            "%Y-%m-%d %H:%M:%S %z %Z", time.localtime(s["Created"])),
        "RunningFor": ago(s["Created"]), "Ports": ports_text(s.get("Ports") or []),
        "State": s["State"],
        "Status": s["Status"], "Size": "", "Names": ",".join(n.lstrip("/") for n in s["Names"]),
        "Labels": ",".join(f"{k}={v}" for k, v in (s.get("Labels") or {}).items()),
        "Mounts": "", "Networks": "",
    }


def ports_text(ports: list[dict[str, Any]]) -> str:
    """docker ps's PORTS column: 127.0.0.1:8080->80/tcp, 443/tcp."""
    out = []
    for p in ports:
        if p.get("PublicPort"):
            out.append(f"{p.get('IP') or '0.0.0.0'}:{p['PublicPort']}->"
                       f"{p['PrivatePort']}/{p['Type']}")
        else:
            out.append(f"{p['PrivatePort']}/{p['Type']}")
    return ", ".join(out)


@cmdline.command("ps", context_settings=CMD)
@cmdline.option("-a", "--all", "all_", is_flag=True, help="show all containers")
@cmdline.option("-q", "--quiet", is_flag=True, help="only IDs")
@cmdline.option("-f", "--filter", "filters", multiple=True, help="filter (name=value)")
@cmdline.option("--format", "fmt", default=None, help="table, json, or a {{.Field}} template")
@cmdline.option("-n", "--last", type=int, default=-1, help="the n last created")
@cmdline.option("-l", "--latest", is_flag=True, help="the latest created")
@cmdline.option("--no-trunc", is_flag=True, help="do not truncate")
@cmdline.pass_context
def ps_cmd(ctx: cmdline.Context, all_: bool, quiet: bool, filters: tuple[str, ...],
           fmt: str | None, last: int, latest: bool, no_trunc: bool) -> None:
    """List containers."""
    c = client(ctx)
    limit = 1 if latest else last
    cs = c.get("/containers/json", all=all_ or limit > 0, filters=_filters(filters),
               limit=limit if limit > 0 else None)
    rows = [_ps_row(s, not no_trunc) for s in cs]
    if quiet:
        for r in rows:
            cmdline.echo(r["ID"])
        return
    print_rows(rows, fmt, ["ID", "Image", "Command", "RunningFor", "Status", "Ports",
                           "Names"],
               {"ID": "CONTAINER ID", "RunningFor": "CREATED"})


def _since(value: str | None) -> str | None:
    if not value:
        return None
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h)", value)
    if m:
        n = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
        return f"{time.time() - n:.9f}"
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    from pallet.daemon.images import parse_time

    t = parse_time(value)
    if not t:
        raise cmdline.BadParameter(f"invalid time {value!r}")
    return f"{t:.9f}"


@cmdline.command("logs", context_settings=CMD)
@cmdline.option("-f", "--follow", is_flag=True, help="follow log output")
@cmdline.option("-n", "--tail", default="all", help="lines from the end")
@cmdline.option("--since", default=None, help="since a time (RFC 3339, unix, or 10m)")
@cmdline.option("--until", default=None, help="until a time")
@cmdline.option("-t", "--timestamps", is_flag=True, help="show timestamps")
@cmdline.argument("container")
@cmdline.pass_context
def logs_cmd(ctx: cmdline.Context, follow: bool, tail: str, since: str | None,
             until: str | None, timestamps: bool, container: str) -> None:
    """Fetch the logs of a container."""
    c = client(ctx)
    info = c.get(f"/containers/{cid(container)}/json")
    demux = term.Demux(info["Config"]["Tty"])
    for chunk in c.raw("GET", f"/containers/{info['Id']}/logs", {
            "stdout": True, "stderr": True, "follow": follow, "tail": tail,
            "since": _since(since), "until": _since(until), "timestamps": timestamps}):
        demux.feed(chunk)


@cmdline.command("exec", context_settings=RUN)
@cmdline.option("-d", "--detach", is_flag=True, help="run in the background")
@cmdline.option("-i", "--interactive", is_flag=True, help="keep STDIN open")
@cmdline.option("-t", "--tty", is_flag=True, help="allocate a pseudo-TTY")
@cmdline.option("-e", "--env", multiple=True, help="environment variables")
@cmdline.option("-w", "--workdir", default=None, help="working directory")
@cmdline.option("-u", "--user", default=None, help="user[:group]")
@cmdline.option("--privileged", is_flag=True, help="extended privileges")
@cmdline.option("--detach-keys", default=None, help="key sequence to detach")
@cmdline.argument("container")
@cmdline.argument("command", nargs=-1, required=True, type=cmdline.UNPROCESSED)
@cmdline.pass_context
def exec_cmd(ctx: cmdline.Context, detach: bool, interactive: bool, tty: bool,
             env: tuple[str, ...], workdir: str | None, user: str | None, privileged: bool,
             detach_keys: str | None, container: str, command: tuple[str, ...]) -> None:
    """Execute a command in a running container."""
    c = client(ctx)
    body = {"AttachStdin": interactive and not detach, "AttachStdout": not detach,
            "AttachStderr": not detach, "Tty": tty, "Env": list(env) or None,
            "WorkingDir": workdir or "", "User": user or "", "Privileged": privileged,
            "Cmd": list(command)}
    if tty and (s := term.size()):
        body["ConsoleSize"] = list(s)
    eid = c.post(f"/containers/{cid(container)}/exec", body)["Id"]
    if detach:
        c.post(f"/exec/{eid}/start", {"Detach": True, "Tty": tty})
        return
    sock, first = c.hijack(f"/exec/{eid}/start", body={"Detach": False, "Tty": tty})
    resize = _resize_fn(c, f"/exec/{eid}/resize") if tty else None
    with term.raw_mode(tty and interactive), term.on_resize(resize):
        if tty and (s := term.size()):
            import threading

            threading.Thread(target=lambda: _quiet(resize, *s), daemon=True).start()
        try:
            term.copy(sock, first, tty_=tty, stdin=interactive,
                      detach_keys=term.parse_detach_keys(detach_keys))
        finally:
            sock.close()
    code = c.get(f"/exec/{eid}/json").get("ExitCode")
    sys.exit(code or 0)


@cmdline.command("attach", context_settings=CMD)
@cmdline.option("--no-stdin", is_flag=True, help="do not attach STDIN")
@cmdline.option("--detach-keys", default=None, help="key sequence to detach")
@cmdline.argument("container")
@cmdline.pass_context
def attach_cmd(ctx: cmdline.Context, no_stdin: bool, detach_keys: str | None,
               container: str) -> None:
    """Attach local standard input, output, and error streams to a running container."""
    c = client(ctx)
    info = c.get(f"/containers/{cid(container)}/json")
    if not info["State"]["Running"]:
        raise InvalidArgument("You cannot attach to a stopped container, start it first")
    waiter = _Wait(c, info["Id"], "not-running")
    stdin = not no_stdin and info["Config"].get("OpenStdin", False)
    ended = attach_stream(c, info["Id"], tty=info["Config"]["Tty"], stdin=stdin,
                          detach_keys=term.parse_detach_keys(detach_keys))
    if not ended:
        cmdline.echo("read escape sequence", err=True)
        sys.exit(1)
    sys.exit(waiter.result())


@cmdline.command("inspect", context_settings=CMD)
@cmdline.option("-f", "--format", "fmt", default=None, help="a {{.Field}} template")
@cmdline.option("--type", "type_", type=cmdline.Choice(["container", "image", "volume"]),
                default=None)
@cmdline.argument("names", nargs=-1, required=True)
@cmdline.pass_context
def inspect_cmd(ctx: cmdline.Context, fmt: str | None, type_: str | None,
                names: tuple[str, ...]) -> None:
    """Low-level information on containers, images or volumes, as JSON."""
    c = client(ctx)
    out = []
    failed = False
    for n in names:
        obj = None
        if type_ in (None, "container"):
            try:
                obj = c.get(f"/containers/{cid(n)}/json")
            except NotFound:
                pass
        for kind, path in (("image", f"/images/{n}/json"), ("volume", f"/volumes/{n}")):
            if obj is None and type_ in (None, kind):
                try:
                    obj = c.get(path)
                except NotFound:
                    pass
        if obj is None:
            cmdline.echo(f"Error: No such object: {n}", err=True)
            failed = True
            continue
        out.append(obj)
    print_objects(out, fmt, failed)


@cmdline.command("wait", context_settings=CMD)
@cmdline.argument("containers", nargs=-1, required=True)
@cmdline.pass_context
def wait_cmd(ctx: cmdline.Context, containers: tuple[str, ...]) -> None:
    """Block until containers stop, then print their exit codes."""
    c = client(ctx)
    for n in containers:
        for msg in c.stream("POST", f"/containers/{cid(n)}/wait"):
            cmdline.echo(msg.get("StatusCode"))


COMMANDS = [run_cmd, create_cmd, start_cmd, stop_cmd, restart_cmd, kill_cmd, rm_cmd, ps_cmd,
            logs_cmd, exec_cmd, attach_cmd, inspect_cmd, wait_cmd]
