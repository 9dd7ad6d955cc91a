"""pull and push as the CLI (and later palletd) call them: a reference in, the image store
updated; endpoints from the hosts configuration (mirrors first for pulls), credentials
from Docker's config."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pallet.errors import InvalidArgument, NotFound
from pallet.images import reference as _reference
from pallet.images.service import ImageService
from pallet.oci.image import Descriptor, Platform
from pallet.registry.client import hosts as _hosts
from pallet.registry.client.auth import basic_header
from pallet.registry.client.credentials import Credentials, DockerConfig
from pallet.registry.client.fetch import Fetcher, pull_graph, register
from pallet.registry.client.progress import Progress
from pallet.registry.client.push import Pusher, plan
from pallet.registry.client.transport import RequestError, Transport


@dataclass
class Options:
    """How to reach registries; the defaults read the usual files."""

    hosts_dir: str | None = None
    insecure: bool = False
    plain_http: bool = False
    docker_config: str | None = None   # directory of config.json
    credentials: Credentials | None = None  # overrides the config (e.g. --creds)
    parallel: int = 4
    retries: int = 5
    foreign_layers: bool = False       # fetch non-distributable layers from their `urls`
    backoff: float = 0.2

    def endpoints(self, registry: str) -> list[_hosts.Endpoint]:
        return _hosts.endpoints(registry, hosts_dir=self.hosts_dir, insecure=self.insecure,
                                plain_http=self.plain_http)

    def creds(self, host: str) -> Credentials | None:
        if self.credentials is not None:
            return self.credentials
        return DockerConfig(self.docker_config).get(host)

    def transport(self, ep: _hosts.Endpoint) -> Transport:
        return Transport(ep, self.creds(ep.host), retries=self.retries,
                         backoff_base=self.backoff)


@dataclass
class Pulled:
    name: str
    target: Descriptor
    endpoint: str


async def pull(svc: ImageService, ref: str, *, opts: Options | None = None,
               platform: Platform | None = None, all_platforms: bool = False,
               progress: Progress | None = None) -> Pulled:
    """Pull `ref` into `svc`'s content store and name it there. Mirrors with the pull
    capability are tried first; the next endpoint is tried when one fails."""
    opts = opts or Options()
    r = _reference.parse(ref)
    eps = [e for e in opts.endpoints(r.domain) if e.can(_hosts.PULL)]
    if not eps:
        raise InvalidArgument(f"{r.domain}: no endpoint can pull")
    last: Exception | None = None
    with svc.lease():   # a collection meanwhile keeps what this pull commits
        for ep in eps:
            try:
                return await _pull_from(svc, ep, r, opts, platform, all_platforms, progress)
            except (RequestError, NotFound) as e:
                last = e
                if isinstance(e, RequestError) and e.status in (401, 403) and not ep.mirror:
                    raise
                continue
    assert last is not None
    raise last


async def _pull_from(svc: ImageService, ep: _hosts.Endpoint, r: _reference.Reference,
                     opts: Options, platform: Platform | None, all_platforms: bool,
                     progress: Progress | None) -> Pulled:
    async with opts.transport(ep) as t:
        f = Fetcher(t, r.path, svc.content, progress=progress, parallel=opts.parallel,
                    source_host=r.domain, foreign_layers=opts.foreign_layers)
        target, data = await f.resolve(str(r.digest) if r.digest else r.tag or "latest")
        await pull_graph(f, target, data, platform=platform,
                         all_platforms=all_platforms)
    name = register(svc.images, svc.content, str(r), target)
    return Pulled(name, target, ep.base)


@dataclass
class Remote:
    descriptor: Descriptor
    platforms: list[Platform]


async def inspect_remote(svc: ImageService, ref: str, *, opts: Options | None = None
                         ) -> Remote:
    """What a registry holds under `ref`, without pulling it: the manifest's descriptor and
    the platforms it serves (an index's entries, or a single image's config)."""
    from pallet.images.resolve import read_index, read_json, read_manifest
    from pallet.oci import mediatypes as mt

    opts = opts or Options()
    r = _reference.parse(ref)
    eps = [e for e in opts.endpoints(r.domain) if e.can(_hosts.PULL)]
    if not eps:
        raise InvalidArgument(f"{r.domain}: no endpoint can pull")
    async with opts.transport(eps[-1]) as t:  # the registry itself, not a mirror
        f = Fetcher(t, r.path, svc.content, source_host=r.domain)
        desc, data = await f.resolve(str(r.digest) if r.digest else r.tag or "latest")
        doc = Descriptor(desc.media_type, desc.digest, desc.size, data=data)
        if mt.is_index(desc.media_type):
            idx = read_index(svc.content, doc)
            return Remote(desc, [m.platform for m in idx.manifests if m.platform])
        man = read_manifest(svc.content, doc)
        cfg = Descriptor(man.config.media_type, man.config.digest, man.config.size,
                         data=await f.blob_bytes(man.config))
        c = read_json(svc.content, cfg)
        if not isinstance(c, dict):
            raise InvalidArgument(f"config {cfg.digest}: not a JSON object")
        plat = Platform(os=str(c.get("os") or ""), architecture=str(c.get("architecture")
                                                                     or ""),
                        variant=str(c.get("variant") or ""),
                        os_version=str(c.get("os.version") or ""))
        return Remote(desc, [plat])


@dataclass
class Pushed:
    name: str
    target: Descriptor
    blobs: dict[str, str]   # digest -> exists | mounted | pushed


async def push(svc: ImageService, src: str, dest: str | None = None, *,
               opts: Options | None = None, progress: Progress | None = None,
               chunk_size: int = 0, mount: bool = True) -> Pushed:
    """Push the local image `src` to `dest` (default: its own name)."""
    opts = opts or Options()
    img = svc.get(src)
    r = _reference.parse(dest or img.name)
    eps = [e for e in opts.endpoints(r.domain) if e.can(_hosts.PUSH)]
    if not eps:
        raise InvalidArgument(f"{r.domain}: no endpoint can push")
    ep = eps[0]
    blobs, manifests = plan(svc.content, img.target)
    async with opts.transport(ep) as t:
        p = Pusher(t, r.path, svc.content, host=r.domain, progress=progress,
                   parallel=opts.parallel, chunk_size=chunk_size, mount=mount)
        p.add_source_scopes(blobs)
        kinds = ["config" if "config" in b.media_type else "layer" for b in blobs]
        how = await asyncio.gather(*(p.push_blob(b, k) for b, k in zip(blobs, kinds,
                                                                        strict=True)))
        for m in manifests[:-1]:
            await p.push_manifest(m, str(m.digest))
        tag = r.tag if r.digest is None else str(r.digest)
        await p.push_manifest(img.target, tag or str(img.target.digest))
    return Pushed(str(r), img.target, {str(b.digest): h for b, h in
                                       zip(blobs, how, strict=True)})


async def check_login(registry: str, creds: Credentials, *, opts: Options | None = None
                      ) -> None:
    """Check `creds` against the registry: GET /v2/, answering its challenge (for a token
    registry that means getting a token)."""
    opts = opts or Options()
    ep = next(iter(e for e in opts.endpoints(registry) if not e.mirror))
    async with Transport(ep, creds, retries=opts.retries, backoff_base=opts.backoff) as t:
        resp = await t.request("GET", "/", scopes=[])
        resp.release()
        if t.auth.challenge is None:
            # The registry did not ask (anonymous reads allowed): offer the password anyway,
            # so a wrong one is refused now and not at the first push.
            resp = await t.request("GET", "/", scopes=[], retry=False,
                                   headers={"Authorization": basic_header(creds)})
            resp.release()


async def login(registry: str, creds: Credentials, *, opts: Options | None = None) -> None:
    """check_login, then store the credentials in Docker's config."""
    opts = opts or Options()
    await check_login(registry, creds, opts=opts)
    DockerConfig(opts.docker_config).store(registry, creds)


def logout(registry: str, *, opts: Options | None = None) -> None:
    opts = opts or Options()
    DockerConfig(opts.docker_config).erase(registry)
