"""docker-archive: the `docker save` / `docker load` format, both ways.

    manifest.json   [{"Config": "<hex>.json", "RepoTags": ["busybox:latest"],
                      "Layers": ["<id>/layer.tar", ...]}]
    repositories    {"busybox": {"latest": "<id of the top layer>"}}
    <hex>.json      the image config;  <id>/layer.tar  each layer, uncompressed

Import makes an OCI manifest over the same config and layer blobs; export writes each
layer uncompressed (as docker does) and checks it against the config's diff_ids.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import tempfile
import uuid
from collections.abc import Iterable
from typing import BinaryIO

from pallet.content.labels import GC_ROOT, UNCOMPRESSED
from pallet.content.local import LocalStore, write_blob
from pallet.errors import FailedPrecondition, InvalidArgument
from pallet.images import compression as _compression
from pallet.images import reference
from pallet.images.commit import write_image
from pallet.images.layout import Imported, write_tar
from pallet.images.resolve import resolve
from pallet.images.store import Image, ImageStore
from pallet.oci import digest as _digest
from pallet.oci import mediatypes as mt
from pallet.oci.digest import HashingReader
from pallet.oci.image import Descriptor, ImageConfig, Platform, ValidationError

MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"


def _member(tf: tarfile.TarFile, name: str, where: str) -> BinaryIO:
    clean = "/".join(p for p in name.split("/") if p not in ("", "."))
    if ".." in clean.split("/"):
        raise InvalidArgument(f"{where}: {name!r} escapes the archive")
    try:
        f = tf.extractfile(clean)
    except KeyError:
        raise InvalidArgument(f"{where}: {name!r} is not in the archive") from None
    if f is None:
        raise InvalidArgument(f"{where}: {name!r} is not a file")
    return f  # type: ignore[return-value]


def import_docker_archive(content: LocalStore, images: ImageStore, path: str
                          ) -> list[Imported]:
    out = []
    # docker-archive needs random access: manifest.json may come last.
    with tarfile.open(path, mode="r:*") as tf:
        try:
            entries = json.load(_member(tf, MANIFEST_FILE, path))
        except ValueError as e:
            raise InvalidArgument(f"{path}: {MANIFEST_FILE}: {e}") from None
        if not isinstance(entries, list):
            raise InvalidArgument(f"{path}: {MANIFEST_FILE}: want a list")
        for i, ent in enumerate(entries):
            where = f"{path}: {MANIFEST_FILE}[{i}]"
            if not isinstance(ent, dict) or not isinstance(ent.get("Config"), str) or \
                    not isinstance(ent.get("Layers"), list):
                raise InvalidArgument(f"{where}: want Config and Layers")
            config_bytes = _member(tf, ent["Config"], where).read()
            try:
                config = ImageConfig.from_dict(json.loads(config_bytes))
            except (ValueError, ValidationError) as e:
                raise InvalidArgument(f"{where}: config: {e}") from None
            if len(ent["Layers"]) != len(config.diff_ids):
                raise InvalidArgument(f"{where}: {len(ent['Layers'])} layers, config has "
                                      f"{len(config.diff_ids)} diff_ids")
            layers = [_import_layer(content, tf, name, diff_id, where)
                      for name, diff_id in zip(ent["Layers"], config.diff_ids, strict=True)]
            target, _ = write_image(content, config, layers, ref="import",
                                    config_bytes=config_bytes)
            tags = ent.get("RepoTags") or []
            for tag in tags:
                name = reference.normalize(tag)
                images.put(name, target)
                out.append(Imported(name, target))
            if tags:
                content.update_labels(target.digest, {GC_ROOT: "image"})
            else:
                out.append(Imported(None, target))
    return out


def _import_layer(content: LocalStore, tf: tarfile.TarFile, name: str,
                  diff_id: _digest.Digest, where: str) -> Descriptor:
    """Store the layer file as it is; its uncompressed digest must be the config's diffID."""
    src = _member(tf, name, where)
    compression = _compression.detect(src.read(8))
    src.seek(0)
    if compression == mt.UNCOMPRESSED:
        # the blob is the tar: committing against the diffID is the check
        try:
            dg = write_blob(content, f"import-{diff_id}", src, expected=diff_id,
                            labels={UNCOMPRESSED: str(diff_id)})
        except FailedPrecondition as e:
            raise FailedPrecondition(f"{where}: layer {name}: {e}") from None
        return Descriptor(mt.IMAGE_LAYER, dg, content.info(dg).size)
    raw, _ = _compression.decompress_stream(src, compression)
    h = HashingReader(raw, diff_id.algorithm)
    h.drain()
    if h.digest() != diff_id:
        raise FailedPrecondition(f"{where}: layer {name}: diffID {h.digest()}, config says "
                                 f"{diff_id}")
    src = _member(tf, name, where)
    dg = write_blob(content, f"import-layer-{uuid.uuid4().hex}", src,
                    labels={UNCOMPRESSED: str(diff_id)})
    return Descriptor(mt.OCI_LAYER_BY_COMPRESSION[compression], dg, content.info(dg).size)


