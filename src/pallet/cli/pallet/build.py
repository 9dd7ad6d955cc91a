"""`pallet build`: a client of palletd's `POST /build`, as `docker build` (legacy builder)
is of dockerd's: the context directory goes as a tar (without what .dockerignore excludes),
the daemon's JSON stream comes back as text."""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from typing import Any
from urllib.parse import quote

from pallet.cli.pallet import cmdline
from pallet.cli.pallet.containers import CMD, client
from pallet.cli.pallet.fmt import parse_size
from pallet.errors import InvalidArgument, SystemError_


class BuildFailed(SystemError_):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _context(path: str, dockerfile: str | None, out: Any) -> str:
    """Write the context tar to `out`; returns the Dockerfile's name inside it."""
    from pallet.build.context import make_tar

    root = os.path.abspath(path)
    if not os.path.isdir(root):
        raise InvalidArgument(f"unable to prepare context: path {path!r} not found")
    name = "Dockerfile"
    outside = None
    if dockerfile is not None:
        full = os.path.abspath(dockerfile)
        rel = os.path.relpath(full, root)
        if rel.startswith(".." + os.sep) or rel == "..":
            # as docker does: a Dockerfile from elsewhere travels under a random name
            outside, name = full, f".dockerfile.{secrets.token_hex(10)}"
        else:
            name = rel.replace(os.sep, "/")
    data = None
    if outside is not None:
        with open(outside, "rb") as f:
            data = f.read()
    make_tar(root, name, out, data)
    return name


def _lines(resp: Any) -> Any:
    buf = b""
    while chunk := resp.read1(65536):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if buf.strip():
        yield json.loads(buf)


@cmdline.command("build", context_settings=CMD)
@cmdline.option("-t", "--tag", "tags", multiple=True, help="name:tag for the image")
@cmdline.option("-f", "--file", "dockerfile", default=None,
                help="the Dockerfile [PATH/Dockerfile]")
@cmdline.option("--build-arg", "build_args", multiple=True, metavar="KEY[=VALUE]",
                help="a build-time variable (KEY alone: from the environment)")
@cmdline.option("--no-cache", is_flag=True, help="do not use the layer cache")
@cmdline.option("--target", default=None, help="the stage to build")
@cmdline.option("-q", "--quiet", is_flag=True, help="print only the image ID")
@cmdline.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
                help="a label for the image")
@cmdline.option("--network", default=None,
                help="RUN's network: the default bridge, a network, none or host")
@cmdline.option("-m", "--memory", default=None, help="RUN's memory limit (e.g. 256m)")
@cmdline.option("--shm-size", default=None, help="size of RUN's /dev/shm (e.g. 64m)")
@cmdline.option("--add-host", "add_hosts", multiple=True, metavar="NAME:IP",
                help="a line for RUN's /etc/hosts")
@cmdline.option("--runtime", default=None, help="OCI runtime for RUN [palletd's default]")
@cmdline.argument("path")
@cmdline.pass_context
def build_cmd(ctx: cmdline.Context, tags: tuple[str, ...], dockerfile: str | None,
              build_args: tuple[str, ...], no_cache: bool, target: str | None, quiet: bool,
              labels: tuple[str, ...], network: str | None, memory: str | None,
              shm_size: str | None, add_hosts: tuple[str, ...], runtime: str | None,
              path: str) -> None:
    """Build an image from a Dockerfile (through palletd)."""
    args: dict[str, str | None] = {}
    for a in build_args:
        k, sep, v = a.partition("=")
        args[k] = v if sep else os.environ.get(k)
    label_map = dict(x.partition("=")[::2] for x in labels)
    c = client(ctx)
    with tempfile.TemporaryFile() as body:
        name = _context(path, dockerfile, body)
        size = body.tell()
        body.seek(0)
        params: dict[str, Any] = {"dockerfile": name, "buildargs": args or None,
                                  "nocache": no_cache or None, "target": target, "q": quiet or None,
                                  "labels": label_map or None, "networkmode": network,
                                  "memory": parse_size(memory) if memory else None,
                                  "shmsize": parse_size(shm_size) if shm_size else None,
                                  "extrahosts": ",".join(add_hosts) or None,
                                  "runtime": runtime}
        conn = c._conn()
        # `t` repeats, one per tag, as docker sends it
        url = c.url("/build", params)
        url += "".join(("&" if "?" in url else "?") + "t=" + quote(t, safe="") for t in tags)
        conn.request("POST", url, body=body, headers={
            "Content-Type": "application/x-tar", "Content-Length": str(size)})
        resp = conn.getresponse()
        try:
            if resp.status >= 400:
                raw = resp.read()
                try:
                    msg = json.loads(raw).get("message", raw.decode())
                except ValueError:
                    msg = raw.decode(errors="replace")
                raise SystemError_(f"Error response from daemon: {msg}")
            for m in _lines(resp):
                if "error" in m or "errorDetail" in m:
                    detail = m.get("errorDetail") or {}
                    raise BuildFailed(detail.get("message") or m.get("error", ""),
                                      int(detail.get("code") or 1))
                if "stream" in m:
                    sys.stdout.write(m["stream"])
                    sys.stdout.flush()
        except BuildFailed as e:
            cmdline.echo(e.message, err=True)
            sys.exit(e.code)
        finally:
            conn.close()
