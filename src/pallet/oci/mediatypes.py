"""Media types (image-spec media-types.md, and Docker's image manifest v2 schema 2).

Each is named once here; code compares against these names, never against literals.
"""

from __future__ import annotations

# OCI
DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
IMAGE_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
IMAGE_LAYER = "application/vnd.oci.image.layer.v1.tar"
IMAGE_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
IMAGE_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
IMAGE_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
IMAGE_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
IMAGE_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
EMPTY_JSON = "application/vnd.oci.empty.v1+json"

# Docker image manifest v2, schema 2
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
# Not in Docker's registry spec, but what containerd names an uncompressed docker layer.
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"

INDEXES = frozenset({IMAGE_INDEX, DOCKER_MANIFEST_LIST})
MANIFESTS = frozenset({IMAGE_MANIFEST, DOCKER_MANIFEST})
CONFIGS = frozenset({IMAGE_CONFIG, DOCKER_CONFIG})

UNCOMPRESSED = "none"
GZIP = "gzip"
ZSTD = "zstd"

# layer media type -> compression
LAYERS: dict[str, str] = {
    IMAGE_LAYER: UNCOMPRESSED,
    IMAGE_LAYER_GZIP: GZIP,
    IMAGE_LAYER_ZSTD: ZSTD,
    IMAGE_LAYER_NONDISTRIBUTABLE: UNCOMPRESSED,
    IMAGE_LAYER_NONDISTRIBUTABLE_GZIP: GZIP,
    IMAGE_LAYER_NONDISTRIBUTABLE_ZSTD: ZSTD,
    DOCKER_LAYER: UNCOMPRESSED,
    DOCKER_LAYER_GZIP: GZIP,
    DOCKER_FOREIGN_LAYER_GZIP: GZIP,
}

OCI_LAYER_BY_COMPRESSION = {UNCOMPRESSED: IMAGE_LAYER, GZIP: IMAGE_LAYER_GZIP,
                            ZSTD: IMAGE_LAYER_ZSTD}


def is_index(media_type: str) -> bool:
    return media_type in INDEXES


def is_manifest(media_type: str) -> bool:
    return media_type in MANIFESTS


def is_config(media_type: str) -> bool:
    return media_type in CONFIGS


def is_layer(media_type: str) -> bool:
    return media_type in LAYERS


def layer_compression(media_type: str) -> str:
    try:
        return LAYERS[media_type]
    except KeyError:
        raise ValueError(f"not a layer media type: {media_type!r}") from None
