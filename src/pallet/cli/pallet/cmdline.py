"""The `pallet` CLI's command line: the part of click's API the CLI uses, with click's
parsing rules, messages and exit codes.

Not click: importing it costs ~20 ms (typing, inspect, enum, ...), paid by every `pallet run`
before it reaches palletd. This module imports `os` and `sys` only; help pages and error
suggestions import what they need when they happen.

Parsing is click's (POSIX-like): `-abc` combined flags, `-oVALUE`, `-o VALUE`, `--opt=value`,
`--` ends the options, options may follow arguments unless the command sets
`allow_interspersed_args=False` (then the first argument ends them, as for `run`). A usage
error prints the usage line and `Error: ...` on stderr and exits 2 (through `main`).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # `typing` costs ms of imports on every `pallet` command
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any, NoReturn

# --- errors ---------------------------------------------------------------------------------


class ClickException(Exception):
    """An error shown as `Error: <message>`, exit status 1."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def format_message(self) -> str:
        return self.message

    def show(self) -> None:
        echo(f"Error: {self.format_message()}", err=True)


class UsageError(ClickException):
    """A wrong command line: the usage line first when the context is known, status 2."""

    exit_code = 2

    def __init__(self, message: str, ctx: Context | None = None) -> None:
        super().__init__(message)
        self.ctx = ctx

    def show(self) -> None:
        if self.ctx is not None:
            hint = max(self.ctx.help_option_names, key=len)
            echo(f"{self.ctx.usage()}\nTry '{self.ctx.command_path} {hint}' for help.\n",
                 err=True)
        super().show()


class BadParameter(UsageError):
    def __init__(self, message: str, ctx: Context | None = None,
                 param: Parameter | None = None, param_hint: str | None = None) -> None:
        super().__init__(message, ctx)
        self.param, self.param_hint = param, param_hint

    def format_message(self) -> str:
        hint = self.param_hint or (self.param.error_hint() if self.param else None)
        return f"Invalid value for {hint}: {self.message}" if hint else \
            f"Invalid value: {self.message}"


class Abort(RuntimeError):
    """The user declined (`confirm`), hit ctrl-c or closed stdin."""


class _Exit(Exception):
    """Leave with a status after a normal outcome (help printed)."""

    def __init__(self, code: int) -> None:
        self.code = code


class _NoArgsHelp(UsageError):
    """A group without a subcommand: its help on stderr, status 2."""

    def __init__(self, ctx: Context) -> None:
        super().__init__("", ctx)

    def show(self) -> None:
        echo(self.ctx.get_help(), err=True)  # type: ignore[union-attr]


def _no_such(what: str, name: str, known: Iterable[str], ctx: Context) -> UsageError:
    msg = f"No such {what} {name!r}."
    known = list(known)
    if known:
        from difflib import get_close_matches

        close = sorted(get_close_matches(name, known))
        if len(close) == 1:
            msg += f" Did you mean {close[0]!r}?"
        elif close:
            msg += f" (Did you mean one of: {', '.join(map(repr, close))}?)"
    return UsageError(msg, ctx)


# --- types ----------------------------------------------------------------------------------


class ParamType:
    """Text; the others convert it and say why a value does not fit."""

    metavar = "TEXT"

    def convert(self, value: Any, param: Parameter, ctx: Context) -> Any:
        return value

    def fail(self, message: str, param: Parameter, ctx: Context) -> NoReturn:
        raise BadParameter(message, ctx, param)


class _Number(ParamType):
    def __init__(self, kind: type, metavar: str, noun: str) -> None:
        self.kind, self.metavar, self.noun = kind, metavar, noun

    def convert(self, value: Any, param: Parameter, ctx: Context) -> Any:
        try:
            return self.kind(value)
        except ValueError:
            self.fail(f"{value!r} is not a valid {self.noun}.", param, ctx)


_BOOLS = {"1": True, "true": True, "t": True, "yes": True, "y": True, "on": True,
          "0": False, "false": False, "f": False, "no": False, "n": False, "off": False,
          "": False}


