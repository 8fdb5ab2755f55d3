"""Batch-sampler throughput: PeriodicBatchSampler against torch's WeightedRandomSampler.

Run:  python bench/sampling.py [--items 10000000] [--batches 200000]

Both samplers are given 10M items in 9 segments with rare positives; WeightedRandomSampler gets
the weights that give each (segment, label) pool the same expected share as periodic sampling,
and is batched by torch's BatchSampler (batch 24), as a user would. Then both are tried on
2**24 + 1 items, where torch.multinomial stops. Also times Algorithm 1 (build_pattern) against
the paper's slot-by-slot loop, and alone on L = 10**7 slots and 1,000 DSs.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch
from torch.utils.data import BatchSampler, WeightedRandomSampler

from segtrain.sampler import PeriodicBatchSampler
from segtrain.sampling import build_pattern


def slot_by_slot(n_min: np.ndarray) -> list[int]:
    """The paper's Algorithm 1 as written: a while-loop that scans slot by slot."""
    total = int(n_min.sum())
    pattern = [-1] * total
    for ds in np.argsort(n_min, kind="stable"):
        k = int(n_min[ds])
        for j in range(k):
            slot = j * total // k
            while pattern[slot] != -1:
                slot = (slot + 1) % total
            pattern[slot] = int(ds)
    return pattern


def quotas(total: int, m: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 20_000, m).astype(float)
    return np.maximum(1, (n * total / n.sum()).astype(np.int64))


def bench_pattern() -> None:
    small = quotas(200_000, 100)
    t = time.perf_counter()
    ours_small = build_pattern(small)
    ours_t = time.perf_counter() - t
    t = time.perf_counter()
    assert slot_by_slot(small) == ours_small.tolist()
    ref_t = time.perf_counter() - t
    print(
        f"pattern L={small.sum():,} M=100: build_pattern {ours_t:.3f} s, slot-by-slot loop "
        f"{ref_t:.2f} s -> {ref_t / ours_t:.0f}x (identical patterns)"
    )
    big = quotas(10_000_000, 1000)
    t = time.perf_counter()
    build_pattern(big)
    print(
        f"pattern L={big.sum():,} M=1,000: build_pattern {time.perf_counter() - t:.2f} s "
        f"(target < 5 s)"
    )


def make_items(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, 9, n)
    y = (rng.random(n) < 0.005 + 0.01 * seg).astype(np.int8)
    return y, seg


def equivalent_weights(sampler: PeriodicBatchSampler, y: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Per-item weights giving pool (DS, label) the share p_DS / 2, spread over its items."""
    p = sampler.stream.plan.proportion
    pool = seg * 2 + y
    sizes = np.bincount(pool, minlength=2 * p.size)
    return (p[seg] / 2) / sizes[pool]


def rate(batches, n_batches: int, batch_size: int) -> float:
    t = time.perf_counter()
    for _ in itertools.islice(batches, n_batches):
        pass
    return n_batches * batch_size / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000_000)
    parser.add_argument("--batches", type=int, default=200_000)
    args = parser.parse_args()
    bench_pattern()
    b = 24
    y, seg = make_items(args.items)
    t = time.perf_counter()
    ours = PeriodicBatchSampler(y, seg, batch_size=b, seed=0)
    setup = time.perf_counter() - t
    weights = torch.as_tensor(equivalent_weights(ours, y, seg))
    ours_rate = rate(iter(ours), args.batches, b)
    t = time.perf_counter()
    peer = BatchSampler(
        WeightedRandomSampler(weights, args.batches * b, replacement=True), b, drop_last=False
    )
    peer_rate = rate(iter(peer), args.batches, b)
    print(f"items={args.items:,} batches={args.batches:,} x {b}")
    print(f"PeriodicBatchSampler      {ours_rate / 1e6:6.2f} M indices/s (set-up {setup:.1f} s)")
    print(f"WeightedRandomSampler+BS  {peer_rate / 1e6:6.2f} M indices/s")
    print(f"ratio ours/peer: {ours_rate / peer_rate:.2f}x  (targets: >= 5 M/s, >= 1x)")

    n_big = 2**24 + 1
    y2, seg2 = make_items(n_big, seed=1)
    try:
        list(itertools.islice(iter(WeightedRandomSampler(torch.ones(n_big), 10)), 10))
        print("WeightedRandomSampler on 2**24 + 1 items: ran")
    except RuntimeError as exc:
        print(f"WeightedRandomSampler on 2**24 + 1 items: RuntimeError: {exc}")
    big = PeriodicBatchSampler(y2, seg2, batch_size=b, seed=0)
    first = next(iter(big))
    print(f"PeriodicBatchSampler on 2**24 + 1 items: ran (first batch max index {max(first):,})")


if __name__ == "__main__":
    main()
