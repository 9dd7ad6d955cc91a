"""Docker token auth scopes (`repository:<name>:pull,push`) and `WWW-Authenticate`
challenges, shared by the server's token service and the client's token flow.

    scope     := resourcetype ":" resourcename ":" action [ "," action ]*
    challenge := scheme 1*SP auth-param *( "," auth-param )      (RFC 9110 11.6.1)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PULL = "pull"
PUSH = "push"
DELETE = "delete"
REPOSITORY = "repository"


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    def to_access(self) -> dict[str, object]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def parse_scope(value: str) -> Scope:
    """One scope. The name may hold ':' (a registry host with a port), so the type is up to
    the first ':' and the actions after the last."""
    kind, sep, rest = value.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not kind or not name:
        raise ValueError(f"invalid scope {value!r}: want type:name:actions")
    acts = tuple(a for a in actions.split(",") if a)
    return Scope(kind, name, acts)


def parse_scopes(values: list[str]) -> list[Scope]:
    """Every scope of the `scope` query parameters (each may hold several, space-separated)."""
    return [parse_scope(s) for v in values for s in v.split() if s]


def merge(scopes: list[Scope]) -> list[Scope]:
    """One scope per (type, name), actions united in first-seen order."""
    out: dict[tuple[str, str], list[str]] = {}
    for s in scopes:
        acts = out.setdefault((s.type, s.name), [])
        acts.extend(a for a in s.actions if a not in acts)
    return [Scope(t, n, tuple(a)) for (t, n), a in out.items()]


def repository(name: str, *actions: str) -> Scope:
    return Scope(REPOSITORY, name, tuple(actions))


@dataclass
class Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)


_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a `WWW-Authenticate` header (several schemes may share one)."""
    out: list[Challenge] = []
    pos = 0
    while pos < len(header):
        m = re.compile(r"\s*,?\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)").match(header, pos)
        if m is None or m.end() == pos:
            break
        ch = Challenge(m.group(1).lower())
        pos = m.end()
        while pos < len(header):
            p = _PARAM.match(header, pos)
            if p is None or p.end() == pos:
                break
            # A bare word followed by '=' is a parameter; a bare word then space is the next
            # scheme, which _PARAM does not match (it needs '=').
            value = p.group(2) if p.group(2) is not None else p.group(3)
            ch.params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            pos = p.end()
        out.append(ch)
    return out


def format_challenge(scheme: str, params: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in params.items())
    return f"{scheme} {inner}" if inner else scheme
