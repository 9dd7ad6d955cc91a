"""Running hooks (runtime-spec config.md#posix-platform-hooks): the state on stdin, the
hook's own args and env, and its timeout."""

from __future__ import annotations

from pallet import jsonlite
from pallet.errors import FailedPrecondition

TYPE_CHECKING = False  # `typing` itself costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")


def run_hooks(config: dict[str, Any], kind: str, state: dict[str, Any]) -> None:
    hooks = config.get("hooks", {}).get(kind) or []
    if not hooks:
        return
    import subprocess  # only paid for by bundles that have hooks

    stdin = jsonlite.dumps(state).encode()
    for i, hook in enumerate(hooks):
        path = hook["path"]
        args = hook.get("args") or [path]
        env = dict(e.split("=", 1) for e in hook.get("env", []) if "=" in e)
        timeout = hook.get("timeout")
        try:
            proc = subprocess.run(args, executable=path, input=stdin, env=env,
                                  capture_output=True, timeout=timeout, close_fds=True)
        except subprocess.TimeoutExpired:
            raise FailedPrecondition(
                f"{kind} hook #{i} ({path}) did not finish in its timeout of {timeout}s"
            ) from None
        except OSError as e:
            raise FailedPrecondition(f"{kind} hook #{i} ({path}): {e.strerror}") from None
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).decode(errors="replace").strip()
            raise FailedPrecondition(
                f"{kind} hook #{i} ({path}) failed with status {proc.returncode}"
                + (f": {detail}" if detail else "")
            )


def run_poststop(config: dict[str, Any], state: dict[str, Any]) -> None:
    """runtime.md lifecycle step 13: a failed poststop hook is a warning, and the remaining
    hooks still run."""
    import sys

    for i, hook in enumerate(config.get("hooks", {}).get("poststop") or []):
        try:
            run_hooks({"hooks": {"poststop": [hook]}}, "poststop", state)
        except FailedPrecondition as e:
            print(f"pallet-runtime: warning: {e}".replace("hook #0", f"hook #{i}"),
                  file=sys.stderr)
