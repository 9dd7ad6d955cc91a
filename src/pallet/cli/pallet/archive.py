"""`pallet cp/export/import/save/load/commit/diff`: docker's words, flags and output, as a
client of palletd.

`cp` does on this side what the docker CLI does: it asks the daemon for the stat of the
destination, names the archive's entries after the destination, and extracts what it gets
with the layer applier (no `..`, nothing written through a symlink) beside the target, then
moves it into place.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import sys
import tempfile
import threading
from typing import Any, BinaryIO
from urllib.parse import urlencode

from pallet.cli.pallet import cmdline
from pallet.cli.pallet.client import Client, cid
from pallet.cli.pallet.containers import CMD, client
from pallet.cli.pallet.fmt import human_size
from pallet.errors import InvalidArgument, NotFound

_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27


def _query(path: str, items: list[tuple[str, str | None]]) -> str:
    """`path?k=v&k=v2`: repeated keys, as the Engine API takes `names` and `changes`
    (Client.url would send a list as JSON)."""
    return path + "?" + urlencode([(k, v) for k, v in items if v is not None])


def _split_ref(arg: str) -> tuple[str | None, str]:
    """`container:path` or a local path (which may contain ':' after a '/' or '.')."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    name, _, path = arg.partition(":")
    return name, path


def _stat(c: Client, container: str, path: str) -> dict[str, Any] | None:
    try:
        conn, r = c.send("HEAD", f"/containers/{cid(container)}/archive", {"path": path})
    except NotFound:
        return None
    raw = r.getheader("X-Docker-Container-Path-Stat") or ""
    r.read()
    conn.close()
    return json.loads(base64.b64decode(raw)) if raw else None


