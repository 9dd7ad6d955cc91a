"""The few error kinds of pallet, and how each maps onto exit codes, HTTP and gRPC.

A message says what was wrong and with which input; context is prepended as an error
travels up (`create abc: mount /proc: ...`).
"""

from __future__ import annotations


class PalletError(Exception):
    """Base of the error kinds; `kind` names the mapping row below."""

    kind = "unknown"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def wrap(self, context: str) -> PalletError:
        return type(self)(f"{context}: {self.message}")

    def __str__(self) -> str:
        return self.message


class NotFound(PalletError):
    kind = "not_found"


class AlreadyExists(PalletError):
    kind = "already_exists"


class InvalidArgument(PalletError):
    kind = "invalid_argument"


class FailedPrecondition(PalletError):
    kind = "failed_precondition"


class Unavailable(PalletError):
    kind = "unavailable"


class SystemError_(PalletError):
    kind = "system"


# One place for the mappings: exit code of the CLIs, HTTP status, gRPC status code name.
MAPPING: dict[str, tuple[int, int, str]] = {
    "not_found": (1, 404, "NOT_FOUND"),
    "already_exists": (1, 409, "ALREADY_EXISTS"),
    "invalid_argument": (1, 400, "INVALID_ARGUMENT"),
    "failed_precondition": (1, 409, "FAILED_PRECONDITION"),
    "unavailable": (1, 503, "UNAVAILABLE"),
    "system": (1, 500, "INTERNAL"),
    "unknown": (1, 500, "UNKNOWN"),
}


def http_status(err: BaseException) -> int:
    return MAPPING[getattr(err, "kind", "unknown")][1]


def grpc_code(err: BaseException) -> str:
    return MAPPING[getattr(err, "kind", "unknown")][2]
