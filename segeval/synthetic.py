"""Synthetic predictions with a segment shortcut, for examples, tests and the README's first run.

Segments follow the paper's structure (sources x manufacturers with different prevalences). Three
models are simulated:

- ``single_segment``: trained on one segment; fair but weaker elsewhere;
- ``bal_labels``: learned part of the task and part of the segment ("source S1 is malignant"),
  so its global AUC flatters it while its local AUCs are worse;
- ``periodic``: learned the task alike on every segment.

These are scores drawn from stated distributions, not trained models: they exercise the
statistics and the report, not the training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from segeval.validation import InputError, SeedLike, as_seed_sequence

# (source, manufacturer, images, prevalence), scaled down from the paper's Table 1.
SEGMENTS = (
    ("S1", "Ma", 2000, 0.35),
    ("S1", "Mb", 1500, 0.10),
    ("S2", "Ma", 2000, 0.01),
    ("S2", "Mb", 1000, 0.05),
    ("S3", "Mc", 1500, 0.07),
)

# Per model: signal strength of the disease, and how much the score leans on the segment's
# prevalence (the shortcut).
MODELS = {
    "single_segment": (0.55, 0.0),
    "bal_labels": (0.45, 0.9),
    "periodic": (0.7, 0.0),
}


def make_predictions(*, scale: float = 1.0, seed: SeedLike = 0) -> pd.DataFrame:
    """A predictions table (DESIGN contract) for the three simulated models.

    Columns: image_id, patient_id, source, manufacturer, label, model, score. Two images per
    patient. The same seed gives the same table.

    Examples
    --------
    >>> df = make_predictions(scale=0.1, seed=0)
    >>> sorted(df.model.unique())
    ['bal_labels', 'periodic', 'single_segment']
    """
    if not scale > 0:
        raise InputError(f"scale must be positive; got {scale!r}.")
    rng = np.random.default_rng(as_seed_sequence(seed))
    rows = []
    for source, maker, n_images, prevalence in SEGMENTS:
        n = max(4, round(n_images * scale))
        y = (rng.random(n) < prevalence).astype(np.int8)
        y[:2] = (1, 0)  # both classes in every segment
        difficulty = rng.normal(0, 1, n)  # shared by all models: the same image is hard for all
        logit_prev = np.log(prevalence / (1 - prevalence))
        for model, (signal, shortcut) in MODELS.items():
            noise = rng.normal(0, 1.0, n)
            logit = signal * (2 * y - 1) + 0.6 * difficulty + shortcut * (logit_prev + 2) + noise
            score = 1 / (1 + np.exp(-logit))
            ids = [f"{source}{maker}-{k:05d}" for k in range(n)]
            rows.append(
                pd.DataFrame(
                    {
                        "image_id": ids,
                        "patient_id": [f"{source}{maker}-{k // 2:05d}" for k in range(n)],
                        "source": source,
                        "manufacturer": maker,
                        "label": y,
                        "model": model,
                        "score": np.round(score, 6),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)
