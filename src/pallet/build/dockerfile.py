"""The Dockerfile parser: text -> stages of instructions, with docker's syntax rules.

Reading order, as BuildKit's parser (which docker's classic builder uses) does:
1. parser directives at the very top (`# escape=`, `# syntax=`), until the first line that
   is not one;
2. logical lines: a line ending in the escape character continues on the next; comment and
   empty lines inside a continuation are dropped; the continuation lines are joined as
   written (no whitespace trimmed), so `RUN a \\` + `    b` is `RUN a     b`;
3. each logical line: the instruction word (any case), leading `--flags`, then arguments in
   the instruction's form (JSON array or shell form, name=value pairs, words).

Variable substitution is not done here: it needs the build's environment at each step
(`shell.expand` in the builder). Every error names the line: `Dockerfile parse error line
7: unknown instruction: RUNN`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pallet.build.shell import split_words
from pallet.errors import InvalidArgument

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}

# flags each instruction takes in the classic builder; BuildKit-only ones get their own error
FLAGS: dict[str, set[str]] = {
    "FROM": {"platform"},
    "COPY": {"from", "chown"},
    "ADD": {"chown"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "retries"},
}
_BUILDKIT_FLAGS = {"mount", "network", "security", "chmod", "link", "parents", "exclude",
                   "checksum", "keep-git-dir", "start-interval"}
INSTRUCTIONS = {"FROM", "RUN", "CMD", "ENTRYPOINT", "ENV", "ARG", "LABEL", "EXPOSE", "WORKDIR",
                "USER", "VOLUME", "COPY", "ADD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
                "ONBUILD", "MAINTAINER"}


class ParseError(InvalidArgument):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"Dockerfile parse error line {line}: {message}")
        self.line = line


@dataclass
class Instruction:
    cmd: str                            # upper case: "RUN"
    line: int                           # where it starts (1-based)
    original: str                       # as written, continuations joined ("Step 2/5 : ...")
    args: list[str] = field(default_factory=list)
    json: bool = False                  # RUN/CMD/ENTRYPOINT/SHELL/COPY/ADD/VOLUME in JSON form
    flags: dict[str, str] = field(default_factory=dict)
    pairs: list[tuple[str, str | None]] = field(default_factory=list)  # ENV, LABEL, ARG
    trigger: Instruction | None = None  # ONBUILD's instruction
    expression: str = ""                # ONBUILD's text, as stored in the image
    health: dict[str, object] | None = None


@dataclass
class Stage:
    index: int
    base: str                           # unexpanded image name ("scratch", "$BASE", ...)
    name: str | None
    platform: str | None
    from_: Instruction
    commands: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    escape: str
    meta_args: list[Instruction]        # ARGs before the first FROM: visible to FROM lines
    stages: list[Stage]

    def stage(self, ref: str) -> Stage | None:
        """A stage by name (case-insensitive) or index."""
        low = ref.lower()
        for s in self.stages:
            if s.name == low:
                return s
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


def _continuation(line: str, escape: str) -> tuple[str, bool]:
    stripped = line.rstrip(" \t")
    if stripped.endswith(escape):
        return stripped[:-1], True
    return line, False


def _directives(lines: list[str]) -> tuple[str, int]:
    """The escape character and the index of the first line after the directives."""
    escape = "\\"
    seen: set[str] = set()
    for i, raw in enumerate(lines):
        m = _DIRECTIVE.match(raw.strip())
        if not m:
            return escape, i
        name, value = m.group(1).lower(), m.group(2)
        if name not in ("escape", "syntax", "check"):
            return escape, i  # an unknown directive is a comment, and ends the directives
        if name in seen:
            raise ParseError(i + 1, f"only one {name} parser directive can be used")
        seen.add(name)
        if name == "escape":
            if value not in ("\\", "`"):
                raise ParseError(i + 1, f"invalid escape token '{value}' does not match "
                                 "` or \\")
            escape = value
    return escape, len(lines)


def logical_lines(text: str) -> tuple[str, list[tuple[int, str]]]:
    """The escape character and the (start line, text) of each instruction."""
    lines = text.removeprefix("\ufeff").splitlines()  # an editor's UTF-8 BOM is no text
    escape, i = _directives(lines)
    out: list[tuple[int, str]] = []
    while i < len(lines):
        start, raw = i + 1, lines[i].lstrip()
        i += 1
        if not raw.strip() or raw.startswith("#"):
            continue
        line, more = _continuation(raw, escape)
        while more and i < len(lines):
            nxt = lines[i]
            i += 1
            if nxt.lstrip().startswith("#") or not nxt.strip():
                continue
            part, more = _continuation(nxt, escape)
            line += part
        out.append((start, line.strip()))
    return escape, out


def _flags(cmd: str, rest: str, line: int) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while True:
        rest = rest.lstrip()
        if not rest.startswith("--"):
            return flags, rest
        end = next((k for k, c in enumerate(rest) if c.isspace()), len(rest))
        token, rest = rest[2:end], rest[end:]
        if token == "":
            return flags, rest  # a bare `--` ends the flags
        name, sep, value = token.partition("=")
        if name in _BUILDKIT_FLAGS:
            raise ParseError(line, f"the --{name} option requires BuildKit")
        if name not in FLAGS.get(cmd, set()):
            raise ParseError(line, f"Unknown flag: {name}")
        if name in flags:
            raise ParseError(line, f"Duplicate flag specified: {name}")
        if not sep and cmd != "HEALTHCHECK":
            raise ParseError(line, f"Missing a value on flag: {name}")
        flags[name] = value


def maybe_json(rest: str) -> tuple[list[str], bool]:
    """(JSON array, True) when `rest` is one, else ([rest], False): shell form."""
    if rest.startswith("["):
        try:
            v = json.loads(rest)
        except ValueError:
            v = None
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v, True
    return [rest], False


def _maybe_json_list(rest: str) -> tuple[list[str], bool]:
    args, is_json = maybe_json(rest)
    return (args, True) if is_json else (rest.split(), False)


def _name_vals(cmd: str, rest: str, escape: str, line: int) -> list[tuple[str, str | None]]:
    words = split_words(rest, escape)
    if not words:
        raise ParseError(line, f"{cmd} requires at least one argument")
    if cmd == "ARG":
        out: list[tuple[str, str | None]] = []
        for w in words:
            name, sep, value = w.partition("=")
            if not name:
                raise ParseError(line, "ARG names can not be blank")
            out.append((name, value if sep else None))
        return out
    if "=" not in words[0]:
        # the old form: `ENV name value with spaces`
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise ParseError(line, f"{cmd} must have two arguments")
        return [(parts[0], parts[1])]
    pairs: list[tuple[str, str | None]] = []
    for w in words:
        if "=" not in w:
            raise ParseError(line, f"Syntax error - can't find = in {w!r}. Must be of the "
                             "form: name=value")
        name, _, value = w.partition("=")
        if not name:
            raise ParseError(line, f"{cmd} names can not be blank")
        pairs.append((name, value))
    return pairs


def parse_duration(text: str) -> int:
    """A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds."""
    pos, total = 0, 0.0
    if text == "0":
        return 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"time: invalid duration {text!r}")
    return int(total)


def _health(ins: Instruction, rest: str) -> dict[str, object]:
    kind, _, args = rest.partition(" ")
    kind = kind.upper()
    if kind == "NONE":
        if args.strip():
            raise ParseError(ins.line, "HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise ParseError(ins.line, f"Unknown type {kind!r} in HEALTHCHECK (try CMD)")
    cmd, is_json = maybe_json(args.strip())
    if not cmd or not cmd[0]:
        raise ParseError(ins.line, "Missing command after HEALTHCHECK CMD")
    out: dict[str, object] = {"Test": ["CMD", *cmd] if is_json else ["CMD-SHELL", cmd[0]]}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod")):
        if ins.flags.get(flag):
            try:
                ns = parse_duration(ins.flags[flag])
            except ValueError as e:
                raise ParseError(ins.line, str(e)) from None
            if 0 < ns < 1_000_000:
                raise ParseError(ins.line, f"{key} {ins.flags[flag]!r} cannot be less than "
                                 "1ms")
            if ns:
                out[key] = ns
    if ins.flags.get("retries"):
        try:
            retries = int(ins.flags["retries"])
        except ValueError:
            raise ParseError(ins.line, f"invalid --retries: {ins.flags['retries']!r}") \
                from None
        if retries < 0:
            raise ParseError(ins.line, f"--retries cannot be negative ({retries})")
        out["Retries"] = retries
    return out


def parse_instruction(text: str, line: int, escape: str = "\\") -> Instruction:
    """One logical line -> an Instruction; its arguments checked for its form."""
    word, *more = text.split(None, 1)
    rest = more[0] if more else ""
    cmd = word.upper()
    if cmd not in INSTRUCTIONS:
        raise ParseError(line, f"unknown instruction: {cmd}")
    ins = Instruction(cmd, line, text)
    if cmd == "ONBUILD":
        expr = rest.strip()
        if not expr:
            raise ParseError(line, "ONBUILD requires at least one argument")
        inner = parse_instruction(expr, line, escape)
        if inner.cmd in ("ONBUILD", "FROM", "MAINTAINER"):
            raise ParseError(line, f"{inner.cmd} isn't allowed as an ONBUILD trigger")
        ins.trigger, ins.expression = inner, expr
        return ins
    ins.flags, rest = _flags(cmd, rest, line)
    rest = rest.strip()
    if cmd == "FROM":
        ins.args = rest.split()
        if len(ins.args) not in (1, 3) or (len(ins.args) == 3 and ins.args[1].lower() != "as"):
            raise ParseError(line, "FROM requires either one or three arguments")
        if len(ins.args) == 3 and not _STAGE_NAME.match(ins.args[2].lower()):
            raise ParseError(line, f"invalid name for build stage: {ins.args[2]!r}, name "
                             "can't start with a number or contain symbols")
    elif cmd in ("RUN", "CMD", "ENTRYPOINT", "SHELL"):
        ins.args, ins.json = maybe_json(rest)
        if cmd == "SHELL" and (not ins.json or not ins.args):
            raise ParseError(line, "SHELL requires the arguments to be in JSON form")
        if not ins.json and not rest:
            raise ParseError(line, f"{cmd} requires at least one argument")
    elif cmd in ("COPY", "ADD", "VOLUME"):
        ins.args, ins.json = _maybe_json_list(rest)
        if cmd == "VOLUME":
            if not ins.args:
                raise ParseError(line, "VOLUME requires at least one argument")
            if any(not a.strip() for a in ins.args):
                raise ParseError(line, "VOLUME specified can not be an empty string")
        elif len(ins.args) < 2:
            raise ParseError(line, f"{cmd} requires at least two arguments, but only "
                             f"{len(ins.args)} was provided. Destination could not be "
                             "determined.")
    elif cmd in ("ENV", "LABEL", "ARG"):
        ins.pairs = _name_vals(cmd, rest, escape, line)
    elif cmd == "EXPOSE":
        ins.args = rest.split()
        if not ins.args:
            raise ParseError(line, "EXPOSE requires at least one argument")
    elif cmd in ("WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"):
        if not rest:
            raise ParseError(line, f"{cmd} requires exactly one argument")
        if cmd == "STOPSIGNAL" and len(rest.split()) != 1:
            raise ParseError(line, "STOPSIGNAL requires exactly one argument")
        ins.args = [rest]
    elif cmd == "HEALTHCHECK":
        if not rest:
            raise ParseError(line, "HEALTHCHECK requires at least one argument")
        ins.health = _health(ins, rest)
    return ins


def parse(text: str) -> Dockerfile:
    escape, lines = logical_lines(text)
    if not lines:
        raise InvalidArgument("the Dockerfile cannot be empty: it has no instructions")
    meta: list[Instruction] = []
    stages: list[Stage] = []
    names: set[str] = set()
    for line, body in lines:
        ins = parse_instruction(body, line, escape)
        if ins.cmd == "FROM":
            name = ins.args[2].lower() if len(ins.args) == 3 else None
            if name is not None:
                if name in names:
                    raise ParseError(line, f"duplicate name {name!r} for build stage")
                names.add(name)
            stages.append(Stage(len(stages), ins.args[0], name, ins.flags.get("platform"),
                                ins))
        elif not stages:
            if ins.cmd != "ARG":
                raise ParseError(line, f"no build stage in current context: {ins.cmd} "
                                 "before the first FROM (only ARG may come before it)")
            meta.append(ins)
        else:
            stages[-1].commands.append(ins)
    return Dockerfile(escape, meta, stages)
