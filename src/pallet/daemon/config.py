"""palletd's configuration: directories, socket, OCI runtimes."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field

from pallet.errors import InvalidArgument

DEFAULT_ROOT = "/var/lib/pallet"
DEFAULT_EXEC_ROOT = "/run/pallet"
DEFAULT_SOCKET = "/run/pallet/pallet.sock"
DEFAULT_RUNTIME = "pallet-runtime"


def _pallet_runtime() -> str:
    """pallet-runtime next to this interpreter (a venv's bin), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "pallet-runtime")
    return here if os.path.exists(here) else (shutil.which("pallet-runtime") or "pallet-runtime")


@dataclass
class Config:
    root: str = DEFAULT_ROOT            # persistent state: metadata, content, snapshots, logs
    exec_root: str = DEFAULT_EXEC_ROOT  # runtime state: shims, bundles, runtime --root
    socket: str = DEFAULT_SOCKET
    default_runtime: str = DEFAULT_RUNTIME
    runtimes: dict[str, str] = field(default_factory=dict)  # name -> path
    snapshotter: str | None = None
    insecure_registries: list[str] = field(default_factory=list)
    hosts_dir: str | None = None
    log_format: str = "json-file"       # of container logs: json-file or cri
    bridge: str = "pallet0"             # the default network's bridge device
    bridge_subnet: str = "10.213.0.0/16"  # and its subnet (the gateway is its first address)
    cni_plugin_dirs: list[str] | None = None

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root)
        self.exec_root = os.path.abspath(self.exec_root)
        base = {"pallet-runtime": _pallet_runtime()}
        for name in ("runc", "crun"):
            path = shutil.which(name)
            if path:
                base[name] = path
        base.update(self.runtimes)
        self.runtimes = base
        if self.default_runtime not in self.runtimes:
            raise InvalidArgument(f"default runtime {self.default_runtime!r} is not configured")

    def runtime_path(self, name: str | None) -> tuple[str, str]:
        name = name or self.default_runtime
        try:
            return name, self.runtimes[name]
        except KeyError:
            raise InvalidArgument(f"unknown or invalid runtime name: {name}") from None

    def runtime_in_process(self, name: str) -> bool:
        """The bundled pallet-runtime can run in a fork of the shim (no interpreter start-up
        per call); any other runtime, or a pallet-runtime configured elsewhere, is exec'd."""
        return (name == "pallet-runtime" and os.environ.get("PALLET_SHIM_EXEC_RUNTIME") != "1"
                and self.runtimes.get(name) == _pallet_runtime())

    def runtime_root(self, name: str) -> str:
        return os.path.join(self.exec_root, "runtime", name)

    # where a container's things are
    def container_dir(self, cid: str) -> str:       # logs, hosts files (persistent)
        return os.path.join(self.root, "containers", cid)

    def bundle_dir(self, cid: str) -> str:          # config.json + mounted rootfs
        return os.path.join(self.exec_root, "containers", cid)

    def shim_dir(self, cid: str) -> str:            # exit.json, pid files, runtime.log
        return os.path.join(self.exec_root, "shims", cid)

    def shim_socket(self, cid: str) -> str:
        # unix socket paths are limited to 107 bytes: a short name in a short directory
        return os.path.join(self.exec_root, "s", cid[:24] + ".sock")

    def console_socket(self, cid: str, exec_id: str = "") -> str:
        return os.path.join(self.exec_root, "s", cid[:16] + (f"-{exec_id[:8]}" if exec_id
                                                               else "") + ".tty")
