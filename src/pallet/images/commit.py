"""An image made here (a commit, an import, a build step, a docker-archive entry): its
config and manifest written into the content store, the manifest labelled with containerd's
GC references to its config and layers."""

from __future__ import annotations

import json

from pallet.content.local import LocalStore, write_blob
from pallet.images.resolve import child_labels
from pallet.oci import mediatypes as mt
from pallet.oci.image import Descriptor, ImageConfig, Manifest, Platform


class _Bytes:
    """A provider of one blob (the manifest being written) for `child_labels`."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read_blob(self, dgst: object) -> bytes:
        return self.data


def write_image(content: LocalStore, config: ImageConfig, layers: list[Descriptor], *,
                ref: str, config_bytes: bytes | None = None,
                manifest_type: str = mt.IMAGE_MANIFEST, config_type: str = mt.IMAGE_CONFIG
                ) -> tuple[Descriptor, Descriptor]:
    """Write `config` (or its original `config_bytes`, whose digest is the image ID) and a
    manifest of `layers`; returns (manifest descriptor, config descriptor). `ref` names the
    ingests. Call inside a lease: nothing names the image yet."""
    cbytes = config_bytes if config_bytes is not None else json.dumps(
        config.to_dict(), separators=(",", ":")).encode()
    cdesc = Descriptor.of(config_type, cbytes)
    write_blob(content, f"{ref}-{cdesc.digest.encoded}", cbytes)
    mbytes = json.dumps(Manifest(cdesc, layers, media_type=manifest_type).to_dict(),
                        separators=(",", ":")).encode()
    target = Descriptor.of(manifest_type, mbytes, platform=Platform(
        config.os, config.architecture, config.variant or ""))
    write_blob(content, f"{ref}-{target.digest.encoded}", mbytes,
               labels=child_labels(_Bytes(mbytes), target))
    return target, cdesc
