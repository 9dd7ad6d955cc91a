"""Broken bundles: each create fails with a non-zero exit and a message on stderr that
names the problem, and leaves nothing behind (runtime.md Errors: "generating an error MUST
leave the state of the environment as if the operation were never attempted"): no state
under --root, nothing in `list`, no cgroup, no process.

A mount destination that climbs out with ".." is not an error: config.md interprets it
relative to "/", and runc clamps it into the rootfs (see test_mounts.py).
"""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from .support import remove_cgroup


@pytest.fixture
def cgroup(runtime):
    path = f"/pallet-test-{uuid.uuid4().hex[:12]}"
    try:
        yield path
    finally:
        runtime.cleanup()
        remove_cgroup(path)


@pytest.fixture
def broken(runtime, bundle, cgroup):
    """`broken(mutate)`: a bundle in `cgroup`, changed by `mutate(bundle_dir, cfg)`; the cfg
    it leaves (if any) is written back as JSON."""

    def make(mutate):
        b = bundle(["sh", "-c", "touch /ran"],
                   edit=lambda c: c["linux"].update(cgroupsPath=cgroup))
        cfg = json.loads((b / "config.json").read_text())
        if mutate(b, cfg) is not False:
            (b / "config.json").write_text(json.dumps(cfg))
        return b

    return make


def check(runtime, b, cgroup, *keywords):
    cid = runtime.new_id()
    r = runtime.create(cid, b)
    r.failed(*keywords)
    runtime.assert_nothing_left(cid, b, cgroup=cgroup)
    if (b / "rootfs").is_dir():
        assert not (b / "rootfs/ran").exists()
    return r


def test_missing_config(runtime, broken, cgroup):
    def mutate(b, cfg):
        (b / "config.json").unlink()
        return False

    check(runtime, broken(mutate), cgroup, "config.json")


def test_invalid_json(runtime, broken, cgroup):
    def mutate(b, cfg):
        (b / "config.json").write_text('{"ociVersion": "1.0.2", oops}')
        return False

    # runc: "invalid character 'o' looking for beginning of object key string".
    check(runtime, broken(mutate), cgroup, ("json", "invalid character"))


def test_config_not_an_object(runtime, broken, cgroup):
    def mutate(b, cfg):
        (b / "config.json").write_text("[]")
        return False

    check(runtime, broken(mutate), cgroup, ("array", "object"))


def test_args_is_a_string(runtime, broken, cgroup):
    """runc: 'json: cannot unmarshal string into Go struct field Process.process.args'."""
    b = broken(lambda b, cfg: cfg["process"].update(args="sh -c true"))
    check(runtime, b, cgroup, "process.args")


def test_uid_is_a_string(runtime, broken, cgroup):
    b = broken(lambda b, cfg: cfg["process"]["user"].update(uid="0"))
    check(runtime, b, cgroup, "process.user.uid")


def test_empty_args(runtime, broken, cgroup):
    b = broken(lambda b, cfg: cfg["process"].update(args=[]))
    check(runtime, b, cgroup, "args")


def test_relative_cwd(runtime, broken, cgroup):
    """config.md: cwd MUST be an absolute path (runc: "Cwd must be an absolute path")."""
    b = broken(lambda b, cfg: cfg["process"].update(cwd="relative/dir"))
    check(runtime, b, cgroup, "cwd")


def test_missing_root(runtime, broken, cgroup):
    """config.md Root: REQUIRED on Linux (runc: "root must be specified")."""
    b = broken(lambda b, cfg: cfg.pop("root"))
    check(runtime, b, cgroup, "root")


def test_rootfs_missing(runtime, broken, cgroup):
    b = broken(lambda b, cfg: shutil.rmtree(b / "rootfs"))
    check(runtime, b, cgroup, "rootfs", "no such file")


def test_rootfs_not_a_directory(runtime, broken, cgroup):
    def mutate(b, cfg):
        shutil.rmtree(b / "rootfs")
        (b / "rootfs").write_text("not a directory\n")

    check(runtime, broken(mutate), cgroup, "not a directory")


def test_bundle_dir_missing(runtime, tmp_path):
    cid = runtime.new_id()
    missing = tmp_path / "no-such-bundle"
    runtime.create(cid, missing).failed(str(missing))
    runtime.assert_nothing_left(cid)


def test_bad_resource_value(runtime, broken, cgroup):
    """An invalid value reaches the kernel while the cgroup exists: it must be removed."""
    b = broken(lambda b, cfg: cfg["linux"]["resources"].update(memory={"limit": -5}))
    check(runtime, b, cgroup, "memory")


def test_bad_mount_option(runtime, broken, cgroup):
    b = broken(lambda b, cfg: cfg["mounts"].append(
        {"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["bogus=1"]}))
    check(runtime, b, cgroup, "/x")


def test_failure_late_in_init_cleans_up(runtime, broken, cgroup):
    """The executable is missing: detected inside the container after namespaces, mounts and
    cgroup were set up."""
    b = broken(lambda b, cfg: cfg["process"].update(args=["/no/such/binary"]))
    check(runtime, b, cgroup, "/no/such/binary")


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.2.0"])
def test_oci_version_1x_runs(runtime, broken, cgroup, version):
    b = broken(lambda b, cfg: cfg.update(ociVersion=version))
    runtime.run(runtime.new_id(), b).ok()
    assert (b / "rootfs/ran").exists()


@pytest.mark.parametrize("version", ["0.1.0", "2.0.0", "banana"])
def test_oci_version_of_another_major(runtime, broken, cgroup, version):
    # config.md ociVersion: SemVer, and the spec "retains forward and backward compatibility
    # within major versions" -- so a bundle of another major version (or no SemVer at all)
    # is not one pallet-runtime can promise to run, and it says so. runc does not look at
    # ociVersion at all: there the bundle simply runs.
    b = broken(lambda b, cfg: cfg.update(ociVersion=version))
    if runtime.name == "runc":
        runtime.run(runtime.new_id(), b).ok()
        assert (b / "rootfs/ran").exists()
    else:
        check(runtime, b, cgroup, "ociVersion")


def test_unknown_fields_are_ignored(runtime, broken, cgroup):
    """config.md is extensible: runc ignores properties it does not know."""
    b = broken(lambda b, cfg: (cfg.update({"org.example.future": {"x": 1}}),
                               cfg["process"].update(futureField=True)))
    runtime.run(runtime.new_id(), b).ok()
    assert (b / "rootfs/ran").exists()
