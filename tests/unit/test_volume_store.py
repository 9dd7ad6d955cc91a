"""The volume store of palletd (pallet.daemon.volumes) on a temporary root, with the
containers that use volumes given as records: no daemon, no mounts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from pallet.daemon.events import Events
from pallet.daemon.volumes import Volumes
from pallet.errors import FailedPrecondition, InvalidArgument, NotFound


@dataclass
class Ctr:
    id: str
    rec: dict[str, Any]
    running: bool = False


@dataclass
class Owner:
    """What Volumes asks of palletd's Containers: the records, and lookup by name."""

    by_id: dict[str, Ctr] = field(default_factory=dict)

    def get(self, ref: str) -> Ctr:
        for c in self.by_id.values():
            if ref in (c.id, c.rec.get("Name")):
                return c
        raise NotFound(f"No such container: {ref}")


@pytest.fixture
def owner() -> Owner:
    return Owner()


@pytest.fixture
def vols(tmp_path, owner) -> Volumes:
    return Volumes(str(tmp_path), Events(), owner)  # type: ignore[arg-type]


def use(owner: Owner, vols: Volumes, cid: str, host: dict[str, Any],
        cfg: dict[str, Any] | None = None, image: dict[str, Any] | None = None) -> Ctr:
    cfg = cfg if cfg is not None else {}
    points = vols.register(host, cfg, image)
    c = Ctr(cid, {"Id": cid, "Name": cid, "Config": cfg, "HostConfig": host,
                  "_MountPoints": points})
    owner.by_id[cid] = c
    return c


def test_create_is_idempotent_and_persistent(tmp_path, vols, owner):
    v = vols.create("data", None, {"type": "tmpfs", "device": "tmpfs"}, {"a": "1"})
    assert v["Mountpoint"] == os.path.join(tmp_path, "volumes", "data", "_data")
    assert os.path.isdir(v["Mountpoint"])
    assert vols.create("data", "local", {}, {"other": "x"}) == v
    anon = vols.create()
    assert len(anon["Name"]) == 64
    again = Volumes(str(tmp_path), Events(), owner)  # type: ignore[arg-type]
    assert again.view(again.get("data")) == v
    assert [e["Action"] for e in vols.events.history] == ["create", "create"]


@pytest.mark.parametrize("args,error,words", [
    (("a",), InvalidArgument, "invalid characters"),
    (("a/b",), InvalidArgument, "invalid characters"),
    (("ok", "weave"), NotFound, 'plugin "weave" not found'),
    (("ok", None, {"size": "1g"}), InvalidArgument, 'invalid option key: "size"'),
    (("ok", None, {"o": "size=1m"}), InvalidArgument, "missing required option"),
    (("ok", None, {"device": "/x"}), InvalidArgument, 'missing required option: "type"'),
])
def test_create_refuses(vols, args, error, words):
    with pytest.raises(error, match=words):
        vols.create(*args)
    assert vols.vols == {}


def test_list_filters(vols, owner):
    vols.create("alpha", labels={"tier": "db", "x": ""})
    vols.create("beta", labels={"tier": "web"})
    vols.create("gamma")
    use(owner, vols, "c1", {"Binds": ["beta:/b"]})

    def names(**f: list[str]) -> list[str]:
        return [v["Name"] for v in vols.list(f)]

    assert names() == ["alpha", "beta", "gamma"]
    assert names(name=["^a|mm"]) == ["alpha", "gamma"]
    assert names(label=["tier"]) == ["alpha", "beta"]
    assert names(label=["tier=db", "x"]) == ["alpha"]  # every label filter must match
    assert names(dangling=["true"]) == ["alpha", "gamma"]
    assert names(dangling=["0"]) == ["beta"]
    assert names(driver=["local"], name=["beta", "gamma"]) == ["beta", "gamma"]
    for bad in ({"dangling": ["maybe"]}, {"colour": ["red"]}):
        with pytest.raises(InvalidArgument):
            vols.list(bad)


