import base64
import json

import pytest

from pallet.oci import digest
from pallet.oci import mediatypes as mt
from pallet.oci.image import (
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    ValidationError,
    chain_ids,
    host_platform,
    platform_matches,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def manifest_doc(**over):
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.IMAGE_MANIFEST,
        "config": {"mediaType": mt.IMAGE_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": mt.IMAGE_LAYER_GZIP, "digest": D2, "size": 20}],
    }
    doc.update(over)
    return doc


def test_manifest_roundtrip_keeps_unknown_fields():
    doc = manifest_doc(annotations={"a": "b"}, futureField={"x": 1})
    m = Manifest.from_dict(doc)
    assert m.layers[0].digest == digest.parse(D2)
    assert m.to_dict() == doc


@pytest.mark.parametrize(("doc", "where"), [
    (manifest_doc(schemaVersion=1), "manifest.schemaVersion"),
    (manifest_doc(schemaVersion=True), "manifest.schemaVersion"),
    (manifest_doc(layers="x"), "manifest.layers"),
    (manifest_doc(layers=[{"mediaType": mt.IMAGE_LAYER, "digest": "sha256:1", "size": 1}]),
     "manifest.layers[0].digest"),
    (manifest_doc(layers=[{"mediaType": mt.IMAGE_LAYER, "digest": D1, "size": -1}]),
     "manifest.layers[0].size"),
    (manifest_doc(layers=[{"mediaType": "bad type", "digest": D1, "size": 1}]),
     "manifest.layers[0].mediaType"),
    (manifest_doc(config=None), "manifest.config"),
    (manifest_doc(mediaType=mt.IMAGE_INDEX), "manifest.mediaType"),
    (manifest_doc(annotations={"a": 1}), "manifest.annotations['a']"),
])
def test_manifest_errors_name_the_field(doc, where):
    with pytest.raises(ValidationError) as ei:
        Manifest.from_dict(doc)
    assert ei.value.where == where
    assert str(ei.value).startswith(where + ":")


def test_manifest_media_type_must_match_descriptor():
    with pytest.raises(ValidationError, match="does not match"):
        Manifest.from_dict(manifest_doc(), media_type=mt.DOCKER_MANIFEST)
    assert Manifest.from_dict(manifest_doc(), media_type=mt.IMAGE_MANIFEST)


def test_docker_manifest_accepted():
    m = Manifest.from_dict(manifest_doc(mediaType=mt.DOCKER_MANIFEST))
    assert m.media_type == mt.DOCKER_MANIFEST


def test_descriptor_data_checked_against_digest():
    blob = b"{}"
    good = {"mediaType": mt.EMPTY_JSON, "digest": str(digest.from_bytes(blob)), "size": 2,
            "data": base64.b64encode(blob).decode()}
    assert Descriptor.from_dict(good).data == blob
    bad = dict(good, data=base64.b64encode(b"[]").decode())
    with pytest.raises(ValidationError, match=r"descriptor\.data"):
        Descriptor.from_dict(bad)


def index_doc():
    return {
        "schemaVersion": 2,
        "mediaType": mt.IMAGE_INDEX,
        "manifests": [
            {"mediaType": mt.IMAGE_MANIFEST, "digest": D1, "size": 1,
             "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
            {"mediaType": mt.IMAGE_MANIFEST, "digest": D2, "size": 1,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": mt.IMAGE_MANIFEST, "digest": "sha256:" + "3" * 64, "size": 1,
             "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
            {"mediaType": mt.IMAGE_MANIFEST, "digest": "sha256:" + "4" * 64, "size": 1,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ],
    }


def test_index_select_platform():
    idx = Index.from_dict(index_doc())
    assert str(idx.select(Platform("linux", "amd64")).digest) == D2
    assert str(idx.select(Platform("linux", "x86_64")).digest) == D2
    # arm v7 prefers its own variant over the v6 that is listed first
    assert idx.select(Platform("linux", "arm", "v7")).digest.encoded == "3" * 64
    assert str(idx.select(Platform("linux", "arm", "v6")).digest) == D1
    # arm64 v8 in the index is the default variant of aarch64
    assert idx.select(Platform("linux", "aarch64")).digest.encoded == "4" * 64
    with pytest.raises(LookupError, match="no manifest for platform linux/s390x"):
        idx.select(Platform("linux", "s390x"))


def test_platform_matching():
    assert platform_matches(Platform("linux", "arm", "v7"), Platform("linux", "arm", "v5"))
    assert not platform_matches(Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7"))
    assert not platform_matches(Platform("linux", "amd64"), Platform("windows", "amd64"))
    assert Platform.parse("linux/arm64/v8").to_dict() == {"os": "linux",
                                                          "architecture": "arm64"}
    with pytest.raises(ValueError, match="os/arch"):
        Platform.parse("linux")
    hp = host_platform()
    assert hp.os == "linux" and hp.architecture in ("amd64", "arm64", "arm", "386",
                                                    "ppc64le", "s390x", "riscv64")


def config_doc():
    return {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["A=1"], "Cmd": ["sh"], "User": "tester", "Custom": 1},
        "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
        "history": [{"created_by": "x"}, {"empty_layer": True}],
    }


def test_config_roundtrip_and_errors():
    doc = config_doc()
    c = ImageConfig.from_dict(doc)
    assert c.config.Cmd == ["sh"] and c.config.extra == {"Custom": 1}
    assert c.to_dict() == json.loads(json.dumps(doc))
    bad = config_doc()
    bad["rootfs"]["diff_ids"][1] = "nope"
    with pytest.raises(ValidationError, match=r"^config.rootfs.diff_ids\[1\]"):
        ImageConfig.from_dict(bad)
    bad = config_doc()
    bad["config"]["Env"] = ["A=1", 2]
    with pytest.raises(ValidationError, match=r"^config.config.Env\[1\]"):
        ImageConfig.from_dict(bad)
    bad = config_doc()
    del bad["os"]
    with pytest.raises(ValidationError, match=r"^config\.os: required"):
        ImageConfig.from_dict(bad)


def test_chain_ids():
    a, b, c = (digest.from_bytes(x) for x in (b"a", b"b", b"c"))
    ids = chain_ids([a, b, c])
    assert ids[0] == a
    assert ids[1] == digest.from_bytes(f"{a} {b}".encode())
    assert ids[2] == digest.from_bytes(f"{ids[1]} {c}".encode())
