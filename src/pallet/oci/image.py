"""The image-spec documents as typed models: descriptor, manifest, index, image config,
platform; each `from_dict` validates and names the offending field in its error.

Models keep the document's unknown fields (`extra`) so that `to_dict()` does not drop what
a newer writer put there. Bytes that are already content-addressed are never re-serialised
by callers: a model is for reading and for writing new documents.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field
from typing import Any

from pallet.oci import digest as _digest
from pallet.oci import mediatypes as mt

# defs-descriptor.json#/definitions/mediaType
_MEDIA_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)
_MAX_SIZE = 2**63 - 1

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"


class ValidationError(ValueError):
    """A document that does not follow the image-spec; the message names the field."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


# --- small typed getters: each failure says which field and what was expected -------------

def _obj(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValidationError(where, f"want an object, got {type(v).__name__}")
    return v


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str,
         *, required: bool = False, default: Any = None) -> Any:
    if key not in d or (d[key] is None and not required):
        if required:
            raise ValidationError(f"{where}.{key}", "required field is missing")
        return default
    v = d[key]
    # bool is an int in Python; a size or schemaVersion must not be `true`.
    if isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ValidationError(f"{where}.{key}", f"want {_kind_name(kind)}, got boolean")
    if not isinstance(v, kind):
        raise ValidationError(f"{where}.{key}", f"want {_kind_name(kind)}, "
                              f"got {type(v).__name__}")
    return v


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {dict: "object", list: "array", str: "string", int: "integer", bool: "boolean"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _str_list(d: dict[str, Any], key: str, where: str) -> list[str] | None:
    v = _get(d, key, list, where)
    if v is None:
        return None
    for i, item in enumerate(v):
        if not isinstance(item, str):
            raise ValidationError(f"{where}.{key}[{i}]", "want a string")
    return list(v)


def _str_map(d: dict[str, Any], key: str, where: str) -> dict[str, str] | None:
    v = _get(d, key, dict, where)
    if v is None:
        return None
    for k, item in v.items():
        if not isinstance(item, str):
            raise ValidationError(f"{where}.{key}[{k!r}]", "want a string value")
    return dict(v)


def _media_type(d: dict[str, Any], key: str, where: str, *, required: bool) -> str | None:
    v = _get(d, key, str, where, required=required)
    if v is not None and not _MEDIA_TYPE.match(v):
        raise ValidationError(f"{where}.{key}", f"invalid media type {v!r}")
    return v


def _extra(d: dict[str, Any], known: set[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in known}


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


# --- platform ----------------------------------------------------------------------------

# Aliases as containerd's platforms.Normalize knows them: uname(2) names -> GOARCH names.
_ARCH_ALIASES = {
    "x86_64": ("amd64", ""), "x86-64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"), "armel": ("arm", "v6"),
    "i386": ("386", ""), "i686": ("386", ""),
}


@dataclass
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Any, where: str = "platform") -> Platform:
        d = _obj(d, where)
        return cls(
            os=_get(d, "os", str, where, required=True),
            architecture=_get(d, "architecture", str, where, required=True),
            variant=_get(d, "variant", str, where, default=""),
            os_version=_get(d, "os.version", str, where, default=""),
            os_features=_str_list(d, "os.features", where) or [],
        )

    @classmethod
    def parse(cls, spec: str) -> Platform:
        """`os/arch[/variant]` as docker's `--platform` takes it."""
        parts = spec.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {spec!r}: want os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "").normalized()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out

    def normalized(self) -> Platform:
        arch, variant = self.architecture.lower(), self.variant.lower()
        if arch in _ARCH_ALIASES:
            arch, default_variant = _ARCH_ALIASES[arch]
            variant = variant or default_variant
        if arch == "arm64" and variant == "v8":
            variant = ""  # v8 is arm64's only and default variant
        if arch == "arm" and variant in ("", "7"):
            variant = "v7"
        return Platform(self.os.lower(), arch, variant, self.os_version, list(self.os_features))

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def host_platform() -> Platform:
    return Platform("linux", os.uname().machine).normalized()