class _Bool(ParamType):
    metavar = "BOOLEAN"

    def convert(self, value: Any, param: Parameter, ctx: Context) -> Any:
        if isinstance(value, bool):
            return value
        try:
            return _BOOLS[value.strip().lower()]
        except KeyError:
            self.fail(f"{value!r} is not a valid boolean. Recognized values: "
                      f"{', '.join(sorted(_BOOLS))}", param, ctx)


class Choice(ParamType):
    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = tuple(choices)
        self.metavar = f"[{'|'.join(self.choices)}]"

    def convert(self, value: Any, param: Parameter, ctx: Context) -> Any:
        if value not in self.choices:
            self.fail(f"{value!r} is not one of {', '.join(map(repr, self.choices))}.", param,
                      ctx)
        return value


class Path(ParamType):
    def __init__(self, exists: bool = False, file_okay: bool = True,
                 dir_okay: bool = True) -> None:
        self.exists, self.file_okay, self.dir_okay = exists, file_okay, dir_okay
        self.kind = "file" if not dir_okay else "directory" if not file_okay else "path"
        self.metavar = self.kind.upper()

    def convert(self, value: Any, param: Parameter, ctx: Context) -> Any:
        what = self.kind.title()
        if not os.path.exists(value):
            if self.exists:
                self.fail(f"{what} {value!r} does not exist.", param, ctx)
            return value
        is_dir = os.path.isdir(value)
        if is_dir and not self.dir_okay:
            self.fail(f"{what} {value!r} is a directory.", param, ctx)
        if not is_dir and not self.file_okay:
            self.fail(f"{what} {value!r} is a file.", param, ctx)
        return value


STRING = UNPROCESSED = ParamType()
INT = _Number(int, "INTEGER", "integer")
FLOAT = _Number(float, "FLOAT", "float")
BOOL = _Bool()
_TYPES: dict[Any, ParamType] = {str: STRING, int: INT, float: FLOAT, bool: BOOL}


# --- parameters -----------------------------------------------------------------------------

_type_of = type  # `type` is a parameter's keyword below, as in click


class Parameter:
    """What options and arguments share: a name, a type, a default, a callback."""

    kind = "parameter"
    is_flag = False
    nargs = 1

    def __init__(self, name: str, *, type: Any = None, default: Any = None,
                 required: bool = False, multiple: bool = False, envvar: str | None = None,
                 callback: Callable[[Context, Parameter, Any], Any] | None = None,
                 expose_value: bool = True, is_eager: bool = False,
                 metavar: str | None = None) -> None:
        self.name, self.default, self.required, self.multiple = name, default, required, multiple
        self.envvar, self.callback, self.expose_value = envvar, callback, expose_value
        self.is_eager, self._metavar = is_eager, metavar
        if type is None:  # as click: the default's type, else text
            type = _type_of(default) if default is not None and not multiple else str
        self.type: ParamType = _TYPES.get(type, type)

    def error_hint(self) -> str:
        """How an error message names it (options by their flags, arguments by metavar)."""
        return f"'{self.name}'"

    def resolve(self, ctx: Context, given: list[Any] | None) -> Any:
        """The value from the command line, the environment or the default."""
        if not given and self.envvar and (env := os.environ.get(self.envvar)):
            given = [env]
        if not given:
            if self.required:
                raise UsageError(f"Missing {self.kind} {self.error_hint()}.", ctx)
            if self.multiple or self.nargs == -1:
                return tuple(self.default or ())
            return self.default
        values = [self.type.convert(v, self, ctx) for v in given]
        return tuple(values) if self.multiple or self.nargs == -1 else values[-1]


