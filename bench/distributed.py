"""Evaluation on Dask (LocalCluster) against the in-memory engine, Poisson resampling.

Usage: python bench/distributed.py --rows 10000000 --n-boot 1000 --workers 16,2
       [--memory-rows N] [--memory-n-boot B]

Writes the predictions (``--rows`` images x 2 models, 9 segments) as Parquet files in a
temporary folder, evaluates them on a LocalCluster of each ``--workers`` count of processes
(1 thread each) and reports the time and the peak resident memory of each worker (psutil,
sampled every 0.5 s); then the in-memory engine (``resample="poisson"``, wll and auc, one
process) at ``--memory-rows`` images, with the peak memory of this process. Last, the cost of
each in nanoseconds per image x model x resample per core, and its ratio to the in-memory
engine's (the peer): the cost model's constant.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

# This file's name would shadow the `distributed` package: drop its folder from the path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def make(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, 9, n)
    y = (rng.random(n) < 0.1 + 0.02 * seg).astype(np.int8)
    ids = np.char.add("img", np.arange(n).astype(str)).astype(object)
    out = []
    for m, shift in (("a", 1.0), ("b", 1.2)):
        z = rng.normal(size=n) + shift * y + 0.1 * seg
        out.append(
            pd.DataFrame({"image_id": ids, "model": m, "label": y,
                          "score": 1 / (1 + np.exp(-z)), "source": (seg // 3).astype(str),
                          "manufacturer": (seg % 3).astype(str)})
        )  # fmt: skip
    return pd.concat(out, ignore_index=True)


def peak_sampler(client, stop: threading.Event, peaks: dict) -> None:
    import psutil

    def rss() -> int:
        return psutil.Process().memory_info().rss

    while not stop.is_set():
        for w, v in client.run(rss).items():
            peaks[w] = max(peaks.get(w, 0), v)
        stop.wait(0.5)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--workers", default="2", help="worker counts, comma-separated (e.g. 16,4)")
    p.add_argument("--memory-rows", type=int, default=0)
    p.add_argument("--memory-n-boot", type=int, default=0, help="default: --n-boot")
    p.add_argument("--files", type=int, default=20)
    a = p.parse_args()
    warnings.simplefilter("ignore")
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    import segeval as se
    from segeval.distributed import client_for, evaluate_dask, read_parquet_files

    kw = {"segment_by": "source,manufacturer", "baseline": "a", "seed": 0}
    cells: dict[str, float] = {}  # ns per (image x model x resample) x core
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        for i in range(a.files):  # written file by file: the whole frame never in memory
            rows = make(a.rows // a.files, seed=i)
            rows["image_id"] = f"f{i}_" + rows["image_id"].astype(str)
            rows.to_parquet(Path(tmp) / f"part{i:03d}.parquet", index=False)
        print(f"wrote {a.rows} images x 2 models in {time.perf_counter() - t:.1f} s", flush=True)
        for workers in [int(w) for w in a.workers.split(",")]:
            with client_for(None, n_workers=workers) as client:
                stop, peaks = threading.Event(), {}
                sampler = threading.Thread(target=peak_sampler, args=(client, stop, peaks))
                sampler.start()
                t = time.perf_counter()
                ddf = read_parquet_files([f"{tmp}/*.parquet"])
                ev = evaluate_dask(ddf, n_boot=a.n_boot, **kw)
                elapsed = time.perf_counter() - t
                stop.set()
                sampler.join()
            g = ev.metrics.query("segment == '__global__'").auc.round(4).tolist()
            peak = max(peaks.values()) / 2**20
            cells[f"dask, {workers} workers"] = elapsed * workers / (a.rows * 2 * a.n_boot) * 1e9
            print(f"dask: {a.rows} images x 2 models x 9 segments x {a.n_boot} resamples, "
                  f"{workers} workers x 1 thread: {elapsed:.1f} s; peak RSS per worker "
                  f"{peak:.0f} MiB; global AUC {g}", flush=True)  # fmt: skip
    if a.memory_rows:
        n_boot = a.memory_n_boot or a.n_boot
        preds = make(a.memory_rows)
        t = time.perf_counter()
        se.evaluate(preds, resample="poisson", n_boot=n_boot, metrics="wll,auc", n_jobs=1, **kw)
        elapsed = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
        cells["in memory, 1 process"] = elapsed / (a.memory_rows * 2 * n_boot) * 1e9
        print(f"in memory (resample='poisson', metrics wll,auc, one process): {a.memory_rows} "
              f"images x 2 models x {n_boot} resamples: {elapsed:.1f} s; peak RSS {peak:.0f} "
              "MiB", flush=True)  # fmt: skip
    for name, ns in cells.items():
        print(f"cost: {name}: {ns:.1f} ns per image x model x resample per core", end="")
        peer = cells.get("in memory, 1 process")
        print(f" ({ns / peer:.2f}x the in-memory engine's)" if peer else "")


if __name__ == "__main__":
    main()
