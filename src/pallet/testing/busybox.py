"""Test images without a network: a busybox root filesystem and OCI bundles built on it.

The rootfs comes from Debian's busybox-static: one static binary, every applet a hard link to
it at the path busybox itself names (`busybox --list-full`), plus the few files a container
expects (/etc/passwd, /etc/group, the mount points).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

BUSYBOX = "/bin/busybox"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
tester:x:1000:1000:tester:/home/tester:/bin/sh
"""

GROUP = """root:x:0:
daemon:x:1:
tty:x:5:
users:x:100:tester
tester:x:1000:
nogroup:x:65534:
"""


def busybox_binary() -> str:
    path = shutil.which("busybox") or BUSYBOX
    if not os.path.exists(path):
        raise FileNotFoundError("busybox not found: install Debian's busybox-static")
    return os.path.realpath(path)


def make_rootfs(dest: str | os.PathLike[str], *, busybox: str | None = None) -> Path:
    """Write a busybox rootfs into `dest` (created; must not exist or be empty)."""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    src = busybox or busybox_binary()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "proc", "sys",
              "dev", "home/tester", "var", "run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    os.chown(root / "home/tester", 1000, 1000) if os.geteuid() == 0 else None
    main = root / "bin/busybox"
    shutil.copy2(src, main)
    os.chmod(main, 0o755)
    applets = subprocess.run(
        [str(main), "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    for rel in applets:
        link = root / rel
        if link == main or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        os.link(main, link)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    (root / "etc/hostname").write_text("busybox\n")
    return root


def make_bundle(
    dest: str | os.PathLike[str],
    args: list[str] | None = None,
    *,
    config: dict[str, Any] | None = None,
    rootfs_from: str | os.PathLike[str] | None = None,
) -> Path:
    """An OCI bundle: `dest/rootfs` (busybox) and `dest/config.json`.

    `config` defaults to `pallet-runtime spec` output without a terminal. `rootfs_from` copies
    an existing rootfs with hard links kept (much faster than building a new one).
    """
    from pallet.oci.spec_default import default_spec

    bundle = Path(dest)
    bundle.mkdir(parents=True, exist_ok=True)
    if rootfs_from is not None:
        subprocess.run(["cp", "-a", str(rootfs_from), str(bundle / "rootfs")], check=True)
    else:
        make_rootfs(bundle / "rootfs")
    if config is None:
        config = default_spec(terminal=False)
    if args is not None:
        config["process"]["args"] = list(args)
    write_config(bundle, config)
    return bundle


def write_config(bundle: str | os.PathLike[str], config: dict[str, Any]) -> None:
    path = Path(bundle) / "config.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, path)


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description="Build a busybox OCI bundle for tests")
    p.add_argument("dest")
    p.add_argument("args", nargs="*")
    ns = p.parse_args()
    make_bundle(ns.dest, ns.args or None)
    print(ns.dest)


if __name__ == "__main__":
    main()