class Option(Parameter):
    kind = "option"

    def __init__(self, decls: Sequence[str], *, is_flag: bool = False, help: str | None = None,
                 show_default: bool = False, **attrs: Any) -> None:
        name, opts, secondary = None, [], []
        for d in decls:
            if not d.startswith("-"):
                name = d
                continue
            first, slash, second = d.partition("/")
            opts.append(first.strip())
            if slash:  # `--x/--no-x`: a flag either way
                secondary.append(second.strip())
                is_flag = True
        if name is None:  # the first of the longest-prefixed names: `--tty` of `-t, --tty`
            best = max(opts, key=lambda o: len(o) - len(o.lstrip("-")))
            name = best.lstrip("-").replace("-", "_").lower()
        if is_flag:
            attrs.setdefault("type", bool)
            if not secondary and attrs.get("default") is None:
                attrs["default"] = False
        super().__init__(name, **attrs)
        self.opts, self.secondary_opts = opts, secondary
        self.is_flag, self.help, self.show_default = is_flag, help, show_default

    def error_hint(self) -> str:
        return " / ".join(f"'{o}'" for o in self.opts)

    def help_record(self) -> tuple[str, str]:
        def names(opts: list[str]) -> str:
            return ", ".join(sorted(opts, key=lambda o: len(o) - len(o.lstrip("-"))))

        first = names(self.opts)
        if not self.is_flag:
            first += f" {self._metavar or self.type.metavar}"
        if self.secondary_opts:
            first += f" / {names(self.secondary_opts)}"
        extra = []
        if self.show_default and self.default is not None:
            extra.append(f"default: {self.default}")
        if self.required:
            extra.append("required")
        text = self.help or ""
        if extra:
            text = f"{text}  [{'; '.join(extra)}]" if text else f"[{'; '.join(extra)}]"
        return first, text


class Argument(Parameter):
    kind = "argument"

    def __init__(self, name: str, *, nargs: int = 1, required: bool | None = None,
                 **attrs: Any) -> None:
        if required is None:
            required = nargs == 1 and attrs.get("default") is None
        super().__init__(name, required=required, **attrs)
        self.nargs = nargs

    def metavar(self) -> str:
        m = self.name.upper() if self.required else f"[{self.name.upper()}]"
        return m + ("..." if self.nargs != 1 else "")

    def error_hint(self) -> str:
        return f"'{self.metavar()}'"


def _attach(param: Parameter) -> Callable[[Any], Any]:
    def deco(f: Any) -> Any:
        f.__dict__.setdefault("__cmdline_params__", []).append(param)
        return f
    return deco


def option(*decls: str, **attrs: Any) -> Callable[[Any], Any]:
    return _attach(Option(decls, **attrs))


def argument(name: str, **attrs: Any) -> Callable[[Any], Any]:
    return _attach(Argument(name, **attrs))


def pass_context(f: Any) -> Any:
    """The callback gets the Context first."""
    f.__pass_context__ = True
    return f


# --- contexts and commands ------------------------------------------------------------------


class Context:
    """One command's invocation: its parameters' values, and the parent group's context.
    `obj` comes from the parent unless set; `meta` is one dict for the whole chain."""

    def __init__(self, command: Command, parent: Context | None = None,
                 info_name: str = "") -> None:
        self.command, self.parent, self.info_name = command, parent, info_name
        self.obj: Any = parent.obj if parent else None
        self.meta: dict[str, Any] = parent.meta if parent else {}
        self.params: dict[str, Any] = {}
        self.args: list[str] = []
        s = command.context_settings
        self.help_option_names: list[str] = s.get("help_option_names") or (
            parent.help_option_names if parent else ["--help"])
        self.allow_interspersed_args: bool = s.get("allow_interspersed_args",
                                                   command.allow_interspersed_args)
        self.ignore_unknown_options: bool = s.get("ignore_unknown_options", False)

    @property
    def command_path(self) -> str:
        return f"{self.parent.command_path} {self.info_name}" if self.parent else self.info_name

    def find_root(self) -> Context:
        ctx = self
        while ctx.parent is not None:
            ctx = ctx.parent
        return ctx

    def exit(self, code: int = 0) -> NoReturn:
        raise _Exit(code)

    def fail(self, message: str) -> NoReturn:
        raise UsageError(message, self)

    def usage(self) -> str:
        line = f"Usage: {self.command_path} {self.command.usage_args()}"
        if len(line) <= 50:  # fits the narrowest help width: no need for textwrap
            return line
        import textwrap

        prefix = f"Usage: {self.command_path} "
        return textwrap.fill(self.command.usage_args(), _width(), initial_indent=prefix,
                             subsequent_indent=" " * len(prefix))

    def get_help(self) -> str:
        return self.command.get_help(self)


