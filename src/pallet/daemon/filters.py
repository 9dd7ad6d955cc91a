"""docker's filters shared by every list and prune: labels, and points in time."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

from pallet.errors import InvalidArgument


def label_matches(labels: dict[str, str] | None, expr: str) -> bool:
    """`key` or `key=value`, as docker's `label` filters."""
    k, sep, v = expr.partition("=")
    labels = labels or {}
    return k in labels and (not sep or labels[k] == v)


def timestamp(value: str, now: float | None = None) -> float:
    """A point in time as docker's API takes it (GetTimestamp): a Go duration before now
    (`10m`, `1h30m`), Unix seconds (`1600000000.5`), or an RFC 3339 date or time."""
    from pallet.build.dockerfile import parse_duration

    now = time.time() if now is None else now
    text = value.strip()
    if text != "0":  # "0" is the epoch, not now
        try:
            return now - parse_duration(text) / 1e9
        except ValueError:
            pass
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"failed to parse value as time or duration: {value!r}"
                              ) from None
    return t.timestamp()  # without a zone: local time, as docker


def prune_filter(f: dict[str, list[str]], keys: tuple[str, ...] = ("until", "label",
                                                                    "label!")
                 ) -> Callable[[float, dict[str, str]], bool]:
    """docker's prune filters as a test of (created, labels): `until` (created before),
    `label` (each must match, `key` or `key=value`) and `label!` (none may)."""
    for key in f:
        if key not in keys:
            raise InvalidArgument(f"invalid filter '{key}'")
    until = min((timestamp(u) for u in f.get("until", [])), default=None)

    def test(created: float, labels: dict[str, str]) -> bool:
        return ((until is None or created < until)
                and all(label_matches(labels, x) for x in f.get("label", []))
                and not any(label_matches(labels, x) for x in f.get("label!", [])))
    return test
