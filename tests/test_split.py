"""The paper's split: per source, 80/20 by patient, malignant/benign patient ratio kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segeval.validation import InputError
from segtrain.split import split_patients


def manifest(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for source, n_pat, prev in (("S1", 200, 0.3), ("S2", 300, 0.05)):
        for p in range(n_pat):
            malignant = rng.random() < prev
            for v in range(rng.integers(1, 5)):
                rows.append(
                    {
                        "image_id": f"{source}-{p}-{v}",
                        "patient_id": f"{source}-{p}",
                        "source": source,
                        "label": int(malignant and v == 0),
                    }
                )
    return pd.DataFrame(rows)


def test_no_patient_on_both_sides_and_80_20_per_source():
    df = manifest()
    split = split_patients(df, seed=1)
    sides = df.assign(split=split).groupby("patient_id").split.nunique()
    assert (sides == 1).all()
    for source, rows in df.assign(split=split).groupby("source"):
        patients = rows.groupby("patient_id").agg(
            split=("split", "first"), malignant=("label", "max")
        )
        assert patients.split.eq("val").mean() == pytest.approx(0.2, abs=0.01)
        # The malignant share of patients is the same on both sides, up to rounding.
        by_side = patients.groupby("split").malignant.mean()
        assert abs(by_side["train"] - by_side["val"]) < 0.02, source


def test_seeded_and_respects_a_given_split():
    df = manifest()
    assert split_patients(df, seed=3).equals(split_patients(df, seed=3))
    assert not split_patients(df, seed=3).equals(split_patients(df, seed=4))
    given = df.assign(split=np.where(df.source == "S1", "train", "test"))
    assert split_patients(given).tolist() == given.split.tolist()
    with pytest.raises(
        InputError, match=r"Column 'split' must hold train, val or test; got \['dev'\]"
    ):
        split_patients(df.assign(split="dev"))
    with pytest.raises(InputError, match="no such column"):
        split_patients(df, by="site")
