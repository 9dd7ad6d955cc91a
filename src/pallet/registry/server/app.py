"""The HTTP side of `pallet registry`: one aiohttp handler that routes every `/v2/` path
itself (names contain '/', and a bad name must answer NAME_INVALID, not a bare 404),
checks access, and hands over to the endpoint modules.

Every response carries `Docker-Distribution-API-Version: registry/2.0`; every error is the
spec's JSON body (errors.py).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from aiohttp import web

from pallet.registry import names
from pallet.registry.errors import RegistryError
from pallet.registry.scopes import DELETE, PULL, PUSH, Scope, parse_scopes, repository
from pallet.registry.server import auth as _auth
from pallet.registry.server.config import Config
from pallet.registry.server.ratelimit import TokenBuckets
from pallet.registry.server.storage import RegistryStorage
from pallet.registry.server.uploads import Uploads

log = logging.getLogger("pallet.registry")

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"
TOKEN_PATH = "/token"


@dataclass
class Registry:
    cfg: Config
    storage: RegistryStorage
    uploads: Uploads
    authorizer: _auth.Authorizer
    issuer: _auth.TokenIssuer | None = None


REGISTRY_KEY = web.AppKey("registry", Registry)
IDENTITY_KEY = web.RequestKey("identity", _auth.Identity)


def needed_scopes(route: names.Route, method: str, query: dict[str, str]) -> list[Scope]:
    """What a request needs, in token-auth terms (distribution's mapping): reads need pull,
    writes push, DELETE delete; a mount also needs pull on its source."""
    if route.kind in (names.BASE, names.CATALOG):
        return [] if route.kind == names.BASE else [Scope("registry", "catalog", ("*",))]
    if method in ("GET", "HEAD"):
        return [repository(route.name, PULL)]
    if method == "DELETE" and route.kind in (names.MANIFEST, names.BLOB):
        return [repository(route.name, DELETE)]
    need = [repository(route.name, PULL, PUSH)]
    src = query.get("from")
    if route.kind == names.UPLOADS and query.get("mount") and src and src != route.name:
        need.append(repository(src, PULL))
    return need


async def dispatch(request: web.Request) -> web.StreamResponse:
    reg = request.app[REGISTRY_KEY]
    route = names.route(request.path)
    if route is None:
        raise RegistryError("NAME_UNKNOWN", {"path": request.path}, message="not found")
    if route.name and not names.valid_name(route.name):
        raise RegistryError("NAME_INVALID", {"name": route.name})
    need = needed_scopes(route, request.method, dict(request.query))
    ident = reg.authorizer.authorize(request.headers, need)
    request[IDENTITY_KEY] = ident
    handler = _HANDLERS.get((route.kind, request.method))
    if handler is None:
        raise RegistryError("UNSUPPORTED", {"method": request.method, "path": request.path})
    return await handler(reg, request, route)


async def base(reg: Registry, request: web.Request, route: names.Route) -> web.Response:
    return web.json_response({})


def _handlers() -> dict[tuple[str, str], object]:
    from pallet.registry.server import blobs, discovery, manifests

    return {
        (names.BASE, "GET"): base,
        (names.BASE, "HEAD"): base,
        (names.BLOB, "GET"): blobs.get_blob,
        (names.BLOB, "HEAD"): blobs.get_blob,
        (names.BLOB, "DELETE"): blobs.delete_blob,
        (names.UPLOADS, "POST"): blobs.start_upload,
        (names.UPLOAD, "GET"): blobs.upload_status,
        (names.UPLOAD, "PATCH"): blobs.patch_upload,
        (names.UPLOAD, "PUT"): blobs.put_upload,
        (names.UPLOAD, "DELETE"): blobs.cancel_upload,
        (names.MANIFEST, "GET"): manifests.get_manifest,
        (names.MANIFEST, "HEAD"): manifests.get_manifest,
        (names.MANIFEST, "PUT"): manifests.put_manifest,
        (names.MANIFEST, "DELETE"): manifests.delete_manifest,
        (names.TAGS, "GET"): discovery.list_tags,
        (names.REFERRERS, "GET"): discovery.referrers,
        (names.CATALOG, "GET"): discovery.catalog,
    }


_HANDLERS: dict = {}


@web.middleware
async def errors_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RegistryError as e:
        return error_response(e, head=request.method == "HEAD")
    except web.HTTPException:
        raise
    except Exception as e:
        log.exception("%s %s", request.method, request.path)
        return error_response(RegistryError("UNKNOWN", str(e)), head=request.method == "HEAD")


def rate_limit_middleware(buckets: TokenBuckets):
    @web.middleware
    async def limit(request: web.Request, handler) -> web.StreamResponse:
        wait = buckets.take(request.remote or "")
        if wait > 0:
            return error_response(RegistryError(
                "TOOMANYREQUESTS", {"retryAfter": math.ceil(wait)},
                headers={"Retry-After": str(math.ceil(wait))}),
                head=request.method == "HEAD")
        return await handler(request)
    return limit


def error_response(e: RegistryError, *, head: bool = False) -> web.Response:
    body = e.body()
    headers = {"Content-Type": "application/json", **e.headers}
    if head:
        # A HEAD answer has no body, but says how long the GET's would be.
        return web.Response(status=e.status, headers=headers)
    return web.Response(status=e.status, body=body, headers=headers)


async def _api_version(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[API_VERSION_HEADER] = API_VERSION


async def token(request: web.Request) -> web.Response:
    """The token service (docker's token spec): GET /token?service=&scope=...[&account=]
    with Basic credentials or none; and its OAuth2 form (POST, application/x-www-form-
    urlencoded) with grant_type=password or refresh_token. `offline_token=true` (GET) or
    `access_type=offline` (POST password grant) also returns a refresh token, which is
    what `docker login` stores as an identity token."""
    reg = request.app[REGISTRY_KEY]
    if reg.issuer is None:
        raise RegistryError("UNSUPPORTED", "no token service")
    if request.method == "POST":
        form = await request.post()
        params: dict[str, list[str]] = {}
        for k, v in form.items():
            params.setdefault(k, []).append(str(v))
        grant = _one(params, "grant_type")
        if grant == "password":
            account = reg.issuer.check_password(_one(params, "username"),
                                                _one(params, "password"))
        elif grant == "refresh_token":
            account = reg.issuer.check_refresh(_one(params, "refresh_token"))
        else:
            raise RegistryError("UNSUPPORTED", f"grant_type {grant!r}", status=400)
        offline = _one(params, "access_type") == "offline" and grant == "password"
        # OAuth2 puts the scopes in one space-separated value
        raw_scopes = [x for v in params.get("scope", []) for x in v.split(" ") if x]
        service = _one(params, "service") or reg.cfg.token.service
    else:
        account = reg.issuer.authenticate(request.headers)
        offline = request.query.get("offline_token") == "true" and account != _auth.ANONYMOUS
        raw_scopes = request.query.getall("scope", [])
        service = request.query.get("service", reg.cfg.token.service)
    try:
        scopes = parse_scopes(raw_scopes)
    except ValueError as e:
        raise RegistryError("DENIED", str(e), status=400) from None
    if service != reg.cfg.token.service:
        raise RegistryError("DENIED", f"unknown service {service!r}", status=400)
    doc = reg.issuer.issue(account, service, scopes)
    if offline:
        doc["refresh_token"] = reg.issuer.refresh_token(account, service)
    return web.json_response(doc)


def _one(params: dict[str, list[str]], key: str) -> str:
    values = params.get(key) or [""]
    return values[0]


def make_app(cfg: Config, storage: RegistryStorage | None = None) -> web.Application:
    storage = storage or RegistryStorage(cfg.root)
    uploads = Uploads(storage)
    issuer = None
    if cfg.auth == "none":
        authorizer: _auth.Authorizer = _auth.NoAuth()
    elif cfg.auth == "htpasswd":
        authorizer = _auth.BasicAuth(_auth.Htpasswd(cfg.htpasswd), cfg.realm,
                                     cfg.anonymous_read)
    else:
        signer = _auth.token_signer(cfg)
        issuer = _auth.TokenIssuer(cfg, signer,
                                   _auth.Htpasswd(cfg.htpasswd) if cfg.htpasswd else None)
        realm = cfg.token.realm or _default_realm(cfg)
        authorizer = _auth.TokenAuth(cfg, signer, realm)
    if not _HANDLERS:
        _HANDLERS.update(_handlers())
    # Blob bodies are streamed into the ingester, never read whole; this cap only applies
    # to request.read() (manifests), which checks its own, smaller limit first.
    middlewares = [errors_middleware]
    if cfg.rate_limit > 0:
        middlewares.insert(0, rate_limit_middleware(TokenBuckets(cfg.rate_limit,
                                                                 cfg.rate_burst)))
    app = web.Application(middlewares=middlewares, client_max_size=cfg.max_manifest_size + 1)
    app[REGISTRY_KEY] = Registry(cfg, storage, uploads, authorizer, issuer)
    app.router.add_route("*", TOKEN_PATH, token)
    app.router.add_route("*", "/v2", dispatch)
    app.router.add_route("*", "/v2/{tail:.*}", dispatch)
    app.on_response_prepare.append(_api_version)

    async def _close(app: web.Application) -> None:
        uploads.close()
        storage.close()

    app.on_cleanup.append(_close)
    return app


def _default_realm(cfg: Config) -> str:
    host, port = cfg.host_port
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    scheme = "https" if cfg.tls_cert else "http"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{TOKEN_PATH}"
