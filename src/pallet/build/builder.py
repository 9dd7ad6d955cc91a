"""The Dockerfile builder, with the classic (non-BuildKit) builder's semantics.

Every instruction after a FROM makes a new image (config + manifest in the content store)
whose parent is the previous step's: metadata instructions only change the config (a
history entry with `empty_layer`), RUN/COPY/ADD/WORKDIR add the layer of what they changed
(none when nothing did). Before a step runs, the layer cache is asked for the image the
same instruction made from the same parent ("Using cache"). Stages run in order up to the
target; the last one's image gets the tags.

Arguments and environment follow docker's rules: ARGs before the first FROM are for FROM
lines (and for a stage that declares them again without a value); a stage's ARG takes the
`--build-arg` value or its default; ENV wins over an ARG of the same name; RUN sees the
stage's ARGs as environment variables and its history line says which (`|1 A=b /bin/sh
-c ...`), so a different value is a different cache key.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import posixpath
import secrets
import signal as _signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from pallet.build import dockerfile as df
from pallet.build import remote
from pallet.build.cache import BuildCache, cache_key
from pallet.build.context import Context, Owner, Source, copy_into, extract_tar, is_archive
from pallet.build.executor import CommandFailed, Executor, RunLimits, RunRequest
from pallet.build.shell import expand
from pallet.content.labels import GC_ROOT
from pallet.errors import InvalidArgument, NotFound
from pallet.images import reference
from pallet.images.bundle import resolve_user
from pallet.images.commit import write_image
from pallet.images.diff import LayerInfo
from pallet.images.resolve import ResolvedImage, resolve
from pallet.metadata.gc import IMAGE_MARKER
from pallet.oci import mediatypes as mt
from pallet.oci.image import (
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Platform,
    host_platform,
)

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOP = "/bin/sh -c #(nop) "
# usable in RUN without an ARG, and never written into the history (docker's list)
PROXY_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
              "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}
Out = Callable[[str], None]


@dataclass
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    no_cache: bool = False
    target: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    run: RunLimits = field(default_factory=RunLimits)  # RUN's network and limits


@dataclass
class BuildResult:
    image_id: str                # the config digest, as docker's image ID
    target: Descriptor           # the manifest
    tags: list[str]


@dataclass
class _Image:
    """What a step starts from and leaves: an image (None before FROM scratch's first
    commit) and the config that the next commit writes."""

    config: ImageConfig
    layers: list[Descriptor]
    manifest_type: str = mt.IMAGE_MANIFEST
    config_type: str = mt.IMAGE_CONFIG
    target: Descriptor | None = None
    image_id: str = ""
    resolved: ResolvedImage | None = None


@dataclass
class _Stage:
    image: _Image
    name: str | None
    args: dict[str, str | None] = field(default_factory=dict)  # declared in this stage
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _copy_config(c: ImageConfig) -> ImageConfig:
    return ImageConfig.from_dict(json.loads(json.dumps(c.to_dict())))


def _set_env(env: list[str], name: str, value: str) -> list[str]:
    return [e for e in env if e.split("=", 1)[0] != name] + [f"{name}={value}"]


def _env_map(env: list[str] | None) -> dict[str, str]:
    out = {}
    for e in env or []:
        k, _, v = e.partition("=")
        out[k] = v
    return out


def parse_ports(specs: list[str]) -> list[str]:
    """EXPOSE's `80`, `80/udp`, `8000-8002/tcp` -> `80/tcp`, ..."""
    out = []
    for spec in specs:
        port, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid proto: {proto}")
        lo, sep, hi = port.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise InvalidArgument(f"invalid containerPort: {port}") from None
        if not (0 < a <= b <= 65535):
            raise InvalidArgument(f"invalid containerPort: {port}")
        out += [f"{p}/{proto}" for p in range(a, b + 1)]
    return out


def check_signal(sig: str) -> None:
    name = sig.upper()
    if sig.isdigit() or hasattr(_signal, name if name.startswith("SIG") else "SIG" + name):
        return
    raise InvalidArgument(f"Invalid signal: {sig}")


def _sources(ctx: Context, what: str, srcs: list[str], dir_dest: bool) -> list[Source]:
    out = [x for s in srcs for x in ctx.sources(s, f"{what} failed")]
    if len(out) > 1 and not dir_dest:
        raise InvalidArgument(f"When using {what} with more than one source file, the "
                              "destination must be a directory and end with a /")
    return out


