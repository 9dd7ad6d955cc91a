"""Garbage collection of content and snapshots (metadata/gc.py): what images share
survives, what nothing refers to goes, and leases, locks and labels keep what they must."""

import os
import threading
import time

import pytest

from pallet.content.labels import GC_REF_CONTENT, GC_REF_SNAPSHOT, GC_ROOT
from pallet.content.local import write_blob
from pallet.errors import NotFound
from pallet.images import layout as _layout
from pallet.images.diff import tar_dir
from pallet.images.service import ImageService
from pallet.oci import digest
from pallet.oci import mediatypes as mt
from pallet.oci.image import ContainerConfig, chain_ids
from pallet.testing import cli
from pallet.testing.images import LayoutWriter


def _layer(w: LayoutWriter, tmp, name: str, files: dict[str, bytes]):
    root = tmp / f"src-{name}"
    root.mkdir()
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return w.layer(lambda tw: tar_dir(str(root), tw), mt.GZIP)


@pytest.fixture
def shared(tmp_path):
    """Two images, `a` = base + extra-a and `b` = base + extra-b, in one layout."""
    w = LayoutWriter(tmp_path / "layout")
    base = _layer(w, tmp_path, "base", {"etc/os-release": b"base\n", "bin/x": os.urandom(5000)})
    la = _layer(w, tmp_path, "a", {"a.txt": b"a" * 3000})
    lb = _layer(w, tmp_path, "b", {"b.txt": b"b" * 3000})
    w.image([base, la], ContainerConfig(Cmd=["a"]), ref_name="a")
    w.image([base, lb], ContainerConfig(Cmd=["b"]), ref_name="b")
    w.close()
    svc = ImageService(str(tmp_path / "root"), "native")
    svc.import_(str(tmp_path / "layout"), base_name="img")
    yield svc, {"base": base, "a": la, "b": lb}
    svc.close()


def _blobs(svc):
    return {str(i.digest) for i in svc.content.walk()}


def _snaps(svc):
    return {i.name for i in svc.snapshotter.walk()}


def test_shared_layers_survive_unreferenced_go(shared):
    svc, L = shared
    top_a = svc.unpack("img:a")
    top_b = svc.unpack("img:b")
    ra = svc.resolve("img:a")
    a_docs = {str(ra.manifest_desc.digest), str(ra.manifest.config.digest)}
    chain_base = str(chain_ids([L["base"].diff_id])[0])
    assert _snaps(svc) == {chain_base, top_a, top_b}
    # nothing unreferenced yet: nothing goes
    report = svc.gc()
    assert report.content == [] and report.snapshots == []

    svc.remove("img:a")
    report = svc.gc()
    removed = {d for d, _ in report.content}
    assert removed == a_docs | {str(L["a"].digest)}
    assert str(L["base"].digest) in _blobs(svc) and str(L["b"].digest) in _blobs(svc)
    assert _snaps(svc) == {chain_base, top_b}
    assert [k for _, k, _ in report.snapshots] == [top_a]
    assert report.reclaimed >= L["a"].size
    # b still unpacks from what is left, without re-applying anything
    assert svc.unpack("img:b") == top_b

    svc.remove("img:b")
    svc.gc()
    assert _blobs(svc) == set() and _snaps(svc) == set()


def test_remove_with_prune_and_dry_run(shared):
    svc, L = shared
    svc.remove("img:a")
    before = _blobs(svc)
    dry = svc.gc(dry_run=True)
    assert str(L["a"].digest) in {d for d, _ in dry.content}
    assert _blobs(svc) == before                       # a dry run removes nothing
    report = svc.remove("img:b", prune=True)
    assert report is not None
    assert str(L["b"].digest) in {d for d, _ in report.content}
    assert _blobs(svc) == set()


def test_retagged_name_releases_the_old_target(shared, tmp_path):
    svc, L = shared
    old = svc.get("img:a").target.digest
    svc.tag("img:b", "img:a")      # the name moves; the old target keeps its GC_ROOT marker
    assert svc.content.info(old).labels.get(GC_ROOT) == "image"
    svc.gc()
    assert not svc.content.exists(old)
    assert not svc.content.exists(L["a"].digest)


def test_labels_are_references(shared):
    svc, L = shared
    loose = write_blob(svc.content, "loose", b"referenced by a label only")
    other = write_blob(svc.content, "other", b"nothing refers to me")
    rooted = write_blob(svc.content, "rooted", b"a root of its own",
                        labels={GC_ROOT: "2024-01-01T00:00:00Z",
                                f"{GC_REF_CONTENT}x": str(loose)})
    svc.unpack("img:a")
    chain_a = str(chain_ids([L["base"].diff_id, L["a"].diff_id])[1])
    svc.content.update_labels(rooted, {f"{GC_REF_SNAPSHOT}native": chain_a})
    svc.remove("img:a")
    svc.gc()
    blobs = _blobs(svc)
    assert str(rooted) in blobs and str(loose) in blobs and str(other) not in blobs
    assert chain_a in _snaps(svc)          # kept by the snapshot label, with its parent
    svc.content.update_labels(rooted, {GC_ROOT: None})
    svc.gc()
    assert str(rooted) not in _blobs(svc) and str(loose) not in _blobs(svc)
    assert chain_a not in _snaps(svc)