def _show_help(ctx: Context, param: Parameter, value: bool) -> None:
    if value:
        echo(ctx.get_help())
        ctx.exit(0)


class Command:
    allow_interspersed_args = True

    def __init__(self, name: str | None, callback: Callable[..., Any] | None = None,
                 params: list[Parameter] | None = None, help: str | None = None,
                 context_settings: dict[str, Any] | None = None) -> None:
        self.name, self.callback, self.help = name, callback, help
        self.params: list[Parameter] = params or []
        self.context_settings = context_settings or {}

    def get_params(self, ctx: Context) -> list[Parameter]:
        return [*self.params, Option(ctx.help_option_names, is_flag=True, expose_value=False,
                                     is_eager=True, callback=_show_help,
                                     help="Show this message and exit.")]

    # parsing

    def make_context(self, info_name: str, args: list[str], parent: Context | None = None
                     ) -> Context:
        ctx = Context(self, parent, info_name)
        ctx.args = self.parse_args(ctx, args)
        return ctx

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        """Set ctx.params; returns the positional arguments no parameter took."""
        params = self.get_params(ctx)
        given, rest = _split(ctx, params, args)
        for p in params:
            if isinstance(p, Argument) and rest:
                # nargs=-1 leaves what the single arguments after it need
                after = sum(1 for q in params[params.index(p) + 1:]
                            if isinstance(q, Argument) and q.nargs == 1)
                n = 1 if p.nargs == 1 else max(len(rest) - after, 0)
                given[p], rest = rest[:n], rest[n:]
        for p in sorted(params, key=lambda p: not p.is_eager):
            value = p.resolve(ctx, given.get(p))
            if p.callback is not None:
                value = p.callback(ctx, p, value)
            if p.expose_value:
                ctx.params[p.name] = value
        return rest

    def invoke(self, ctx: Context) -> Any:
        if ctx.args:
            s = "s" if len(ctx.args) > 1 else ""
            ctx.fail(f"Got unexpected extra argument{s} ({' '.join(ctx.args)})")
        return self._call(ctx)

    def _call(self, ctx: Context) -> Any:
        if self.callback is None:
            return None
        pre = (ctx,) if getattr(self.callback, "__pass_context__", False) else ()
        try:
            return self.callback(*pre, **ctx.params)
        except UsageError as e:  # raised by the command's code: show this command's usage
            if e.ctx is None:
                e.ctx = ctx
            raise

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None) -> int:
        """Run with `args` (default: sys.argv[1:]); returns 0, or the status of `--help`.
        ClickException, Abort and SystemExit propagate to the caller."""
        argv = list(sys.argv[1:] if args is None else args)
        try:
            self.invoke(self.make_context(prog_name or os.path.basename(sys.argv[0]), argv))
        except _Exit as e:
            return e.code
        except (EOFError, KeyboardInterrupt) as e:
            echo(err=True)
            raise Abort() from e
        except BrokenPipeError:
            # the reader went away (`pallet ps | head -1`): no traceback, and nothing left
            # to flush into the closed pipe at exit
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass
            sys.exit(1)
        return 0

    # help

    def usage_args(self) -> str:
        return " ".join(["[OPTIONS]", *(p.metavar() for p in self.params
                                        if isinstance(p, Argument))])

    def get_help(self, ctx: Context) -> str:
        import textwrap

        width = _width()
        out = [ctx.usage(), ""]
        for para in _cleandoc(self.help or "").split("\n\n"):
            if para.strip():
                out += [textwrap.fill(" ".join(para.split("\n")), width, initial_indent="  ",
                                      subsequent_indent="  "), ""]
        rows = [p.help_record() for p in self.get_params(ctx) if isinstance(p, Option)]
        out += ["Options:", _table(rows, width)]
        return "\n".join(out + self.help_sections(ctx, width))

    def help_sections(self, ctx: Context, width: int) -> list[str]:
        return []


