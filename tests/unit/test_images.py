"""The image layer end to end on pallet's own test images (no peers): import, export,
unpack into directories and snapshots, docker-archive, bundles, schema validation."""

import json
import os
import subprocess
import tarfile
from pathlib import Path

import jsonschema
import pytest
import referencing
import referencing.jsonschema

from pallet.content.labels import GC_REF_CONTENT, GC_ROOT
from pallet.errors import InvalidArgument, NotFound
from pallet.images.apply import LayerMismatch
from pallet.images.diff import commit_layer, tar_changes, tar_overlay_upper
from pallet.images.resolve import read_json, walk
from pallet.images.service import ImageService, detect_format
from pallet.images.unpack import unpack_to_dir
from pallet.oci import mediatypes as mt
from pallet.oci.image import Platform
from pallet.testing import images as timages
from pallet.testing.images import describe_tree

is_root = os.geteuid() == 0
SCHEMA_DIR = Path("/work/shared/specs/image-spec/schema")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    out = {}
    for shape in ("single", "multi", "users", "multiplatform"):
        out[shape] = timages.make_layout(shape, base / shape)
    out["multi-zstd"] = timages.make_layout("multi", base / "multi-zstd", compression=mt.ZSTD)
    out["single-none"] = timages.make_layout("single", base / "single-none",
                                             compression=mt.UNCOMPRESSED)
    return out


@pytest.fixture
def svc(tmp_path):
    s = ImageService(str(tmp_path / "root"))
    yield s
    s.close()


def _validator(schema_file: str):
    def retrieve(uri: str):
        name = uri.rsplit("/", 1)[-1]
        path = SCHEMA_DIR / name
        if not path.exists():
            path = SCHEMA_DIR / f"{name}.json"
        return referencing.Resource.from_contents(
            json.loads(path.read_text()), default_specification=referencing.jsonschema.DRAFT4)

    schema = json.loads((SCHEMA_DIR / schema_file).read_text())
    registry = referencing.Registry(retrieve=retrieve)
    return jsonschema.Draft4Validator(schema, registry=registry,
                                      format_checker=jsonschema.FormatChecker())


@pytest.mark.skipif(not SCHEMA_DIR.exists(), reason="image-spec schemas not present")
def test_everything_pallet_writes_is_schema_valid(layouts, svc, tmp_path):
    validators = {mt.IMAGE_MANIFEST: _validator("image-manifest-schema.json"),
                  mt.IMAGE_INDEX: _validator("image-index-schema.json"),
                  mt.IMAGE_CONFIG: _validator("config-schema.json")}
    svc.import_(str(layouts["multiplatform"]), base_name="mp")
    svc.import_(str(layouts["users"]), base_name="users")
    out = tmp_path / "docker.tar"
    svc.export(["users"], str(out), fmt="docker-archive")
    svc.import_(str(out))  # writes a new OCI manifest of its own
    svc.export(["mp", "users"], str(tmp_path / "exported"))
    checked = 0
    for img in svc.list():
        for d in walk(svc.content, img.target):
            if d.media_type in validators:
                validators[d.media_type].validate(read_json(svc.content, d))
                checked += 1
    index = json.loads((tmp_path / "exported" / "index.json").read_text())
    validators[mt.IMAGE_INDEX].validate(index)
    _validator("image-layout-schema.json").validate(
        json.loads((tmp_path / "exported" / "oci-layout").read_text()))
    assert checked >= 7
    # and the validator does reject a broken one
    with pytest.raises(jsonschema.ValidationError):
        validators[mt.IMAGE_MANIFEST].validate({"schemaVersion": 2, "config": {}})


def test_import_names_and_labels(layouts, svc):
    imported = svc.import_(str(layouts["single"]), base_name="busybox")
    assert [i.name for i in imported] == ["docker.io/library/busybox:latest"]
    img = svc.get("busybox")
    info = svc.content.info(img.target.digest)
    assert info.labels[GC_ROOT] == "image"
    assert info.labels[f"{GC_REF_CONTENT}config"]
    assert f"{GC_REF_CONTENT}l.0" in info.labels
    # a tag-only ref.name without a base name imports unnamed
    assert [i.name for i in svc.import_(str(layouts["single"]))] == [None]
    # by digest prefix, as docker accepts ids
    assert svc.get(img.target.digest.encoded[:12]).name == img.name


