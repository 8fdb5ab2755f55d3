"""segtrain fit / predict on tiny synthetic data: outputs, resume, kills, NaN, DDP, bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from segeval.io import read_predictions
from segtrain.checkpoint import load_checkpoint
from segtrain.cli import main
from segtrain.config import TrainConfig
from segtrain.prepare import prepare
from segtrain.synth import make_dataset
from segtrain.train import fit

SIZE = 224
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("data")
    make_dataset(
        tmp / "raw", scale=0.003, segments=[("S1", "Ma"), ("S2", "Ma")], height=256, width=192
    )
    prepare(tmp / "raw" / "manifest.csv", tmp / "cache", height=SIZE, width=SIZE, workers=2)
    return tmp / "cache" / "manifest.csv"


def config(cache: Path, out: Path, **changes) -> TrainConfig:
    values = dict(
        manifest=str(cache),
        segment_by="source,manufacturer",
        out=str(out),
        steps=12,
        val_every=4,
        batch_size=8,
        image_height=SIZE,
        image_width=SIZE,
        width=0.0625,
        workers=0,
        device="cpu",
        lr=1e-3,
    )
    return TrainConfig(**(values | changes))


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    """`segtrain` under torchrun with 2 CPU processes, on a free rendezvous port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(port),
            "-m",
            "segtrain.cli",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_directory(cache, tmp_path):
    run = fit(config(cache, tmp_path / "run"), progress=False)
    for name in (
        "config.toml",
        "split.parquet",
        "metrics.jsonl",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "preds/val.parquet",
    ):
        assert (run / name).is_file(), name
    recs = records(run)
    assert {r["step"] for r in recs} == {4, 8, 12}
    assert {r["segment"] for r in recs} == {"__global__", "(S1, Ma)", "(S2, Ma)"}
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    global_wll = {r["step"]: r["wll"] for r in recs if r["segment"] == "__global__"}
    assert best["step"] == min(global_wll, key=global_wll.get)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 12
    split = pd.read_parquet(run / "split.parquet")
    manifest = pd.read_csv(cache).assign(split=split.split.to_numpy())
    assert (manifest.groupby("patient_id").split.nunique() == 1).all()
    preds = read_predictions([run / "preds" / "val.parquet"])  # segeval reads it as is
    assert len(preds) == (split.split == "val").sum() and preds.model.unique().tolist() == ["run"]


def test_interrupted_and_resumed_equals_uninterrupted(cache, tmp_path):
    straight = fit(config(cache, tmp_path / "a"), progress=False)
    fit(config(cache, tmp_path / "b", steps=8), progress=False)
    resumed = fit(config(cache, tmp_path / "b"), resume=True, progress=False)
    assert records(resumed) == records(straight)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    for key, value in a["ema"]["module"].items():
        torch.testing.assert_close(b["ema"]["module"][key], value, rtol=0, atol=0)


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(cache, tmp_path):
    run = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, signal, torch
        from segtrain import checkpoint
        from segtrain.config import TrainConfig
        from segtrain.train import fit
        real_save, calls = torch.save, []
        def dying_save(obj, f, *a, **k):
            calls.append(f)
            if len(calls) == 3:  # best.pt and last.pt of step 4 are written; die in the next
                with open(f, "wb") as handle:
                    handle.write(b"half")
                os.kill(os.getpid(), signal.SIGKILL)
            real_save(obj, f, *a, **k)
        torch.save = dying_save
        fit(TrainConfig(**{config(cache, run).to_dict()!r}), progress=False)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == -9, done.stderr
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.suffix == ".tmp"]
    assert len(leftovers) == 1  # the killed write's temporary file, never renamed into place
    resumed = fit(config(cache, run), resume=True, progress=False)
    assert {r["step"] for r in records(resumed)} == {4, 8, 12}


