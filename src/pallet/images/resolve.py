"""Reading an image's documents from a content provider: index -> manifest (by platform)
-> config and layers. Every blob read here was verified when it was committed; every
document is validated when parsed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pallet.content.api import Provider
from pallet.errors import InvalidArgument, NotFound
from pallet.oci import mediatypes as mt
from pallet.oci.image import (
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    ValidationError,
    chain_ids,
)


def read_json(provider: Provider, desc: Descriptor) -> Any:
    data = desc.data if desc.data is not None else provider.read_blob(desc.digest)
    try:
        return json.loads(data)
    except ValueError as e:
        raise InvalidArgument(f"{desc.media_type} {desc.digest}: not JSON: {e}") from None


def read_index(provider: Provider, desc: Descriptor) -> Index:
    try:
        return Index.from_dict(read_json(provider, desc), media_type=desc.media_type)
    except ValidationError as e:
        raise InvalidArgument(f"index {desc.digest}: {e}") from None


def read_manifest(provider: Provider, desc: Descriptor) -> Manifest:
    try:
        return Manifest.from_dict(read_json(provider, desc), media_type=desc.media_type)
    except ValidationError as e:
        raise InvalidArgument(f"manifest {desc.digest}: {e}") from None


def read_config(provider: Provider, desc: Descriptor) -> ImageConfig:
    try:
        return ImageConfig.from_dict(read_json(provider, desc))
    except ValidationError as e:
        raise InvalidArgument(f"config {desc.digest}: {e}") from None


@dataclass
class ResolvedImage:
    manifest_desc: Descriptor
    manifest: Manifest
    config: ImageConfig

    @property
    def layers(self) -> list[Descriptor]:
        return [x for x in self.manifest.layers if mt.is_layer(x.media_type)]

    @property
    def diff_ids(self) -> list:
        return self.config.diff_ids

    @property
    def chain_ids(self) -> list:
        return chain_ids(self.config.diff_ids)


def resolve(provider: Provider, target: Descriptor, platform: Platform | None = None
            ) -> ResolvedImage:
    """The manifest of `target` for `platform` (default: this machine), with its config."""
    desc = target
    for _ in range(8):  # an index may nest indexes; a cycle is impossible by hashing, depth
        if not mt.is_index(desc.media_type):
            break
        try:
            desc = read_index(provider, desc).select(platform)
        except LookupError as e:
            raise NotFound(str(e)) from None
    if not mt.is_manifest(desc.media_type):
        raise InvalidArgument(f"{desc.digest}: unsupported media type {desc.media_type}")
    manifest = read_manifest(provider, desc)
    config = read_config(provider, manifest.config)
    layers = [x for x in manifest.layers if mt.is_layer(x.media_type)]
    if len(layers) != len(config.diff_ids):
        raise InvalidArgument(f"manifest {desc.digest}: {len(layers)} layers but the config "
                              f"has {len(config.diff_ids)} diff_ids")
    return ResolvedImage(desc, manifest, config)


def children(provider: Provider, desc: Descriptor) -> list[Descriptor]:
    if mt.is_index(desc.media_type):
        return list(read_index(provider, desc).manifests)
    if mt.is_manifest(desc.media_type):
        m = read_manifest(provider, desc)
        return [m.config, *m.layers]
    return []


def walk(provider: Provider, desc: Descriptor, *, skip_missing: bool = False
         ) -> Iterator[Descriptor]:
    """`desc` and everything it references, parents before children, each once."""
    seen: set[str] = set()
    todo = [desc]
    while todo:
        d = todo.pop(0)
        if str(d.digest) in seen:
            continue
        seen.add(str(d.digest))
        try:
            kids = children(provider, d)
        except NotFound:
            if skip_missing:
                continue
            raise
        yield d
        todo.extend(kids)


def child_labels(provider: Provider, desc: Descriptor) -> dict[str, str]:
    """containerd's GC reference labels for `desc`'s children, so a garbage collector keeps
    a manifest's config and layers (and an index's manifests) while it is referenced."""
    from pallet.content.labels import GC_REF_CONTENT

    if mt.is_index(desc.media_type):
        return {f"{GC_REF_CONTENT}m.{i}": str(d.digest)
                for i, d in enumerate(read_index(provider, desc).manifests)}
    if mt.is_manifest(desc.media_type):
        m = read_manifest(provider, desc)
        out = {f"{GC_REF_CONTENT}config": str(m.config.digest)}
        out.update({f"{GC_REF_CONTENT}l.{i}": str(d.digest) for i, d in enumerate(m.layers)})
        return out
    return {}