def test_tag_rm_ls(layouts, svc):
    svc.import_(str(layouts["single"]), base_name="busybox")
    svc.tag("busybox", "localhost:5000/mine:v1")
    assert [i.name for i in svc.list()] == ["docker.io/library/busybox:latest",
                                             "localhost:5000/mine:v1"]
    svc.remove("busybox")
    # still referenced by the other name: still a GC root
    d = svc.get("localhost:5000/mine:v1").target.digest
    assert svc.content.info(d).labels.get(GC_ROOT) == "image"
    svc.remove("localhost:5000/mine:v1")
    assert svc.list() == []
    assert GC_ROOT not in svc.content.info(d).labels
    with pytest.raises(NotFound):
        svc.remove("busybox")


@pytest.mark.parametrize("which", ["multi", "multi-zstd"])
def test_unpack_multi_layer_to_dir(layouts, svc, tmp_path, which):
    svc.import_(str(layouts[which]), base_name="m")
    dest = tmp_path / "rootfs"
    svc.unpack_to_dir("m", str(dest))
    assert sorted(os.listdir(dest / "data")) == ["a", "b", "c"]
    assert (dest / "data/a").read_text() == "a again"
    assert sorted(os.listdir(dest / "opaque")) == ["new"]
    assert not (dest / "gone").exists()
    assert (dest / "etc/motd").read_text() == "v2\n"
    assert (dest / "etc/motd.hard").stat().st_ino == (dest / "etc/motd").stat().st_ino
    assert os.readlink(dest / "etc/motd.link") == "motd"
    assert (dest / "bin/sh").stat().st_ino == (dest / "bin/busybox").stat().st_ino
    notes = (dest / "home/tester/notes").stat()
    assert oct(notes.st_mode & 0o777) == "0o640"
    if is_root:
        assert (notes.st_uid, notes.st_gid) == (1000, 1000)
    out = subprocess.run([str(dest / "bin/busybox"), "cat", str(dest / "etc/motd")],
                         capture_output=True, text=True, check=True)
    assert out.stdout == "v2\n"


def test_unpack_to_nonempty_dir_refused(layouts, svc, tmp_path):
    svc.import_(str(layouts["single"]), base_name="s")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    with pytest.raises(InvalidArgument, match="not empty"):
        svc.unpack_to_dir("s", str(tmp_path / "d"))


def test_multi_platform_selection(layouts, svc, tmp_path):
    svc.import_(str(layouts["multiplatform"]), base_name="mp")
    svc.unpack_to_dir("mp", str(tmp_path / "arm"), Platform("linux", "arm64"))
    assert (tmp_path / "arm/etc/platform").read_text() == "linux/arm64"
    svc.unpack_to_dir("mp", str(tmp_path / "amd"), Platform("linux", "amd64"))
    assert (tmp_path / "amd/etc/platform").read_text() == "linux/amd64"
    with pytest.raises(NotFound, match="no manifest for platform linux/s390x"):
        svc.resolve("mp", Platform("linux", "s390x"))


@pytest.mark.parametrize("snapshotter", ["native", "overlayfs"])
def test_unpack_into_snapshots_shares_layers(layouts, tmp_path, snapshotter):
    if snapshotter == "overlayfs" and not is_root:
        pytest.skip("overlay snapshots write trusted.* xattrs and whiteout devices: root")
    svc = ImageService(str(tmp_path / "root"), snapshotter)
    svc.import_(str(layouts["single"]), base_name="a")
    svc.import_(str(layouts["multi"]), base_name="b")
    top_a = svc.unpack("a")
    top_b = svc.unpack("b")
    names = {i.name for i in svc.snapshotter.walk()}
    # "single" has one layer; "multi" three; neither shares the busybox layer's bytes
    # (its base layer has extra files), so 4 snapshots; unpacking again adds none
    assert top_a in names and top_b in names and len(names) == 4
    svc.unpack("b")
    assert len(svc.snapshotter.walk()) == 4
    chain = svc.resolve("b").chain_ids
    assert svc.snapshotter.stat(str(chain[2])).parent == str(chain[1])


@pytest.mark.root
@pytest.mark.skipif(not is_root, reason="mounting overlayfs needs root")
def test_overlay_snapshot_mounts_equal_to_plain_unpack(layouts, tmp_path):
    from pallet.linux import libc
    from pallet.linux.mount import MountOptions, mount_fs

    svc = ImageService(str(tmp_path / "root"), "overlayfs")
    svc.import_(str(layouts["multi"]), base_name="m")
    top = svc.unpack("m")
    mounts = svc.snapshotter.view("inspect-view", top)
    assert mounts[0].type == "overlay"
    target = tmp_path / "mnt"
    target.mkdir()
    mount_fs("overlay", str(target), "overlay", MountOptions([*mounts[0].options, "ro"]))
    try:
        got = describe_tree(str(target), mtimes=True)
    finally:
        libc.umount2(str(target))
    svc.unpack_to_dir("m", str(tmp_path / "plain"))
    want = describe_tree(str(tmp_path / "plain"), mtimes=True)
    assert got == want
    # the upper of layer 2 holds overlay's own whiteouts, the form the kernel reads
    l2 = svc.snapshotter.fs_path(str(svc.resolve("m").chain_ids[1]))
    st = os.lstat(os.path.join(l2, "data", "a"))
    assert os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0
    assert os.getxattr(os.path.join(l2, "opaque"), "trusted.overlay.opaque") == b"y"