class Group(Command):
    """A command whose first argument names a subcommand; its own options come before."""

    allow_interspersed_args = False

    def __init__(self, name: str | None, **attrs: Any) -> None:
        super().__init__(name, **attrs)
        self.commands: dict[str, Command] = {}

    def add_command(self, cmd: Command, name: str | None = None) -> None:
        self.commands[name or cmd.name or ""] = cmd

    def command(self, *args: Any, **attrs: Any) -> Callable[[Any], Command]:
        def deco(f: Any) -> Command:
            cmd = command(*args, **attrs)(f)
            self.add_command(cmd)
            return cmd
        return deco

    def list_commands(self, ctx: Context) -> list[str]:
        return sorted(self.commands)

    def get_command(self, ctx: Context, name: str) -> Command | None:
        return self.commands.get(name)

    def command_help(self, ctx: Context, name: str) -> str | None:
        """The help text of a subcommand, for the list in this group's help."""
        cmd = self.get_command(ctx, name)
        return cmd.help if cmd is not None else None

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if not args:
            raise _NoArgsHelp(ctx)
        rest = super().parse_args(ctx, args)
        if not rest:
            ctx.fail("Missing command.")
        return rest

    def invoke(self, ctx: Context) -> Any:
        name, *args = ctx.args
        cmd = self.get_command(ctx, name)
        if cmd is None:
            raise _no_such("command", name, self.list_commands(ctx), ctx)
        self._call(ctx)  # before the subcommand's context: it inherits ctx.obj
        return cmd.invoke(cmd.make_context(name, args, parent=ctx))

    def usage_args(self) -> str:
        return "[OPTIONS] COMMAND [ARGS]..."

    def help_sections(self, ctx: Context, width: int) -> list[str]:
        names = self.list_commands(ctx)
        if not names:
            return []
        limit = width - 6 - max(map(len, names))
        rows = [(n, _short_help(self.command_help(ctx, n) or "", limit)) for n in names]
        return ["", "Commands:", _table(rows, width)]


def _command_name(f: Any) -> str:
    name = f.__name__.lower().replace("_", "-")
    for suffix in ("-command", "-cmd", "-group", "-grp"):
        if name.endswith(suffix) and name != suffix:
            return name[:-len(suffix)]
    return name


def command(name: str | None = None, cls: type[Command] | None = None,
            **attrs: Any) -> Callable[[Any], Any]:
    """A Command from a function, its options and arguments (decorators below this one)
    in the order written; the docstring is the help unless `help=` says otherwise."""

    def deco(f: Any) -> Command:
        params = list(reversed(f.__dict__.pop("__cmdline_params__", [])))
        return (cls or Command)(name or _command_name(f), callback=f, params=params,
                                **{**attrs, "help": attrs.get("help") or f.__doc__})
    return deco


def group(name: str | None = None, cls: type[Group] | None = None,
          **attrs: Any) -> Callable[[Any], Any]:
    return command(name, cls or Group, **attrs)


# --- the parser -----------------------------------------------------------------------------


def _split(ctx: Context, params: list[Parameter], args: list[str]
           ) -> tuple[dict[Parameter, list[Any]], list[str]]:
    """Options' values (in order, per option) and the positional arguments."""
    table: dict[str, tuple[Option, bool]] = {}
    for p in params:
        if isinstance(p, Option):
            table.update({o: (p, True) for o in p.opts})
            table.update({o: (p, False) for o in p.secondary_opts})
    given: dict[Parameter, list[Any]] = {}
    positional: list[str] = []
    rest = args[::-1]  # popped from the end

    def value(name: str, opt: Option, flag: bool, inline: str | None) -> None:
        if opt.is_flag:
            if inline is not None:
                raise UsageError(f"Option {name!r} does not take a value.")
            v: Any = flag
        elif inline is not None:
            v = inline
        elif rest:  # the next word, whatever it looks like (`--name --rm` names it --rm)
            v = rest.pop()
        else:
            raise UsageError(f"Option {name!r} requires an argument.")
        given.setdefault(opt, []).append(v)

    while rest:
        arg = rest.pop()
        if arg == "--":
            break
        if arg[:1] != "-" or arg == "-":
            positional.append(arg)
            if not ctx.allow_interspersed_args:
                break  # the rest is positional, `--` included
            continue
        if arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            hit = table.get(name)
            if hit is None:
                if ctx.ignore_unknown_options:
                    positional.append(arg)
                    continue
                raise _no_such("option", name, [o for o in table if o.startswith("--")], ctx)
            value(name, hit[0], hit[1], inline if eq else None)
            continue
        unknown = ""
        for i, ch in enumerate(arg[1:], 1):  # -abc: flags, until one that takes a value
            hit = table.get("-" + ch)
            if hit is None:
                if ctx.ignore_unknown_options:
                    unknown += ch
                    continue
                raise _no_such("option", "-" + ch, (), ctx)
            opt, flag = hit
            if opt.is_flag:
                given.setdefault(opt, []).append(flag)
                continue
            value("-" + ch, opt, flag, arg[i + 1:] or None)  # -oVALUE or -o VALUE
            break
        if unknown:
            positional.append("-" + unknown)
    positional.extend(reversed(rest))
    return given, positional


