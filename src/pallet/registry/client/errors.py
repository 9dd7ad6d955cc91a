"""The client's one error: a registry (or its token service) answered with an error, or
not at all. It keeps the spec's codes, and maps onto pallet's error kinds by status."""

from __future__ import annotations

from pallet.errors import PalletError
from pallet.registry.errors import RegistryError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class RequestError(PalletError):
    def __init__(self, message: str, status: int = 0,
                 errors: list[RegistryError] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or []
        self.kind = ("not_found" if status == 404 else
                     "unavailable" if status in RETRY_STATUSES or status == 0 else
                     "failed_precondition" if status in (401, 403) else "invalid_argument")

    @property
    def code(self) -> str:
        return self.errors[0].code if self.errors else ""