def test_remove_in_use_and_force(vols, owner):
    use(owner, vols, "c1", {"Binds": ["busy:/b"]})
    with pytest.raises(FailedPrecondition, match=r"remove busy: volume is in use - \[c1\]"):
        vols.remove("busy", force=True)
    with pytest.raises(NotFound, match="no such volume"):
        vols.remove("missing")
    vols.remove("missing", force=True)
    del owner.by_id["c1"]
    vols.remove("busy")
    assert "busy" not in vols.vols
    assert not os.path.exists(os.path.dirname(vols.data_path("busy")))


def test_prune(vols, owner):
    for name, labels in (("keep", {}), ("a1", {"k": "v"}), ("a2", {"k": "w"}), ("a3", {})):
        vols.create(name, labels=labels)
    with open(os.path.join(vols.data_path("a3"), "f"), "wb") as f:
        f.write(b"x" * 1234)
    use(owner, vols, "c1", {"Binds": ["keep:/k"]})
    assert vols.prune({"label": ["k=v"]}) == (["a1"], 0)
    assert vols.prune({"label!": ["k"]}) == (["a3"], 1234)
    assert vols.prune({}) == (["a2"], 0)  # API 1.41: named volumes too
    assert list(vols.vols) == ["keep"]
    with pytest.raises(InvalidArgument):
        vols.prune({"until": ["1h"]})


def test_register_creates_what_the_container_names(vols, owner):
    cfg: dict[str, Any] = {"Volumes": {"/extra": {}}}
    c = use(owner, vols, "c1", {"Binds": ["named:/n", "/srv:/s"], "Mounts": [
        {"Type": "volume", "Target": "/m", "VolumeOptions": {"Labels": {"l": "1"}}}]},
        cfg, image={"/img": {}, "/n": {}})
    assert set(cfg["Volumes"]) == {"/extra", "/img", "/n"}  # the image's join the config's
    pts = {p["Destination"]: p for p in c.rec["_MountPoints"]}
    assert pts["/n"]["Name"] == "named" and not pts["/n"]["anonymous"]
    assert pts["/n"]["Source"] == vols.data_path("named")
    assert all(pts[d]["anonymous"] and len(pts[d]["Name"]) == 64
               for d in ("/m", "/img", "/extra"))
    assert vols.get(pts["/m"]["Name"])["Labels"] == {"l": "1"}
    assert pts["/s"]["Type"] == "bind" and pts["/s"]["Name"] == ""
    assert len(vols.vols) == 4

    # an error anywhere in the request creates nothing
    with pytest.raises(InvalidArgument):
        use(owner, vols, "c2", {"Binds": ["fresh:/a", "x:/b"]})
    with pytest.raises(InvalidArgument):
        use(owner, vols, "c2", {"Mounts": [{"Type": "volume", "Source": "fresh2",
                                            "Target": "/a", "VolumeOptions": {
                                                "DriverConfig": {"Options": {"bad": "1"}}}}]})
    assert len(vols.vols) == 4

    # removal: the anonymous volumes only, and only when asked
    del owner.by_id["c1"]
    vols.forget(c.rec, anonymous=False)
    assert len(vols.vols) == 4
    vols.forget(c.rec, anonymous=True)
    assert list(vols.vols) == ["named"]


def test_volumes_from(vols, owner):
    use(owner, vols, "donor", {"Binds": ["shared:/d", "/srv:/s:ro"]})
    c = use(owner, vols, "heir", {"VolumesFrom": ["donor:ro"], "Binds": ["own:/s"]})
    pts = {p["Destination"]: p for p in c.rec["_MountPoints"]}
    assert pts["/d"]["Name"] == "shared" and pts["/d"]["RW"] is False
    assert pts["/s"]["Name"] == "own"
    with pytest.raises(InvalidArgument, match="volumes-from"):
        use(owner, vols, "x", {"VolumesFrom": ["donor:rx"]})
    with pytest.raises(NotFound):
        use(owner, vols, "x", {"VolumesFrom": ["nobody"]})
    assert vols.users("shared") == ["donor", "heir"]
