"""Output shapes of the daemon verbs: docker's tables (rich), `--format json` and
`{{.Field}}` templates, sizes and ages."""

from __future__ import annotations

import time

from pallet.cli.pallet import cmdline

TYPE_CHECKING = False  # `typing` costs ms of imports on every `pallet` command
if TYPE_CHECKING:
    from typing import Any

SHORT_ID = 12
_UNITS = {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


def parse_size(s: str) -> int:
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bkmgt]?)b?", s.strip().lower())
    if not m:
        raise cmdline.BadParameter(f"invalid size: {s!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2) or "b"])


def human_size(n: float) -> str:
    """docker's units.HumanSize (decimal, 3 significant digits)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n}B"


def ago(ts: float) -> str:
    from pallet.daemon.humanize import human_duration

    return human_duration(time.time() - ts) + " ago"


def _lookup(obj: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
    return obj


def render(template: str, obj: Any) -> str:
    """The small subset of Go templates docker users write: {{.A.B}}, {{json .X}}."""
    import json
    import re

    def sub(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(_lookup(obj, expr[5:].strip()))
        v = _lookup(obj, expr)
        if isinstance(v, dict | list):
            return json.dumps(v)
        if v is None:
            return "<no value>"
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    return re.sub(r"\{\{\s*(.*?)\s*\}\}", sub, template).replace("\\t", "\t").replace(
        "\\n", "\n")


def print_rows(rows: list[dict[str, Any]], fmt: str | None, columns: list[str],
               headers: dict[str, str] | None = None) -> None:
    import json
    import re

    headers = headers or {}
    if fmt == "json":
        for r in rows:
            cmdline.echo(json.dumps(r))
        return
    if fmt and fmt != "table" and not fmt.startswith("table "):
        for r in rows:
            cmdline.echo(render(fmt, r))
        return
    if fmt and fmt.startswith("table "):
        columns = re.findall(r"\{\{\s*\.(\w+)\s*\}\}", fmt[6:]) or columns
    from rich.console import Console
    from rich.table import Table

    t = Table(box=None, pad_edge=False, padding=(0, 3, 0, 0))
    for col in columns:
        t.add_column(headers.get(col, re.sub(r"(?<!^)(?=[A-Z])", " ", col).upper()),
                     no_wrap=True)
    for r in rows:
        t.add_row(*(str(r.get(col, "")) for col in columns))
    Console(soft_wrap=True, highlight=False, width=10_000).print(t)


def print_objects(objs: list[Any], fmt: str | None, failed: bool) -> None:
    """`inspect`'s output: a JSON array, or the template once per object; exit status 1
    when some name was not found (after printing the others, as docker)."""
    import json

    if fmt:
        for o in objs:
            cmdline.echo(render(fmt, o))
    else:
        cmdline.echo(json.dumps(objs, indent=4))
    if failed:
        raise SystemExit(1)
