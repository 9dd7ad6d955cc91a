"""pallet.jsonlite against the json package: the same text out, the same values in."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pallet import jsonlite

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@given(values)
def test_dumps_matches_json(v):
    assert jsonlite.dumps(v) == json.dumps(v, separators=(",", ":"))
    assert jsonlite.dumps(v, indent=2) == json.dumps(v, indent=2)
    assert jsonlite.dumps(v, indent="\t", sort_keys=True) == json.dumps(v, indent="\t",
                                                                         sort_keys=True)


@given(values)
def test_loads_reads_what_json_writes(v):
    text = json.dumps(v, indent=1)
    assert jsonlite.loads(text) == json.loads(text)
    assert jsonlite.loads(text.encode()) == json.loads(text)


def test_non_finite_floats_as_json_writes_them():
    assert jsonlite.dumps([float("inf"), float("-inf")]) == "[Infinity,-Infinity]"
    assert jsonlite.dumps(float("nan")) == "NaN"
    assert jsonlite.loads("[Infinity, -Infinity]") == [float("inf"), float("-inf")]


@pytest.mark.parametrize(("text", "words"), [
    ("", "not JSON"),
    ("nope", "not JSON"),
    ('{"a": 1,}', "line 1 column 9"),
    ('{"a": 1} x', "extra data"),
])
def test_bad_input_is_a_value_error_naming_the_place(text, words):
    with pytest.raises(ValueError, match=words):
        jsonlite.loads(text)


def test_what_it_cannot_encode_is_a_type_error():
    with pytest.raises(TypeError, match="set"):
        jsonlite.dumps({"a": {1, 2}})
