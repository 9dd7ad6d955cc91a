"""Content-addressable storage: read, resumable ingest, commit with digest check."""

from pallet.content.api import Info, Ingester, Manager, Provider, Status, Store, Writer
from pallet.content.labels import GC_REF_CONTENT, GC_ROOT, UNCOMPRESSED
from pallet.content.local import LocalStore, LocalWriter, write_blob

__all__ = [
    "GC_REF_CONTENT",
    "GC_ROOT",
    "UNCOMPRESSED",
    "Info",
    "Ingester",
    "LocalStore",
    "LocalWriter",
    "Manager",
    "Provider",
    "Status",
    "Store",
    "Writer",
    "write_blob",
]
