"""Answering a registry's `WWW-Authenticate`: Basic with stored credentials, or the Docker
token flow (GET <realm>?service=&scope=, with Basic credentials or anonymously; a refresh
token goes by POST as OAuth2). Tokens are cached per scope set until they expire."""

from __future__ import annotations

import base64
import time
from urllib.parse import urlencode

import aiohttp

from pallet.registry.client.credentials import Credentials
from pallet.registry.client.errors import RequestError
from pallet.registry.errors import parse_error_body
from pallet.registry.scopes import Challenge, Scope, parse_challenges

# Refresh a little before the registry would refuse the token.
_EXPIRY_MARGIN = 10.0
_DEFAULT_EXPIRES = 60.0


def basic_header(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.secret}".encode()).decode()


class Auth:
    """The authorization state for one registry host."""

    def __init__(self, creds: Credentials | None) -> None:
        self.creds = creds
        self.challenge: Challenge | None = None
        self._tokens: dict[str, tuple[str, float]] = {}

    @staticmethod
    def _key(scopes: list[Scope]) -> str:
        return " ".join(sorted(str(s) for s in scopes))

    async def header(self, session: aiohttp.ClientSession, scopes: list[Scope]
                     ) -> str | None:
        """The Authorization header for a request needing `scopes`, if one is known to be
        wanted (before the first 401 nothing is sent: the registry may be open)."""
        ch = self.challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return basic_header(self.creds) if self.creds is not None else None
        if ch.scheme == "bearer":
            key = self._key(scopes)
            cached = self._tokens.get(key)
            if cached is None or cached[1] <= time.monotonic():
                cached = await self._fetch_token(session, ch, scopes)
                self._tokens[key] = cached
            return f"Bearer {cached[0]}"
        return None

    def unauthorized(self, www_authenticate: str, scopes: list[Scope],
                     sent: str | None) -> bool:
        """Take a 401's challenge; True if a retry can answer it. `sent` is the
        Authorization the refused request carried: requests run in parallel, and one
        refused before another learnt the challenge deserves its retry."""
        chs = [c for c in parse_challenges(www_authenticate) if c.scheme in ("bearer", "basic")]
        if not chs:
            return False
        ch = next((c for c in chs if c.scheme == "bearer"), chs[0])
        self.challenge = ch
        if ch.scheme == "basic":
            return self.creds is not None and sent != basic_header(self.creds)
        key = self._key(scopes)
        cached = self._tokens.get(key)
        if sent is None or cached is None or f"Bearer {cached[0]}" != sent:
            return True  # no token yet, or a newer one than the refused request had
        del self._tokens[key]
        # the registry refused a token we got for exactly these scopes: only an expired
        # one is worth fetching again, a token lacking scope would be refused again
        return ch.params.get("error") != "insufficient_scope"

    async def _fetch_token(self, session: aiohttp.ClientSession, ch: Challenge,
                           scopes: list[Scope]) -> tuple[str, float]:
        realm = ch.params.get("realm")
        if not realm:
            raise RequestError("registry: bearer challenge without realm", 401)
        service = ch.params.get("service", "")
        scope_values = [str(s) for s in scopes]
        if not scope_values and ch.params.get("scope"):
            scope_values = ch.params["scope"].split()
        if self.creds is not None and self.creds.is_token:
            form = {"grant_type": "refresh_token", "refresh_token": self.creds.secret,
                    "service": service, "client_id": "pallet",
                    "scope": " ".join(scope_values)}
            resp = await session.post(realm, data=form)
        else:
            query = [("service", service)] if service else []
            query += [("scope", s) for s in scope_values]
            headers = {}
            if self.creds is not None:
                headers["Authorization"] = basic_header(self.creds)
            sep = "&" if "?" in realm else "?"
            resp = await session.get(realm + (sep + urlencode(query) if query else ""),
                                     headers=headers)
        async with resp:
            body = await resp.read()
            if resp.status != 200:
                errs = parse_error_body(resp.status, body)
                raise RequestError(f"token service {realm}: {resp.status} {errs[0].code}: "
                                   f"{errs[0].detail or errs[0].message}",
                                   resp.status if resp.status in (401, 403) else 401, errs)
            try:
                doc = await resp.json(content_type=None)
                token = doc.get("token") or doc.get("access_token")
            except (ValueError, AttributeError):
                token = None
            if not token:
                raise RequestError(f"token service {realm}: no token in the answer", 401)
            expires = float(doc.get("expires_in") or _DEFAULT_EXPIRES)
        return token, time.monotonic() + max(expires - _EXPIRY_MARGIN, 1.0)
