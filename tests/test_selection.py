"""Segment names in the forms people type them."""

from __future__ import annotations

import pandas as pd
import pytest

from segeval import segment_keys
from segeval.validation import InputError
from segtrain.selection import parse_segment_name, parse_segment_names, rows_of

FRAME = pd.DataFrame({"source": ["S1", "S1", "S2", "S10"], "maker": ["Ma", "Mb", "Ma", "Ma"]})
SEGMENTS = segment_keys(FRAME, "source,maker")


@pytest.mark.parametrize(
    "text", ["(S1, Ma)", "S1,Ma", "S1/Ma", "S1:Ma", " S1 / Ma ", "(S1,Ma)", "S1;Ma"]
)
def test_one_segment_in_every_form(text):
    assert parse_segment_name(text, SEGMENTS, "--segment") == "(S1, Ma)"


@pytest.mark.parametrize(
    "text",
    ["(S1, Ma),(S2, Ma)", "(S1, Ma);(S2, Ma)", "S1/Ma,S2/Ma", "S1:Ma,S2:Ma", "S1,Ma;S2,Ma",
     "S1,Ma,S2,Ma"],
)  # fmt: skip
def test_several_segments(text):
    names = parse_segment_names(text, SEGMENTS, "--segments")
    assert names == ["(S1, Ma)", "(S2, Ma)"]
    assert rows_of(SEGMENTS, names).tolist() == [True, False, True, False]


def test_one_column_and_exact_values():
    seg = segment_keys(FRAME, "source")
    assert parse_segment_names("S1,S10", seg, "--segments") == ["S1", "S10"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "S3/Ma",
            "--segments: no segment (S3, Ma); known: (S1, Ma), (S1, Mb), (S10, Ma), (S2, Ma)",
        ),
        ("S1", "--segments 'S1': a segment is one value of each of source, maker"),
        ("(S1, Ma", "--segments '(S1, Ma': a segment is one value of each of source, maker"),
        ("S1/Ma/x", "a segment is one value of each of source, maker"),
    ],
)
def test_bad_names_are_refused_with_the_known_ones(text, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_segment_names(text, SEGMENTS, "--segments")


def test_one_segment_wanted():
    with pytest.raises(InputError, match="--segment names one segment; got 2"):
        parse_segment_name("S1/Ma,S2/Ma", SEGMENTS, "--segment")
