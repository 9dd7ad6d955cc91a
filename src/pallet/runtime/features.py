"""`features` (runtime-spec features.md): what this pallet-runtime implements, derived from
the same tables the code uses, so the document cannot drift from the behaviour."""

from __future__ import annotations

import os

from pallet.linux import caps
from pallet.linux import mount as mnt
from pallet.oci.spec_default import OCI_VERSION
from pallet.runtime.hooks import HOOK_KINDS

TYPE_CHECKING = False  # `typing` costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any


def features() -> dict[str, Any]:
    namespaces = ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"]
    if os.path.exists("/proc/self/ns/time"):
        namespaces.append("time")
    linux: dict[str, Any] = {
        "namespaces": sorted(namespaces),
        "capabilities": list(caps.NAMES[: caps.last_cap() + 1]),
        "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                   "rdma": False},
        "apparmor": {"enabled": False},
        "selinux": {"enabled": False},
        "intelRdt": {"enabled": False},
        "mountExtensions": {"idmap": {"enabled": False}},
    }
    seccomp = _seccomp()
    if seccomp is not None:
        linux["seccomp"] = seccomp
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted(set(mnt.FLAGS) | set(mnt.PROPAGATION)),
        "linux": linux,
        "annotations": {"io.github.pallet.runtime.version": _version()},
    }


def _version() -> str:
    from pallet import __version__

    return __version__


def _seccomp() -> dict[str, Any] | None:
    try:
        from pallet.linux import seccomp
    except ImportError:
        return {"enabled": False}
    describe = getattr(seccomp, "features", None)
    return describe() if describe else {"enabled": False}
