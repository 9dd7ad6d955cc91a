"""Images as the Engine API shows them, over `pallet.images.ImageService`.

Docker's image ID is the digest of the image config (of this machine's platform); names are
the image store's normalised references, printed in familiar form (`busybox:latest`).
Everything here is blocking: palletd calls it on its storage thread.
"""

from __future__ import annotations

import contextlib
import datetime
from typing import Any

from pallet.errors import FailedPrecondition, InvalidArgument, NotFound
from pallet.images import reference
from pallet.images.resolve import ResolvedImage, resolve
from pallet.images.service import ImageService
from pallet.images.store import Image


def parse_time(s: str | None) -> float:
    if not s:
        return 0.0
    try:
        return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        # more than microseconds: cut the fraction
        head, _, frac = s.rstrip("Z").partition(".")
        with contextlib.suppress(ValueError):
            return datetime.datetime.fromisoformat(
                head + ("." + frac[:6] if frac else "") + "+00:00").timestamp()
    return 0.0


# The image store keys images by name; an image without one (`docker commit` or `import`
# with no repository, an untagged `docker load`) is kept under the name Docker's containerd
# image store gives it, which is never shown as a tag.
DANGLING = "docker.io/library/moby-dangling@"


def dangling_name(target_digest: str) -> str:
    return DANGLING + target_digest


def is_dangling(name: str) -> bool:
    return name.startswith(DANGLING)


def _tags(imgs: list[Image]) -> list[str]:
    return sorted(familiar(i.name) for i in imgs if not is_dangling(i.name))


def _digests(imgs: list[Image]) -> list[str]:
    return sorted({familiar(i.name).rsplit(":", 1)[0] + "@" + str(i.target.digest)
                   for i in imgs if not is_dangling(i.name)})


def familiar(name: str) -> str:
    try:
        return reference.parse(name).familiar()
    except Exception:
        return name


