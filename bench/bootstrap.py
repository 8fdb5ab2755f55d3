"""Bootstrap speed and memory, against the loop a user would write with scikit-learn.

Run:  python bench/bootstrap.py            (all three measurements)
      python bench/bootstrap.py --quick    (smaller sizes, for a smoke run)

Prints, for each measurement, our time and the peer's (or its extrapolation, labelled as such),
their ratio, and the peak resident memory of a fresh process running only our computation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(np.int8)
    a = np.clip(rng.normal(0.4 + 0.15 * y, 0.2), 0, 1)
    b = np.clip(a + rng.normal(0.03 * y, 0.1), 0, 1)
    return y, a, b


def sklearn_loop(y, a, b, n_boot: int, seed: int = 0) -> np.ndarray:
    """What a user writes: resample indices, call roc_auc_score twice per resample."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for k in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        yb = y[idx]
        out[k] = roc_auc_score(yb, b[idx]) - roc_auc_score(yb, a[idx])
    return out


def ours_in_subprocess(n: int, n_boot: int, resample: str, n_clusters: int) -> dict:
    """Run our bootstrap in a fresh process so its peak RSS is ours alone.

    Reports the main process's peak RSS and the largest worker's (forked workers share the
    parent's pages until they write, so parent + workers x worker is an upper bound).
    """
    code = f"""
import json, resource, time, numpy as np, sys
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from bootstrap import make_data
import segeval as se
y, a, b = make_data({n})
clusters = np.random.default_rng(1).integers(0, {n_clusters}, {n}) if {n_clusters} else None
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
r = se.bootstrap_delta_auc(y, a, b, n_boot={n_boot}, resample={resample!r}, clusters=clusters)
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps(dict(seconds=dt, peak_mib=peak / 1024, data_mib=base / 1024,
                      worker_mib=worker / 1024,
                      delta=r.delta, ci=[r.ci_low, r.ci_high])))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    args = parser.parse_args()
    n_boot = 200 if args.quick else 2000
    n_mid, n_big = (5_000, 100_000) if args.quick else (50_000, 1_000_000)
    print(f"cores: {os.cpu_count()}  numpy {np.__version__}")

    # 1. 50,000 rows: ours vs the scikit-learn loop, both full 2000 resamples.
    y, a, b = make_data(n_mid)
    ours = ours_in_subprocess(n_mid, n_boot, "rows", 0)
    t = time.perf_counter()
    sklearn_loop(y, a, b, n_boot)
    peer = time.perf_counter() - t
    print(
        f"[paired dAUC, rows]  n={n_mid:,} n_boot={n_boot}: segeval {ours['seconds']:.2f} s, "
        f"sklearn roc_auc_score loop {peer:.1f} s -> {peer / ours['seconds']:.0f}x faster "
        f"(target >= 100x)"
    )

    # 2. 1,000,000 rows: ours in full; the sklearn loop timed on 20 resamples and extrapolated.
    ours = ours_in_subprocess(n_big, n_boot, "rows", 0)
    y, a, b = make_data(n_big)
    k = 5 if args.quick else 20
    t = time.perf_counter()
    sklearn_loop(y, a, b, k)
    peer = (time.perf_counter() - t) / k * n_boot
    print(
        f"[paired dAUC, rows]  n={n_big:,} n_boot={n_boot}: segeval {ours['seconds']:.2f} s "
        f"(target < 20 s); peak RSS {ours['peak_mib']:.0f} MiB main (data and imports "
        f"{ours['data_mib']:.0f} MiB) + {ours['worker_mib']:.0f} MiB per worker, upper bound "
        f"{ours['peak_mib'] + 2 * ours['worker_mib']:.0f} MiB (target < 2048 MiB); "
        f"sklearn loop ~{peer:.0f} s "
        f"(extrapolated from {k} resamples) "
        f"-> {peer / ours['seconds']:.0f}x"
    )

    # 3. Cluster resampling: 1,000,000 rows from 300,000 patients.
    n_pat = 30_000 if args.quick else 300_000
    ours = ours_in_subprocess(n_big, n_boot, "cluster", n_pat)
    print(
        f"[paired dAUC, cluster] n={n_big:,} patients={n_pat:,} n_boot={n_boot}: segeval "
        f"{ours['seconds']:.2f} s; peak RSS {ours['peak_mib']:.0f} MiB main + "
        f"{ours['worker_mib']:.0f} MiB per worker"
    )


if __name__ == "__main__":
    main()
