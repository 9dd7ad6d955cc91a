"""`-v`, `--mount` and `--tmpfs` of `pallet run/create` -> the create body's Binds, Mounts,
Tmpfs and Config.Volumes, as the docker CLI builds them (opts/mount.go). The daemon
validates the rest (`pallet.daemon.mounts`)."""

from __future__ import annotations

from pallet.cli.pallet import cmdline
from pallet.cli.pallet.fmt import parse_size

TYPE_CHECKING = False  # `typing` costs ms of imports on every `pallet` command
if TYPE_CHECKING:
    from typing import Any

_BARE_TRUE = ("readonly", "ro", "volume-nocopy", "bind-nonrecursive")


def _bool(key: str, value: str) -> bool:
    v = value.lower()
    if v in ("1", "true"):
        return True
    if v in ("0", "false"):
        return False
    raise cmdline.BadParameter(f"invalid value for {key}: {value}", param_hint="--mount")


def _kv(key: str, value: str) -> tuple[str, str]:
    k, sep, v = value.partition("=")
    if not sep:
        raise cmdline.BadParameter(f"invalid value for {key}: {value} (want key=value)",
                                   param_hint="--mount")
    return k, v


def parse_mount(spec: str) -> dict[str, Any]:
    """`type=volume,src=v,dst=/d,readonly,volume-label=a=b,...` -> an API Mount object."""
    m: dict[str, Any] = {"Type": "volume"}
    vol: dict[str, Any] = {}
    for field in spec.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if not sep:
            if key not in _BARE_TRUE:
                raise cmdline.BadParameter(f"invalid field '{field}' must be a key=value pair",
                                           param_hint="--mount")
            value = "true"
        if key == "type":
            m["Type"] = value
        elif key in ("source", "src"):
            m["Source"] = value
        elif key in ("target", "dst", "destination"):
            m["Target"] = value
        elif key in ("readonly", "ro"):
            m["ReadOnly"] = _bool(key, value)
        elif key == "consistency":
            m["Consistency"] = value
        elif key == "bind-propagation":
            m.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "bind-nonrecursive":
            m.setdefault("BindOptions", {})["NonRecursive"] = _bool(key, value)
        elif key == "volume-nocopy":
            vol["NoCopy"] = _bool(key, value)
        elif key == "volume-label":
            k, v = _kv(key, value)
            vol.setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            vol.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, v = _kv(key, value)
            vol.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "tmpfs-size":
            m.setdefault("TmpfsOptions", {})["SizeBytes"] = parse_size(value)
        elif key == "tmpfs-mode":
            try:
                m.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
            except ValueError:
                raise cmdline.BadParameter(f"invalid value for {key}: {value}",
                                           param_hint="--mount") from None
        else:
            raise cmdline.BadParameter(f"unexpected key '{key}' in '{spec}'",
                                       param_hint="--mount")
    if not m.get("Target"):
        raise cmdline.BadParameter("target is required", param_hint="--mount")
    if vol:
        m["VolumeOptions"] = vol
    return m


def volumes(items: tuple[str, ...]) -> tuple[list[str], dict[str, Any]]:
    """`-v`: `src:dst[:mode]` are Binds; a lone `/dst` is an anonymous volume, sent as
    Config.Volumes (as the docker CLI does)."""
    binds, anon = [], {}
    for v in items:
        if ":" in v:
            binds.append(v)
        else:
            anon[v] = {}
    return binds, anon


def tmpfs(items: tuple[str, ...]) -> dict[str, str]:
    """`--tmpfs /dst[:options]`."""
    out = {}
    for t in items:
        dst, _, opts = t.partition(":")
        out[dst] = opts
    return out
