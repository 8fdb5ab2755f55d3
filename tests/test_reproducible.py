"""segtrain's reproducible mode: the process restarts in it, torch runs as it says, and a fit
gives the same bits whatever the machine's code paths and core count."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from segtrain import reproducible
from segtrain.cli import main
from segtrain.prepare import prepare
from segtrain.synth import make_dataset

ROOT = Path(__file__).resolve().parents[1]
# The bench's emulation of another CPU, loaded by path: bench/ on sys.path would shadow the
# `distributed` package (bench/distributed.py) in every later test's Dask workers.
_spec = importlib.util.spec_from_file_location(
    "reproducibility", ROOT / "bench" / "reproducibility.py"
)
assert _spec is not None and _spec.loader is not None
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)
avx2_only = _bench.avx2_only

PROBE = (
    "import os, sys, torch; from segtrain import reproducible; reproducible.enter(); "
    "print(sys.argv[1:], torch.get_num_threads(), torch.backends.mkldnn.enabled, "
    "torch._C._get_nnpack_enabled(), torch.backends.cpu.get_cpu_capability(), "
    "os.environ['MKL_CBWR'], reproducible.active())"
)


def test_enter_restarts_the_process_in_the_mode_with_its_arguments():
    env = {k: v for k, v in os.environ.items() if k != reproducible.MARKER}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "a", "--b"],
        env=env | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split("\n")[0] == "['a', '--b'] 2 False False AVX2 AVX2,STRICT 2"


def test_the_environment_names_only_what_numpy_dispatches():
    from numpy._core._multiarray_umath import __cpu_dispatch__ as targets

    env = reproducible.environment(3)
    assert env[reproducible.MARKER] == env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    assert set(env["NPY_DISABLE_CPU_FEATURES"].split()) <= set(targets)
    assert reproducible.active() is None  # this test process is not in the mode
    with pytest.raises(ValueError, match="at least 1 thread"):
        reproducible.enter(0)


def test_called_from_python_it_refuses_rather_than_replace_the_caller(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "d"), "--reproducible"]) == 2
    assert "before torch starts" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("data")
    make_dataset(
        tmp / "raw", scale=0.003, segments=[("S1", "Ma"), ("S2", "Ma")], height=256, width=192
    )
    prepare(tmp / "raw" / "manifest.csv", tmp / "cache", height=192, width=192, workers=1)
    return tmp / "cache" / "manifest.csv"


def fit(cache: Path, out: Path, env: dict[str, str], *flags: str) -> list[np.ndarray]:
    subprocess.run(
        [sys.executable, "-m", "segtrain.cli", "fit", "--manifest", str(cache),
         "--segment-by", "source,manufacturer", "--out", str(out), "--steps", "6",
         "--val-every", "3", "--batch-size", "8", "--model-width", "0.0625", "--workers", "1",
         "--device", "cpu", "--lr", "1e-3", *flags],
        env=os.environ | {"PYTHONPATH": str(ROOT)} | env,
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    state = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    return [t.numpy() for t in state["ema"]["module"].values()]


def test_a_fit_is_the_same_on_another_cpu_and_core_count(cache, tmp_path):
    """The other machine: AVX-512 code paths off in every library, and 3 threads asked for."""
    here = fit(cache, tmp_path / "here", {}, "--reproducible")
    there = fit(cache, tmp_path / "there", avx2_only() | {"OMP_NUM_THREADS": "3"}, "--reproducible")
    assert len(here) == len(there) > 0
    for a, b in zip(here, there, strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit
    for run in (tmp_path / "here", tmp_path / "there"):  # the run folder says how it ran
        (start,) = map(json.loads, (run / "environment.jsonl").read_text().splitlines())
        assert start["reproducible"] and start["step"] == 0
        assert (start["threads"], start["cpu_capability"], start["onednn"]) == (2, "AVX2", False)
        assert start["torch"] == torch.__version__ and start["numpy"] == np.__version__
