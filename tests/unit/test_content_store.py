"""The content store suite, written against the Provider/Ingester/Manager interface."""

import os
import threading

import pytest

from pallet.content import LocalStore, write_blob
from pallet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from pallet.oci import digest


@pytest.fixture(params=["local"])
def store(request, tmp_path):
    s = LocalStore(tmp_path / "content")
    yield s
    s.close()


def test_write_commit_read(store):
    data = os.urandom(100_000)
    d = digest.from_bytes(data)
    with store.writer("ref1", total=len(data), expected=d) as w:
        w.write(data[:10])
        w.write(data[10:])
        assert w.offset == len(data)
        assert w.commit(len(data), d, {"a": "1"}) == d
    assert store.read_blob(d) == data
    info = store.info(d)
    assert info.size == len(data) and info.labels == {"a": "1"}
    assert store.blob_path(d).endswith(f"blobs/sha256/{d.encoded}")
    assert store.statuses() == []
    assert oct(os.stat(store.blob_path(d)).st_mode & 0o777) == "0o444"


def test_sha512_commit(store):
    data = b"sha512 content"
    d = digest.from_bytes(data, "sha512")
    assert write_blob(store, "r", data, size=len(data), expected=d) == d
    assert os.path.exists(os.path.join(store.root, "blobs", "sha512", d.encoded))
    assert store.read_blob(d) == data


def test_wrong_digest_leaves_nothing_visible(store):
    data = b"hello"
    wrong = digest.from_bytes(b"other")
    with store.writer("r") as w:
        w.write(data)
        with pytest.raises(FailedPrecondition, match="unexpected commit digest"):
            w.commit(len(data), wrong)
    assert not store.exists(digest.from_bytes(data))
    assert not store.exists(wrong)
    assert list(store.walk()) == []
    # the ingest is kept for a retry, until aborted
    assert store.status("r").offset == 5
    store.abort("r")
    with pytest.raises(NotFound):
        store.status("r")


def test_wrong_size_rejected(store):
    with store.writer("r") as w:
        w.write(b"12345")
        with pytest.raises(FailedPrecondition, match="unexpected commit size 5, expected 6"):
            w.commit(6, None)
    assert list(store.walk()) == []


def test_resume_at_offset(store):
    data = os.urandom(3 * 1024 * 1024 + 7)
    d = digest.from_bytes(data)
    w = store.writer("resumable", total=len(data), expected=d)
    w.write(data[:1_000_000])
    w.close()  # the "crash"
    st = store.status("resumable")
    assert st.offset == 1_000_000 and st.total == len(data) and st.expected == d
    w = store.writer("resumable")
    assert w.offset == 1_000_000
    w.write(data[w.offset:])
    assert w.commit(len(data), d) == d
    assert store.read_blob(d) == data


def test_truncate_rewinds(store):
    with store.writer("t") as w:
        w.write(b"good-bad")
        w.truncate(5)
        w.write(b"fine")
        d = w.commit(9, None)
    assert store.read_blob(d) == b"good-fine"
    with store.writer("t2") as w, pytest.raises(InvalidArgument):
        w.truncate(1)


def test_one_writer_per_ref(store):
    w = store.writer("locked")
    with pytest.raises(Unavailable, match="locked"):
        store.writer("locked")
    w.close()
    store.writer("locked").close()


def test_existing_blob_is_already_exists(store):
    d = write_blob(store, "a", b"x")
    with pytest.raises(AlreadyExists):
        store.writer("b", expected=d)
    # write_blob treats existing content as success
    assert write_blob(store, "c", b"x") == d


def test_concurrent_writers_same_blob(store):
    data = os.urandom(2_000_000)
    d = digest.from_bytes(data)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            w = store.writer(f"w{i}")
            barrier.wait()
            for off in range(0, len(data), 65536):
                w.write(data[off:off + 65536])
            try:
                w.commit(len(data), d)
            except AlreadyExists:
                pass
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.read_blob(d) == data
    assert [i.digest for i in store.walk()] == [d]
    assert store.statuses() == []


def test_labels_update_walk_delete(store):
    a = write_blob(store, "a", b"a", labels={"keep": "yes", "x": "1"})
    b = write_blob(store, "b", b"b")
    assert {i.digest for i in store.walk()} == {a, b}
    assert [i.digest for i in store.walk(labels={"keep": None})] == [a]
    assert [i.digest for i in store.walk(labels={"keep": "no"})] == []
    info = store.update_labels(b, {"keep": "no"})
    assert info.labels == {"keep": "no"}
    store.update_labels(a, {"x": None})
    assert store.info(a).labels == {"keep": "yes"}
    seen = []
    list(store.walk(seen.append))
    assert len(seen) == 2
    store.delete(a)
    assert not store.exists(a)
    with pytest.raises(NotFound):
        store.info(a)
    with pytest.raises(NotFound):
        store.delete(a)
    with pytest.raises(NotFound):
        store.update_labels(a, {"k": "v"})


def test_labels_persist_across_reopen(tmp_path):
    s = LocalStore(tmp_path / "c")
    d = write_blob(s, "a", b"persist", labels={"k": "v"})
    s.close()
    s2 = LocalStore(tmp_path / "c")
    assert s2.info(d).labels == {"k": "v"}
    with open(os.path.join(s2.root, "metadata.db"), "rb") as f:
        assert f.read(16) == b"SQLite format 3\x00"
    assert os.path.exists(os.path.join(s2.root, "metadata.db-wal"))


def test_reader_not_found_and_bad_digest(store):
    with pytest.raises(NotFound):
        store.read_blob("sha256:" + "0" * 64)
    with pytest.raises(digest.DigestError):
        store.read_blob("sha256:../../etc/passwd")


def test_write_blob_resumes_seekable_source(store, tmp_path):
    import io
    data = os.urandom(500_000)
    d = digest.from_bytes(data)
    w = store.writer("resume-me", expected=d)
    w.write(data[:200_000])
    w.close()
    assert write_blob(store, "resume-me", io.BytesIO(data), size=len(data), expected=d) == d
    assert store.read_blob(d) == data


def test_write_blob_bad_digest_aborts_ingest(store):
    with pytest.raises(FailedPrecondition):
        write_blob(store, "bad", b"abc", expected=digest.from_bytes(b"abd"))
    assert store.statuses() == []
    assert list(store.walk()) == []