def _corrupt_layer(svc, name, index):
    r = svc.resolve(name)
    path = svc.content.blob_path(r.layers[index].digest)
    os.chmod(path, 0o644)
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(path).write_bytes(bytes(data))


@pytest.mark.parametrize("snapshotter", ["native", "overlayfs"])
def test_corrupt_layer_leaves_no_snapshot(layouts, tmp_path, snapshotter):
    if snapshotter == "overlayfs" and not is_root:
        pytest.skip("overlay snapshots need root")
    svc = ImageService(str(tmp_path / "root"), snapshotter)
    svc.import_(str(layouts["multi-zstd"]), base_name="m")
    _corrupt_layer(svc, "m", 1)
    with pytest.raises((LayerMismatch, InvalidArgument)):
        svc.unpack("m")
    chain = svc.resolve("m").chain_ids
    names = [i.name for i in svc.snapshotter.walk()]
    assert names == [str(chain[0])]  # layer 0 was fine and is kept; nothing else
    assert os.listdir(os.path.join(svc.snapshotter.root, "snapshots")) == ["1"]


def test_corrupt_layer_unpack_to_dir_removes_dir(layouts, svc, tmp_path):
    svc.import_(str(layouts["multi"]), base_name="m")
    _corrupt_layer(svc, "m", 2)
    with pytest.raises((LayerMismatch, InvalidArgument)):
        svc.unpack_to_dir("m", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["oci", "oci-archive"])
def test_export_import_roundtrip(layouts, svc, tmp_path, fmt):
    svc.import_(str(layouts["multiplatform"]), base_name="mp")
    svc.import_(str(layouts["multi"]), base_name="m")
    dest = tmp_path / ("out" if fmt == "oci" else "out.tar")
    svc.export(["mp", "m"], str(dest), fmt=fmt)
    assert detect_format(str(dest)) == "oci"
    other = ImageService(str(tmp_path / "other"))
    got = other.import_(str(dest))
    assert sorted(i.name for i in got) == ["docker.io/library/m:latest",
                                           "docker.io/library/mp:latest"]
    for n in ("m", "mp"):
        assert other.get(n).target.digest == svc.get(n).target.digest
    # every platform's blobs travelled
    assert len(list(other.content.walk())) == len(list(svc.content.walk()))
    if fmt == "oci-archive":
        with tarfile.open(dest) as tf:
            names = tf.getnames()
        assert "oci-layout" in names and "index.json" in names
    other.close()


def test_docker_archive_roundtrip(layouts, svc, tmp_path):
    svc.import_(str(layouts["multi-zstd"]), base_name="me/app")
    svc.tag("me/app", "me/app:1")
    out = tmp_path / "save.tar"
    svc.export(["me/app:1"], str(out), fmt="docker-archive")
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        repos = json.load(tf.extractfile("repositories"))
        layer0 = tf.extractfile(manifest[0]["Layers"][0]).read(512)
    assert manifest[0]["RepoTags"] == ["me/app:1"]
    assert list(repos) == ["me/app"] and list(repos["me/app"]) == ["1"]
    assert layer0[257:262] == b"ustar"  # layers are written uncompressed, as docker does
    assert detect_format(str(out)) == "docker-archive"
    other = ImageService(str(tmp_path / "other"))
    got = other.import_(str(out))
    assert [i.name for i in got] == ["docker.io/me/app:1"]
    a, b = svc.resolve("me/app:1"), other.resolve("me/app:1")
    assert a.manifest.config.digest == b.manifest.config.digest
    assert a.diff_ids == b.diff_ids
    other.unpack_to_dir("me/app:1", str(tmp_path / "x"))
    svc.unpack_to_dir("me/app:1", str(tmp_path / "y"))
    assert describe_tree(str(tmp_path / "x")) == describe_tree(str(tmp_path / "y"))
    other.close()


