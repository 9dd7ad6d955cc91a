"""palletd's garbage collection (ImageService.gc, the collector of metadata/gc.py) with a
container's active snapshot as palletd makes it: native snapshotter, no root."""

from __future__ import annotations

from pallet.images.resolve import resolve
from pallet.images.service import ImageService
from pallet.images.unpack import unpack
from pallet.testing.images import multi_layer, single_layer


def test_gc_keeps_what_images_and_containers_use(tmp_path):
    svc = ImageService(str(tmp_path / "root"), "native")
    try:
        svc.import_(str(single_layer(tmp_path / "a")), base_name="docker.io/library/a")
        svc.import_(str(multi_layer(tmp_path / "b")), base_name="docker.io/library/b")
        tops = {}
        for name in ("a:latest", "b:latest"):
            r = resolve(svc.content, svc.get(name).target)
            tops[name] = unpack(svc.content, svc.snapshotter, r)
        svc.snapshotter.prepare("ctr-b", tops["b:latest"], {"io.pallet.container": "ctr-b"})
        blobs = {str(i.digest) for i in svc.content.walk()}
        snaps = {i.name for i in svc.snapshotter.walk()}

        res = svc.gc()
        assert res.content == [] and res.snapshots == []

        svc.remove("a:latest")
        res = svc.gc()
        assert res.content and res.reclaimed > 0
        assert tops["a:latest"] in [k for _, k, _ in res.snapshots]
        left = {str(i.digest) for i in svc.content.walk()}
        assert left < blobs and svc.get("b:latest")
        resolve(svc.content, svc.get("b:latest").target)  # b is intact

        svc.remove("b:latest")
        res = svc.gc()  # the container keeps b's layers as snapshots
        assert res.snapshots == []
        assert {i.name for i in svc.snapshotter.walk()} == snaps - {tops["a:latest"]}
        assert list(svc.content.walk()) == []
        svc.snapshotter.remove("ctr-b")
        svc.gc()
        assert svc.snapshotter.walk() == []
    finally:
        svc.close()
