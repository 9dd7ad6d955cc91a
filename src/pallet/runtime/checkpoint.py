"""`checkpoint` and `restore` through CRIU (Debian's criu), runc's flags.

CRIU needs kernel features some machines lack (this one fails `criu check` on its vDSO);
then the commands fail with CRIU's own words instead of pretending."""

from __future__ import annotations

import os

from pallet.errors import FailedPrecondition, InvalidArgument, Unavailable
from pallet.runtime.state import RUNNING, ContainerState

TYPE_CHECKING = False  # `typing` costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any


def _criu(criu: str, args: list[str], log_dir: str) -> None:
    import shutil
    import subprocess

    if shutil.which(criu) is None:
        raise Unavailable(f"{criu} is not installed (Debian package criu)")
    log = "criu.log"
    proc = subprocess.run([criu, *args, "-o", log, "-v4"], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        detail = ""
        try:
            with open(os.path.join(log_dir, log)) as f:
                errors = [ln.strip() for ln in f if "Error" in ln]
            detail = "; ".join(errors[-3:])
        except OSError:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] and \
                (proc.stderr or proc.stdout).strip().splitlines()[-1]
        raise Unavailable(f"criu {args[0]} failed (exit {proc.returncode}): {detail}")


def checkpoint(st: ContainerState, opts: dict[str, Any]) -> None:
    if st.status() != RUNNING:
        raise FailedPrecondition(f"cannot checkpoint container {st.id}: it is {st.status()}")
    image = os.path.abspath(opts.get("image_path") or os.path.join(os.getcwd(), "checkpoint"))
    work = os.path.abspath(opts.get("work_path") or image)
    os.makedirs(image, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    args = ["dump", "-t", str(st.pid), "-D", image, "-W", work,
            "--root", st.record["rootfs"], "--manage-cgroups"]
    for flag, criu_flag in (("leave_running", "--leave-running"),
                            ("tcp_established", "--tcp-established"),
                            ("ext_unix_sk", "--ext-unix-sk"), ("shell_job", "--shell-job"),
                            ("file_locks", "--file-locks")):
        if opts.get(flag):
            args.append(criu_flag)
    _criu(opts.get("criu", "criu"), args, work)


def restore(root: str, container_id: str, bundle: str, opts: dict[str, Any]) -> None:
    """criu restore of a checkpoint made by `checkpoint`, detached, as container_id."""
    from pallet.oci import runtime_config
    from pallet.runtime.state import (
        check_id,
        now_rfc3339,
        proc_start_time,
        remove_state_dir,
    )

    check_id(container_id)
    image = opts.get("image_path")
    if not image or not os.path.isdir(image):
        raise InvalidArgument(f"restore: --image-path {image!r} is not a checkpoint directory")
    image = os.path.abspath(image)
    work = os.path.abspath(opts.get("work_path") or image)
    bundle = os.path.abspath(bundle)
    config = runtime_config.load(bundle)
    rootfs = os.path.realpath(os.path.join(bundle, config["root"]["path"]))
    state_dir = os.path.join(root, container_id)
    os.makedirs(root, mode=0o711, exist_ok=True)
    try:
        os.mkdir(state_dir, 0o711)
    except FileExistsError:
        raise FailedPrecondition(f"container with id {container_id} already exists") from None
    pid_file = os.path.join(state_dir, "criu.pid")
    try:
        _criu(opts.get("criu", "criu"),
              ["restore", "-D", image, "-W", work, "--root", rootfs, "--restore-detached",
               "--pidfile", pid_file, "--manage-cgroups"], work)
        with open(pid_file) as f:
            pid = int(f.read().strip())
        from pallet.cgroups import Manager

        cg = Manager.for_config(config.get("linux", {}).get("cgroupsPath", ""), container_id)
        st = ContainerState(root, container_id, {
            "ociVersion": config["ociVersion"], "id": container_id, "pid": pid,
            "bundle": bundle, "rootfs": rootfs, "created": now_rfc3339(), "owner": "",
            "annotations": config.get("annotations", {}), "cgroupPaths": cg.paths,
            "config": config, "initStartTime": proc_start_time(pid),
        })
        st.save()
    except BaseException:
        remove_state_dir(state_dir)
        raise
