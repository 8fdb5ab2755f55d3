"""Segment names as people type them, and the rows of the segments they pick.

``--segment`` and ``--segments`` accept a segment's values in ``segment_by`` order in any of the
forms ``(S1, Ma)``, ``S1,Ma``, ``S1/Ma`` and ``S1:Ma`` (the form of ``segtrain synth``); several
segments are separated by ``;`` (or by ``,`` between ``/``, ``:`` or parenthesized names):
``(S1, Ma),(S2, Ma)``, ``S1/Ma,S2/Ma``, ``S1,Ma;S2,Ma``.
"""

from __future__ import annotations

import re

import numpy as np

from segeval import Segments
from segeval.segments import display_name
from segeval.validation import InputError


def parse_segment_names(text: str, segments: Segments, flag: str) -> list[str]:
    """The display names (as in ``segments.names``) of the segments ``text`` names."""
    k = len(segments.columns)
    text = text.strip()
    if "(" in text or ")" in text:
        groups = re.findall(r"\(([^()]*)\)", text)
        rest = re.sub(r"\([^()]*\)", "", text)
        if not groups or rest.strip(" ,;"):
            groups = []  # unbalanced or stray text: reported below
        values = [[v.strip() for v in g.split(",")] for g in groups]
    elif "/" in text or ":" in text:
        values = [re.split(r"\s*[/:]\s*", item.strip()) for item in re.split(r"[,;]", text)]
    else:
        flat = [v.strip() for v in re.split(r"[,;]", text)]
        values = [flat[i : i + k] for i in range(0, len(flat), k)] if len(flat) % k == 0 else []
    example = "/".join(f"<{c}>" for c in segments.columns)
    if not values or any(len(v) != k or not all(v) for v in values):
        raise InputError(
            f"{flag} {text!r}: a segment is one value of each of {', '.join(segments.columns)} "
            f"(like {example} or ({', '.join(segments.columns)})); known: {_known(segments)}."
        )
    names = [display_name(v) for v in values]
    unknown = [n for n in names if n not in segments.names]
    if unknown:
        raise InputError(f"{flag}: no segment {', '.join(unknown)}; known: {_known(segments)}.")
    return list(dict.fromkeys(names))


def parse_segment_name(text: str, segments: Segments, flag: str) -> str:
    """The display name of the one segment ``text`` names."""
    names = parse_segment_names(text, segments, flag)
    if len(names) != 1:
        raise InputError(f"{flag} names one segment; got {len(names)} in {text!r}.")
    return names[0]


def rows_of(segments: Segments, names: list[str]) -> np.ndarray:
    """Whether each row belongs to one of the named segments."""
    wanted = [segments.names.index(n) for n in names]
    return np.isin(segments.codes, wanted)


def _known(segments: Segments) -> str:
    shown = list(segments.names[:12])
    more = len(segments.names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
