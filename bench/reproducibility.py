"""Why a run's bits differ across machines, and what ``--reproducible`` costs.

Usage: python bench/reproducibility.py [--steps 24] [--out DIR]

Runs the demo's chain in miniature (``segtrain synth`` of two segments, ``prepare`` at 192x192,
``fit`` from scratch, ``predict``), each command as its own process, on this machine as it is
and on this machine made to act like others:

- *an AVX2-only CPU*: the variables with which ATen, oneDNN, MKL, NumPy and OpenBLAS run the
  code they would run on a processor without AVX-512 (``ATEN_CPU_CAPABILITY=avx2``,
  ``ONEDNN_MAX_CPU_ISA=AVX2``, ``MKL_ENABLE_INSTRUCTIONS=AVX2``, NumPy's AVX-512 targets off,
  ``OPENBLAS_CORETYPE=Haswell``);
- *one core*: ``taskset -c 0``, so torch starts one thread instead of two.

Each chain is run without and with ``--reproducible``. It prints, per chain, a digest of each
stage's output (the images' pixels, the prepared arrays, the best checkpoint's weights, the
scores) and fit's wall time: in the default mode the digests change with the machine; in the
reproducible mode they must not (the script exits 1 if they do). The peer for the time is the
default mode on this machine, both cores.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from segtrain import reproducible

MACHINES = {  # name: (command prefix, held to AVX2)
    "this CPU (AVX-512), 2 cores": ([], False),
    "this CPU (AVX-512), 1 core": (["taskset", "-c", "0"], False),
    "AVX2-only CPU, 2 cores": ([], True),
    "AVX2-only CPU, 1 core": (["taskset", "-c", "0"], True),
}


def avx2_only() -> dict[str, str]:
    """The variables that make each library take the code it takes without AVX-512."""
    return {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "NPY_DISABLE_CPU_FEATURES": reproducible.numpy_above_avx2(),
        "OPENBLAS_CORETYPE": "Haswell",
    }


def digest(arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def chain(folder: Path, prefix: list[str], env: dict[str, str], mode: list[str], steps: int):
    """Run the four commands; return the digests of their outputs and fit's wall time."""

    def segtrain(*args: str) -> float:
        cmd = [*prefix, sys.executable, "-m", "segtrain.cli", args[0], *mode, *args[1:]]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env=os.environ | env, capture_output=True, text=True)
        return time.perf_counter() - start

    raw, cache, run = folder / "raw", folder / "cache", folder / "run"
    segtrain("synth", "--out", str(raw), "--scale", "0.004", "--segments", "S1:Ma,S2:Ma")
    segtrain("prepare", "--manifest", str(raw / "manifest.csv"), "--out", str(cache),
             "--height", "192", "--width", "192", "--workers", "1")  # fmt: skip
    fit_s = segtrain("fit", "--manifest", str(cache / "manifest.csv"),
                     "--segment-by", "source,manufacturer", "--out", str(run),
                     "--steps", str(steps), "--val-every", str(steps // 2), "--batch-size", "8",
                     "--model-width", "0.0625", "--workers", "0", "--device", "cpu",
                     "--lr", "1e-3")  # fmt: skip
    segtrain("predict", "--checkpoint", str(run / "checkpoints" / "best.pt"),
             "--manifest", str(cache / "manifest.csv"), "--model-name", "m",
             "--out", str(folder / "preds.parquet"))  # fmt: skip
    import pydicom

    pixels = [pydicom.dcmread(p).pixel_array for p in sorted(raw.rglob("*.dcm"))]
    prepared = [np.load(p) for p in sorted(cache.rglob("*.npy"))]
    weights = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)
    tensors = [t.numpy() for t in weights["ema"]["module"].values()]
    scores = pd.read_parquet(folder / "preds.parquet").sort_values("image_id").score.to_numpy()
    return {
        "images": digest(pixels),
        "prepared": digest(prepared),
        "weights": digest(tensors),
        "scores": digest([scores]),
        "fit s": f"{fit_s:.1f}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--out", type=Path, help="keep the chains here (default: a temp folder)")
    args = parser.parse_args()
    if shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2:
        print("needs taskset and 2 cores", file=sys.stderr)
        return 2
    root = args.out or Path(tempfile.mkdtemp(prefix="repro-"))
    rows = []
    for mode, flag in (("default", []), ("--reproducible", ["--reproducible"])):
        for name, (prefix, avx2) in MACHINES.items():
            env = avx2_only() if avx2 else {}
            folder = root / f"{mode.strip('-')}-{len(rows)}"
            rows.append(
                {"mode": mode, "machine": name, **chain(folder, prefix, env, flag, args.steps)}
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print("| " + " | ".join(table.columns) + " |")
    print("|" + " --- |" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(map(str, row)) + " |")
    default = table[table["mode"] == "default"]
    repro = table[table["mode"] == "--reproducible"]
    stages = ["images", "prepared", "weights", "scores"]
    for mode, part in (("default", default), ("--reproducible", repro)):
        same = {s: part[s].nunique() == 1 for s in stages}
        print(f"{mode}: the same on every machine: {same}")
    peer, own = float(default["fit s"].iloc[0]), float(repro["fit s"].iloc[0])
    print(f"fit, reproducible mode vs default mode (this CPU, 2 cores): {own:.1f} s vs "
          f"{peer:.1f} s, ratio {own / peer:.2f}")  # fmt: skip
    if args.out is None:
        shutil.rmtree(root)
    return 0 if all(repro[s].nunique() == 1 for s in stages) else 1


if __name__ == "__main__":
    sys.exit(main())