def export_docker_archive(content: LocalStore, imgs: Iterable[Image], dest: str,
                          platform: Platform | None = None) -> None:
    imgs = list(imgs)
    with tempfile.TemporaryDirectory(prefix="pallet-save-") as tmp:
        entries: list[tuple[str, int, BinaryIO]] = []
        manifest_json = []
        repositories: dict[str, dict[str, str]] = {}
        written: set[str] = set()
        for img in imgs:
            r = resolve(content, img.target, platform)
            cfg_name = f"{r.manifest.config.digest.encoded}.json"
            if cfg_name not in written:
                written.add(cfg_name)
                entries.append((cfg_name, r.manifest.config.size,
                                content.reader(r.manifest.config.digest)))
            layer_names = []
            for desc, diff_id in zip(r.layers, r.diff_ids, strict=True):
                lname = f"{diff_id.encoded}/layer.tar"
                layer_names.append(lname)
                if lname in written:
                    continue
                written.add(lname)
                entries.append(_uncompressed(content, desc, diff_id, tmp, lname))
            ref = reference.parse(img.name)
            tag = ref.familiar()
            repo = tag.rsplit(":", 1)[0] if ref.tag else tag
            manifest_json.append({"Config": cfg_name, "RepoTags": [tag] if ref.tag else [],
                                  "Layers": layer_names})
            if ref.tag and layer_names:
                repositories.setdefault(repo, {})[ref.tag] = layer_names[-1].split("/")[0]
        mdata = json.dumps(manifest_json).encode()
        rdata = json.dumps(repositories).encode()
        entries.append((MANIFEST_FILE, len(mdata), io.BytesIO(mdata)))
        entries.append((REPOSITORIES_FILE, len(rdata), io.BytesIO(rdata)))
        part = f"{dest}.{uuid.uuid4().hex}.tmp"
        try:
            with open(part, "wb") as out:
                write_tar(out, iter(entries))
            os.replace(part, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)


def _uncompressed(content: LocalStore, desc: Descriptor, diff_id: _digest.Digest, tmp: str,
                  name: str) -> tuple[str, int, BinaryIO]:
    if mt.layer_compression(desc.media_type) == mt.UNCOMPRESSED:
        return name, desc.size, content.reader(desc.digest)
    # tar needs each member's size up front: decompress to a temporary file first.
    path = os.path.join(tmp, name.replace("/", "_"))
    with content.reader(desc.digest) as src, open(path, "wb") as out:
        raw, _ = _compression.decompress_stream(src, mt.layer_compression(desc.media_type))
        h = HashingReader(raw, diff_id.algorithm)
        while chunk := h.read(1 << 20):
            out.write(chunk)
    if h.digest() != diff_id:
        raise FailedPrecondition(f"layer {desc.digest}: diffID {h.digest()}, config says "
                                 f"{diff_id}")
    return name, os.path.getsize(path), open(path, "rb")  # closed by write_tar

