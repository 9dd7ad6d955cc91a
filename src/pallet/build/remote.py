"""ADD's remote sources: an http(s) URL is downloaded into the build's scratch directory and
added from there, as the classic builder does: the file keeps the name of the URL's last
path segment, gets mode 0600 and the Last-Modified time, and is not unpacked."""

from __future__ import annotations

import email.message
import email.utils
import os
import posixpath
import urllib.error
import urllib.parse
import urllib.request

from pallet.errors import InvalidArgument

TIMEOUT = 60
_BUF = 1 << 20


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://"))


def is_git(src: str) -> bool:
    return src.startswith("git@") or src.startswith("git://") or (
        is_url(src) and urllib.parse.urlsplit(src).path.endswith(".git"))


def filename(url: str, disposition: str | None = None) -> str:
    """The name the downloaded file gets: Content-Disposition's filename, else the URL
    path's last segment (decoded), as the classic builder names it."""
    if disposition:
        msg = email.message.Message()
        msg["Content-Disposition"] = disposition
        name = posixpath.basename(msg.get_filename() or "")
        if name and name not in (".", ".."):
            return name
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    name = posixpath.basename(path.rstrip("/")) if not path.endswith("/") else ""
    if not name or name in (".", ".."):
        raise InvalidArgument(f"cannot determine filename from url: {url}")
    return name


def download(url: str, directory: str) -> str:
    """GET `url` into `directory` (a fresh one per source), under its filename; the path."""
    os.makedirs(directory, exist_ok=True)
    part = os.path.join(directory, ".download")
    req = urllib.request.Request(url, headers={"User-Agent": "pallet-build"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp, open(part, "wb") as f:
            while chunk := resp.read(_BUF):
                f.write(chunk)
            modified = resp.headers.get("Last-Modified")
            disposition = resp.headers.get("Content-Disposition")
    except urllib.error.HTTPError as e:
        raise InvalidArgument(f"failed to GET {url} with status {e.code}: {e.reason}"
                              ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise InvalidArgument(f"failed to GET {url}: {reason}") from None
    path = os.path.join(directory, filename(url, disposition))
    os.rename(part, path)
    os.chmod(path, 0o600)
    if modified:
        try:
            t = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(path, (t, t))
        except (TypeError, ValueError):
            pass  # an unreadable date: the download's own time, as docker
    return path
