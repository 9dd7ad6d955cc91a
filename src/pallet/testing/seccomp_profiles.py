"""The Docker-style default seccomp profile, for tests (it lives in pallet.oci.seccomp_default,
where palletd takes it from)."""

from pallet.oci.seccomp_default import ALLOWED, DENIED, docker_default

__all__ = ["ALLOWED", "DENIED", "docker_default"]
