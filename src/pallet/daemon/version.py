"""The Engine API versions palletd speaks (the real docker CLI negotiates down to these)."""

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"


def parse(v: str) -> tuple[int, int]:
    major, _, minor = v.partition(".")
    return int(major), int(minor or 0)
