"""HTTP to one registry endpoint: authorization on 401, retries with backoff, plain-http
fallback for insecure registries, and errors turned into the spec's codes.

A request names the scopes it needs; the `Auth` of the host turns them into a header."""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp

from pallet.registry.client.auth import Auth
from pallet.registry.client.credentials import Credentials
from pallet.registry.client.errors import RETRY_STATUSES, RequestError
from pallet.registry.client.hosts import Endpoint
from pallet.registry.errors import parse_error_body
from pallet.registry.scopes import Scope

# A failed connection or a dropped response body: worth another try.
TRANSIENT = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)


def backoff(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    """Exponential backoff with jitter: ~base, 2*base, 4*base ... up to cap."""
    return min(cap, base * (2 ** attempt)) * (0.5 + random.random() / 2)


def ssl_context(ep: Endpoint) -> ssl.SSLContext | bool:
    if ep.scheme != "https":
        return False
    ctx = ssl.create_default_context()
    for ca in ep.ca:
        ctx.load_verify_locations(ca)
    if ep.client_cert:
        ctx.load_cert_chain(*ep.client_cert)
    if ep.skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


Body = bytes | Callable[[], Any] | None


class Transport:
    """Requests to one endpoint, sharing one connection pool and one auth state."""

    def __init__(self, endpoint: Endpoint, creds: Credentials | None, *, retries: int = 5,
                 backoff_base: float = 0.2, connections: int = 16,
                 user_agent: str = "pallet/0.1") -> None:
        self.ep = endpoint
        self.auth = Auth(creds)
        self.retries = retries
        self.backoff_base = backoff_base
        self._connections = connections
        self._ua = user_agent
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Transport:
        self._open()
        return self

    def _open(self) -> None:
        conn = aiohttp.TCPConnector(ssl=ssl_context(self.ep), limit=self._connections)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
        self.session = aiohttp.ClientSession(connector=conn, timeout=timeout,
                                             headers={"User-Agent": self._ua, **self.ep.header},
                                             auto_decompress=False)

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def url(self, path: str) -> str:
        """`path` below the API root (`/<name>/manifests/x`), or an absolute URL / absolute
        path as a registry's Location gives it."""
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/v2/") or path == "/v2":
            root = self.ep.base[: -len("/v2")] if self.ep.base.endswith("/v2") else self.ep.base
            return root + path
        return self.ep.base + path

    async def _fallback_to_http(self) -> bool:
        if self.ep.http_fallback and self.ep.scheme == "https":
            self.ep.scheme = "http"
            self.ep.http_fallback = False
            await self.close()
            self._open()
            return True
        return False

    async def request(self, method: str, path: str, *, scopes: list[Scope],
                      headers: dict[str, str] | None = None, body: Body = None,
                      ok: tuple[int, ...] = (200,), retry: bool = True,
                      allow_redirects: bool = True) -> aiohttp.ClientResponse:
        """Send, answering 401s and retrying transient failures; the response (status in
        `ok`) is the caller's to read and release. `body` is bytes or a factory of a fresh
        body per attempt (a file to stream), so a retry can resend it."""
        assert self.session is not None, "use `async with Transport(...)`"
        attempt = 0
        auth_retried = 0
        while True:
            hdrs = dict(headers or {})
            auth = await self.auth.header(self.session, scopes)
            if auth:
                hdrs["Authorization"] = auth
            data = body() if callable(body) else body
            try:
                resp = await self.session.request(method, self.url(path), headers=hdrs,
                                                  data=data, allow_redirects=allow_redirects)
            except aiohttp.ClientConnectorError as e:
                if await self._fallback_to_http():
                    continue
                if retry and attempt < self.retries:
                    await asyncio.sleep(backoff(attempt, self.backoff_base))
                    attempt += 1
                    continue
                raise RequestError(f"{method} {self.url(path)}: {e}") from None
            except TRANSIENT as e:
                if retry and attempt < self.retries:
                    await asyncio.sleep(backoff(attempt, self.backoff_base))
                    attempt += 1
                    continue
                raise RequestError(f"{method} {self.url(path)}: {e}") from None
            finally:
                if hasattr(data, "close"):
                    data.close()
            if resp.status in ok:
                return resp
            if resp.status == 401 and auth_retried < 2 and self.auth.unauthorized(
                    resp.headers.get("WWW-Authenticate", ""), scopes, hdrs.get("Authorization")):
                resp.release()
                auth_retried += 1
                continue
            # 429 is a refusal before any work (a rate limit): resending is always safe,
            # even for a request that is otherwise not retried here (an upload's body).
            if resp.status in RETRY_STATUSES and (retry or resp.status == 429) \
                    and attempt < self.retries:
                delay = backoff(attempt, self.backoff_base)
                ra = resp.headers.get("Retry-After", "")
                if ra.isdigit():
                    delay = min(float(ra), 30.0)
                resp.release()
                await asyncio.sleep(delay)
                attempt += 1
                continue
            raise await error_of(method, self.url(path), resp)


async def error_of(method: str, url: str, resp: aiohttp.ClientResponse) -> RequestError:
    try:
        data = await resp.read() if method != "HEAD" else b""
    except TRANSIENT:
        data = b""
    finally:
        resp.release()
    errors = parse_error_body(resp.status, data)
    detail = "; ".join(f"{e.code}: {e.message}" + (f" ({e.detail})" if e.detail else "")
                       for e in errors)
    return RequestError(f"{method} {url}: {resp.status} {detail}", resp.status, errors)
