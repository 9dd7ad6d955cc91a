"""Annotations (config.md Annotations) are reported in the state (runtime.md State)."""

from __future__ import annotations

import json

from .support import assert_valid

ANNOTATIONS = {"org.example.key": "value", "com.example.empty": "", "x": "with spaces = ok"}


def test_state_includes_annotations(runtime, bundle):
    b = bundle(["sleep", "1000"], edit=lambda c: c.update(annotations=ANNOTATIONS))
    cid = runtime.new_id()
    runtime.create(cid, b).ok()
    st = runtime.state(cid)
    assert st["annotations"] == ANNOTATIONS
    assert_valid("state-schema.json", st)
    runtime.start(cid).ok()
    assert runtime.state(cid)["annotations"] == ANNOTATIONS
    listed = json.loads(runtime("list", "--format", "json").ok().stdout)
    assert listed[0]["annotations"] == ANNOTATIONS


def test_annotations_kept_after_exit(runtime, bundle):
    b = bundle(["true"], edit=lambda c: c.update(annotations=ANNOTATIONS))
    cid = runtime.new_id()
    runtime.run(cid, b, "--keep").ok()
    st = runtime.state(cid)
    assert st["status"] == "stopped"
    assert st["annotations"] == ANNOTATIONS


def test_no_annotations(runtime, bundle):
    """runtime.md State: without annotations the property MAY be absent or an empty map."""
    cid = runtime.new_id()
    runtime.create(cid, bundle(["sleep", "1000"])).ok()
    assert runtime.state(cid).get("annotations", {}) == {}


def test_config_changes_after_create_have_no_effect(runtime, bundle):
    """runtime.md Create: changes to config.json after create do not affect the container."""
    b = bundle(["sh", "-c", "echo original > /out"],
               edit=lambda c: c.update(annotations={"a": "1"}))
    cid = runtime.new_id()
    runtime.create(cid, b).ok()
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["args"] = ["sh", "-c", "echo changed > /out"]
    cfg["annotations"] = {"a": "2"}
    (b / "config.json").write_text(json.dumps(cfg))
    runtime.start(cid).ok()
    runtime.wait_status(cid, "stopped")
    assert (b / "rootfs/out").read_text() == "original\n"
    assert runtime.state(cid)["annotations"] == {"a": "1"}
