"""`pallet registry ...`: serve (the distribution-spec server) and gc."""

from __future__ import annotations

import logging
import os
import sys

from pallet.cli.pallet import cmdline
from pallet.registry.server import config as _config


@cmdline.group()
def registry() -> None:
    """Run an OCI registry."""


def _load(path: str | None, **flags: object) -> _config.Config:
    cfg = _config.load(path)
    for key, value in flags.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg.validate()


@registry.command("serve")
@cmdline.option("-c", "--config", "config_path", default=None, type=cmdline.Path(exists=True),
                help="TOML configuration file (flags override it)")
@cmdline.option("--addr", default=None, help=f"host:port to listen on [{_config.DEFAULT_ADDR}]")
@cmdline.option("--storage", "root", default=None,
                help=f"storage root [{_config.DEFAULT_ROOT}]")
@cmdline.option("--tls-cert", default=None, help="serve HTTPS with this certificate (PEM)")
@cmdline.option("--tls-key", default=None, help="the certificate's private key (PEM)")
@cmdline.option("--auth", type=cmdline.Choice(_config.AUTH_TYPES), default=None)
@cmdline.option("--htpasswd", default=None, help="htpasswd file with bcrypt entries")
@cmdline.option("--realm", default=None, help="Basic auth realm")
@cmdline.option("--anonymous-read/--no-anonymous-read", default=None,
                help="allow pulls without credentials")
@cmdline.option("--token-realm", default=None, help="token service URL in challenges "
                "[this server's /token]")
@cmdline.option("--token-service", default=None, help="token audience (service name)")
@cmdline.option("--delete/--no-delete", default=None,
                help="allow DELETE of manifests, tags and blobs")
@cmdline.option("--rate-limit", type=float, default=None,
                help="requests per second per client IP; over it 429 TOOMANYREQUESTS [off]")
@cmdline.option("--rate-burst", type=int, default=None, help="bucket size [2x the rate]")
@cmdline.option("--token-signing", type=cmdline.Choice(_config.SIGNING), default=None,
                help="token signatures: HS256, or RS256 with an x5c chain that another "
                "registry can trust (<storage>/token-ca.crt unless configured)")
@cmdline.option("--print-address", is_flag=True,
                help="print the URL on stdout once listening (useful with port 0)")
@cmdline.option("--log-level", default="warning",
                type=cmdline.Choice(["debug", "info", "warning", "error"]))
def serve(config_path: str | None, addr: str | None, root: str | None, tls_cert: str | None,
          tls_key: str | None, auth: str | None, htpasswd: str | None, realm: str | None,
          anonymous_read: bool | None, token_realm: str | None, token_service: str | None,
          delete: bool | None, rate_limit: float | None, rate_burst: int | None,
          token_signing: str | None, print_address: bool, log_level: str) -> None:
    """Serve the OCI distribution API (pull, push, discovery, deletion, referrers)."""
    from pallet.registry.server.serve import run

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = _config.load(config_path)
    if token_realm is not None:
        cfg.token.realm = token_realm
    if token_service is not None:
        cfg.token.service = token_service
    if token_signing is not None:
        cfg.token.signing = token_signing
    cfg = _load(None, addr=addr or cfg.addr, root=root or cfg.root,
                tls_cert=tls_cert if tls_cert is not None else cfg.tls_cert,
                tls_key=tls_key if tls_key is not None else cfg.tls_key,
                auth=auth or cfg.auth, htpasswd=htpasswd or cfg.htpasswd,
                realm=realm or cfg.realm,
                anonymous_read=cfg.anonymous_read if anonymous_read is None
                else anonymous_read,
                delete=cfg.delete if delete is None else delete,
                max_manifest_size=cfg.max_manifest_size, token=cfg.token,
                rate_limit=cfg.rate_limit if rate_limit is None else rate_limit,
                rate_burst=cfg.rate_burst if rate_burst is None else rate_burst,
                referrers_page_size=cfg.referrers_page_size)
    os.makedirs(cfg.root, exist_ok=True)

    def ready(url: str) -> None:
        if print_address:
            cmdline.echo(url)
            sys.stdout.flush()
        logging.getLogger("pallet.registry").info("listening on %s", url)

    run(cfg, ready=ready)


@registry.command("gc")
@cmdline.option("-c", "--config", "config_path", default=None, type=cmdline.Path(exists=True))
@cmdline.option("--storage", "root", default=None, help="storage root")
@cmdline.option("--dry-run", is_flag=True, help="only report what would be deleted")
@cmdline.option("--delete-untagged", is_flag=True,
                help="also delete manifests no tag reaches (and not their referrers' subjects)")
@cmdline.option("--grace", default=0.0, show_default=True,
                help="keep blobs younger than this many seconds")
@cmdline.option("--upload-age", default=7 * 24 * 3600.0, show_default=True,
                help="cancel upload sessions older than this many seconds")
def gc(config_path: str | None, root: str | None, dry_run: bool, delete_untagged: bool,
       grace: float, upload_age: float) -> None:
    """Delete blobs no manifest references (run with the server stopped)."""
    from pallet.registry.server.gc import collect
    from pallet.registry.server.storage import RegistryStorage

    cfg = _config.load(config_path)
    storage = RegistryStorage(root or cfg.root)
    try:
        res = collect(storage, dry_run=dry_run, delete_untagged=delete_untagged,
                      grace=grace, upload_age=upload_age)
    finally:
        storage.close()
    verb = "would delete" if dry_run else "deleted"
    for repo, dg in res.deleted_manifests:
        cmdline.echo(f"{verb} manifest {repo}@{dg}")
    for dg in res.deleted_blobs:
        cmdline.echo(f"{verb} blob {dg}")
    cmdline.echo(f"{res.marked} blobs marked, {len(res.deleted_blobs)} {verb} "
                 f"({res.freed_bytes} bytes), {len(res.purged_uploads)} uploads purged")
