"""ADD's remote sources: an http(s) URL is downloaded into the build's scratch directory and
added from there, as the classic builder does: the file keeps the name of the URL's last
path segment, gets mode 0600 and the Last-Modified time, and is not unpacked."""

from __future__ import annotations

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


def filename(url: str) -> str:
    """The name the downloaded file gets in a destination directory."""
    name = posixpath.basename(urllib.parse.urlsplit(url).path.rstrip("/"))
    if not name or name in (".", ".."):
        raise InvalidArgument(f"cannot determine filename from url: {url}")
    return name


def download(url: str, directory: str, name: str) -> str:
    """GET `url` into `directory`/`name` (a fresh directory per source); the path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    req = urllib.request.Request(url, headers={"User-Agent": "pallet-build"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp, open(path, "wb") as f:
            while chunk := resp.read(_BUF):
                f.write(chunk)
            modified = resp.headers.get("Last-Modified")
    except urllib.error.HTTPError as e:
        raise InvalidArgument(f"failed to GET {url} with status {e.code}: {e.reason}"
                              ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise InvalidArgument(f"failed to GET {url}: {reason}") from None
    os.chmod(path, 0o600)
    if modified:
        try:
            t = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(path, (t, t))
        except (TypeError, ValueError):
            pass  # an unreadable date: the download's own time, as docker
    return path