class _Counter:
    """Counts what passes (docker prints the size of what it copied)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.n = f, 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.n += len(data)
        return data


def _tar_local(src: str, name: str, out: BinaryIO) -> None:
    from pallet.images.diff import TarWriter, tar_tree

    tw = TarWriter(out)
    tar_tree(src, name, tw)
    tw.close()


def _tar_pipe(src: str, name: str) -> tuple[BinaryIO, threading.Thread, list[BaseException]]:
    r, w = os.pipe()
    errors: list[BaseException] = []

    def produce() -> None:
        with open(w, "wb") as out:
            try:
                _tar_local(src, name, out)
            except BaseException as e:  # reported by the caller after the upload
                errors.append(e)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    return open(r, "rb"), t, errors


def _extract(src: BinaryIO, dest_dir: str) -> None:
    from pallet.images.apply import ApplyOptions, apply_layer

    # as the docker CLI: ownership is not restored on this side
    apply_layer(src, dest_dir, options=ApplyOptions(chown=False, whiteouts=False,
                                                    root_meta=False,
                                                    no_overwrite_dir_non_dir=True))


def _is_dir_path(p: str) -> bool:
    return p.endswith("/") or p.endswith("/.") or p == "."


def copy_from(c: Client, container: str, src: str, dst: str, follow: bool, quiet: bool
              ) -> None:
    if follow:
        st = _stat(c, container, src)
        if st is not None and st["mode"] & _GO_SYMLINK:
            if os.path.isdir(dst) and not os.path.islink(dst):
                # the copy keeps the link's name, as the docker CLI rebases it
                dst = os.path.join(dst, posixpath.basename(src.rstrip("/")))
            src = st["linkTarget"]
    conn, r = c.send("GET", f"/containers/{cid(container)}/archive", {"path": src})
    try:
        st = json.loads(base64.b64decode(r.getheader("X-Docker-Container-Path-Stat") or
                                         "e30="))
        body = _Counter(r)  # type: ignore[arg-type]
        if dst == "-":
            while chunk := body.read(1 << 16):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        is_dir = bool(st.get("mode", 0) & _GO_DIR)
        name = st.get("name") or posixpath.basename(src.rstrip("/"))
        if os.path.isdir(dst) and not os.path.islink(dst):
            _extract(body, dst)  # type: ignore[arg-type]  # entries are named `name/...`
        else:
            parent = os.path.dirname(os.path.abspath(dst)) or "/"
            if _is_dir_path(dst) or not os.path.isdir(parent):
                raise InvalidArgument(f"destination directory {dst!r} does not exist")
            if is_dir and os.path.lexists(dst):
                raise InvalidArgument("cannot copy a directory to a file")
            with tempfile.TemporaryDirectory(prefix=".pallet-cp-", dir=parent) as tmp:
                _extract(body, tmp)  # type: ignore[arg-type]
                if name in (".", "/"):  # entries `./x` or `/x`: the directory is `tmp`
                    os.rename(tmp, dst)
                    os.mkdir(tmp)  # TemporaryDirectory removes it again
                else:
                    os.replace(os.path.join(tmp, name), dst)
    finally:
        conn.close()
    if not quiet:
        cmdline.echo(f"Successfully copied {human_size(body.n)} to {dst}", err=True)


def copy_to(c: Client, src: str, container: str, dst: str, archive: bool, quiet: bool
            ) -> None:
    params: dict[str, Any] = {"noOverwriteDirNonDir": True}
    if archive:
        params["copyUIDGID"] = True
    if src == "-":
        params["path"] = dst
        conn, r = c.upload("PUT", f"/containers/{cid(container)}/archive", params,
                           sys.stdin.buffer)
        r.read()
        conn.close()
        return
    if not os.path.lexists(src):
        raise NotFound(f"could not find the file {src}: no such file or directory")
    src_is_dir = os.path.isdir(src)
    shown = f"{container}:{dst}"
    st = _stat(c, container, dst)
    if st is not None and st["mode"] & _GO_SYMLINK:
        # the destination is what the link leads to (the daemon keeps that in the container)
        dst = st["linkTarget"]
        st = _stat(c, container, dst)
    if st is not None and st["mode"] & _GO_DIR:
        target, name = dst, os.path.basename(os.path.normpath(src))
    elif st is None and _is_dir_path(dst):
        raise NotFound(f"no such directory: {container}:{dst}")
    elif st is not None and src_is_dir:
        raise InvalidArgument("cannot copy a directory to a file")
    else:
        target, name = posixpath.dirname(dst.rstrip("/")) or "/", posixpath.basename(
            dst.rstrip("/"))
    if src.endswith("/.") and src_is_dir and st is not None:
        name = ""  # the directory's contents, not the directory
    params["path"] = target
    body, t, errors = _tar_pipe(src, name)
    counted = _Counter(body)
    try:
        conn, r = c.upload("PUT", f"/containers/{cid(container)}/archive", params, counted)
        r.read()
        conn.close()
    finally:
        body.close()
        t.join()
    if errors:
        raise errors[0]
    if not quiet:
        cmdline.echo(f"Successfully copied {human_size(counted.n)} to {shown}", err=True)


@cmdline.command("cp", context_settings=CMD)
@cmdline.option("-a", "--archive", is_flag=True, help="archive mode (copy all uid/gid "
                "information)")
@cmdline.option("-L", "--follow-link", is_flag=True, help="always follow symbol link in "
                "SRC_PATH")
@cmdline.option("-q", "--quiet", is_flag=True, help="suppress progress output")
@cmdline.argument("src")
@cmdline.argument("dst")
@cmdline.pass_context
def cp_cmd(ctx: cmdline.Context, archive: bool, follow_link: bool, quiet: bool, src: str,
           dst: str) -> None:
    """Copy files/folders between a container and the local filesystem
    (CONTAINER:SRC_PATH DEST_PATH|-  or  SRC_PATH|- CONTAINER:DEST_PATH)."""
    sc, sp = _split_ref(src)
    dc, dp = _split_ref(dst)
    if (sc is None) == (dc is None):
        raise cmdline.UsageError("must specify exactly one container source or destination "
                                 "(CONTAINER:PATH)")
    c = client(ctx)
    if sc is not None:
        copy_from(c, sc, sp, dp, follow_link, quiet or dp == "-")
    else:
        copy_to(c, sp, dc, dp, archive, quiet)  # type: ignore[arg-type]


def _to_file_or_stdout(chunks: Any, output: str | None) -> None:
    if output is None and sys.stdout.isatty():
        raise cmdline.UsageError("cowardly refusing to save to a terminal. Use the -o flag "
                                 "or redirect")
    if output is None:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    part = f"{output}.pallet-{os.getpid()}.tmp"
    try:
        with open(part, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(part, output)
    finally:
        if os.path.exists(part):
            os.unlink(part)


@cmdline.command("export", context_settings=CMD)
@cmdline.option("-o", "--output", default=None, help="write to a file, instead of STDOUT")
@cmdline.argument("container")
@cmdline.pass_context
def export_cmd(ctx: cmdline.Context, output: str | None, container: str) -> None:
    """Export a container's filesystem as a tar archive."""
    _to_file_or_stdout(client(ctx).raw("GET", f"/containers/{cid(container)}/export"),
                       output)


@cmdline.command("save", context_settings=CMD)
@cmdline.option("-o", "--output", default=None, help="write to a file, instead of STDOUT")
@cmdline.argument("images", nargs=-1, required=True)
@cmdline.pass_context
def save_cmd(ctx: cmdline.Context, output: str | None, images: tuple[str, ...]) -> None:
    """Save one or more images to a tar archive (docker-archive)."""
    c = client(ctx)
    if output is None and sys.stdout.isatty():
        raise cmdline.UsageError("cowardly refusing to save to a terminal. Use the -o flag "
                                 "or redirect")
    _to_file_or_stdout(c.raw("GET", _query("/images/get", [("names", n) for n in images])),
                       output)