def test_docker_archive_wrong_diff_id_refused(layouts, svc, tmp_path):
    svc.import_(str(layouts["single-none"]), base_name="s")
    out = tmp_path / "save.tar"
    svc.export(["s"], str(out), fmt="docker-archive")
    # rewrite the archive with a layer that is not the one the config names
    bad = tmp_path / "bad.tar"
    with tarfile.open(out) as src, tarfile.open(bad, "w") as dst:
        for m in src.getmembers():
            f = src.extractfile(m) if m.isfile() else None
            if m.name.endswith("layer.tar"):
                data = f.read()
                data = data[:600] + bytes([data[600] ^ 1]) + data[601:]
                import io
                f = io.BytesIO(data)
            dst.addfile(m, f)
    other = ImageService(str(tmp_path / "other"))
    with pytest.raises(Exception, match=r"diffID|digest"):
        other.import_(str(bad))
    assert other.list() == []
    other.close()


def test_bundle_from_image_config(layouts, svc, tmp_path):
    svc.import_(str(layouts["users"]), base_name="u")
    spec = svc.bundle("u", str(tmp_path / "bundle"))
    on_disk = json.loads((tmp_path / "bundle/config.json").read_text())
    assert on_disk == spec
    p = spec["process"]
    assert p["args"] == ["/bin/sh", "-c", "id"]
    assert p["user"] == {"uid": 1234, "gid": 2345, "additionalGids": [3000, 3001]}
    assert p["cwd"] == "/home/app"
    assert p["env"][:2] == [timages.PATH_ENV, "APP_MODE=test"]
    assert [e for e in p["env"] if e.startswith("PATH=")] == [timages.PATH_ENV]
    ann = spec["annotations"]
    assert ann["org.opencontainers.image.exposedPorts"] == "53/udp,8080/tcp"
    # Labels take precedence over the implicit annotation (conversion.md)
    assert ann["org.opencontainers.image.stopSignal"] == "SIGINT"
    assert ann["org.example.role"] == "test"
    assert ann["org.opencontainers.image.architecture"] == "amd64"
    assert ann["org.opencontainers.image.created"] == timages.CREATED
    assert ann["io.pallet.image.volumes"] == "/data"
    assert spec["root"] == {"path": "rootfs", "readonly": False}
    assert (tmp_path / "bundle/rootfs/bin/busybox").exists()
    assert svc.bundle("u", str(tmp_path / "b2"), args=["echo", "hi"])["process"]["args"] == \
        ["/bin/sh", "-c", "echo", "hi"]


def test_user_resolution(tmp_path):
    from pallet.images.bundle import resolve_user

    root = tmp_path / "r"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(timages.APP_PASSWD + "root:x:0:0::/root:/bin/sh\n")
    (root / "etc/group").write_text(timages.APP_GROUP + "wheel:x:10:\n")
    r = str(root)
    assert resolve_user(r, "") == {"uid": 0, "gid": 0}
    assert resolve_user(r, "1234") == {"uid": 1234, "gid": 2345}
    assert resolve_user(r, "777") == {"uid": 777, "gid": 0}
    assert resolve_user(r, "app:wheel") == {"uid": 1234, "gid": 10}
    assert resolve_user(r, "app:55") == {"uid": 1234, "gid": 55}
    assert resolve_user(r, "5:6") == {"uid": 5, "gid": 6}
    with pytest.raises(NotFound, match="no such user"):
        resolve_user(r, "nobody-here")
    with pytest.raises(NotFound, match="no such group"):
        resolve_user(r, "app:nogroup")
    # a symlinked /etc/passwd pointing at the host is read inside the rootfs
    host = tmp_path / "host-passwd"
    host.write_text("hostuser:x:4242:4242::/:/bin/sh\n")
    os.unlink(root / "etc/passwd")
    os.symlink(str(host), root / "etc/passwd")
    with pytest.raises(NotFound):
        resolve_user(r, "hostuser")
    os.unlink(root / "etc/passwd")
    os.symlink("/etc/passwd", root / "etc/passwd")  # a loop, inside the root
    with pytest.raises(NotFound):
        resolve_user(r, "root")


