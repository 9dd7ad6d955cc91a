"""`pallet login` and `pallet logout`: credentials in ~/.docker/config.json (or the
credential helper it names), as docker keeps them."""

from __future__ import annotations

import asyncio
import sys

from pallet.cli.pallet import cmdline
from pallet.registry.client.api import login, logout
from pallet.registry.client.credentials import DOCKER_HUB_KEY, Credentials
from pallet.registry.client.hosts import DOCKER_HUB


def _registry(server: str | None) -> str:
    if not server or server in (DOCKER_HUB_KEY, "index.docker.io"):
        return DOCKER_HUB
    for prefix in ("https://", "http://"):
        server = server.removeprefix(prefix)
    return server.rstrip("/")


@cmdline.command("login")
@cmdline.argument("server", required=False)
@cmdline.option("-u", "--username", default=None)
@cmdline.option("-p", "--password", default=None, help="(prefer --password-stdin)")
@cmdline.option("--password-stdin", is_flag=True, help="read the password from stdin")
@cmdline.option("--insecure", is_flag=True, help="skip TLS verification, allow http")
@cmdline.option("--plain-http", is_flag=True, help="use http, not https")
@cmdline.option("--hosts-dir", default=None, envvar="PALLET_HOSTS_DIR")
def login_cmd(server: str | None, username: str | None, password: str | None,
              password_stdin: bool, insecure: bool, plain_http: bool,
              hosts_dir: str | None) -> None:
    """Log in to a registry (checks the credentials, then stores them)."""
    from pallet.registry.client.api import Options

    if password_stdin:
        if password is not None:
            raise cmdline.UsageError("--password and --password-stdin exclude each other")
        password = sys.stdin.readline().rstrip("\n")
    if username is None:
        username = cmdline.prompt("Username")
    if password is None:
        password = cmdline.prompt("Password", hide_input=True)
    registry = _registry(server)
    opts = Options(hosts_dir=hosts_dir, insecure=insecure, plain_http=plain_http)
    asyncio.run(login(registry, Credentials(username, password), opts=opts))
    cmdline.echo("Login Succeeded")


@cmdline.command("logout")
@cmdline.argument("server", required=False)
def logout_cmd(server: str | None) -> None:
    """Remove a registry's stored credentials."""
    registry = _registry(server)
    logout(registry)
    cmdline.echo(f"Removing login credentials for {registry}")