# --- help formatting ------------------------------------------------------------------------


def _width() -> int:
    import shutil

    return max(min(shutil.get_terminal_size().columns, 80) - 2, 50)


def _cleandoc(doc: str) -> str:
    """A docstring without its indentation, as inspect.cleandoc (without importing it)."""
    lines = doc.expandtabs().split("\n")
    margin = min((len(s) - len(s.lstrip()) for s in lines[1:] if s.strip()), default=0)
    lines = [lines[0].strip(), *(s[margin:].rstrip() for s in lines[1:])]
    return "\n".join(lines).strip("\n")


def _short_help(text: str, limit: int) -> str:
    """The first sentence of the first paragraph, shortened with `...` to `limit`."""
    words = _cleandoc(text).partition("\n\n")[0].split()
    for i, w in enumerate(words):
        # a period before a lowercase word is an abbreviation's ("e.g. this")
        if w.endswith(".") and (i == len(words) - 1 or not words[i + 1][0].islower()):
            words = words[:i + 1]
            break
    s = " ".join(words)
    if len(s) <= limit:
        return s
    import textwrap

    return textwrap.shorten(s, max(limit, 3), placeholder="...", break_on_hyphens=False)


def _table(rows: list[tuple[str, str]], width: int) -> str:
    """Two columns: names (up to 30 wide) and their help, wrapped beside them."""
    import textwrap

    col = min(max(len(a) for a, _ in rows), 30) + 2
    pad = " " * (col + 2)
    out = []
    for first, second in rows:
        if not second:
            out.append(f"  {first}")
            continue
        lines = textwrap.wrap(second, max(width - col - 2, 10))
        if len(first) <= col - 2:
            out.append(f"  {first.ljust(col)}{lines[0]}")
        else:  # too wide: the help starts on the next line
            out += [f"  {first}", pad + lines[0]]
        out += [pad + line for line in lines[1:]]
    return "\n".join(out)


# --- terminal I/O ---------------------------------------------------------------------------


def echo(message: Any = None, nl: bool = True, err: bool = False) -> None:
    """Print and flush at once (output interleaves with raw writes to the same fds)."""
    out = sys.stderr if err else sys.stdout
    if out is None:
        return
    out.write(("" if message is None else str(message)) + ("\n" if nl else ""))
    out.flush()


def _readline() -> str:
    line = sys.stdin.readline()
    if not line:  # end of input: no answer
        raise Abort()
    return line.rstrip("\r\n")


def confirm(text: str, default: bool = False, abort: bool = False) -> bool:
    """Ask y/n on stdout; `abort` raises Abort on no."""
    while True:
        echo(f"{text} [{'Y/n' if default else 'y/N'}]: ", nl=False)
        answer = _readline().strip().lower()
        if answer in ("y", "yes", "n", "no", ""):
            break
        echo("Error: invalid input", err=True)
    yes = answer in ("y", "yes") or (answer == "" and default)
    if abort and not yes:
        raise Abort()
    return yes


def prompt(text: str, hide_input: bool = False) -> str:
    """Ask until the answer is not empty; `hide_input` reads it without echo."""
    while True:
        if hide_input:
            import getpass

            try:
                value = getpass.getpass(f"{text}: ")
            except EOFError:
                raise Abort() from None
        else:
            echo(f"{text}: ", nl=False)
            value = _readline()
        if value:
            return value