class Images:
    def __init__(self, svc: ImageService) -> None:
        self.svc = svc

    # --- lookups ------------------------------------------------------------------------

    def _resolved(self, img: Image) -> ResolvedImage:
        return resolve(self.svc.content, img.target)

    def image_id(self, img: Image) -> str:
        return str(self._resolved(img).manifest.config.digest)

    def lookup(self, ref: str) -> tuple[Image, ResolvedImage]:
        """By name, by target digest, or by (a prefix of) the image ID, as docker does."""
        with contextlib.suppress(NotFound, InvalidArgument):
            img = self.svc.get(ref)
            return img, self._resolved(img)
        want = ref.removeprefix("sha256:")
        if len(want) >= 4 and all(c in "0123456789abcdef" for c in want):
            hits: dict[str, tuple[Image, ResolvedImage]] = {}
            for img in self.svc.list():
                with contextlib.suppress(Exception):
                    r = self._resolved(img)
                    if r.manifest.config.digest.encoded.startswith(want):
                        hits.setdefault(str(r.manifest.config.digest), (img, r))
            if len(hits) == 1:
                return next(iter(hits.values()))
        raise NotFound(f"No such image: {ref}")

    def names_of(self, image_id: str) -> list[Image]:
        out = []
        for img in self.svc.list():
            with contextlib.suppress(Exception):
                if self.image_id(img) == image_id:
                    out.append(img)
        return out

    # --- Docker shapes ------------------------------------------------------------------

    def _groups(self) -> dict[str, tuple[ResolvedImage, list[Image]]]:
        groups: dict[str, tuple[ResolvedImage, list[Image]]] = {}
        for img in self.svc.list():
            try:
                r = self._resolved(img)
            except Exception:
                continue  # content missing or another platform only: not listable
            key = str(r.manifest.config.digest)
            groups.setdefault(key, (r, []))[1].append(img)
        return groups

    @staticmethod
    def _size(r: ResolvedImage) -> int:
        return sum(x.size for x in r.layers)

    def summaries(self, containers: dict[str, int] | None = None) -> list[dict[str, Any]]:
        out = []
        for iid, (r, imgs) in self._groups().items():
            size = self._size(r)
            out.append({
                "Id": iid, "ParentId": "",
                "RepoTags": _tags(imgs), "RepoDigests": _digests(imgs),
                "Created": int(parse_time(r.config.created) or min(i.created_at
                                                                   for i in imgs)),
                "Size": size, "VirtualSize": size, "SharedSize": -1,
                "Labels": dict(r.config.config.Labels or {}),
                "Containers": (containers or {}).get(iid, -1),
            })
        out.sort(key=lambda s: -s["Created"])
        return out

    def inspect(self, ref: str) -> dict[str, Any]:
        img, r = self.lookup(ref)
        iid = str(r.manifest.config.digest)
        names = self.names_of(iid)
        c = r.config.config
        size = self._size(r)
        cfg = {
            "Hostname": "", "Domainname": "", "User": c.User or "", "AttachStdin": False,
            "AttachStdout": False, "AttachStderr": False, "ExposedPorts": c.ExposedPorts,
            "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": c.Env or [],
            "Cmd": c.Cmd, "Image": "", "Volumes": c.Volumes, "WorkingDir": c.WorkingDir or "",
            "Entrypoint": c.Entrypoint, "OnBuild": c.extra.get("OnBuild"), "Labels": c.Labels,
        }
        if c.StopSignal:
            cfg["StopSignal"] = c.StopSignal
        for key in ("Healthcheck", "Shell"):  # docker's own config fields, as builds set them
            if c.extra.get(key) is not None:
                cfg[key] = c.extra[key]
        return {
            "Id": iid,
            "RepoTags": _tags(names), "RepoDigests": _digests(names),
            "Parent": "", "Comment": "", "Created": r.config.created or "",
            "Container": "", "ContainerConfig": cfg, "DockerVersion": "",
            "Author": r.config.author or "", "Config": cfg,
            "Architecture": r.config.architecture, "Variant": r.config.variant or None,
            "Os": r.config.os, "Size": size, "VirtualSize": size,
            "GraphDriver": {"Name": self.svc.snapshotter_name, "Data": None},
            "RootFS": {"Type": "layers", "Layers": [str(d) for d in r.config.diff_ids]},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
            "Descriptor": img.target.to_dict(),
        }

    # --- names --------------------------------------------------------------------------

    def tag(self, source: str, repo: str, tag: str | None) -> str:
        img, _ = self.lookup(source)
        target = repo + (":" + tag if tag else "")
        try:
            name = reference.normalize(target)
        except Exception as e:
            raise InvalidArgument(f"invalid reference format: {e}") from None
        self.svc.images.put(name, img.target)
        for other in self.svc.list():  # named now: no longer dangling
            if is_dangling(other.name) and other.target.digest == img.target.digest:
                self.svc.images.delete(other.name)
        return name

    def remove(self, ref: str, *, force: bool, in_use: dict[str, list[str]],
               running: dict[str, list[str]] | None = None) -> list[dict[str, str]]:
        """Untag `ref`; when it was the last name of its image ID, delete the image.
        `in_use` maps image IDs to the containers using them (which block deletion unless
        forced), `running` to the running ones among them (which a force does not pass:
        a name is untagged and the image kept, an ID refused, as dockerd)."""
        img, r = self.lookup(ref)
        iid = str(r.manifest.config.digest)
        names = self.names_of(iid)
        by_id = ref.removeprefix("sha256:") and iid.removeprefix("sha256:").startswith(
            ref.removeprefix("sha256:")) and not _is_name_of(ref, names)
        if by_id and len(names) > 1 and not force:
            raise FailedPrecondition(
                f"conflict: unable to delete {iid[7:19]} (must be forced) - image is "
                "referenced in multiple repositories")
        targets = names if by_id else [img]
        last = len(targets) == len(names)
        if last and in_use.get(iid) and not force:
            raise FailedPrecondition(
                f"conflict: unable to remove repository reference {ref!r} (must force) - "
                f"container {in_use[iid][0][:12]} is using its referenced image {iid[7:19]}")
        busy = (running or {}).get(iid)
        if last and busy and by_id:
            raise FailedPrecondition(f"conflict: unable to delete {iid[7:19]} (cannot be "
                                     f"forced) - image is being used by running container "
                                     f"{busy[0][:12]}")
        out: list[dict[str, str]] = []
        if last and busy:  # untagged; the running container keeps it, now dangling
            self.svc.images.put(dangling_name(str(img.target.digest)), img.target)
        for i in targets:
            self.svc.remove(i.name)
            if not is_dangling(i.name):
                out.append({"Untagged": familiar(i.name)})
        if last and not busy:
            out.append({"Deleted": iid})
        return out


def _is_name_of(ref: str, names: list[Image]) -> bool:
    try:
        n = reference.normalize(ref)
    except Exception:
        return False
    return any(i.name == n for i in names)
