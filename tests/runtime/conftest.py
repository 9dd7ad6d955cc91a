"""Fixtures of the runtime-agnostic OCI runtime suite.

Every test runs once per runtime named in ``OCI_RUNTIMES`` (comma-separated commands, default
``runc,pallet-runtime``); a runtime whose command is not installed is skipped. Each test gets
a fresh ``--root`` so tests never see each other's containers, and every container a test
creates is force-deleted afterwards.

The suite needs root and must run inside a private mount namespace
(``unshare -m --propagation private -- pytest tests/runtime``).
"""

from __future__ import annotations

import copy
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pallet.testing.busybox import make_bundle, make_rootfs

from .support import Runtime, base_config

HERE = Path(__file__).parent
RUNTIMES = [
    r.strip() for r in os.environ.get("OCI_RUNTIMES", "runc,pallet-runtime").split(",")
    if r.strip()
]


def _ppid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return 0


def _in_own_mount_ns() -> bool:
    """True when some ancestor (or PID 1) is in another mount namespace than this process,
    i.e. the suite runs under `unshare -m` and its mounts cannot reach the session's table."""
    mine = os.readlink("/proc/self/ns/mnt")
    pid = os.getppid()
    try:
        while pid > 1:
            if os.readlink(f"/proc/{pid}/ns/mnt") != mine:
                return True
            pid = _ppid(pid)
        return os.readlink("/proc/1/ns/mnt") != mine
    except OSError:
        # An ancestor we cannot inspect: only PID 1 is expected to be hidden; anything else
        # means we cannot tell, and the guard does not block.
        return pid != 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = None
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="the OCI runtime suite needs root (euid 0)")
    elif not _in_own_mount_ns():
        skip = pytest.mark.skip(
            reason="run the OCI runtime suite inside `unshare -m --propagation private`"
        )
    for item in items:
        if HERE not in Path(str(item.path)).parents:
            continue
        item.add_marker(pytest.mark.root)
        if skip is not None:
            item.add_marker(skip)


def _runtime_id(cmd: str) -> str:
    return os.path.basename(shlex.split(cmd)[0])


@pytest.fixture(params=RUNTIMES, ids=_runtime_id)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    argv = shlex.split(request.param)
    name = os.path.basename(argv[0])
    here = Path(sys.executable).parent / argv[0]
    if "/" not in argv[0] and here.exists():
        argv[0] = str(here)  # this checkout's entry point (pallet-runtime), not PATH's
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{name} not installed")
    root = tmp_path / "state"
    work = tmp_path / "io"
    work.mkdir()
    rt = Runtime(name=name, argv=argv, root=root, workdir=work)
    try:
        yield rt
    finally:
        rt.cleanup()


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One busybox rootfs per session; bundles copy it (hard links kept)."""
    return make_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


BundleFactory = Callable[..., Path]


@pytest.fixture
def bundle(tmp_path: Path, rootfs: Path) -> BundleFactory:
    """``bundle(args, config=None, edit=None)`` → a fresh bundle dir.

    `config` defaults to the `spec` config without a terminal; `edit(cfg)` changes it in place.
    The rootfs is writable (root.readonly false) unless the test says otherwise, so that a
    test can leave marks in it.
    """
    counter = iter(range(1000))

    def make(args: list[str] | None = None, config: dict[str, Any] | None = None,
             edit: Callable[[dict[str, Any]], None] | None = None,
             readonly: bool = False) -> Path:
        cfg = copy.deepcopy(config) if config is not None else base_config()
        if args is not None:
            cfg["process"]["args"] = list(args)
        cfg["root"]["readonly"] = readonly
        if edit is not None:
            edit(cfg)
        return make_bundle(tmp_path / f"bundle{next(counter)}", config=cfg, rootfs_from=rootfs)

    return make