def test_lease_keeps_what_is_created_under_it(shared):
    svc, _ = shared
    with svc.lease() as lease:
        d = write_blob(svc.content, "under-lease", b"pulled, not yet named")
        assert svc.gc().content == []
        assert svc.content.exists(d)
        assert [x.id for x in svc.leases.live()] == [lease.id]
    svc.gc()
    assert not svc.content.exists(d)
    # an expired lease (its holder crashed) protects nothing
    svc.leases.create(expiry=-1)
    d = write_blob(svc.content, "after-crash", b"left behind")
    time.sleep(0.01)
    svc.gc()
    assert not svc.content.exists(d)


def test_grace_period(shared):
    svc, _ = shared
    d = write_blob(svc.content, "young", b"just written")
    svc.gc(grace=60)
    assert svc.content.exists(d)
    svc.gc()
    assert not svc.content.exists(d)


def test_concurrent_import_is_not_collected(shared, tmp_path, monkeypatch):
    """An import stopped after its blobs are committed but before the image is named
    (the window a pull has too) loses nothing to a collection run meanwhile."""
    svc, L = shared
    svc.remove("img:a")
    svc.remove("img:b")
    svc.gc()
    assert _blobs(svc) == set()
    committed, go_on = threading.Event(), threading.Event()
    real = _layout._register

    def slow_register(*a, **kw):
        committed.set()
        go_on.wait(10)
        return real(*a, **kw)

    monkeypatch.setattr(_layout, "_register", slow_register)
    errors = []

    def run():
        try:
            svc.import_(str(tmp_path / "layout"), base_name="img")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    assert committed.wait(10)
    report = svc.gc()
    go_on.set()
    t.join(10)
    assert not errors
    assert report.content == []
    assert str(L["a"].digest) in _blobs(svc)
    svc.unpack_to_dir("img:a", str(tmp_path / "out"))
    assert (tmp_path / "out/a.txt").read_bytes() == b"a" * 3000


def test_ingests_locked_or_recent_stay(shared):
    svc, _ = shared
    busy = svc.content.writer("busy-pull", total=10)
    busy.write(b"12345")
    busy.status()
    idle = svc.content.writer("idle-pull", total=10)
    idle.write(b"123")
    idle.close()
    old = time.time() - 7 * 24 * 3600
    for ref in ("busy-pull", "idle-pull"):
        d = svc.content._ingest_dir(ref)
        os.utime(os.path.join(d, "data"), (old, old))
    fresh = svc.content.writer("fresh-pull")
    fresh.write(b"1")
    fresh.close()
    report = svc.gc()
    assert report.ingests == ["idle-pull"]
    refs = {s.ref for s in svc.content.statuses()}
    assert refs == {"busy-pull", "fresh-pull"}
    busy.write(b"67890")
    assert busy.commit(10, None) == digest.from_bytes(b"1234567890")
    busy.close()


def test_prune_all_keeps_images_in_use(shared):
    svc, L = shared
    top_a = svc.unpack("img:a")
    svc.unpack("img:b")
    svc.snapshotter.prepare("container-1", top_a)    # a container's rootfs over `a`
    untagged, report = svc.prune(all_images=True)
    assert untagged == ["docker.io/library/img:b"]
    assert [i.name for i in svc.list()] == ["docker.io/library/img:a"]
    assert str(L["b"].digest) in {d for d, _ in report.content}
    assert "container-1" in _snaps(svc) and top_a in _snaps(svc)
    svc.snapshotter.remove("container-1")
    untagged, _ = svc.prune(all_images=True)
    assert untagged == ["docker.io/library/img:a"]
    assert _blobs(svc) == set() and _snaps(svc) == set()


def test_cli_prune_and_rm(shared, tmp_path):
    svc, L = shared
    root = str(tmp_path / "root")

    def run(*args, input=None):
        return cli.run(["--root", root, "--snapshotter", "native", *args], input=input)

    r = run("image", "prune")                       # asks first; "no" removes nothing
    assert r.exit_code != 0 and "Are you sure" in r.output
    r = run("image", "rm", "--no-prune", "img:a")
    assert r.exit_code == 0 and "Untagged: docker.io/library/img:a" in r.output
    assert svc.content.exists(L["a"].digest)
    r = run("image", "prune", "--dry-run")
    assert r.exit_code == 0 and f"Deleted: {L['a'].digest}" in r.output
    assert svc.content.exists(L["a"].digest)
    r = run("image", "prune", "-f")
    assert r.exit_code == 0, r.output
    assert f"Deleted: {L['a'].digest}" in r.output and "Total reclaimed space" in r.output
    assert not svc.content.exists(L["a"].digest)
    r = run("image", "rm", "img:b")
    assert f"Deleted: {L['b'].digest}" in r.output
    assert not svc.content.exists(L["base"].digest)
    with pytest.raises(NotFound):
        svc.get("img:b")
