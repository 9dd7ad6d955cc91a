"""Files in and out of containers and images: what `docker cp`, `export`, `import`,
`commit`, `diff`, `save` and `load` do in palletd, apart from HTTP.

- A container's files are reached through its root filesystem, mounted while it runs and
  mounted for the copy while it does not (`container_rootfs`, under the container's lock, as
  dockerd holds its container lock for a copy). Reading and writing them happens in a child
  chrooted there (`cp_helper`).
- A container's changes come from its snapshot: an overlay upperdir, or for the native
  snapshotter the comparison with its parent; the mountpoints the runtime creates for a
  start (/proc, /etc/hostname, ...) are not the container's changes and are left out, as
  dockerd keeps them in its init layer.
- Images made here (import, commit) are an OCI manifest over the layers, named in the image
  store; their ID is the config's digest, as for every image palletd shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import shlex
import stat
import subprocess
import sys
import tarfile
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from pallet.build.dockerfile import maybe_json
from pallet.content.labels import GC_ROOT, UNCOMPRESSED
from pallet.content.local import LocalStore, write_blob
from pallet.daemon.cp_helper import Skipping
from pallet.daemon.images import dangling_name
from pallet.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PalletError,
    SystemError_,
)
from pallet.images import compression as _compression
from pallet.images import reference
from pallet.images.commit import write_image
from pallet.images.diff import TarWriter, commit_layer, tar_changes, tar_dir, tar_overlay_upper
from pallet.images.fsview import OverlayView, split
from pallet.images.service import ImageService
from pallet.images.tarstream import TarStream
from pallet.oci import mediatypes as mt
from pallet.oci.digest import Digest, HashingReader
from pallet.oci.image import (
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    host_platform,
)

if TYPE_CHECKING:
    from pallet.daemon.containers import Container, Containers

HELPER = "pallet.daemon.cp_helper"


# --- the container's root filesystem ------------------------------------------------------


@contextlib.asynccontextmanager
async def container_rootfs(cs: Containers, c: Container) -> AsyncIterator[str]:
    """The container's root filesystem, mounted for the duration; the container's lock is
    held, so it neither starts (a second overlay mount of the same upperdir) nor is
    unmounted under the copy."""
    async with c.lock:
        if c.removing or c.id not in cs.by_id:
            raise FailedPrecondition(f"container {c.id[:12]} is marked for removal")
        mounted_here = not c.running
        try:
            # cancelled here (the client went away), the mount still happens on the storage
            # thread, and the unmount queued there after it undoes it
            yield await cs.blocking(cs._mount_rootfs, c)
        finally:
            if mounted_here:
                await cs.blocking(cs._unmount_rootfs, c)


async def spawn_helper(*args: str, stdin: int | None = asyncio.subprocess.DEVNULL
                       ) -> asyncio.subprocess.Process:
    # stderr is palletd's own (its log): the helper only writes there when something broke
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", HELPER, *args, stdin=stdin, stdout=asyncio.subprocess.PIPE,
        limit=1 << 20)


async def end_helper(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


_KINDS: dict[str, type[PalletError]] = {
    cls.kind: cls for cls in (NotFound, InvalidArgument, FailedPrecondition, SystemError_)}


def helper_error(answer: dict[str, Any]) -> PalletError:
    """The helper's one-line JSON error as the error kind it names."""
    cls = _KINDS.get(str(answer.get("error")), SystemError_)
    return cls(str(answer.get("message") or "copy failed"))


# --- changes of a container ---------------------------------------------------------------