def test_nan_loss_stops_with_a_clear_message(cache, tmp_path, monkeypatch):
    import segtrain.train as train

    real, calls = train.F.cross_entropy, []

    def poisoned(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) == 6 else loss

    monkeypatch.setattr(train.F, "cross_entropy", poisoned)
    with pytest.raises(
        train.TrainingError,
        match=r"The loss is nan at step 6; training stopped\. "
        r"The last good checkpoint is",
    ):
        fit(config(cache, tmp_path / "run"), progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 4


def test_two_gloo_processes_equal_one_with_the_same_global_batch(cache, tmp_path):
    args = [
        "fit",
        "--manifest",
        str(cache),
        "--segment-by",
        "source,manufacturer",
        "--steps",
        "8",
        "--val-every",
        "4",
        "--batch-size",
        "8",
        "--image-size",
        f"{SIZE}x{SIZE}",
        "--width",
        "0.0625",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--lr",
        "0.00001",
        "--ema-decay",
        "0",
        "--no-augment",
    ]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    done = torchrun(*args, "--out", str(tmp_path / "two"))
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = records(tmp_path / "one"), records(tmp_path / "two")
    assert [(r["step"], r["segment"]) for r in one] == [(r["step"], r["segment"]) for r in two]
    # Same batches, and batch norm over the global batch: the running statistics of every layer
    # agree (per-rank statistics of half batches would be off by far more than 1e-3). The
    # weights agree to within Adam's first steps, which are lr * sign(gradient) and so flip
    # where a gradient is at rounding level: |difference| <= 2 * lr * steps.
    m1 = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")["model"]
    m2 = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")["model"]
    for key, value in m1.items():
        if "running" in key:
            torch.testing.assert_close(m2[key], value, rtol=1e-3, atol=1e-4)
        elif value.dtype.is_floating_point:
            assert float((m2[key] - value).abs().max()) <= 2 * 1e-5 * 8 + 1e-7, key
    for a, b in zip(one, two, strict=True):
        if a["wll"] is not None:
            assert b["wll"] == pytest.approx(a["wll"], abs=1e-4), (a, b)
    p1 = pd.read_parquet(tmp_path / "one" / "preds" / "val.parquet")
    p2 = pd.read_parquet(tmp_path / "two" / "preds" / "val.parquet")
    assert p1.image_id.tolist() == p2.image_id.tolist()  # gathered without duplicates, in order
    np.testing.assert_allclose(p2.score, p1.score, atol=1e-4)


def test_a_run_folder_refused_by_rank_0_stops_every_rank(cache, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("someone else's")
    done = torchrun(
        "fit",
        "--manifest",
        str(cache),
        "--segment-by",
        "source",
        "--out",
        str(tmp_path / "busy"),
        "--steps",
        "2",
        "--val-every",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
    )
    assert done.returncode != 0
    assert done.stderr.count("is not empty; give --resume") == 2  # both ranks say why
    assert (tmp_path / "busy" / "notes.txt").read_text() == "someone else's"


def test_predict_feeds_segeval_report(cache, tmp_path, capsys):
    run = fit(config(cache, tmp_path / "run", steps=4), progress=False)
    out = tmp_path / "preds.parquet"
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(run / "checkpoints" / "best.pt"),
                "--manifest",
                str(cache),
                "--model-name",
                "tiny",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    preds = read_predictions([out])
    assert len(preds) == len(pd.read_csv(cache)) and set(preds.model) == {"tiny"}
    assert preds.score.between(0, 1).all()
    assert {"source", "manufacturer", "patient_id"} <= set(preds.columns)
    from segeval.cli import main as segeval_main

    assert (
        segeval_main(
            [
                "report",
                "--preds",
                str(out),
                "--segment-by",
                "source,manufacturer",
                "--n-boot",
                "20",
                "--out",
                str(tmp_path / "r.html"),
            ]
        )
        == 0
    )


def test_bad_input(cache, tmp_path, capsys):
    def run(*argv):
        code = main([str(a) for a in argv])
        return code, capsys.readouterr().err

    code, err = run("fit", "--resume", tmp_path)
    assert code == 2 and "is not a segtrain run (no config.toml)" in err
    base = [
        "fit",
        "--manifest",
        cache,
        "--segment-by",
        "source,manufacturer",
        "--image-size",
        f"{SIZE}x{SIZE}",
        "--width",
        "0.0625",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    code, err = run(*base, "--out", tmp_path / "r", "--steps", "3", "--val-every", "5")
    assert code == 2 and "steps (3) must be at least val-every (5)" in err
    assert run(*base, "--out", tmp_path / "r", "--steps", "2", "--val-every", "2")[0] == 0
    code, err = run(*base, "--out", tmp_path / "r", "--steps", "2", "--val-every", "2")
    assert code == 2 and "is not empty; give --resume to continue that run or --overwrite" in err
    code, err = run("fit", "--resume", tmp_path / "r", "--lr", "0.5")
    assert code == 2 and "was made with other settings: lr" in err
    assert (
        run(*base, "--out", tmp_path / "r", "--steps", "2", "--val-every", "2", "--overwrite")[0]
        == 0
    )
    code, err = run(
        "predict",
        "--checkpoint",
        tmp_path / "r" / "config.toml",
        "--manifest",
        cache,
        "--model-name",
        "m",
        "--out",
        tmp_path / "p.parquet",
    )
    assert code == 2 and "cannot be read" in err
    code, err = run(
        *base,
        "--out",
        tmp_path / "w",
        "--steps",
        "2",
        "--val-every",
        "2",
        "--width",
        "0.125",
        "--init-backbone",
        tmp_path / "r" / "checkpoints" / "best.pt",
    )
    shapes = "features.1.weight has shape (2, 1, 3, 3) there and (4, 1, 3, 3) here"
    assert code == 2 and f"was made for another backbone: {shapes}" in err
    # A checkpoint for 224 x 224 images on arrays of another size: the mismatch is named.
    code, err = run(
        "predict",
        "--checkpoint",
        tmp_path / "r" / "checkpoints" / "best.pt",
        "--manifest",
        cache.parent.parent / "raw" / "manifest.csv",
        "--model-name",
        "m",
        "--out",
        tmp_path / "p.parquet",
        "--device",
        "cpu",
    )
    assert code == 0  # raw images are preprocessed to the checkpoint's size: no mismatch