def platform_matches(wanted: Platform, candidate: Platform) -> bool:
    """Whether an image for `candidate` runs on `wanted` (os, architecture, variant).

    An unset wanted variant accepts any; an arm machine of variant vN also runs lower
    variants, best first (see `platform_rank`).
    """
    w, c = wanted.normalized(), candidate.normalized()
    if w.os != c.os or w.architecture != c.architecture:
        return False
    if not w.variant or w.variant == c.variant:
        return True
    return w.architecture == "arm" and _arm_level(c.variant) <= _arm_level(w.variant)


def platform_rank(wanted: Platform, candidate: Platform) -> int:
    """Lower is better; only meaningful when `platform_matches`."""
    w, c = wanted.normalized(), candidate.normalized()
    if w.variant == c.variant:
        return 0
    if w.architecture == "arm":
        return 1 + _arm_level(w.variant) - _arm_level(c.variant)
    return 1


def _arm_level(variant: str) -> int:
    return int(variant[1:]) if re.fullmatch(r"v\d+", variant or "") else 0


# --- descriptor --------------------------------------------------------------------------

@dataclass
class Descriptor:
    media_type: str
    digest: _digest.Digest
    size: int
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    data: bytes | None = None
    artifact_type: str | None = None
    platform: Platform | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = {"mediaType", "digest", "size", "urls", "annotations", "data", "artifactType",
              "platform"}

    @classmethod
    def from_dict(cls, d: Any, where: str = "descriptor") -> Descriptor:
        d = _obj(d, where)
        media_type = _media_type(d, "mediaType", where, required=True)
        try:
            dg = _digest.parse(_get(d, "digest", str, where, required=True))
        except _digest.DigestError as e:
            raise ValidationError(f"{where}.digest", str(e)) from None
        size = _get(d, "size", int, where, required=True)
        if not 0 <= size <= _MAX_SIZE:
            raise ValidationError(f"{where}.size", f"out of range: {size}")
        data = None
        raw = _get(d, "data", str, where)
        if raw is not None:
            try:
                data = base64.b64decode(raw, validate=True)
            except ValueError:
                raise ValidationError(f"{where}.data", "not valid base64") from None
            if len(data) != size or _digest.from_bytes(data, dg.algorithm) != dg:
                raise ValidationError(f"{where}.data", "does not match size and digest")
        plat = d.get("platform")
        return cls(
            media_type=media_type,  # type: ignore[arg-type]
            digest=dg,
            size=size,
            urls=_str_list(d, "urls", where),
            annotations=_str_map(d, "annotations", where),
            data=data,
            artifact_type=_media_type(d, "artifactType", where, required=False),
            platform=None if plat is None else Platform.from_dict(plat, f"{where}.platform"),
            extra=_extra(d, cls._KNOWN),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest),
                               "size": self.size}
        _put(out, "urls", self.urls)
        _put(out, "annotations", self.annotations)
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode()
        _put(out, "artifactType", self.artifact_type)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        out.update(self.extra)
        return out

    @classmethod
    def of(cls, media_type: str, blob: bytes, **kw: Any) -> Descriptor:
        return cls(media_type, _digest.from_bytes(blob), len(blob), **kw)


# --- manifest and index ------------------------------------------------------------------

def _schema_version(d: dict[str, Any], where: str) -> int:
    v = _get(d, "schemaVersion", int, where, required=True)
    if v != 2:
        raise ValidationError(f"{where}.schemaVersion", f"want 2, got {v}")
    return v


def _descriptors(d: dict[str, Any], key: str, where: str, *, required: bool
                 ) -> list[Descriptor]:
    items = _get(d, key, list, where, required=required, default=[])
    return [Descriptor.from_dict(x, f"{where}.{key}[{i}]") for i, x in enumerate(items)]


def _check_media_type(value: str | None, allowed: frozenset[str], where: str,
                      expected: str | None) -> None:
    # mediaType is optional in the document (image-manifest-schema.json), but when the
    # caller knows it from the descriptor that led here, the two must agree.
    if value is not None and value not in allowed:
        raise ValidationError(f"{where}.mediaType", f"unexpected media type {value!r}")
    if expected is not None and value is not None and value != expected:
        raise ValidationError(f"{where}.mediaType",
                              f"{value!r} does not match the descriptor's {expected!r}")


