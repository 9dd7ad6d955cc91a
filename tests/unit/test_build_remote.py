"""pallet.build.remote: how ADD names what it downloads."""

from __future__ import annotations

import pytest

from pallet.build import remote
from pallet.errors import InvalidArgument


@pytest.mark.parametrize(("url", "disposition", "name"), [
    ("http://h/a/b/file.txt", None, "file.txt"),
    ("http://h/my%20file.txt?x=1", None, "my file.txt"),  # decoded, as Go's url.Path
    ("http://h/download?id=3", 'attachment; filename="report.csv"', "report.csv"),
    ("http://h/x", "attachment; filename=../../etc/passwd", "passwd"),  # a name, no path
])
def test_filename(url, disposition, name):
    assert remote.filename(url, disposition) == name


@pytest.mark.parametrize("url", ["http://h/", "http://h", "http://h/dir/"])
def test_no_filename(url):
    with pytest.raises(InvalidArgument, match="cannot determine filename from url"):
        remote.filename(url)


def test_what_is_remote():
    assert remote.is_url("https://h/x") and not remote.is_url("file.txt")
    assert remote.is_git("git@github.com:o/r.git") and remote.is_git("https://h/r.git")
    assert not remote.is_git("https://h/r.tar")