class _Recorder:
    """A TarWriter's interface that only notes what would be written."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, bool, os.stat_result | None]] = []
        self.opaque_dirs: set[str] = set()

    def add(self, rel: str, host: str, st: os.stat_result | None = None) -> None:
        self.entries.append((rel, False, st or os.lstat(host)))

    def whiteout(self, rel_parent: str, name: str) -> None:
        self.entries.append((os.path.join(rel_parent, name), True, None))

    def opaque(self, rel_dir: str) -> None:
        self.opaque_dirs.add(rel_dir)


class SnapshotChanges:
    """What a container's snapshot holds over its image: written as a layer, or listed."""

    def __init__(self, svc: ImageService, key: str, mountpoints: set[str]) -> None:
        sn = svc.snapshotter
        m = sn.mounts(key)[0]
        self.upper: str | None = None
        if m.type == "overlay":
            upper, lowers = m.option("upperdir") or "", (m.option("lowerdir") or "").split(":")
            self.upper = upper
            below = OverlayView(lowers[0], lowers[1:])
            self._produce: Callable[[Any], None] = lambda tw: tar_overlay_upper(upper, tw)
            self.below: Callable[[str], os.stat_result | None] = \
                lambda rel: (below.lookup(split(rel)) or (None, None))[1]
        else:
            parent = sn.stat(key).parent
            if parent is None:
                self._produce = lambda tw: tar_dir(m.source, tw)
                self.below = lambda rel: None
            else:
                lower = sn.fs_path(parent)
                self._produce = lambda tw: tar_changes(lower, m.source, tw)
                self.below = lambda rel: _lstat(os.path.join(lower, rel))
        self.mountpoints = mountpoints

    def runtime_made(self, rel: str) -> bool:
        return rel in self.mountpoints and self.below(rel) is None

    def write(self, tw: TarWriter) -> None:
        self._produce(Skipping(tw, self.runtime_made))

    def store(self, content: LocalStore) -> tuple[Descriptor, Digest]:
        """The changes as a layer in the content store: its descriptor and diffID.

        An overlay upperdir is read by the copy helper chrooted into it: a running
        container can swap a directory there for a symlink while the layer is written, and
        must not make palletd put the host's files into an image it can read. (The native
        snapshotter's comparison needs two trees; it is read here.)"""
        if self.upper is None:
            info = commit_layer(content, self.write, mt.GZIP)
            return info.descriptor(), info.diff_id
        skip = sorted(m for m in self.mountpoints if self.below(m) is None)
        proc = subprocess.Popen([sys.executable, "-m", HELPER, "layer", self.upper, "[]",
                                 json.dumps(skip)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        try:
            # an uncompressed layer: the blob is the tar, its digest the diffID
            dg = write_blob(content, f"commit-{uuid.uuid4().hex}", proc.stdout)  # type: ignore[arg-type]
        finally:
            proc.stdout.close()
            rc = proc.wait()
        if rc != 0:
            raise SystemError_(f"reading the container's changes failed (status {rc}; "
                               "palletd's log has the helper's message)")
        content.update_labels(dg, {UNCOMPRESSED: str(dg)})
        return Descriptor(mt.IMAGE_LAYER, dg, content.info(dg).size), dg

    def list(self) -> list[dict[str, Any]]:
        """docker diff: Kind 0 modified, 1 added, 2 deleted; a directory that holds a
        change is modified, as dockerd reports it."""
        rec = _Recorder()
        self._produce(rec)
        kinds: dict[str, int] = {}
        for rel, deleted, st in rec.entries:
            if self.runtime_made(rel):
                continue
            old = self.below(rel)
            if deleted:
                kinds[rel] = 2
            elif old is None:
                kinds[rel] = 1
            elif _modified(old, st) or rel in rec.opaque_dirs:
                kinds[rel] = 0  # an opaque directory replaced what was below it
        for rel in list(kinds):
            parent = os.path.dirname(rel)
            while parent and parent not in kinds:
                kinds[parent] = 0 if self.below(parent) is not None else 1
                parent = os.path.dirname(parent)
        return [{"Path": "/" + rel, "Kind": k} for rel, k in sorted(kinds.items())]


def _modified(old: os.stat_result, new: os.stat_result | None) -> bool:
    """A directory present before counts as modified only for its own attributes; that
    it holds a change is added by the caller."""
    if new is None or not (stat.S_ISDIR(new.st_mode) and stat.S_ISDIR(old.st_mode)):
        return True
    return (old.st_mode, old.st_uid, old.st_gid) != (new.st_mode, new.st_uid, new.st_gid)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def runtime_mountpoints(bundle_dir: str) -> set[str]:
    """The mount destinations of the container's last start (its config.json): what the
    runtime may have created in the rootfs to mount over."""
    try:
        with open(os.path.join(bundle_dir, "config.json")) as f:
            spec = json.load(f)
    except (OSError, ValueError):
        return set()
    return {"/".join(split(m.get("destination", ""))) for m in spec.get("mounts") or []} - {""}


# --- image config -------------------------------------------------------------------------


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _exec_form(value: str) -> list[str]:
    args, is_json = maybe_json(value.strip())
    return args if is_json else ["/bin/sh", "-c", value.strip()]


def _pairs(value: str, what: str) -> dict[str, str]:
    """`k=v k2="v 2"`, or the old `k v` form with a single pair."""
    words = shlex.split(value)
    if words and "=" not in words[0]:
        return {words[0]: value.strip()[len(words[0]):].strip()}
    out = {}
    for w in words:
        k, sep, v = w.partition("=")
        if not sep or not k:
            raise InvalidArgument(f"{what} {value!r}: want key=value")
        out[k] = v
    return out


def apply_changes(cfg: ContainerConfig, changes: list[str]) -> None:
    """Dockerfile instructions that `import` and `commit` take (`--change`)."""
    for line in (ln for ch in changes for ln in ch.splitlines() if ln.strip()):
        word, _, rest = line.strip().partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "CMD":
            cfg.Cmd = _exec_form(rest)
        elif word == "ENTRYPOINT":
            cfg.Entrypoint = _exec_form(rest)
        elif word == "ENV":
            env = list(cfg.Env or [])
            for k, v in _pairs(rest, "ENV").items():
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cfg.Env = env
        elif word == "LABEL":
            cfg.Labels = {**(cfg.Labels or {}), **_pairs(rest, "LABEL")}
        elif word == "EXPOSE":
            ports = dict(cfg.ExposedPorts or {})
            for p in rest.split():
                ports[p if "/" in p else p + "/tcp"] = {}
            cfg.ExposedPorts = ports
        elif word == "VOLUME":
            vols = dict(cfg.Volumes or {})
            for v in _exec_form(rest) if rest.startswith("[") else rest.split():
                vols[v] = {}
            cfg.Volumes = vols
        elif word == "USER":
            cfg.User = rest
        elif word == "WORKDIR":
            cfg.WorkingDir = rest if rest.startswith("/") else \
                os.path.join(cfg.WorkingDir or "/", rest)
        elif word == "STOPSIGNAL":
            cfg.StopSignal = rest
        else:
            raise InvalidArgument(f"{word} is not a valid change command")


def store_image(svc: ImageService, config: ImageConfig, layers: list[Descriptor],
                name: str | None) -> str:
    """Config and manifest into the content store, the name (or a dangling one) into the
    image store; returns the image ID (the config's digest). Call inside a lease."""
    target, cdesc = write_image(svc.content, config, layers, ref="commit")
    svc.images.put(name or dangling_name(str(target.digest)), target)
    svc.content.update_labels(target.digest, {GC_ROOT: "image"})
    return str(cdesc.digest)


def image_name(repo: str, tag: str) -> str | None:
    if not repo:
        return None
    try:
        r = reference.parse_named(repo)
        if tag:
            r = r.with_tag(tag)
        return reference.normalize(str(r))
    except PalletError as e:
        raise InvalidArgument(f"invalid reference format: {e}") from None


# --- commit -------------------------------------------------------------------------------


def commit(svc: ImageService, rec: dict[str, Any], parent: Any, bundle_dir: str, *,
           name: str | None, author: str, comment: str, changes: list[str],
           config: dict[str, Any] | None) -> str:
    """The container's changes as a layer over its image: a new image. `parent` is the
    image's ResolvedImage."""
    ch = SnapshotChanges(svc, rec["_Snapshot"], runtime_mountpoints(bundle_dir))
    base = ImageConfig.from_dict(rec["_ImageConfig"])
    cc = rec["Config"]
    # dockerd: the container's config is the new image's, the request's config and the
    # changes over it
    merged = {k: cc.get(k) for k in ContainerConfig._KNOWN if cc.get(k) not in (None, "")}
    merged.update({k: v for k, v in (config or {}).items()
                   if k in ContainerConfig._KNOWN and v is not None})
    new_cfg = ContainerConfig.from_dict(merged)
    apply_changes(new_cfg, changes)
    created = now_rfc3339()
    with svc.lease():
        layer, diff_id = ch.store(svc.content)
        icfg = ImageConfig(
            architecture=base.architecture, os=base.os, variant=base.variant,
            diff_ids=[*base.diff_ids, diff_id], config=new_cfg, created=created,
            author=author or None,
            history=[*(base.history or []), History(
                created=created, author=author or None, comment=comment or None,
                created_by=" ".join([rec["Path"], *rec["Args"]]))])
        return store_image(svc, icfg, [*parent.layers, layer], name)


# --- import -------------------------------------------------------------------------------


def _check_tar(path: str) -> Digest:
    """The tar's diffID; anything that is not a (compressed) tar is refused here, before
    anything is stored."""
    with open(path, "rb") as f:
        try:
            raw, _ = _compression.decompress_stream(f, None)  # type: ignore[arg-type]
        except _compression.CorruptData as e:
            raise InvalidArgument(f"not a tar archive: {e}") from None
        h = HashingReader(raw)
        ts = TarStream(h)  # type: ignore[arg-type]
        try:
            n = sum(1 for _ in ts)
            ts.drain()
        except (OSError, EOFError, _compression.CorruptData, tarfile.TarError) as e:
            raise InvalidArgument(f"not a tar archive: {e}") from None
        finally:
            ts.close()
    if n == 0:
        raise InvalidArgument("not a tar archive: no entries")
    return h.digest()


def _store_uncompressed(content: LocalStore, path: str, diff_id: Digest) -> Descriptor:
    with open(path, "rb") as f:
        raw, _ = _compression.decompress_stream(f, None)  # type: ignore[arg-type]
        dg = write_blob(content, f"import-{diff_id}", raw, expected=diff_id,  # type: ignore[arg-type]
                        labels={UNCOMPRESSED: str(diff_id)})
    return Descriptor(mt.IMAGE_LAYER, dg, content.info(dg).size)


def import_rootfs(svc: ImageService, path: str, *, name: str | None, changes: list[str],
                  message: str, source: str) -> str:
    """`docker import`: a root filesystem tar as a one-layer image."""
    cfg = ContainerConfig()
    apply_changes(cfg, changes)
    diff_id = _check_tar(path)
    created = now_rfc3339()
    plat = host_platform()
    comment = message or f"Imported from {source}"
    with svc.lease():
        layer = _store_uncompressed(svc.content, path, diff_id)
        icfg = ImageConfig(architecture=plat.architecture, os=plat.os,
                           variant=plat.variant or None, diff_ids=[diff_id], config=cfg,
                           created=created,
                           history=[History(created=created, comment=comment)])
        return store_image(svc, icfg, [layer], name)


__all__ = ["HELPER", "SnapshotChanges", "apply_changes", "commit",
           "container_rootfs", "import_rootfs", "store_image"]