@dataclass
class Manifest:
    config: Descriptor
    layers: list[Descriptor]
    media_type: str | None = mt.IMAGE_MANIFEST
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = {"schemaVersion", "mediaType", "artifactType", "config", "layers", "subject",
              "annotations"}

    @classmethod
    def from_dict(cls, d: Any, where: str = "manifest", *, media_type: str | None = None
                  ) -> Manifest:
        d = _obj(d, where)
        _schema_version(d, where)
        m = _media_type(d, "mediaType", where, required=False)
        _check_media_type(m, mt.MANIFESTS, where, media_type)
        subject = d.get("subject")
        return cls(
            config=Descriptor.from_dict(_get(d, "config", dict, where, required=True),
                                        f"{where}.config"),
            layers=_descriptors(d, "layers", where, required=True),
            media_type=m,
            artifact_type=_media_type(d, "artifactType", where, required=False),
            subject=None if subject is None else Descriptor.from_dict(subject,
                                                                       f"{where}.subject"),
            annotations=_str_map(d, "annotations", where),
            extra=_extra(d, cls._KNOWN),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schemaVersion": 2}
        _put(out, "mediaType", self.media_type)
        _put(out, "artifactType", self.artifact_type)
        out["config"] = self.config.to_dict()
        out["layers"] = [x.to_dict() for x in self.layers]
        if self.subject is not None:
            out["subject"] = self.subject.to_dict()
        _put(out, "annotations", self.annotations)
        out.update(self.extra)
        return out


@dataclass
class Index:
    manifests: list[Descriptor]
    media_type: str | None = mt.IMAGE_INDEX
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = {"schemaVersion", "mediaType", "artifactType", "manifests", "subject",
              "annotations"}

    @classmethod
    def from_dict(cls, d: Any, where: str = "index", *, media_type: str | None = None
                  ) -> Index:
        d = _obj(d, where)
        _schema_version(d, where)
        m = _media_type(d, "mediaType", where, required=False)
        _check_media_type(m, mt.INDEXES, where, media_type)
        subject = d.get("subject")
        return cls(
            manifests=_descriptors(d, "manifests", where, required=True),
            media_type=m,
            artifact_type=_media_type(d, "artifactType", where, required=False),
            subject=None if subject is None else Descriptor.from_dict(subject,
                                                                       f"{where}.subject"),
            annotations=_str_map(d, "annotations", where),
            extra=_extra(d, cls._KNOWN),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schemaVersion": 2}
        _put(out, "mediaType", self.media_type)
        _put(out, "artifactType", self.artifact_type)
        out["manifests"] = [x.to_dict() for x in self.manifests]
        if self.subject is not None:
            out["subject"] = self.subject.to_dict()
        _put(out, "annotations", self.annotations)
        out.update(self.extra)
        return out

    def select(self, wanted: Platform | None = None) -> Descriptor:
        """The manifest for `wanted` (default: this machine), best match first."""
        wanted = wanted or host_platform()
        best: tuple[int, int, Descriptor] | None = None
        for i, desc in enumerate(self.manifests):
            if desc.platform is None:
                continue
            if not (mt.is_manifest(desc.media_type) or mt.is_index(desc.media_type)):
                continue
            if platform_matches(wanted, desc.platform):
                key = (platform_rank(wanted, desc.platform), i, desc)
                if best is None or key[:2] < best[:2]:
                    best = key
        if best is None:
            have = ", ".join(str(d.platform) for d in self.manifests if d.platform) or "none"
            raise LookupError(f"no manifest for platform {wanted} (index has: {have})")
        return best[2]


# --- image config ------------------------------------------------------------------------

@dataclass
class ContainerConfig:
    """`config` of config.md: the execution parameters (Docker's names, capitalised)."""

    User: str | None = None
    ExposedPorts: dict[str, Any] | None = None
    Env: list[str] | None = None
    Entrypoint: list[str] | None = None
    Cmd: list[str] | None = None
    Volumes: dict[str, Any] | None = None
    WorkingDir: str | None = None
    Labels: dict[str, str] | None = None
    StopSignal: str | None = None
    ArgsEscaped: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = {"User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
              "Labels", "StopSignal", "ArgsEscaped"}

    @classmethod
    def from_dict(cls, d: Any, where: str = "config.config") -> ContainerConfig:
        d = _obj(d, where)
        return cls(
            User=_get(d, "User", str, where),
            ExposedPorts=_get(d, "ExposedPorts", dict, where),
            Env=_str_list(d, "Env", where),
            Entrypoint=_str_list(d, "Entrypoint", where),
            Cmd=_str_list(d, "Cmd", where),
            Volumes=_get(d, "Volumes", dict, where),
            WorkingDir=_get(d, "WorkingDir", str, where),
            Labels=_str_map(d, "Labels", where),
            StopSignal=_get(d, "StopSignal", str, where),
            ArgsEscaped=_get(d, "ArgsEscaped", bool, where),
            extra=_extra(d, cls._KNOWN),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
                  "Labels", "StopSignal", "ArgsEscaped"):
            _put(out, k, getattr(self, k))
        out.update(self.extra)
        return out


@dataclass
class History:
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str) -> History:
        d = _obj(d, where)
        return cls(*(_get(d, k, bool if k == "empty_layer" else str, where)
                     for k in ("created", "created_by", "author", "comment", "empty_layer")))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in ("created", "created_by", "author", "comment", "empty_layer"):
            _put(out, k, getattr(self, k))
        return out


@dataclass
class ImageConfig:
    architecture: str
    os: str
    diff_ids: list[_digest.Digest]
    config: ContainerConfig = field(default_factory=ContainerConfig)
    created: str | None = None
    author: str | None = None
    variant: str | None = None
    os_version: str | None = None
    os_features: list[str] | None = None
    history: list[History] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = {"architecture", "os", "rootfs", "config", "created", "author", "variant",
              "os.version", "os.features", "history"}

    @classmethod
    def from_dict(cls, d: Any, where: str = "config") -> ImageConfig:
        d = _obj(d, where)
        rootfs = _get(d, "rootfs", dict, where, required=True)
        if _get(rootfs, "type", str, f"{where}.rootfs", required=True) != "layers":
            raise ValidationError(f"{where}.rootfs.type", "want \"layers\"")
        diff_ids = []
        for i, x in enumerate(_get(rootfs, "diff_ids", list, f"{where}.rootfs", required=True)):
            try:
                diff_ids.append(_digest.parse(x))
            except _digest.DigestError as e:
                raise ValidationError(f"{where}.rootfs.diff_ids[{i}]", str(e)) from None
        hist = _get(d, "history", list, where)
        cfg = d.get("config")
        return cls(
            architecture=_get(d, "architecture", str, where, required=True),
            os=_get(d, "os", str, where, required=True),
            diff_ids=diff_ids,
            config=ContainerConfig() if cfg is None else ContainerConfig.from_dict(
                cfg, f"{where}.config"),
            created=_get(d, "created", str, where),
            author=_get(d, "author", str, where),
            variant=_get(d, "variant", str, where),
            os_version=_get(d, "os.version", str, where),
            os_features=_str_list(d, "os.features", where),
            history=None if hist is None else [
                History.from_dict(h, f"{where}.history[{i}]") for i, h in enumerate(hist)],
            extra=_extra(d, cls._KNOWN),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "created", self.created)
        _put(out, "author", self.author)
        out["architecture"] = self.architecture
        _put(out, "variant", self.variant)
        out["os"] = self.os
        _put(out, "os.version", self.os_version)
        _put(out, "os.features", self.os_features)
        out["config"] = self.config.to_dict()
        out["rootfs"] = {"type": "layers", "diff_ids": [str(x) for x in self.diff_ids]}
        if self.history is not None:
            out["history"] = [h.to_dict() for h in self.history]
        out.update(self.extra)
        return out

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant or "", self.os_version or "",
                        list(self.os_features or []))


def chain_ids(diff_ids: list[_digest.Digest]) -> list[_digest.Digest]:
    """ChainID of each layer (config.md#layer-chainid): the key of a committed snapshot."""
    out: list[_digest.Digest] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append(_digest.from_bytes(f"{out[-1]} {d}".encode()))
    return out
