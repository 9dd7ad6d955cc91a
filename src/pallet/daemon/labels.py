"""docker's label filters, shared by every list and prune."""

from __future__ import annotations


def label_matches(labels: dict[str, str] | None, expr: str) -> bool:
    """`key` or `key=value`, as docker's `label` filters."""
    k, sep, v = expr.partition("=")
    labels = labels or {}
    return k in labels and (not sep or labels[k] == v)
