"""The distribution-spec's error codes (spec.md "Error Codes") and the HTTP status each one
travels with, in one table; the error body is built and parsed only here."""

from __future__ import annotations

import json
from typing import Any

# code -> (HTTP status, message). The statuses are distribution's (the reference registry),
# which the spec's endpoint table follows.
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    # Not in the spec's table, but what distribution answers for a bad upload range.
    "RANGE_INVALID": (416, "requested range not satisfiable"),
    # distribution's code for a bad `n` of tag and catalog listing
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    # distribution's errcode.ErrorCodeUnknown: anything else, e.g. a body that is not JSON.
    "UNKNOWN": (500, "unknown error"),
}


class RegistryError(Exception):
    """One spec error; `status` may override the code's default (413 for SIZE_INVALID on an
    oversized manifest, 416 for BLOB_UPLOAD_INVALID on an out-of-order chunk)."""

    def __init__(self, code: str, detail: Any = None, *, message: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None) -> None:
        if code not in CODES:
            raise ValueError(f"unknown registry error code {code!r}")
        default_status, default_message = CODES[code]
        self.code = code
        self.status = status or default_status
        self.message = message or default_message
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(f"{code}: {self.message}" + (f" ({detail})" if detail else ""))

    def body(self) -> bytes:
        return error_body([self])


def error_body(errors: list[RegistryError]) -> bytes:
    out = []
    for e in errors:
        item: dict[str, Any] = {"code": e.code, "message": e.message}
        if e.detail is not None:
            item["detail"] = e.detail
        out.append(item)
    return json.dumps({"errors": out}).encode()


def parse_error_body(status: int, data: bytes) -> list[RegistryError]:
    """The errors of a response body; a body that is not the spec's JSON yields one error
    named after the status, so a client always has a code to act on."""
    try:
        doc = json.loads(data)
        items = doc["errors"]
        out = []
        for item in items:
            code = item.get("code", "")
            if code in CODES:
                out.append(RegistryError(code, item.get("detail"), status=status,
                                         message=item.get("message") or None))
        if out:
            return out
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return [RegistryError(_code_for_status(status), data[:200].decode(errors="replace") or None,
                          status=status)]


def _code_for_status(status: int) -> str:
    return {401: "UNAUTHORIZED", 403: "DENIED", 405: "UNSUPPORTED", 416: "RANGE_INVALID",
            429: "TOOMANYREQUESTS"}.get(status, "UNKNOWN")
