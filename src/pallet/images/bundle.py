"""Image config -> OCI runtime config, per image-spec conversion.md.

Verbatim: WorkingDir -> process.cwd, Env -> process.env, Entrypoint + Cmd -> process.args.
Parsed: User -> process.user (names looked up in the image's own /etc/passwd and
/etc/group, read inside the rootfs so a symlinked /etc cannot point at the host's).
Annotations: os, architecture, variant, os.version, os.features, author, created,
StopSignal, ExposedPorts, and Labels, which take precedence over the implicit ones.
The base is `pallet-runtime spec`'s config (`oci.spec_default.default_spec`).
"""

from __future__ import annotations

import errno
import os
from typing import Any

from pallet.errors import InvalidArgument, NotFound
from pallet.linux.paths import resolve_in_root
from pallet.oci.image import ImageConfig
from pallet.oci.spec_default import default_spec

A = "org.opencontainers.image."
ANNOTATION_EXPOSED_PORTS = A + "exposedPorts"
ANNOTATION_STOP_SIGNAL = A + "stopSignal"
# conversion.md maps Volumes to mounts, which are implementation-defined; the list is kept
# as an annotation so the layer above (the daemon) can decide how to provide them.
ANNOTATION_VOLUMES = "io.pallet.image.volumes"


def read_db(rootfs: str, path: str) -> list[list[str]]:
    try:
        with open(resolve_in_root(rootfs, path), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        return []
    return [ln.split(":") for ln in lines if ln and not ln.startswith("#")]


def resolve_user(rootfs: str, user: str | None) -> dict[str, Any]:
    """`user[:group]` (names or numbers) -> runtime-spec `process.user`."""
    if not user:
        return {"uid": 0, "gid": 0}
    name, _, group = user.partition(":")
    passwd = read_db(rootfs, "/etc/passwd")
    groups = read_db(rootfs, "/etc/group")
    entry = None
    if name.isdigit():
        uid = int(name)
        entry = next((p for p in passwd if len(p) > 3 and p[2] == name), None)
    else:
        entry = next((p for p in passwd if len(p) > 3 and p[0] == name), None)
        if entry is None:
            raise NotFound(f"user {name!r}: no such user in the image's /etc/passwd")
        uid = int(entry[2])
    gid = int(entry[3]) if entry is not None and entry[3].isdigit() else 0
    out: dict[str, Any] = {"uid": uid, "gid": gid}
    if group:
        if group.isdigit():
            out["gid"] = int(group)
        else:
            g = next((x for x in groups if len(x) > 2 and x[0] == group), None)
            if g is None:
                raise NotFound(f"group {group!r}: no such group in the image's /etc/group")
            out["gid"] = int(g[2])
        return out
    if not name.isdigit():
        # additionalGids only for a user named without a group (conversion.md)
        extra = sorted({int(g[2]) for g in groups
                        if len(g) > 3 and g[2].isdigit() and name in g[3].split(",")
                        and int(g[2]) != out["gid"]})
        if extra:
            out["additionalGids"] = extra
    return out


def _env_name(e: str) -> str:
    return e.split("=", 1)[0]


def runtime_config(
    config: ImageConfig,
    rootfs: str,
    *,
    args: list[str] | None = None,
    terminal: bool = False,
    readonly: bool = False,
    extra_env: list[str] | None = None,
) -> dict[str, Any]:
    """The runtime config.json for a container of this image; `rootfs` is the unpacked
    root (for user lookup); `args` replaces Cmd, as `docker run IMAGE ARGS...` does."""
    spec = default_spec(terminal=terminal)
    c = config.config
    argv = list(c.Entrypoint or []) + list(args if args is not None else (c.Cmd or []))
    if not argv:
        raise InvalidArgument("image has no Entrypoint or Cmd and no command was given")
    proc = spec["process"]
    proc["args"] = argv
    env = list(c.Env or [])
    names = {_env_name(e) for e in env}
    for e in proc["env"]:
        # implementation defaults never replace what the image sets (conversion.md note 1)
        if _env_name(e) not in names and (terminal or not e.startswith("TERM=")):
            env.append(e)
    for e in extra_env or []:
        env = [x for x in env if _env_name(x) != _env_name(e)] + [e]
    proc["env"] = env
    proc["cwd"] = c.WorkingDir or "/"
    if not proc["cwd"].startswith("/"):
        raise InvalidArgument(f"WorkingDir {c.WorkingDir!r} is not absolute")
    proc["user"] = resolve_user(rootfs, c.User)
    spec["root"] = {"path": os.path.basename(rootfs.rstrip("/")) or "rootfs",
                    "readonly": readonly}

    ann: dict[str, str] = {A + "os": config.os, A + "architecture": config.architecture}
    if config.variant:
        ann[A + "variant"] = config.variant
    if config.os_version:
        ann[A + "os.version"] = config.os_version
    if config.os_features:
        ann[A + "os.features"] = ",".join(config.os_features)
    if config.author:
        ann[A + "author"] = config.author
    if config.created:
        ann[A + "created"] = config.created
    if c.StopSignal:
        ann[ANNOTATION_STOP_SIGNAL] = c.StopSignal
    if c.ExposedPorts:
        ann[ANNOTATION_EXPOSED_PORTS] = ",".join(sorted(c.ExposedPorts))
    if c.Volumes:
        ann[ANNOTATION_VOLUMES] = ",".join(sorted(c.Volumes))
    ann.update(c.Labels or {})  # explicit labels win over implicit annotations
    spec["annotations"] = ann
    return spec
