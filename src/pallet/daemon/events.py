"""The event bus: what `GET /events` streams (Docker's event message shape)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

HISTORY = 1024


class Events:
    def __init__(self) -> None:
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(self, type_: str, action: str, actor: str,
                attributes: dict[str, str] | None = None) -> dict[str, Any]:
        ns = time.time_ns()
        ev: dict[str, Any] = {
            "Type": type_, "Action": action,
            "Actor": {"ID": actor, "Attributes": dict(attributes or {})},
            "scope": "local", "time": ns // 1_000_000_000, "timeNano": ns,
        }
        if type_ == "container":  # the pre-1.22 fields the CLI still reads
            ev.update(status=action, id=actor, **{"from": (attributes or {}).get("image", "")})
        self.history.append(ev)
        for q in list(self.subscribers):
            q.put_nowait(ev)
        return ev

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self.subscribers.discard(q)


def matches(ev: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Docker's event filters: type, event, container, image, volume, label (key or
    key=value)."""
    attrs = ev["Actor"]["Attributes"]
    checks = {
        "type": lambda v: ev["Type"] == v,
        "event": lambda v: ev["Action"] == v or ev["Action"].split(":")[0] == v,
        "container": lambda v: ev["Type"] == "container" and (
            ev["Actor"]["ID"].startswith(v) or attrs.get("name") == v),
        "image": lambda v: attrs.get("image") == v or (
            ev["Type"] == "image" and ev["Actor"]["ID"] == v),
        "volume": lambda v: ev["Type"] == "volume" and ev["Actor"]["ID"] == v,
        "label": lambda v: (attrs.get(v.split("=", 1)[0]) == v.split("=", 1)[1]
                            if "=" in v else v in attrs),
    }
    for key, values in filters.items():
        check = checks.get(key)
        if check is not None and values and not any(check(v) for v in values):
            return False
    return True