def _at(ins: df.Instruction, e: InvalidArgument | NotFound) -> InvalidArgument | NotFound:
    """The error with the instruction's line, unless it names it already."""
    if e.message.startswith("Dockerfile"):
        return e
    what = "" if e.message.startswith(ins.cmd) else f"{ins.cmd}: "
    return type(e)(f"Dockerfile line {ins.line}: {what}{e.message}")


class Builder:
    def __init__(self, executor: Executor, cache: BuildCache,
                 pull: Callable[[str, Platform | None], None] | None = None) -> None:
        self.ex = executor
        self.svc = executor.svc
        self.cache = cache
        self.pull = pull

    # --- the build ----------------------------------------------------------------------

    def build(self, context_root: str, opts: BuildOptions, out: Out) -> BuildResult:
        tags = [reference.normalize(t) for t in opts.tags]  # a bad name fails first
        ctx = Context.with_dockerignore(context_root)
        text = self._dockerfile(ctx, opts.dockerfile)
        dockerfile = df.parse(text)
        stages = dockerfile.stages
        last = len(stages) - 1
        if opts.target:
            target = dockerfile.stage(opts.target)
            if target is None:
                raise InvalidArgument(f"failed to reach build target {opts.target} in "
                                      "Dockerfile")
            last = target.index
        self.opts, self.ctx, self.out, self.escape = opts, ctx, out, dockerfile.escape
        with tempfile.TemporaryDirectory(prefix="pallet-build-") as scratch:
            self.scratch = scratch  # ADD's downloads
            return self._build(dockerfile, stages, last, tags, opts, out)

    def _build(self, dockerfile: df.Dockerfile, stages: list[df.Stage], last: int,
               tags: list[str], opts: BuildOptions, out: Out) -> BuildResult:
        self.used_args: set[str] = set()
        self.meta = self._meta_args(dockerfile.meta_args)
        self.total = sum(1 + len(s.commands) for s in stages[:last + 1])
        self.step = 0
        self.done: list[_Stage] = []
        for s in stages[:last + 1]:
            st = self._from(s)
            for ins in s.commands:
                self._step(st, ins)
            self.done.append(st)
        if opts.labels:  # `--label`: one more LABEL step on the result
            self._commit(self.done[-1], "LABEL " + " ".join(
                f"{k}={v}" for k, v in sorted(opts.labels.items())), self._labels(
                    opts.labels), quiet=True)
        final = self.done[-1].image
        if final.target is None:
            raise InvalidArgument("No image was generated. Is your Dockerfile empty?")
        unused = sorted(set(opts.build_args) - self.used_args - PROXY_ARGS)
        if unused:
            out(f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                "consumed\n")
        for t in tags:
            self.ex.storage(lambda t=t: self._tag(t, final.target))
        return BuildResult(final.image_id, final.target, tags)

    @staticmethod
    def _dockerfile(ctx: Context, name: str) -> str:
        # docker falls back to `dockerfile` when the default name is not there
        for candidate in [name, "dockerfile"] if name == "Dockerfile" else [name]:
            try:
                with open(ctx.resolve(candidate, "Dockerfile"), encoding="utf-8") as f:
                    return f.read()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
        raise NotFound(f"Cannot locate specified Dockerfile: {name}")

    def _tag(self, name: str, target: Descriptor) -> None:
        self.svc.images.put(name, target)
        if GC_ROOT not in self.svc.content.info(target.digest).labels:
            self.svc.content.update_labels(target.digest, {GC_ROOT: IMAGE_MARKER})

    def _meta_args(self, meta: list[df.Instruction]) -> dict[str, str | None]:
        values: dict[str, str | None] = {}
        for ins in meta:
            for name, default in ins.pairs:
                self.used_args.add(name)
                env = {k: v for k, v in values.items() if v is not None}
                if name in self.opts.build_args:
                    values[name] = self.opts.build_args[name]
                else:
                    values[name] = None if default is None else self._expand(default, env,
                                                                              ins)
        return values

    def _expand(self, word: str, env: dict[str, str], ins: df.Instruction) -> str:
        try:
            return expand(word, env, self.escape)
        except InvalidArgument as e:
            raise _at(ins, e) from None

    def _print(self, ins: df.Instruction) -> None:
        self.step += 1
        self.out(f"Step {self.step}/{self.total} : {ins.original}\n")
        self.ex.check_cancel()

    # --- FROM ---------------------------------------------------------------------------

    def _from(self, s: df.Stage) -> _Stage:
        self._print(s.from_)
        try:
            return self._from_stage(s)
        except (InvalidArgument, NotFound) as e:
            raise _at(s.from_, e) from None

    def _from_stage(self, s: df.Stage) -> _Stage:
        meta_env = {k: v for k, v in self.meta.items() if v is not None}
        name = self._expand(s.base, meta_env, s.from_)
        platform = None
        if s.platform:
            try:
                platform = Platform.parse(self._expand(s.platform, meta_env, s.from_))
            except ValueError as e:
                raise InvalidArgument(str(e)) from None
        prev = next((d for d in self.done if d.name == name.lower()), None)
        if prev is not None:
            image = _Image(_copy_config(prev.image.config), list(prev.image.layers),
                           prev.image.manifest_type, prev.image.config_type,
                           prev.image.target, prev.image.image_id, prev.image.resolved)
        elif name.lower() == "scratch":
            plat = platform or host_platform()
            image = _Image(ImageConfig(plat.architecture, plat.os, [],
                                       ContainerConfig(Env=[DEFAULT_PATH]),
                                       variant=plat.variant or None), [])
        else:
            image = self._image(name, platform)
        st = _Stage(image, s.name)
        shell = image.config.config.extra.get("Shell")
        if isinstance(shell, list) and shell:
            st.shell = list(shell)  # a base image's SHELL is the stage's too
        if image.image_id:
            self.out(f" ---> {image.image_id.removeprefix('sha256:')[:12]}\n")
        triggers = list(image.config.config.extra.get("OnBuild") or [])
        if triggers:
            self.out(f"# Executing {len(triggers)} build trigger"
                     f"{'s' if len(triggers) > 1 else ''}\n")
            image.config.config.extra.pop("OnBuild", None)
            for text in triggers:
                ins = df.parse_instruction(text, s.from_.line, self.escape)
                self._dispatch(st, ins)
        return st

    def _image(self, name: str, platform: Platform | None) -> _Image:
        """An image of the store (pulled when missing and palletd can pull)."""
        def lookup() -> tuple[Descriptor, ResolvedImage]:
            img = self.svc.get(name)
            return img.target, resolve(self.svc.content, img.target, platform)

        try:
            _target, r = self.ex.storage(lookup)
        except NotFound:
            if self.pull is None:
                raise NotFound(f"pull access denied for {name}: the image is not in the "
                               "store") from None
            self.pull(name, platform)
            _target, r = self.ex.storage(lookup)
        self.ex.protect(str(r.manifest_desc.digest))  # its layers are the new image's too
        return self._from_resolved(r)

    @staticmethod
    def _from_resolved(r: ResolvedImage) -> _Image:
        docker = r.manifest_desc.media_type == mt.DOCKER_MANIFEST
        return _Image(_copy_config(r.config), list(r.layers),
                      mt.DOCKER_MANIFEST if docker else mt.IMAGE_MANIFEST,
                      mt.DOCKER_CONFIG if docker else mt.IMAGE_CONFIG,
                      r.manifest_desc, str(r.manifest.config.digest), r)

    # --- steps --------------------------------------------------------------------------

    def _env(self, st: _Stage) -> dict[str, str]:
        """What `$VAR` means at this step: the stage's ARGs, then ENV over them."""
        env = {k: v for k, v in st.args.items() if v is not None}
        env.update(_env_map(st.image.config.config.Env))
        return env

    def _step(self, st: _Stage, ins: df.Instruction) -> None:
        self._print(ins)
        try:
            self._dispatch(st, ins)
        except (InvalidArgument, NotFound) as e:
            raise _at(ins, e) from None
        if st.image.image_id:
            self.out(f" ---> {st.image.image_id.removeprefix('sha256:')[:12]}\n")

    def _dispatch(self, st: _Stage, ins: df.Instruction) -> None:
        handler = getattr(self, "_i_" + ins.cmd.lower())
        handler(st, ins, self._env(st))

    def _commit(self, st: _Stage, text: str, change: Callable[[ImageConfig], None] | None,
                *, created_by: str | None = None,
                layer: Callable[[], LayerInfo | None] | None = None,
                quiet: bool = False) -> None:
        """One step's image: from the cache, or the parent's with `change` applied and
        the layer `layer` makes (if any)."""
        created_by = created_by or NOP + " " + text
        img = st.image
        key = cache_key(img.image_id or f"scratch:{img.config.platform}",
                        created_by)
        if not self.opts.no_cache:
            hit = self.ex.storage(lambda: self.cache.get(key, self.svc.content))
            if hit is not None:
                r = self.ex.storage(lambda: resolve(self.svc.content, hit))
                if not quiet:
                    self.out(" ---> Using cache\n")
                st.image = self._from_resolved(r)
                return
        info = layer() if layer is not None else None
        cfg = _copy_config(img.config)
        if change is not None:
            change(cfg)
        now = _now()
        cfg.created = now
        cfg.history = [*(cfg.history or []), History(
            created=now, created_by=created_by, empty_layer=None if info else True)]
        layers = list(img.layers)
        if info is not None:
            cfg.diff_ids = [*cfg.diff_ids, info.diff_id]
            layer_type = mt.DOCKER_LAYER_GZIP if img.manifest_type == mt.DOCKER_MANIFEST \
                else None
            layers.append(info.descriptor(layer_type))
        target, image_id = self.ex.storage(
            lambda: self._write(cfg, layers, img.manifest_type, img.config_type, key))
        st.image = _Image(cfg, layers, img.manifest_type, img.config_type, target,
                          image_id)

    def _write(self, cfg: ImageConfig, layers: list[Descriptor], manifest_type: str,
               config_type: str, key: str) -> tuple[Descriptor, str]:
        content = self.svc.content
        mdesc, cdesc = write_image(content, cfg, layers, ref="build",
                                   manifest_type=manifest_type, config_type=config_type)
        self.cache.put(key, mdesc, content)
        return mdesc, str(cdesc.digest)

    def _resolved(self, img: _Image) -> ResolvedImage | None:
        if img.target is None:
            return None
        if img.resolved is None or img.resolved.manifest_desc.digest != img.target.digest:
            target = img.target
            img.resolved = self.ex.storage(lambda: resolve(self.svc.content, target))
        return img.resolved

    # --- metadata instructions ----------------------------------------------------------

    @staticmethod
    def _labels(labels: dict[str, str]) -> Callable[[ImageConfig], None]:
        def change(c: ImageConfig) -> None:
            c.config.Labels = {**(c.config.Labels or {}), **labels}
        return change

    def _pairs(self, ins: df.Instruction, env: dict[str, str]) -> list[tuple[str, str]]:
        out = []
        for k, v in ins.pairs:
            key = self._expand(k, env, ins)
            value = self._expand(v or "", env, ins)
            if not key:
                raise InvalidArgument(f"{ins.cmd} names can not "
                                      "be blank")
            out.append((key, value))
            if ins.cmd == "ENV":
                env[key] = value  # later pairs of the same ENV see earlier ones
        return out

    def _i_env(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        pairs = self._pairs(ins, dict(env))

        def change(c: ImageConfig) -> None:
            e = list(c.config.Env or [])
            for k, v in pairs:
                e = _set_env(e, k, v)
            c.config.Env = e
        self._commit(st, "ENV " + " ".join(f"{k}={v}" for k, v in pairs), change)

    def _i_label(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        pairs = self._pairs(ins, env)
        self._commit(st, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs),
                     self._labels(dict(pairs)))

    def _i_maintainer(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        name = ins.args[0]

        def change(c: ImageConfig) -> None:
            c.author = name
        self._commit(st, "MAINTAINER " + name, change)

    def _i_arg(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        words = []
        for name, default in ins.pairs:
            self.used_args.add(name)
            if name in self.opts.build_args:
                value = self.opts.build_args[name]
            elif default is not None:
                value = self._expand(default, env, ins)
            else:
                value = self.meta.get(name)
            st.args[name] = value
            if value is not None:
                env.setdefault(name, value)
            words.append(name if default is None else f"{name}={default}")
        self._commit(st, "ARG " + " ".join(words), None)

    def _i_expose(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        ports = parse_ports([self._expand(a, env, ins) for a in ins.args])

        def change(c: ImageConfig) -> None:
            c.config.ExposedPorts = {**(c.config.ExposedPorts or {}),
                                     **{p: {} for p in ports}}
        self._commit(st, "EXPOSE " + " ".join(ports), change)

    def _i_user(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        user = self._expand(ins.args[0], env, ins)

        def change(c: ImageConfig) -> None:
            c.config.User = user
        self._commit(st, "USER " + user, change)

    def _i_volume(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        vols = [self._expand(a, env, ins) for a in ins.args]
        if any(not v for v in vols):
            raise InvalidArgument("VOLUME specified can not be "
                                  "an empty string")

        def change(c: ImageConfig) -> None:
            c.config.Volumes = {**(c.config.Volumes or {}), **{v: {} for v in vols}}
        self._commit(st, f"VOLUME [{' '.join(vols)}]", change)

    def _i_stopsignal(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        sig = self._expand(ins.args[0], env, ins)
        check_signal(sig)

        def change(c: ImageConfig) -> None:
            c.config.StopSignal = sig
        self._commit(st, "STOPSIGNAL " + sig, change)

    def _command(self, st: _Stage, ins: df.Instruction) -> list[str]:
        return list(ins.args) if ins.json else [*st.shell, ins.args[0]]

    def _i_cmd(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        cmd = self._command(st, ins)
        st.cmd_set = True

        def change(c: ImageConfig) -> None:
            c.config.Cmd = cmd
        self._commit(st, "CMD " + json.dumps(cmd), change)

    def _i_entrypoint(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        ep = self._command(st, ins)
        keep_cmd = st.cmd_set

        def change(c: ImageConfig) -> None:
            c.config.Entrypoint = ep or None
            if not keep_cmd:
                c.config.Cmd = None  # a base image's CMD does not outlive a new ENTRYPOINT
        self._commit(st, "ENTRYPOINT " + json.dumps(ep), change)

    def _i_healthcheck(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        health = dict(ins.health or {})

        def change(c: ImageConfig) -> None:
            c.config.extra["Healthcheck"] = health
        self._commit(st, "HEALTHCHECK " + json.dumps(health), change)

    def _i_shell(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        shell = list(ins.args)
        st.shell = shell

        def change(c: ImageConfig) -> None:
            c.config.extra["Shell"] = shell
        self._commit(st, "SHELL " + json.dumps(shell), change)

    def _i_onbuild(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        expr = ins.expression

        def change(c: ImageConfig) -> None:
            c.config.extra["OnBuild"] = [*(c.config.extra.get("OnBuild") or []), expr]
        self._commit(st, "ONBUILD " + expr, change)

    # --- filesystem instructions --------------------------------------------------------

    def _i_workdir(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        path = self._expand(ins.args[0], env, ins)
        cur = st.image.config.config.WorkingDir or "/"
        wd = posixpath.normpath(posixpath.join(cur, path))
        wd = "/" + wd.lstrip("/")

        def work(rootfs: str, _step_dir: str) -> None:
            from pallet.linux.paths import mkdir_all_in_root

            mkdir_all_in_root(rootfs, wd)  # root's, as the classic builder makes it

        def change(c: ImageConfig) -> None:
            c.config.WorkingDir = wd
        self._commit(st, "WORKDIR " + wd, change, layer=lambda: self._layer(st, work))

    def _layer(self, st: _Stage, work: Callable[[str, str], None]) -> LayerInfo | None:
        img = st.image
        return self.ex.layer_step(self._resolved(img), list(img.config.diff_ids), work)

    def _i_run(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        argv = self._command(st, ins)
        cfg_env = _env_map(st.image.config.config.Env)
        # build args RUN sees: declared ones ENV does not override, and the proxy ones
        run_args = {k: v for k, v in st.args.items() if v is not None and k not in cfg_env}
        proxies = {k: v for k, v in self.opts.build_args.items()
                   if k in PROXY_ARGS and v is not None and k not in run_args}
        shown = " ".join(argv)
        if run_args:
            shown = f"|{len(run_args)} " + " ".join(
                f"{k}={v}" for k, v in sorted(run_args.items())) + " " + shown
        req = RunRequest(st.image.config, argv,
                         [f"{k}={v}" for k, v in {**run_args, **proxies}.items()],
                         self.opts.run)

        def work(rootfs: str, step_dir: str) -> None:
            cid = secrets.token_hex(32)
            self.out(f" ---> Running in {cid[:12]}\n")
            code = self.ex.run(req, rootfs, step_dir, cid, self.out)
            if code != 0:
                raise CommandFailed(" ".join(argv), code)
            self.out(f"Removing intermediate container {cid[:12]}\n")

        self._commit(st, "", None, created_by=shown, layer=lambda: self._layer(st, work))

    def _i_copy(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        self._copy(st, ins, env)

    def _i_add(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        self._copy(st, ins, env)

    def _copy(self, st: _Stage, ins: df.Instruction, env: dict[str, str]) -> None:
        what = ins.cmd
        words = [self._expand(a, env, ins) for a in ins.args]
        srcs, dest = words[:-1], words[-1]
        urls = [s for s in srcs if remote.is_url(s) or remote.is_git(s)]
        for s in urls:
            if what == "COPY":
                raise InvalidArgument("source can't be a URL for COPY")
            if remote.is_git(s):
                raise InvalidArgument(f"{s}: git sources are not supported by this builder; "
                                      "clone into the build context and ADD from there")
        chown = self._expand(ins.flags["chown"], env, ins) if ins.flags.get("chown") else ""
        wd = st.image.config.config.WorkingDir or "/"
        dir_dest = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
        dest_path = posixpath.normpath(posixpath.join(wd, dest))
        source_from = self._expand(ins.flags["from"], env, ins) if ins.flags.get("from") \
            else None
        if source_from is not None:
            self._copy_from(st, srcs, dest_path, dir_dest, chown,
                            self._source_image(source_from))
            return
        local = [s for s in srcs if s not in urls]
        groups = [(self.ctx, [x for s in local for x in self.ctx.sources(s, f"{what} failed")],
                   what == "ADD")] if local else []
        for i, url in enumerate(urls):  # downloaded each time; the content keys the cache
            self.out(f"Downloading {url}\n")
            path = remote.download(url, os.path.join(self.scratch, f"add-{self.step}-{i}"))
            name = os.path.basename(path)
            groups.append((Context(os.path.dirname(path)), [Source(name, path, name)], False))
        count = sum(len(g[1]) for g in groups)
        if count > 1 and not dir_dest:
            raise InvalidArgument(f"When using {what} with more than one source file, the "
                                  "destination must be a directory and end with a /")
        first = groups[0][1][0]
        kind = "multi" if count > 1 else "dir" if os.path.isdir(first.host) else "file"
        digest = groups[0][0].digest(groups[0][1]) if len(groups) == 1 else \
            hashlib.sha256(" ".join(c.digest(g) for c, g, _ in groups).encode()).hexdigest()
        text = f"{what} {'--chown=' + chown + ' ' if chown else ''}{kind}:{digest} in " \
            f"{dest_path}{'/' if dir_dest and dest_path != '/' else ''} "
        copiers = [self._copier(c, g, dest_path, dir_dest, chown, unpack=unpack)
                   for c, g, unpack in groups]

        def work(rootfs: str, step_dir: str) -> None:
            for copy in copiers:
                copy(rootfs, step_dir)

        self._commit(st, text, None, layer=lambda: self._layer(st, work))

    def _source_image(self, ref: str) -> _Image:
        prev = next((d for d in self.done if d.name == ref.lower()), None)
        if prev is None and ref.isdigit() and int(ref) < len(self.done):
            prev = self.done[int(ref)]
        if prev is not None:
            return prev.image
        if ref.isdigit():
            raise InvalidArgument(f"--from={ref}: no such earlier build stage")
        return self._image(ref, None)

    def _copy_from(self, st: _Stage, srcs: list[str], dest: str, dir_dest: bool,
                   chown: str, src: _Image) -> None:
        """COPY --from: the source image's ID stands for its content in the cache key."""
        text = f"COPY --from={src.image_id or 'scratch'} " \
            f"{'--chown=' + chown + ' ' if chown else ''}{' '.join(srcs)} in {dest} "

        def layer() -> LayerInfo | None:
            with self.ex.view(self._resolved(src)) as root:
                ctx = Context(root, strict=False)
                sources = _sources(ctx, "COPY", srcs, dir_dest)
                return self._layer(st, self._copier(ctx, sources, dest, dir_dest, chown,
                                                    unpack=False))

        self._commit(st, text, None, layer=layer)

    @staticmethod
    def _copier(ctx: Context, sources: list[Source], dest: str, dir_dest: bool,
                chown: str, *, unpack: bool) -> Callable[[str, str], None]:
        def work(rootfs: str, _step_dir: str) -> None:
            from pallet.linux.paths import resolve_in_root

            owner = None
            if chown:
                u = resolve_user(rootfs, chown)
                owner = Owner(u["uid"], u["gid"])
            into_dir = dir_dest or os.path.isdir(resolve_in_root(rootfs, dest))
            for rel, host, name in sources:
                if unpack and os.path.isfile(host) and is_archive(host):
                    with open(host, "rb") as f:
                        extract_tar(f, rootfs, dest, owner)
                    continue
                # a directory's contents go to dest; a file into it, under its own name
                into = into_dir and not os.path.isdir(host)
                copy_into(ctx, rel, host, rootfs, posixpath.join(dest, name) if into else dest,
                          owner)
        return work
