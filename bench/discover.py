"""Slice discovery: family-wise error on null data, power on a planted weak slice, speed.

    PYTHONPATH=. python bench/discover.py --null 200 --power 100 --n-boot 200
    PYTHONPATH=. python bench/discover.py --speed --speed-boot 20 [--speed-n 1000000]
    PYTHONPATH=. python bench/discover.py --curve 100 --n 4000 --n-boot 200
    PYTHONPATH=. python bench/discover.py --full 1000  # discover() end to end at 10^6 rows

Null: the model is equally good everywhere (site x view x age bins, order 2, 2000 images);
a family-wise error is any reported slice. Power: the same data with a weak (site=B,
view=MLO) slice; a hit is that slice reported first. Both with Monte-Carlo standard errors.
Power curve (``--curve R``): R datasets per (AUC drop, slice share) of the planted slice, the
rest of the images at AUC 0.856; the share of datasets where the slice is reported, with MC SEs.
Speed: 10^6 rows x 8 columns of 4 values x order 3 (92 families, ~4000 slices), timed over a
few resamples and extrapolated to 1000 (the resamples cost the same each), with the kernel before
(``slice_kernel_before.py``) as the named peer, timed in the same run: ratio peer / ours.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm

from segeval.discover import discover

COLUMNS = "site,view,age:50,60,70"


def _frame(rng, site, view, y, strength) -> pd.DataFrame:
    """Predictions whose scores separate the labels by ``strength`` (binormal), with an age."""
    n = y.size
    score = 1 / (1 + np.exp(-(strength * (y - 0.5) + rng.normal(0, 1, n))))
    return pd.DataFrame(
        {
            "image_id": np.arange(n),
            "label": y,
            "score": score,
            "site": site,
            "view": view,
            "age": rng.uniform(40, 80, n),
        }
    )


def data(seed: int, n: int, weak: float | None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    site = rng.choice(["A", "B", "C"], n)
    view = rng.choice(["CC", "MLO"], n)
    y = rng.integers(0, 2, n)
    strength = np.full(n, 1.5)
    if weak is not None:
        strength[(site == "B") & (view == "MLO")] = weak
    return _frame(rng, site, view, y, strength)


# Two forked workers on two cores run the resamples 1.9x faster than one (segeval.resampling).
TWO_WORKERS = 1.9
BASE_STRENGTH = 1.5  # binormal separation outside the planted slice: AUC = Phi(1.5 / sqrt 2)


def curve_data(seed: int, n: int, drop: float, share: float) -> pd.DataFrame:
    """Like :func:`data`, with the planted slice (site=B & view=MLO) holding ``share`` of the
    images and an AUC lower by ``drop`` than elsewhere (binormal: AUC = Phi(strength / sqrt 2),
    whatever the monotone link)."""
    rng = np.random.default_rng(seed)
    p_b = 2 * share  # view is MLO half the time
    site = rng.choice(["A", "B", "C"], n, p=[(1 - p_b) / 2, p_b, (1 - p_b) / 2])
    view = rng.choice(["CC", "MLO"], n)
    y = rng.integers(0, 2, n)
    base = norm.cdf(BASE_STRENGTH / np.sqrt(2))
    strength = np.full(n, BASE_STRENGTH)
    strength[(site == "B") & (view == "MLO")] = np.sqrt(2) * norm.ppf(base - drop)
    return _frame(rng, site, view, y, strength)


def power_curve(args: argparse.Namespace) -> None:
    """Power to report the planted slice (at any rank, and first) by AUC drop and slice size."""
    drops = [float(d) for d in args.curve_drops.split(",")]
    shares = [float(s) for s in args.curve_shares.split(",")]
    start = time.perf_counter()
    print(
        f"power curve: {args.n} images, order 2, {args.n_boot} resamples, {args.method} at "
        f"alpha 0.05; planted site=B & view=MLO, AUC outside "
        f"{norm.cdf(BASE_STRENGTH / np.sqrt(2)):.3f}"
    )
    print("| AUC drop | slice share (images) | reported (any rank) | reported first |")
    print("| --- | --- | --- | --- |")
    for share in shares:
        for drop in drops:
            anywhere, first = [], []
            for r in range(args.curve):
                seed = 20_000 + 1000 * int(100 * share) + r
                found = discover(
                    curve_data(seed, args.n, drop, share),
                    COLUMNS,
                    order=2,
                    n_boot=args.n_boot,
                    seed=r,
                    method=args.method,
                    leakage=False,
                )
                names = found.reported.slice.tolist()
                anywhere.append("site=B & view=MLO" in names)
                first.append(names[:1] == ["site=B & view=MLO"])
            print(
                f"| {drop:.2f} | {share:.2f} (~{share * args.n:.0f}) | {rate(anywhere)} | "
                f"{rate(first)} |",
                flush=True,
            )
    print(f"{time.perf_counter() - start:.0f} s")


def rate(hits: list[bool]) -> str:
    p = float(np.mean(hits))
    return f"{p:.3f} ± {np.sqrt(p * (1 - p) / len(hits)):.3f} (MC SE, {len(hits)} datasets)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--null", type=int, default=200)
    ap.add_argument("--power", type=int, default=100)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--method", default="max-t")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--speed-boot", type=int, default=20)
    ap.add_argument("--speed-n", type=int, default=10**6)
    ap.add_argument("--full", type=int, default=0, help="resamples of discover() end to end")
    ap.add_argument("--curve", type=int, default=0, help="datasets per cell of the power curve")
    ap.add_argument("--curve-drops", default="0.02,0.05,0.10")
    ap.add_argument("--curve-shares", default="0.05,0.15,0.30")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.speed:
        speed(args.speed_boot, args.speed_n)
        return
    if args.full:
        full(args.full, args.speed_n)
        return
    if args.curve:
        power_curve(args)
        return
    start = time.perf_counter()
    errors = []
    for seed in range(args.null):
        found = discover(
            data(seed, args.n, None),
            COLUMNS,
            order=2,
            n_boot=args.n_boot,
            seed=seed,
            method=args.method,
            leakage=False,
        )
        errors.append(len(found.reported) > 0)
    print(f"null, {args.method}: family-wise error {rate(errors)}")
    hits = []
    for seed in range(args.power):
        found = discover(
            data(10_000 + seed, args.n, 0.3),
            COLUMNS,
            order=2,
            n_boot=args.n_boot,
            seed=seed,
            method=args.method,
            leakage=False,
        )
        top = found.reported.slice.tolist()[:1]
        hits.append(top == ["site=B & view=MLO"])
    print(f"planted (site=B & view=MLO) reported first: power {rate(hits)}")
    print(f"{time.perf_counter() - start:.0f} s")


def speed(n_boot: int, n: int) -> None:
    """Lattice and kernel set-up once, then the kernel on ``n_boot`` resamples drawn as the
    engine draws them (rows), timed apart from the set-up (timing two whole runs and
    subtracting was swamped by the set-up's noise), against the named peer: the kernel before
    the per-cell sums (``slice_kernel_before.py``), timed on the same resamples in the same run,
    alternately, and whose AUCs must be the same bits."""
    from slice_kernel_before import SliceAUCKernel as Before

    from segeval._slice_kernels import SliceAUCKernel
    from segeval.resampling import Resampler
    from segeval.segments import SegmentColumn
    from segeval.slices import build_lattice

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{j}": rng.integers(0, 4, n) for j in range(8)})
    y = rng.integers(0, 2, n).astype(np.int8)
    score = 1 / (1 + np.exp(-(y - 0.5) - rng.normal(0, 1, n)))
    c0 = time.process_time()
    lattice = build_lattice(frame, [SegmentColumn(c) for c in frame.columns], y, order=3)
    t_lattice = time.process_time() - c0
    c0 = time.process_time()
    kernel = SliceAUCKernel(y, score, lattice.families)
    t_kernel = time.process_time() - c0
    c0 = time.process_time()
    before = Before(y, score, lattice.families)
    t_before = time.process_time() - c0
    resampler = Resampler(y, resample="rows")
    # CPU seconds of this process (what a core of one's own would take) and wall seconds (what
    # it took on this machine, shared with other jobs), per resample.
    cpu = {"draw": 0.0, "kernel": 0.0, "peer": 0.0}
    wall = dict(cpu)
    for b in range(n_boot):
        c0, t0 = time.process_time(), time.perf_counter()
        draws = resampler.draw(np.random.default_rng(b))
        w, total = resampler.counts(draws), resampler.total(draws)
        cpu["draw"] += time.process_time() - c0
        wall["draw"] += time.perf_counter() - t0
        # Alternate which goes first, so that neither always finds the caches warm.
        got = {}
        for name in ("kernel", "peer") if b % 2 else ("peer", "kernel"):
            c0, t0 = time.process_time(), time.perf_counter()
            got[name] = (kernel if name == "kernel" else before)(w, total)
            cpu[name] += time.process_time() - c0
            wall[name] += time.perf_counter() - t0
        same = np.array_equal(got["kernel"], got["peer"], equal_nan=True)
        assert same, "the AUCs differ from the peer's"
    per, peer, draw = (cpu[k] / n_boot for k in ("kernel", "peer", "draw"))
    mib = sum(a.nbytes for a in _arrays(kernel)) / 2**20
    mib_peer = sum(a.nbytes for a in _arrays(before)) / 2**20
    print(
        f"{n} rows: {len(lattice.slices)} slices in {len(lattice.families)} families; set-up "
        f"(CPU): lattice {t_lattice:.1f} s, kernel {t_kernel:.1f} s (peer's {t_before:.1f} s); "
        f"kernel arrays {mib:.0f} MiB (peer's {mib_peer:.0f} MiB)"
    )
    print(
        f"per resample, CPU of one core, {n_boot} resamples: kernel {per:.3f} s, peer (kernel "
        f"before) {peer:.3f} s -> ratio {peer / per:.2f}x; the engine's draw {draw:.3f} s; "
        f"every AUC bit-identical to the peer's"
    )
    print(
        f"  wall clock (shared machine): kernel {wall['kernel'] / n_boot:.3f} s, peer "
        f"{wall['peer'] / n_boot:.3f} s -> ratio {wall['peer'] / wall['kernel']:.2f}x; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for name, cost, build in (("kernel", per, t_kernel), ("peer", peer, t_before)):
        setup = t_lattice + build
        one = (setup + 1000 * (cost + draw)) / 60
        two = (setup + 1000 * (cost + draw) / TWO_WORKERS) / 60
        print(
            f"1000 resamples with the {name} (CPU time): ≈ {one:.1f} min on one core, "
            f"≈ {two:.1f} min on two (set-up on one core, then the resamples over two forked "
            f"workers at {TWO_WORKERS}x)"
        )


def full(n_boot: int, n: int) -> None:
    """``discover()`` end to end on the speed data (two workers), wall and CPU of the process
    and its workers."""
    import resource

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    rng = np.random.default_rng(0)
    preds = pd.DataFrame({f"c{j}": rng.integers(0, 4, n) for j in range(8)})
    y = rng.integers(0, 2, n).astype(np.int8)
    preds["image_id"], preds["label"] = np.arange(n), y
    preds["score"] = 1 / (1 + np.exp(-(y - 0.5) - rng.normal(0, 1, n)))
    c0, t0 = cpu(), time.perf_counter()
    found = discover(preds, ",".join(f"c{j}" for j in range(8)), order=3, n_boot=n_boot, n_jobs=2)
    print(
        f"discover, {n} rows, {len(found.slices)} slices, {n_boot} resamples, 2 workers: wall "
        f"{time.perf_counter() - t0:.1f} s, CPU (process and workers) {cpu() - c0:.1f} s; load "
        f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; peak memory "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB (process), "
        f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20:.1f} GiB (largest worker)"
    )


def _arrays(kernel: object) -> list[np.ndarray]:
    """The numpy arrays a kernel holds (its memory, less Python objects)."""
    out: list[np.ndarray] = []
    stack = [vars(kernel)]
    while stack:
        item = stack.pop()
        values = item.values() if isinstance(item, dict) else item
        for v in values:
            if isinstance(v, np.ndarray):
                out.append(v)
            elif isinstance(v, dict | list | tuple):
                stack.append(v)
            elif hasattr(v, "__dict__") and type(v).__module__ != "builtins":
                stack.append(vars(v))
    return out


if __name__ == "__main__":
    main()
