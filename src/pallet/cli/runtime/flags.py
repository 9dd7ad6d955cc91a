"""A small command-line parser with runc's (urfave/cli) conventions: global flags, a verb,
the verb's flags and positionals; `--flag value`, `--flag=value`, `-flag value`, `-f`.

argparse costs ~5 ms of imports (re, gettext) on every container start, which is why the
runtime carries this instead.
"""

from __future__ import annotations


class UsageError(Exception):
    pass


class Flag:
    __slots__ = ("default", "dest", "help", "kind", "names")

    def __init__(self, names: tuple[str, ...], kind: type = str, default: object = None,
                 help: str = "") -> None:
        self.names = names
        self.kind = kind
        self.dest = names[0].lstrip("-").replace("-", "_")
        self.default = False if kind is bool and default is None else default
        if kind is list and default is None:
            self.default = []
        self.help = help


class Command:
    def __init__(self, name: str, help: str, flags: list[Flag], args: list[str],
                 optional: dict[str, str] | None = None, rest: bool = False) -> None:
        self.name = name
        self.rest = rest  # trailing arguments are the verb's own (exec's command, ps's args)
        self.help = help
        self.flags = flags
        self.args = args
        self.optional = optional or {}

    def usage(self) -> str:
        lines = [f"usage: pallet-runtime {self.name} [flags] "
                 + " ".join(self.args + [f"[{a}]" for a in self.optional]), "", self.help, ""]
        for f in self.flags:
            lines.append(f"  {', '.join(f.names):28} {f.help}")
        return "\n".join(lines)


class Namespace:
    def __init__(self, **kw: object) -> None:
        self.__dict__.update(kw)

    def __getattr__(self, name: str) -> object:  # unknown attributes read as None
        return None


def parse_flags(argv: list[str], flags: list[Flag], ns: Namespace,
                stop_at_positional: bool, positionals: int | None = None) -> list[str]:
    """Flags into `ns`; returns the positionals. With `positionals`, everything after that
    many positionals is returned untouched (exec's command line keeps its own flags)."""
    by_name = {n: f for f in flags for n in f.names}
    for f in flags:
        setattr(ns, f.dest, list(f.default) if f.kind is list else f.default)
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if positionals is not None and len(rest) >= positionals:
            rest.extend(argv[i:])
            break
        if arg == "--":
            rest.extend(argv[i + 1:])
            break
        if arg.startswith("-") and len(arg) > 1:
            name, eq, value = arg.partition("=")
            if name not in by_name and not name.startswith("--"):
                name = "-" + name  # urfave/cli also accepts -flag for --flag
            flag = by_name.get(name)
            if flag is None:
                raise UsageError(f"flag provided but not defined: {arg}")
            if flag.kind is bool:
                setattr(ns, flag.dest, value.lower() not in ("false", "0") if eq else True)
            else:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise UsageError(f"flag needs an argument: {arg}")
                    value = argv[i]
                if flag.kind is list:  # repeatable: --env A=1 --env B=2
                    getattr(ns, flag.dest).append(value)
                    i += 1
                    continue
                try:
                    setattr(ns, flag.dest, flag.kind(value))
                except ValueError:
                    raise UsageError(f"invalid value {value!r} for flag {name}") from None
        else:
            if stop_at_positional or (positionals is not None and len(rest) >= positionals):
                rest.extend(argv[i:])
                break
            rest.append(arg)
        i += 1
    return rest


def parse_command(cmd: Command, argv: list[str], ns: Namespace) -> None:
    rest = parse_flags(argv, cmd.flags, ns, stop_at_positional=False,
                       positionals=len(cmd.args) if cmd.rest else None)
    if len(rest) < len(cmd.args):
        missing = " ".join(cmd.args[len(rest):])
        raise UsageError(f"{cmd.name}: missing argument {missing}\n\n{cmd.usage()}")
    for name, value in zip(cmd.args, rest, strict=False):
        setattr(ns, name, value)
    extra = rest[len(cmd.args):]
    for name, default in cmd.optional.items():
        setattr(ns, name, extra.pop(0) if extra else default)
    ns.extra_args = extra
    if extra and not cmd.rest:
        raise UsageError(f"{cmd.name}: unexpected arguments {' '.join(extra)}")