def test_diff_of_directories_reproduces_upper(layouts, svc, tmp_path):
    svc.import_(str(layouts["single"]), base_name="s")
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    svc.unpack_to_dir("s", str(lower))
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    (upper / "etc/motd").write_text("new")
    os.unlink(upper / "bin/ls")
    subprocess.run(["rm", "-rf", str(upper / "usr/sbin")], check=True)
    os.chmod(upper / "etc/passwd", 0o600)
    (upper / "newdir/deep").mkdir(parents=True)
    os.symlink("/bin/busybox", upper / "newdir/deep/link")
    info = commit_layer(svc.content, lambda tw: tar_changes(str(lower), str(upper), tw),
                        mt.GZIP)
    # apply the diff onto a fresh copy of lower: it must become upper
    target = tmp_path / "target"
    subprocess.run(["cp", "-a", str(lower), str(target)], check=True)
    from pallet.images.apply import apply_layer

    with svc.content.reader(info.digest) as f:
        apply_layer(f, str(target), desc=info.descriptor(), diff_id=info.diff_id)
    assert describe_tree(str(target)) == describe_tree(str(upper))
    # the diff holds only the changes, not the whole tree
    with svc.content.reader(info.digest) as f, tarfile.open(fileobj=f, mode="r|gz") as tf:
        names = [m.name for m in tf]
    assert "bin/.wh.ls" in names and "usr/.wh.sbin" in names and "etc/motd" in names
    assert "bin/busybox" not in names and len(names) < 20


@pytest.mark.root
@pytest.mark.skipif(not is_root, reason="overlay upperdirs carry whiteout devices: root")
def test_diff_of_overlay_upper_roundtrip(layouts, tmp_path):
    svc = ImageService(str(tmp_path / "root"), "overlayfs")
    svc.import_(str(layouts["multi"]), base_name="m")
    svc.unpack("m")
    r = svc.resolve("m")
    # layer 2's snapshot upperdir -> a layer again -> same tree when applied
    upper = svc.snapshotter.fs_path(str(r.chain_ids[1]))
    info = commit_layer(svc.content, lambda tw: tar_overlay_upper(upper, tw), mt.ZSTD)
    with svc.content.reader(info.digest) as f, tarfile.open(
            fileobj=__import__("zstandard").ZstdDecompressor().stream_reader(f),
            mode="r|") as tf:
        names = [m.name for m in tf]
    assert "data/.wh.a" in names and "opaque/.wh..wh..opq" in names and ".wh.gone" in names
    a, b = tmp_path / "a", tmp_path / "b"
    unpack_to_dir(svc.content, r, str(a))
    from pallet.images.apply import apply_layer

    b.mkdir()
    for i, desc in enumerate(r.layers):
        if i == 1:
            with svc.content.reader(info.digest) as f:
                apply_layer(f, str(b), desc=info.descriptor())
        else:
            with svc.content.reader(desc.digest) as f:
                apply_layer(f, str(b), desc=desc)
    assert describe_tree(str(a)) == describe_tree(str(b))


def test_docker_schema2_manifest_list(svc, tmp_path):
    """Docker's media types (manifest list, schema 2 manifest, gzip layer) resolve and
    unpack like the OCI ones."""
    from pallet.content import write_blob
    from pallet.oci.image import Descriptor, ImageConfig, Index, Manifest
    from pallet.testing.images import entry, layer

    blob, ldesc, diff_id = layer([entry("hello", "file", b"docker")], mt.GZIP)
    ldesc.media_type = mt.DOCKER_LAYER_GZIP
    write_blob(svc.content, "l", blob)
    cfg = ImageConfig("amd64", "linux", [diff_id]).to_dict()
    cbytes = json.dumps(cfg).encode()
    cdesc = Descriptor.of(mt.DOCKER_CONFIG, cbytes)
    write_blob(svc.content, "c", cbytes)
    mbytes = json.dumps(Manifest(cdesc, [ldesc], media_type=mt.DOCKER_MANIFEST).to_dict()
                        ).encode()
    mdesc = Descriptor.of(mt.DOCKER_MANIFEST, mbytes, platform=Platform("linux", "amd64"))
    write_blob(svc.content, "m", mbytes)
    ibytes = json.dumps(Index([mdesc], media_type=mt.DOCKER_MANIFEST_LIST).to_dict()).encode()
    idesc = Descriptor.of(mt.DOCKER_MANIFEST_LIST, ibytes)
    write_blob(svc.content, "i", ibytes)
    svc.images.put("docker-style", idesc)
    r = svc.resolve("docker-style", Platform("linux", "amd64"))
    assert r.manifest_desc.digest == mdesc.digest
    svc.unpack_to_dir("docker-style", str(tmp_path / "out"), Platform("linux", "amd64"))
    assert (tmp_path / "out/hello").read_bytes() == b"docker"
    # and a manifest whose mediaType disagrees with its descriptor is refused
    bad = Descriptor(mt.IMAGE_MANIFEST, mdesc.digest, mdesc.size)
    svc.images.put("mislabelled", bad)
    with pytest.raises(InvalidArgument, match="does not match"):
        svc.resolve("mislabelled")
