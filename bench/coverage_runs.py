"""Coverage of the across-seed ΔAUC interval (`bootstrap_delta_auc_runs`), by simulation.

Run:  python bench/coverage_runs.py [--reps 400] [--n-boot 400] [--runs 3,5,10]

Each replication draws a test set and R training runs of two recipes, then asks for the 95%
interval of ΔAUC = mean AUC of b's runs − mean AUC of a's runs. The estimand is the expected
difference over seeds *and* test sets. Scores (binormal): image i of run r of recipe m scores
``y_i (d_m + u_mr) + c_i + e_mri``; ``u`` is the run's (seed's) shift, ``c`` a difficulty
shared by every run of both recipes (the paired design), ``e`` the run's own per-image noise.
Given u, AUC = Φ((d + u) / sqrt(2 v)) with v = var(c) + var(e), so the true ΔAUC is an integral
over u (Gauss–Hermite, 60 nodes). Regimes:

- ``image noise``: no seed shift (runs differ only through their own per-image noise e);
- ``seed shift``: a seed shift dominates (sd 0.25 on d, about ±0.05 of AUC);
- ``both``: a seed shift and per-image noise of similar weight;
- ``unequal``: the seed shift of ``seed shift``, with 3 runs of a and R runs of b.

Prints coverage with its Monte-Carlo standard error sqrt(c (1 − c) / reps) and the mean width.
"""

from __future__ import annotations

import argparse
import time
import warnings
import zlib

import numpy as np
from scipy.stats import norm

import segeval as se

N_IMAGES, PREVALENCE = 400, 0.3
D_A, D_B = 1.0, 1.15
REGIMES = {  # sd of the seed shift u, the shared difficulty c, the run's own noise e
    "image noise": (0.0, 0.6, 1.0),
    "seed shift": (0.25, 1.0, 0.3),
    "both": (0.15, 0.8, 0.8),
    "unequal": (0.25, 1.0, 0.3),
}


def true_delta(sd_u: float, v: float) -> float:
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()

    def expected_auc(d: float) -> float:
        return float(weights @ norm.cdf((d + sd_u * nodes) / np.sqrt(2 * v)))

    return expected_auc(D_B) - expected_auc(D_A)


def replicate(
    rng: np.random.Generator, regime: str, runs: int, n_boot: int, seed: int
) -> tuple[float, float, float]:
    sd_u, sd_c, sd_e = REGIMES[regime]
    y = (rng.random(N_IMAGES) < PREVALENCE).astype(int)
    y[:2] = [0, 1]
    c = rng.normal(0, sd_c, N_IMAGES)

    def scores(d: float, r: int) -> np.ndarray:
        u = rng.normal(0, sd_u, (r, 1))
        return y * (d + u) + c + rng.normal(0, sd_e, (r, N_IMAGES))

    runs_a = 3 if regime == "unequal" else runs
    a, b = scores(D_A, runs_a), scores(D_B, runs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = se.bootstrap_delta_auc_runs(y, a, b, n_boot=n_boot, seed=seed)
    return r.ci_low, r.ci_high, r.delta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--n-boot", type=int, default=400)
    parser.add_argument("--runs", default="3,5,10")
    parser.add_argument("--regimes", default=",".join(REGIMES))
    args = parser.parse_args()
    print(
        f"{args.reps} replications x {args.n_boot} resamples, {N_IMAGES} test images, "
        f"prevalence {PREVALENCE}; nominal 95%"
    )
    print("| regime | runs | true ΔAUC | coverage (MC SE) | mean width | time |")
    print("| --- | --- | --- | --- | --- | --- |")
    for regime in args.regimes.split(","):
        sd_u, sd_c, sd_e = REGIMES[regime]
        truth = true_delta(sd_u, sd_c**2 + sd_e**2)
        for runs in (int(r) for r in args.runs.split(",")):
            rng = np.random.default_rng(zlib.crc32(f"{regime} {runs}".encode()))
            started = time.perf_counter()
            hits, widths = 0, []
            for k in range(args.reps):
                low, high, _ = replicate(rng, regime, runs, args.n_boot, seed=k)
                hits += low <= truth <= high
                widths.append(high - low)
            cov = hits / args.reps
            mc = np.sqrt(cov * (1 - cov) / args.reps)
            label = f"3 vs {runs}" if regime == "unequal" else str(runs)
            print(
                f"| {regime} | {label} | {truth:+.4f} | {100 * cov:.1f}% (± {100 * mc:.1f}) | "
                f"{np.mean(widths):.4f} | {time.perf_counter() - started:.0f} s |",
                flush=True,
            )


if __name__ == "__main__":
    main()
