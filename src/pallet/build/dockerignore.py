"""`.dockerignore`: which context paths a build leaves out (moby/patternmatcher's rules).

One pattern a line; `#` starts a comment line; `!` re-includes; patterns are cleaned
(`./a//b/` is `a/b`, a leading `/` is dropped) and matched against slash-separated paths
relative to the context root with Go's `filepath.Match` syntax (`*`, `?`, `[...]`, `\\`)
plus `**`, any number of directories. The last matching pattern wins, and a path is also
matched by what its parent directories match.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass
class _Pattern:
    text: str
    negate: bool
    regex: re.Pattern[str]


def compile_pattern(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    out.append("(?:.*/)?")  # `**/` : zero or more directories
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"syntax error in pattern {pattern!r}")
            body = pattern[i + 1:end]
            if body.startswith("^"):
                body = "!" + body[1:]
            out.append("[" + ("^" + re.escape(body[1:]).replace("\\-", "-")
                              if body.startswith("!")
                              else re.escape(body).replace("\\-", "-")) + "]")
            i = end
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def parse(text: str) -> list[str]:
    """The patterns of a .dockerignore file, cleaned."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        body = line[1:].strip() if neg else line
        body = posixpath.normpath(body).lstrip("/") if body else body
        if body in ("", "."):
            continue
        out.append(("!" if neg else "") + body)
    return out


class Matcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns = [_Pattern(p, p.startswith("!"), compile_pattern(p.lstrip("!")))
                         for p in patterns]

    def excluded(self, rel: str) -> bool:
        """Whether the context path `rel` (slash-separated, relative) is left out."""
        rel = posixpath.normpath(rel).lstrip("/")
        parents = []
        d = posixpath.dirname(rel)
        while d:
            parents.append(d)
            d = posixpath.dirname(d)
        hit = False
        for p in self.patterns:
            if p.negate != hit:
                continue  # only a pattern of the other kind can change the answer
            if p.regex.match(rel) or any(p.regex.match(x) for x in parents):
                hit = not p.negate
        return hit

    def may_include_below(self, rel: str) -> bool:
        """Whether an excluded directory may still hold re-included paths (a `!` pattern
        below it): then its walk must go on."""
        prefix = rel.rstrip("/") + "/"
        return any(p.negate and (p.text[1:].startswith(prefix) or "*" in p.text)
                   for p in self.patterns)
