"""Credentials as Docker keeps them: `~/.docker/config.json` (or `$DOCKER_CONFIG`), with
`auths` (base64 `user:password`), `credsStore` and per-registry `credHelpers`, which name
programs `docker-credential-<helper>` speaking docker's helper protocol:

    get     stdin: server URL          stdout: {"ServerURL","Username","Secret"}
    store   stdin: that JSON
    erase   stdin: server URL

Docker Hub's key is the legacy `https://index.docker.io/v1/`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any

from pallet.errors import InvalidArgument, NotFound

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB_KEY}
# A helper's "no such credentials" answer (docker-credential-helpers' ErrCredentialsNotFound).
_NOT_FOUND = "credentials not found in native keychain"


@dataclass
class Credentials:
    username: str
    secret: str

    @property
    def is_token(self) -> bool:
        # docker-credential-helpers: username "<token>" means the secret is a refresh token
        return self.username == "<token>"


def config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def server_key(registry: str) -> str:
    """The key a registry has in `auths` and for helpers."""
    host = registry
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix):]
    host = host.split("/", 1)[0]
    return DOCKER_HUB_KEY if host in _HUB_NAMES or registry == DOCKER_HUB_KEY else host


def _matches(key: str, registry: str) -> bool:
    return server_key(key) == server_key(registry)


class DockerConfig:
    def __init__(self, directory: str | None = None) -> None:
        self.dir = directory or config_dir()
        self.path = os.path.join(self.dir, "config.json")
        self.doc: dict[str, Any] = self._load()

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path) as f:
                doc = json.load(f)
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise InvalidArgument(f"{self.path}: not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise InvalidArgument(f"{self.path}: not a JSON object")
        return doc

    def save(self) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.doc, f, indent="\t")
            f.write("\n")
        os.replace(tmp, self.path)

    def helper_for(self, registry: str) -> str | None:
        helpers = self.doc.get("credHelpers") or {}
        for key, helper in helpers.items():
            if _matches(key, registry):
                return helper
        return self.doc.get("credsStore") or None

    def get(self, registry: str) -> Credentials | None:
        helper = self.helper_for(registry)
        if helper:
            creds = helper_get(helper, server_key(registry))
            if creds is not None:
                return creds
        for key, entry in (self.doc.get("auths") or {}).items():
            if not _matches(key, registry) or not isinstance(entry, dict):
                continue
            if entry.get("identitytoken"):
                return Credentials("<token>", entry["identitytoken"])
            if entry.get("auth"):
                try:
                    user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    raise InvalidArgument(f"{self.path}: bad auth for {key}") from None
                return Credentials(user, pw)
            if entry.get("username"):
                return Credentials(entry["username"], entry.get("password", ""))
        return None

    def store(self, registry: str, creds: Credentials) -> None:
        key = server_key(registry)
        helper = self.helper_for(registry)
        auths = self.doc.setdefault("auths", {})
        if helper:
            helper_store(helper, key, creds)
            auths[key] = {}  # docker leaves an empty entry: "there are credentials"
        else:
            raw = f"{creds.username}:{creds.secret}".encode()
            auths[key] = {"auth": base64.b64encode(raw).decode()}
        self.save()

    def erase(self, registry: str) -> None:
        key = server_key(registry)
        helper = self.helper_for(registry)
        auths = self.doc.get("auths") or {}
        found = [k for k in auths if _matches(k, registry)]
        if helper:
            helper_erase(helper, key)
        elif not found:
            raise NotFound(f"not logged in to {key}")
        for k in found:
            del auths[k]
        self.save()


def _helper(helper: str, verb: str, stdin: str) -> subprocess.CompletedProcess[str]:
    prog = f"docker-credential-{helper}"
    try:
        return subprocess.run([prog, verb], input=stdin, capture_output=True, text=True,
                              timeout=60, check=False)
    except FileNotFoundError:
        raise NotFound(f"credential helper {prog} not found in PATH") from None


def helper_get(helper: str, server: str) -> Credentials | None:
    r = _helper(helper, "get", server)
    if r.returncode != 0:
        if _NOT_FOUND in (r.stdout + r.stderr):
            return None
        raise InvalidArgument(f"docker-credential-{helper} get: {(r.stderr or r.stdout).strip()}")
    try:
        doc = json.loads(r.stdout)
        return Credentials(doc["Username"], doc["Secret"])
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument(f"docker-credential-{helper} get: bad answer") from None


def helper_store(helper: str, server: str, creds: Credentials) -> None:
    doc = json.dumps({"ServerURL": server, "Username": creds.username, "Secret": creds.secret})
    r = _helper(helper, "store", doc)
    if r.returncode != 0:
        raise InvalidArgument(f"docker-credential-{helper} store: "
                              f"{(r.stderr or r.stdout).strip()}")


def helper_erase(helper: str, server: str) -> None:
    r = _helper(helper, "erase", server)
    if r.returncode != 0 and _NOT_FOUND not in (r.stdout + r.stderr):
        raise InvalidArgument(f"docker-credential-{helper} erase: "
                              f"{(r.stderr or r.stdout).strip()}")