def _messages(c: Client, path: str, params: dict[str, Any], src: BinaryIO) -> list[Any]:
    conn, r = c.upload("POST", path, params, src)
    try:
        raw = r.read()
    finally:
        conn.close()
    out = [json.loads(line) for line in raw.splitlines() if line.strip()]
    for m in out:
        if m.get("error"):
            raise InvalidArgument(f"Error response from daemon: {m['error']}")
    return out


@cmdline.command("load", context_settings=CMD)
@cmdline.option("-i", "--input", "input_", default=None, help="read from tar archive file, "
                "instead of STDIN")
@cmdline.option("-q", "--quiet", is_flag=True, help="suppress the load output")
@cmdline.pass_context
def load_cmd(ctx: cmdline.Context, input_: str | None, quiet: bool) -> None:
    """Load an image from a tar archive (docker save, or an OCI layout) or STDIN."""
    c = client(ctx)
    if input_ is None and sys.stdin.isatty():
        raise cmdline.UsageError("requested load from stdin, but stdin is empty")
    with (open(input_, "rb") if input_ else sys.stdin.buffer) as src:
        for m in _messages(c, "/images/load", {"quiet": True}, src):
            if m.get("stream"):
                cmdline.echo(m["stream"], nl=False)


def _repo_tag(ref: str | None) -> tuple[str | None, str | None]:
    if not ref:
        return None, None
    from pallet.images import reference

    r = reference.parse_named(ref)
    return f"{r.domain}/{r.path}", r.tag


@cmdline.command("import", context_settings=CMD)
@cmdline.option("-c", "--change", multiple=True, help="apply Dockerfile instruction to the "
                "created image")
@cmdline.option("-m", "--message", default="", help="set commit message for imported image")
@cmdline.option("--platform", default=None, help="set platform (only this host's)")
@cmdline.argument("source")
@cmdline.argument("reference", required=False)
@cmdline.pass_context
def import_cmd(ctx: cmdline.Context, change: tuple[str, ...], message: str,
               platform: str | None, source: str, reference: str | None) -> None:
    """Import the contents from a tarball to create a filesystem image."""
    c = client(ctx)
    if "://" in source:
        raise InvalidArgument(f"{source}: importing from a URL is not supported; download "
                              "it first")
    path = _query("/images/create", [("fromSrc", "-"), ("repo", reference),
                                      ("message", message or None),
                                      *(("changes", ch) for ch in change)])
    with (sys.stdin.buffer if source == "-" else open(source, "rb")) as src:
        msgs = _messages(c, path, {}, src)
    for m in msgs[-1:]:
        cmdline.echo(m.get("status", ""))


@cmdline.command("commit", context_settings=CMD)
@cmdline.option("-a", "--author", default="", help='author (e.g., "John Hannibal Smith '
                '<hannibal@a-team.com>")')
@cmdline.option("-c", "--change", multiple=True, help="apply Dockerfile instruction to the "
                "created image")
@cmdline.option("-m", "--message", default="", help="commit message")
@cmdline.option("-p", "--pause", type=cmdline.BOOL, default=True, show_default=True,
                help="pause container during commit (--pause=false to not)")
@cmdline.argument("container")
@cmdline.argument("reference", required=False)
@cmdline.pass_context
def commit_cmd(ctx: cmdline.Context, author: str, change: tuple[str, ...], message: str,
               pause: bool, container: str, reference: str | None) -> None:
    """Create a new image from a container's changes."""
    repo, tag = _repo_tag(reference)
    out = client(ctx).call("POST", _query("/commit", [
        ("container", container), ("repo", repo), ("tag", tag), ("author", author),
        ("comment", message), ("pause", "1" if pause else "0"),
        *(("changes", ch) for ch in change)]))
    cmdline.echo(out["Id"])


KINDS = {0: "C", 1: "A", 2: "D"}


@cmdline.command("diff", context_settings=CMD)
@cmdline.argument("container")
@cmdline.pass_context
def diff_cmd(ctx: cmdline.Context, container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    for ch in client(ctx).get(f"/containers/{cid(container)}/changes") or []:
        cmdline.echo(f"{KINDS.get(ch['Kind'], '?')} {ch['Path']}")


__all__ = ["commit_cmd", "cp_cmd", "diff_cmd", "export_cmd", "import_cmd", "load_cmd",
           "save_cmd"]
