"""The paper's train/validation split: per source, 80/20 by patient, stratified by label.

"80% (resp. 20%) of the patients of each source are used for training (resp. validation) ...
the ratio of malignant / benign patients is similar for the validation and the training sets."
A patient is malignant if any of its images is. Whole patients go to one side, so no patient is
on both. A ``split`` column already in the manifest is used as given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from segeval.validation import InputError

SPLITS = ("train", "val", "test")


def split_patients(
    manifest: pd.DataFrame,
    *,
    by: str = "source",
    val_fraction: float = 0.2,
    seed: int = 0,
) -> pd.Series:
    """``train``/``val`` for every row of ``manifest`` (index aligned), or its own ``split``.

    Within each value of ``by`` (the source), malignant and benign patients are shuffled apart
    (seeded) and ``round(val_fraction * count)`` of each go to validation. A patient seen in
    several sources is placed once, with the first source it appears in.
    """
    if "split" in manifest:
        split = manifest["split"].astype(str)
        bad = sorted(set(split) - set(SPLITS))
        if bad:
            raise InputError(f"Column 'split' must hold train, val or test; got {bad[:5]}.")
        sides = split.groupby(manifest["patient_id"].astype(str).to_numpy()).nunique()
        shared = sorted(sides.index[sides > 1])
        if shared:
            listed = ", ".join(shared[:10]) + (
                f" and {len(shared) - 10} more" if len(shared) > 10 else ""
            )
            raise InputError(
                f"Column 'split' puts {len(shared)} patient(s) on more than one side: {listed}; "
                f"all images of a patient must be on one side."
            )
        return split
    if not 0 < val_fraction < 1:
        raise InputError(f"val_fraction must be in (0, 1); got {val_fraction!r}.")
    if by not in manifest:
        raise InputError(f"The split is made per {by!r}, but the manifest has no such column.")
    patients = manifest.groupby("patient_id", sort=True).agg(
        source=(by, "first"), malignant=("label", "max")
    )
    val: set[str] = set()
    for key, group in patients.groupby(["source", "malignant"], sort=True):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_key(key)))
        ids = group.index.to_numpy()
        n_val = round(val_fraction * ids.size)
        val.update(rng.permutation(ids)[:n_val].tolist())
    is_val = manifest["patient_id"].isin(val)
    return pd.Series(np.where(is_val, "val", "train"), index=manifest.index, name="split")


def _key(key: tuple[object, ...]) -> tuple[int, ...]:
    """A stable integer key for a (source, malignant) group, independent of the other groups."""
    text = f"{key[0]}|{key[1]}".encode()
    return tuple(text)
