"""Loading and checking config.json (runtime-spec config.md, config-linux.md).

The check is on types and required fields, with the field's path in the message, so a bad
bundle is refused before anything is created. Unknown properties are ignored (config.md:
"MUST NOT generate an error if they encounter an unknown property").
"""

from __future__ import annotations

import os

from pallet import jsonlite
from pallet.errors import InvalidArgument, NotFound

TYPE_CHECKING = False  # `typing` itself costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

    Config = dict[str, Any]

SUPPORTED_MAJOR = 1

_S, _I, _B = str, int, bool
_STRS = [str]
_HOOK = {"path": _S, "args": _STRS, "env": _STRS, "timeout": _I}
_IDMAP = [{"containerID": _I, "hostID": _I, "size": _I}]
_DEVICE_RULE = {"allow": _B, "type": _S, "major": _I, "minor": _I, "access": _S}

# A description of the shapes: a type, a [element shape], or a {key: shape} object.
SCHEMA: dict[str, Any] = {
    "ociVersion": _S,
    "root": {"path": _S, "readonly": _B},
    "hostname": _S,
    "domainname": _S,
    "annotations": {"*": _S},
    "mounts": [{"destination": _S, "source": _S, "type": _S, "options": _STRS,
                "uidMappings": _IDMAP, "gidMappings": _IDMAP}],
    "process": {
        "terminal": _B,
        "consoleSize": {"height": _I, "width": _I},
        "cwd": _S,
        "env": _STRS,
        "args": _STRS,
        "commandLine": _S,
        "rlimits": [{"type": _S, "soft": _I, "hard": _I}],
        "apparmorProfile": _S,
        "capabilities": {k: _STRS for k in
                         ("bounding", "effective", "inheritable", "permitted", "ambient")},
        "noNewPrivileges": _B,
        "oomScoreAdj": _I,
        "selinuxLabel": _S,
        "user": {"uid": _I, "gid": _I, "umask": _I, "additionalGids": [_I], "username": _S},
    },
    "hooks": {k: [_HOOK] for k in ("prestart", "createRuntime", "createContainer",
                                   "startContainer", "poststart", "poststop")},
    "linux": {
        "namespaces": [{"type": _S, "path": _S}],
        "uidMappings": _IDMAP,
        "gidMappings": _IDMAP,
        "timeOffsets": {"*": {"secs": _I, "nanosecs": _I}},
        "devices": [{"path": _S, "type": _S, "major": _I, "minor": _I, "fileMode": _I,
                     "uid": _I, "gid": _I}],
        "cgroupsPath": _S,
        "rootfsPropagation": _S,
        "maskedPaths": _STRS,
        "readonlyPaths": _STRS,
        "mountLabel": _S,
        "sysctl": {"*": _S},
        "seccomp": {"defaultAction": _S, "architectures": _STRS, "flags": _STRS,
                    "listenerPath": _S, "listenerMetadata": _S, "defaultErrnoRet": _I,
                    "syscalls": [{"names": _STRS, "action": _S, "errnoRet": _I,
                                  "args": [{"index": _I, "value": _I, "valueTwo": _I,
                                            "op": _S}]}]},
        "resources": {"devices": [_DEVICE_RULE]},
        "personality": {"domain": _S, "flags": _STRS},
    },
}

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


def _type_name(shape: Any) -> str:
    if isinstance(shape, list):
        return "array"
    if isinstance(shape, dict):
        return "object"
    return {str: "string", int: "integer", bool: "boolean"}.get(shape, shape.__name__)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def check_shape(value: Any, shape: Any, where: str) -> None:
    want = _type_name(shape)
    got = _json_type(value)
    if want != got and not (want == "integer" and got == "integer"):
        raise InvalidArgument(f"config.json: {where}: expected {want}, got {got}")
    if isinstance(shape, list) and shape:
        for i, item in enumerate(value):
            check_shape(item, shape[0], f"{where}[{i}]")
    elif isinstance(shape, dict):
        for key, item in value.items():
            sub = shape.get(key, shape.get("*"))
            if sub is not None:
                check_shape(item, sub, f"{where}.{key}" if where else key)


def _parse_version(v: str) -> tuple[int, int, int]:
    core = v.split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise InvalidArgument(f"config.json: ociVersion {v!r} is not a SemVer version")
    return int(parts[0]), int(parts[1]), int(parts[2])


def validate(config: Config) -> None:
    if not isinstance(config, dict):
        raise InvalidArgument("config.json: the document must be a JSON object")
    check_shape(config, SCHEMA, "")
    if "ociVersion" not in config:
        raise InvalidArgument("config.json: ociVersion is required")
    major, _, _ = _parse_version(config["ociVersion"])
    if major != SUPPORTED_MAJOR:
        raise InvalidArgument(
            f"config.json: ociVersion {config['ociVersion']} is not supported "
            f"(pallet-runtime implements {SUPPORTED_MAJOR}.x)"
        )
    root = config.get("root")
    if not root or not root.get("path"):
        raise InvalidArgument("config.json: root.path is required on Linux")
    process = config.get("process")
    if process is not None:
        if not process.get("args"):
            raise InvalidArgument("config.json: process.args must name a program")
        cwd = process.get("cwd")
        if not cwd or not cwd.startswith("/"):
            raise InvalidArgument(f"config.json: process.cwd must be an absolute path, got {cwd!r}")
        if "user" not in process:
            raise InvalidArgument("config.json: process.user is required on Linux")
    for i, m in enumerate(config.get("mounts", [])):
        if not m.get("destination"):
            raise InvalidArgument(f"config.json: mounts[{i}].destination is required")
    linux = config.get("linux", {})
    seen: set[str] = set()
    for i, ns in enumerate(linux.get("namespaces", [])):
        t = ns.get("type")
        if t not in NAMESPACE_TYPES:
            raise InvalidArgument(f"config.json: linux.namespaces[{i}].type {t!r} is unknown")
        if t in seen:
            raise InvalidArgument(f"config.json: linux.namespaces: {t} is given twice")
        seen.add(t)
    for kind, hooks in config.get("hooks", {}).items():
        for i, h in enumerate(hooks):
            if not h.get("path", "").startswith("/"):
                raise InvalidArgument(f"config.json: hooks.{kind}[{i}].path must be absolute")
            if "timeout" in h and h["timeout"] <= 0:
                raise InvalidArgument(f"config.json: hooks.{kind}[{i}].timeout must be > 0")


def load(bundle: str) -> Config:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise NotFound(f"{path}: no config.json in the bundle") from None
    except OSError as e:
        raise InvalidArgument(f"{path}: {e.strerror}") from None
    try:
        config = jsonlite.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"{path}: invalid JSON: {e}") from None
    validate(config)
    return config


def namespaces(config: Config) -> dict[str, str]:
    """type -> path ("" for a new namespace)."""
    return {ns["type"]: ns.get("path", "") for ns in config.get("linux", {}).get("namespaces", [])}
