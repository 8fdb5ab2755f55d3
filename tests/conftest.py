"""Shared test data: random binary problems with ties, tiny sets and extreme imbalance."""

from __future__ import annotations

import numpy as np
import pytest


def random_problem(
    rng: np.random.Generator, n: int, *, prevalence: float = 0.3, ties: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Labels with at least one of each class, and scores (coarsely rounded when ``ties``)."""
    y = (rng.random(n) < prevalence).astype(int)
    y[0], y[-1] = 1, 0
    s = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    if ties:
        s = np.round(s, 1)
    return y, s


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def run_inputs(paths: list) -> dict:
    """The keyword arguments of ``segeval.evaluate`` for training run folders, read as the CLI
    reads them (:func:`segeval.io.read_runs`)."""
    from segeval.io import read_runs

    runs = read_runs(paths)
    return {"training": runs.training, "validation_predictions": runs.validation}
