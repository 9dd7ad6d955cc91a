"""Exec instances: `docker exec` (create, start with a stream or detached, inspect, resize).

An exec runs through its container's shim (`exec` op), which runs `<runtime> exec --detach`
and reaps the process as the container's subreaper; its exit status arrives as the last
frame of the stream. Exec instances live in memory only, as in dockerd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from typing import Any

from pallet.daemon import spec as _spec
from pallet.daemon.containers import Container, Containers
from pallet.daemon.shims import first_frame
from pallet.daemon.streams import Client, pump
from pallet.errors import FailedPrecondition, InvalidArgument, NotFound
from pallet.shim import wire


class Exec:
    def __init__(self, c: Container, body: dict[str, Any]) -> None:
        self.id = secrets.token_hex(32)
        self.container = c
        cmd = body.get("Cmd") or []
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            raise InvalidArgument("No exec command specified")
        self.cmd: list[str] = list(cmd)
        self.env: list[str] = list(body.get("Env") or [])
        self.cwd: str = body.get("WorkingDir") or ""
        self.user: str = body.get("User") or ""
        self.tty = bool(body.get("Tty"))
        self.privileged = bool(body.get("Privileged"))
        self.stdin = bool(body.get("AttachStdin"))
        self.stdout = bool(body.get("AttachStdout", True))
        self.stderr = bool(body.get("AttachStderr", True))
        self.detach_keys = body.get("DetachKeys") or ""
        self.console_size = body.get("ConsoleSize")  # [h, w], API 1.42
        self.running = False
        self.started = False
        self.exit_code: int | None = None
        self.pid = 0
        self.done = asyncio.Event()

    def inspect(self) -> dict[str, Any]:
        return {
            "ID": self.id, "ContainerID": self.container.id, "Running": self.running,
            "ExitCode": self.exit_code, "Pid": self.pid, "CanRemove": False,
            "DetachKeys": self.detach_keys, "OpenStdin": self.stdin,
            "OpenStdout": self.stdout, "OpenStderr": self.stderr,
            "ProcessConfig": {"tty": self.tty, "entrypoint": self.cmd[0],
                              "arguments": self.cmd[1:], "privileged": self.privileged,
                              "user": self.user},
        }


class Execs:
    def __init__(self, containers: Containers) -> None:
        self.containers = containers
        self.by_id: dict[str, Exec] = {}

    def get(self, eid: str) -> Exec:
        e = self.by_id.get(eid)
        if e is None:
            raise NotFound(f"No such exec instance: {eid}")
        return e

    def create(self, c: Container, body: dict[str, Any]) -> Exec:
        if not c.running:
            raise FailedPrecondition(f"Container {c.id} is not running")
        if c.state.get("Paused"):
            raise FailedPrecondition(f"Container {c.id} is paused, unpause the container "
                                     "before exec")
        e = Exec(c, body)
        self._sweep()
        self.by_id[e.id] = e
        c.exec_ids.append(e.id)
        self.containers.publish(c, f"exec_create: {' '.join(e.cmd)}", execID=e.id)
        return e

    def _sweep(self) -> None:
        """Exec instances stay inspectable while their container exists (as in dockerd);
        those of removed containers go."""
        gone = [k for k, e in self.by_id.items()
                if e.container.id not in self.containers.by_id and not e.running]
        for k in gone:
            del self.by_id[k]

    def forget(self, e: Exec) -> None:
        """A health probe's exec, once done: not kept (one per interval, for as long as the
        container runs)."""
        self.by_id.pop(e.id, None)

    def _process(self, e: Exec) -> dict[str, Any]:
        bundle = self.containers.cfg.bundle_dir(e.container.id)
        with open(os.path.join(bundle, "config.json")) as f:
            base = json.load(f)["process"]
        proc = _spec.exec_process(base, cmd=e.cmd, env=e.env, cwd=e.cwd, user=e.user,
                                  tty=e.tty, privileged=e.privileged,
                                  rootfs=os.path.join(bundle, "rootfs"))
        if e.tty and e.console_size and all(e.console_size[:2]):
            proc["consoleSize"] = {"height": int(e.console_size[0]),
                                   "width": int(e.console_size[1])}
        return proc

    async def start(self, e: Exec, client: Client | None, *, tty: bool | None = None) -> None:
        c = e.container
        if e.started:
            raise FailedPrecondition(f"Error: Exec command {e.id} has already run")
        if not c.running or c.shim is None:
            raise FailedPrecondition(f"Container {c.id} is not running")
        if tty is not None:
            e.tty = tty
        e.started = True
        proc = await self.containers.blocking(self._process, e)
        r, w = await c.shim.stream(
            "exec", id=e.id[:32], process=proc, tty=e.tty, stdin=e.stdin and client is not None,
            console_socket=self.containers.cfg.console_socket(c.id, e.id))
        try:
            _, started = await first_frame(r)
            e.pid = int(started.get("pid") or 0)
        except BaseException:
            w.close()
            e.exit_code = 126
            e.done.set()
            with contextlib.suppress(ValueError):
                c.exec_ids.remove(e.id)
            raise
        e.running = True
        self.containers.publish(c, f"exec_start: {' '.join(e.cmd)}", execID=e.id)

        def on_frame(stream: int, data: bytes) -> None:
            d = wire.loads(data)
            assert isinstance(d, dict)
            if stream == wire.STARTED:
                e.pid = int(d.get("pid") or 0)
            elif stream == wire.EXIT:
                e.exit_code = int(d.get("exit_code") or 0)
                e.running = False

        class Discard:
            async def read(self) -> bytes:
                await asyncio.Event().wait()
                return b""

            async def write(self, data: bytes) -> None:
                pass

            def close(self) -> None:
                pass

        async def run() -> None:
            try:
                await pump(r, w, client or Discard(), tty=e.tty,
                           stdin=e.stdin and client is not None, on_frame=on_frame)
            finally:
                if e.exit_code is None:
                    e.exit_code = 137 if not c.running else 126
                e.running = False
                e.done.set()
                with contextlib.suppress(ValueError):  # ExecIDs: the running ones, as dockerd
                    c.exec_ids.remove(e.id)
                self.containers.publish(c, "exec_die", execID=e.id,
                                        exitCode=str(e.exit_code))

        if client is None:
            self.containers.spawn(run())
        else:
            await run()

    async def resize(self, e: Exec, height: int, width: int) -> None:
        c = e.container
        if not e.running or c.shim is None:
            raise FailedPrecondition(f"exec {e.id} is not running")
        if e.tty:
            await c.shim.call("resize", height=height, width=width, exec=e.id[:32])
