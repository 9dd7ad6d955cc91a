"""OCI image layout (image-layout.md) import and export, as a directory or a tar of one.

    oci-layout        {"imageLayoutVersion": "1.0.0"}
    index.json        the entry points; names in `org.opencontainers.image.ref.name`
    blobs/<alg>/<hex>

Export names each manifest the way containerd does: `ref.name` holds the tag (so that
`skopeo inspect oci:DIR:TAG` finds it) and `io.containerd.image.name` the full name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pallet.content.labels import GC_ROOT
from pallet.content.local import LocalStore, write_blob
from pallet.errors import InvalidArgument, NotFound
from pallet.images import reference
from pallet.images.resolve import child_labels, walk
from pallet.images.store import Image, ImageStore
from pallet.oci import digest as _digest
from pallet.oci import mediatypes as mt
from pallet.oci.image import ANNOTATION_REF_NAME, Descriptor, Index, ValidationError

LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = "1.0.0"
INDEX_FILE = "index.json"
CONTAINERD_IMAGE_NAME = "io.containerd.image.name"


@dataclass
class Imported:
    name: str | None
    target: Descriptor


# --- import -------------------------------------------------------------------------------

def _names(desc: Descriptor, base_name: str | None) -> str | None:
    ann = desc.annotations or {}
    full = ann.get(CONTAINERD_IMAGE_NAME)
    if full:
        return reference.normalize(full)
    ref_name = ann.get(ANNOTATION_REF_NAME)
    if ref_name:
        if reference.is_tag_only(ref_name):
            if base_name is None:
                return None
            return str(reference.parse_named(base_name).with_tag(ref_name))
        return reference.normalize(ref_name)
    return reference.normalize(base_name) if base_name else None


def _parse_index(data: bytes, where: str) -> Index:
    try:
        return Index.from_dict(json.loads(data), where)
    except (ValueError, ValidationError) as e:
        raise InvalidArgument(f"{where}: {e}") from None


def _check_layout(data: bytes | None, where: str) -> None:
    if data is None:
        raise InvalidArgument(f"{where}: not an OCI image layout (no {LAYOUT_FILE})")
    try:
        version = json.loads(data)["imageLayoutVersion"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument(f"{where}/{LAYOUT_FILE}: invalid") from None
    if version != LAYOUT_VERSION:
        raise InvalidArgument(f"{where}/{LAYOUT_FILE}: unsupported version {version!r}")


def _register(content: LocalStore, images: ImageStore, index: Index,
              base_name: str | None) -> list[Imported]:
    out = []
    for desc in index.manifests:
        # Store the descriptor without layout-only annotations: the name is the image's.
        target = Descriptor(desc.media_type, desc.digest, desc.size,
                            platform=desc.platform, artifact_type=desc.artifact_type)
        for d in walk(content, target, skip_missing=True):
            labels = child_labels(content, d) if content.exists(d.digest) else {}
            if labels:
                content.update_labels(d.digest, labels)
        name = _names(desc, base_name)
        if name is not None:
            images.put(name, target)
            content.update_labels(target.digest, {GC_ROOT: "image"})
        out.append(Imported(name, target))
    return out


def import_layout_dir(content: LocalStore, images: ImageStore, path: str,
                      base_name: str | None = None) -> list[Imported]:
    where = os.fspath(path)
    try:
        with open(os.path.join(where, LAYOUT_FILE), "rb") as f:
            _check_layout(f.read(), where)
    except FileNotFoundError:
        _check_layout(None, where)
    with open(os.path.join(where, INDEX_FILE), "rb") as f:
        index = _parse_index(f.read(), f"{where}/{INDEX_FILE}")

    class _DirProvider:
        def read_blob(self, dgst: _digest.Digest) -> bytes:
            try:
                with open(_blob(where, dgst), "rb") as f:
                    return f.read()
            except FileNotFoundError:
                raise NotFound(f"{where}: blob {dgst} missing") from None

        def reader(self, dgst: _digest.Digest) -> BinaryIO:
            return open(_blob(where, dgst), "rb")

    src = _DirProvider()
    for top in index.manifests:
        for d in walk(src, top, skip_missing=True):  # type: ignore[arg-type]
            path_ = _blob(where, d.digest)
            if not os.path.exists(path_):
                continue  # a platform the layout does not carry
            with open(path_, "rb") as f:
                write_blob(content, f"import-{d.digest}", f, size=d.size, expected=d.digest)
    return _register(content, images, index, base_name)


def _blob(root: str, d: _digest.Digest) -> str:
    return os.path.join(root, "blobs", d.algorithm, d.encoded)


def import_layout_tar(content: LocalStore, images: ImageStore, src: str | BinaryIO,
                      base_name: str | None = None) -> list[Imported]:
    """Stream a layout tar: every blob is verified against its own name on the way in."""
    layout = index_data = None
    where = src if isinstance(src, str) else "archive"
    with _open_tar(src) as tf:
        for m in tf:
            name = "/".join(p for p in m.name.split("/") if p not in ("", "."))
            if not m.isreg():
                continue
            f = tf.extractfile(m)
            assert f is not None
            if name == LAYOUT_FILE:
                layout = f.read()
            elif name == INDEX_FILE:
                index_data = f.read()
            elif name.startswith("blobs/") and name.count("/") == 2:
                _, algo, hexpart = name.split("/")
                try:
                    dg = _digest.parse(f"{algo}:{hexpart}")
                except _digest.DigestError as e:
                    raise InvalidArgument(f"{where}: {name}: {e}") from None
                write_blob(content, f"import-{dg}", f, size=m.size, expected=dg)
    _check_layout(layout, str(where))
    if index_data is None:
        raise InvalidArgument(f"{where}: no {INDEX_FILE}")
    return _register(content, images, _parse_index(index_data, f"{where}/{INDEX_FILE}"),
                     base_name)


def _open_tar(src: str | BinaryIO) -> tarfile.TarFile:
    if isinstance(src, str):
        return tarfile.open(src, mode="r|*")
    return tarfile.open(fileobj=src, mode="r|*")  # type: ignore[call-overload]


def import_layout(content: LocalStore, images: ImageStore, path: str,
                  base_name: str | None = None) -> list[Imported]:
    if os.path.isdir(path):
        return import_layout_dir(content, images, path, base_name)
    return import_layout_tar(content, images, path, base_name)


# --- export -------------------------------------------------------------------------------

def _export_index(content: LocalStore, imgs: Iterable[Image]) -> tuple[Index, list[Descriptor]]:
    manifests: list[Descriptor] = []
    blobs: dict[str, Descriptor] = {}
    for img in imgs:
        ref = reference.parse(img.name)
        ann = {CONTAINERD_IMAGE_NAME: img.name}
        if ref.tag:
            ann[ANNOTATION_REF_NAME] = ref.tag
        t = img.target
        manifests.append(Descriptor(t.media_type, t.digest, t.size, annotations=ann,
                                    platform=t.platform))
        for d in walk(content, t, skip_missing=True):
            if content.exists(d.digest):
                blobs[str(d.digest)] = d
            elif mt.is_manifest(d.media_type) or mt.is_index(d.media_type) or d is t:
                raise NotFound(f"image {img.name}: blob {d.digest} missing")
    return Index(manifests), list(blobs.values())


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def export_layout_dir(content: LocalStore, imgs: Iterable[Image], dest: str) -> Index:
    index, blobs = _export_index(content, imgs)
    os.makedirs(dest, exist_ok=True)
    for d in blobs:
        path = _blob(dest, d.digest)
        if os.path.exists(path):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with content.reader(d.digest) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, path)
    _atomic_write(os.path.join(dest, LAYOUT_FILE), _json({"imageLayoutVersion":
                                                           LAYOUT_VERSION}))
    _atomic_write(os.path.join(dest, INDEX_FILE), _json(index.to_dict()))
    return index


def _atomic_write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _tar_entries(content: LocalStore, index: Index, blobs: list[Descriptor]
                 ) -> Iterator[tuple[str, int, BinaryIO]]:
    layout = _json({"imageLayoutVersion": LAYOUT_VERSION})
    yield LAYOUT_FILE, len(layout), io.BytesIO(layout)
    for d in blobs:
        yield f"blobs/{d.digest.algorithm}/{d.digest.encoded}", d.size, content.reader(d.digest)
    data = _json(index.to_dict())
    yield INDEX_FILE, len(data), io.BytesIO(data)


def write_tar(out: BinaryIO, entries: Iterable[tuple[str, int, BinaryIO]]) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
        dirs: set[str] = set()
        for name, size, f in entries:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d + "/")
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                    tf.addfile(ti)
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = size, 0o644
            with contextlib.closing(f):
                tf.addfile(ti, f)


def export_layout_tar(content: LocalStore, imgs: Iterable[Image], dest: str | BinaryIO
                      ) -> Index:
    index, blobs = _export_index(content, imgs)
    if isinstance(dest, str):
        tmp = f"{dest}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as out:
                write_tar(out, _tar_entries(content, index, blobs))
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    else:
        write_tar(dest, _tar_entries(content, index, blobs))
    return index
