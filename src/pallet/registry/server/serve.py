"""Run `pallet registry` on a TCP address, with TLS when a certificate is configured."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable

from aiohttp import web

from pallet.registry.server.app import make_app
from pallet.registry.server.config import Config


def ssl_context(cfg: Config) -> ssl.SSLContext | None:
    if not cfg.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    return ctx


async def serve(cfg: Config, *, ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM. `ready` gets the URL once the socket listens (port 0
    picks a free port, and this is how the caller learns it)."""
    app = make_app(cfg)
    runner = web.AppRunner(app, access_log=logging.getLogger("pallet.registry.access"),
                           handle_signals=False)
    await runner.setup()
    host, port = cfg.host_port
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context(cfg),
                       backlog=1024, reuse_address=True)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if ready is not None:
            sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
            bound = sockets[0].getsockname()[1] if sockets else port
            scheme = "https" if cfg.tls_cert else "http"
            shown = host if ":" not in host else f"[{host}]"
            ready(f"{scheme}://{shown}:{bound}")
        await stop.wait()
    finally:
        await runner.cleanup()


def run(cfg: Config, *, ready: Callable[[str], None] | None = None) -> None:
    asyncio.run(serve(cfg, ready=ready))


class BackgroundServer:
    """The registry on a free port in a thread of this process, for tests and benchmarks:
    `with BackgroundServer(cfg) as srv: srv.url`."""

    def __init__(self, cfg: Config) -> None:
        import threading

        self.cfg = cfg
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pallet-registry", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            app = make_app(self.cfg)
            runner = web.AppRunner(app, handle_signals=False)
            await runner.setup()
            host, port = self.cfg.host_port
            site = web.TCPSite(runner, host, port, ssl_context=ssl_context(self.cfg))
            await site.start()
            sock = site._server.sockets[0]  # type: ignore[union-attr]
            scheme = "https" if self.cfg.tls_cert else "http"
            self.url = f"{scheme}://{host}:{sock.getsockname()[1]}"
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()

        try:
            self._loop.run_until_complete(main())
        except BaseException as e:  # reported to the starting thread
            self._error = e
            self._ready.set()
        finally:
            self._loop.close()

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def close(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def __exit__(self, *exc: object) -> None:
        self.close()
