"""`pallet stats/pause/unpause/rename/update/top`: docker's words, flags and output shapes."""

from __future__ import annotations

import sys
import time

from pallet.cli.pallet import cmdline
from pallet.cli.pallet.client import cid
from pallet.cli.pallet.containers import CMD, _each, _restart, client
from pallet.cli.pallet.fmt import SHORT_ID, human_size, parse_size, print_rows

TYPE_CHECKING = False  # `typing` costs ms of imports on every `pallet` command
if TYPE_CHECKING:
    from typing import Any

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def bytes_size(n: float) -> str:
    """docker's units.BytesSize (binary units, 4 significant digits)."""
    i = 0
    while n >= 1024 and i < len(_BINARY) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{_BINARY[i]}"


def mem_usage(mem: dict[str, Any]) -> int:
    """The CLI's usage without the page cache that is easy to reclaim: inactive file pages
    (total_inactive_file on v1, inactive_file on v2)."""
    usage = int(mem.get("usage") or 0)
    st = mem.get("stats") or {}
    inactive = st["total_inactive_file"] if "total_inactive_file" in st \
        else st.get("inactive_file", 0)
    return usage - inactive if inactive < usage else usage


def cpu_percent(s: dict[str, Any]) -> float:
    cpu, pre = s["cpu_stats"], s["precpu_stats"]
    cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    sys_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or [])
    if sys_delta > 0 and cpu_delta > 0:
        return cpu_delta / sys_delta * online * 100.0
    return 0.0


def stats_row(s: dict[str, Any], container: str, trunc: bool = True) -> dict[str, Any]:
    mem = s.get("memory_stats") or {}
    usage, limit = mem_usage(mem), int(mem.get("limit") or 0)
    nets = (s.get("networks") or {}).values()
    rx, tx = sum(n["rx_bytes"] for n in nets), sum(n["tx_bytes"] for n in nets)
    blk = (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    rd = sum(e["value"] for e in blk if e["op"].lower() == "read")
    wr = sum(e["value"] for e in blk if e["op"].lower() == "write")
    return {
        "Container": container, "ID": s["id"][:SHORT_ID] if trunc else s["id"],
        "Name": s["name"].lstrip("/"), "CPUPerc": f"{cpu_percent(s):.2f}%",
        "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
        "MemPerc": f"{usage / limit * 100 if limit else 0:.2f}%",
        "NetIO": f"{human_size(rx)} / {human_size(tx)}",
        "BlockIO": f"{human_size(rd)} / {human_size(wr)}",
        "PIDs": str((s.get("pids_stats") or {}).get("current", 0)),
    }


STATS_COLUMNS = ["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"]
STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


@cmdline.command("stats", context_settings=CMD)
@cmdline.option("-a", "--all", "all_", is_flag=True, help="all containers (default: running)")
@cmdline.option("--no-stream", is_flag=True, help="one sample, then exit")
@cmdline.option("--no-trunc", is_flag=True, help="do not truncate the IDs")
@cmdline.option("--format", "fmt", default=None, help="table, json, or a {{.Field}} template")
@cmdline.argument("containers", nargs=-1)
@cmdline.pass_context
def stats_cmd(ctx: cmdline.Context, all_: bool, no_stream: bool, no_trunc: bool,
              fmt: str | None, containers: tuple[str, ...]) -> None:
    """Display a live stream of containers' resource usage."""
    c = client(ctx)
    names = list(containers) or [s["Id"] for s in c.get("/containers/json", all=all_)]
    if no_stream:
        def one(name: str) -> dict[str, Any] | Exception:
            try:
                return stats_row(c.get(f"/containers/{cid(name)}/stats", stream=False),
                                 name, not no_trunc)
            except Exception as e:
                return e

        # each answer takes dockerd's one-second CPU window: ask for all at once
        from concurrent.futures import ThreadPoolExecutor  # stats only: not on every command

        with ThreadPoolExecutor(max(len(names), 1)) as pool:
            results = list(pool.map(one, names))
        errors = [r for r in results if isinstance(r, Exception)]
        for e in errors:
            cmdline.echo(str(e), err=True)
        print_rows([r for r in results if not isinstance(r, Exception)], fmt, STATS_COLUMNS,
                   STATS_HEADERS)
        if errors:
            sys.exit(1)
        return
    latest: dict[str, dict[str, Any]] = {}

    def follow(name: str) -> None:
        try:
            for s in c.stream("GET", f"/containers/{cid(name)}/stats", {"stream": True}):
                latest[name] = stats_row(s, name, not no_trunc)
        except Exception:
            latest.pop(name, None)  # it went away: drop its row

    import threading

    for n in names:
        threading.Thread(target=follow, args=(n,), daemon=True).start()
    while True:
        time.sleep(1)
        if sys.stdout.isatty():  # clear the screen; a pipe gets the tables one after another
            cmdline.echo("\033[2J\033[H", nl=False)
        print_rows([latest[n] for n in names if n in latest], fmt, STATS_COLUMNS,
                   STATS_HEADERS)


def _state_verb(verb: str, doc: str) -> cmdline.Command:
    """pause and unpause: one POST per container, its name echoed as docker does."""

    @cmdline.command(verb, context_settings=CMD, help=doc)
    @cmdline.argument("containers", nargs=-1, required=True)
    @cmdline.pass_context
    def cmd(ctx: cmdline.Context, containers: tuple[str, ...]) -> None:
        c = client(ctx)
        _each(ctx, containers, lambda n: c.post(f"/containers/{cid(n)}/{verb}"))

    return cmd


pause_cmd = _state_verb("pause", "Pause all processes within one or more containers.")
unpause_cmd = _state_verb("unpause", "Unpause all processes within one or more containers.")


@cmdline.command("rename", context_settings=CMD)
@cmdline.argument("container")
@cmdline.argument("new_name")
@cmdline.pass_context
def rename_cmd(ctx: cmdline.Context, container: str, new_name: str) -> None:
    """Rename a container."""
    client(ctx).post(f"/containers/{cid(container)}/rename", name=new_name)


@cmdline.command("update", context_settings=CMD)
@cmdline.option("--cpus", type=float, default=None, help="number of CPUs")
@cmdline.option("-c", "--cpu-shares", type=int, default=None, help="CPU shares")
@cmdline.option("--cpu-period", type=int, default=None, help="CFS period")
@cmdline.option("--cpu-quota", type=int, default=None, help="CFS quota")
@cmdline.option("--cpuset-cpus", default=None, help="CPUs allowed (0-3, 0,1)")
@cmdline.option("--cpuset-mems", default=None, help="memory nodes allowed")
@cmdline.option("-m", "--memory", default=None, help="memory limit (e.g. 64m)")
@cmdline.option("--memory-reservation", default=None, help="memory soft limit")
@cmdline.option("--memory-swap", default=None, help="memory + swap limit (-1: unlimited)")
@cmdline.option("--pids-limit", type=int, default=None, help="pids limit (-1: unlimited)")
@cmdline.option("--blkio-weight", type=int, default=None, help="block IO weight (10-1000)")
@cmdline.option("--restart", default=None, help="restart policy")
@cmdline.argument("containers", nargs=-1, required=True)
@cmdline.pass_context
def update_cmd(ctx: cmdline.Context, cpus: float | None, cpu_shares: int | None,
               cpu_period: int | None, cpu_quota: int | None, cpuset_cpus: str | None,
               cpuset_mems: str | None, memory: str | None, memory_reservation: str | None,
               memory_swap: str | None, pids_limit: int | None, blkio_weight: int | None,
               restart: str | None, containers: tuple[str, ...]) -> None:
    """Update the resources and restart policy of one or more containers."""
    body: dict[str, Any] = {
        "NanoCpus": round(cpus * 1e9) if cpus is not None else None,
        "CpuShares": cpu_shares, "CpuPeriod": cpu_period, "CpuQuota": cpu_quota,
        "CpusetCpus": cpuset_cpus, "CpusetMems": cpuset_mems,
        "Memory": parse_size(memory) if memory else None,
        "MemoryReservation": parse_size(memory_reservation) if memory_reservation else None,
        "MemorySwap": (-1 if memory_swap == "-1" else parse_size(memory_swap))
        if memory_swap else None,
        "PidsLimit": pids_limit, "BlkioWeight": blkio_weight,
    }
    body = {k: v for k, v in body.items() if v is not None}
    if restart:
        body["RestartPolicy"] = _restart(restart)
    if not body:
        raise cmdline.UsageError("you must provide one or more flags when using this command")
    c = client(ctx)
    _each(ctx, containers, lambda n: c.post(f"/containers/{cid(n)}/update", body))


def tabwriter(rows: list[list[str]], minwidth: int = 20, padding: int = 3) -> str:
    """Go's text/tabwriter as `docker top` sets it up: every cell but a line's last is
    padded to max(widest + padding, minwidth)."""
    ncols = max((len(r) for r in rows), default=0)
    widths = [max((len(r[i]) for r in rows if i < len(r) - 1), default=0)
              for i in range(ncols)]
    lines = []
    for r in rows:
        cells = [cell.ljust(max(widths[i] + padding, minwidth)) if i < len(r) - 1 else cell
                 for i, cell in enumerate(r)]
        lines.append("".join(cells))
    return "\n".join(lines)


@cmdline.command("top", context_settings={**CMD, "ignore_unknown_options": True})
@cmdline.argument("container")
@cmdline.argument("ps_args", nargs=-1, type=cmdline.UNPROCESSED)
@cmdline.pass_context
def top_cmd(ctx: cmdline.Context, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    t = client(ctx).get(f"/containers/{cid(container)}/top",
                        ps_args=" ".join(ps_args) or None)
    cmdline.echo(tabwriter([t["Titles"], *t["Processes"]]))


COMMANDS = [stats_cmd, pause_cmd, unpause_cmd, rename_cmd, update_cmd, top_cmd]
