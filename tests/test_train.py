"""segtrain fit / predict on tiny synthetic data: outputs, resume, kills, NaN, DDP, bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import segeval as se
from segeval.io import read_predictions
from segtrain.checkpoint import load_checkpoint
from segtrain.cli import main
from segtrain.config import TrainConfig
from segtrain.prepare import prepare
from segtrain.synth import make_dataset
from segtrain.train import fit

SIZE = 192  # just above the model's minimum of 190: fast
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
    assert not torch.are_deterministic_algorithms_enabled()
    run = fit(config(cache, tmp_path / "run"), progress=False)
    assert not torch.are_deterministic_algorithms_enabled()  # a CPU run's setting is undone
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
    starts = [json.loads(line) for line in (resumed / "environment.jsonl").open()]
    assert [s["step"] for s in starts] == [0, 8]  # one record per start: what ran each part
    assert {(s["reproducible"], s["torch"], s["device"]) for s in starts} == {
        (False, torch.__version__, "cpu")
    }


def test_resuming_with_fewer_steps_than_done_is_refused_and_changes_nothing(cache, tmp_path):
    run = fit(config(cache, tmp_path / "b", steps=8), progress=False)
    files = [run / "config.toml", run / "metrics.jsonl"]
    before = [f.read_bytes() for f in files]
    with pytest.raises(se.InputError, match="--steps 4 is below the 8 steps this run has done"):
        fit(config(cache, tmp_path / "b", steps=4), resume=True, progress=False)
    assert [f.read_bytes() for f in files] == before


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
        "--model-width",
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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = fit(config(cache, tmp_path / "run", steps=4), progress=False)
    assert not [w for w in caught if "segtrain prepare" in str(w.message)]  # prepared: no hint
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


def test_fit_on_an_unprepared_manifest_says_once_how_to_prepare(cache, tmp_path, capsys):
    """fit on a raw manifest trained at 1152x832, about one image a second, without a word."""
    raw = cache.parent.parent / "raw" / "manifest.csv"
    args = ["fit", "--manifest", str(raw), "--segment-by", "source,manufacturer"]
    args += ["--out", str(tmp_path / "run"), "--steps", "2", "--val-every", "2"]
    args += ["--batch-size", "8", "--image-size", "192x192", "--model-width", "0.0625"]
    assert main([*args, "--device", "cpu", "--workers", "0", "--log-every", "2"]) == 0
    err = capsys.readouterr().err
    hints = [line for line in err.splitlines() if "segtrain prepare" in line]
    assert len(hints) == 1, err
    assert hints[0].startswith(f"warning: {str(raw.resolve())!r} is not from segtrain prepare")
    assert f"segtrain prepare --manifest {raw.resolve()} --out cache --height 192" in hints[0]
    assert "UserWarning" not in err and "Traceback" not in err
    # the run itself is unchanged: it trained at the size asked
    assert "image_height = 192" in (tmp_path / "run" / "config.toml").read_text()


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
        "--model-width",
        "0.0625",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    code, err = run(*base, "--out", tmp_path / "r", "--steps", "3", "--val-every", "5")
    assert code == 2 and "--steps (3) must be at least --val-every (5)" in err
    assert run(*base, "--out", tmp_path / "r", "--steps", "2", "--val-every", "2")[0] == 0
    code, err = run(*base, "--out", tmp_path / "r", "--steps", "2", "--val-every", "2")
    assert code == 2 and "is not empty; give --resume to continue that run or --overwrite" in err
    code, err = run("fit", "--resume", tmp_path / "r", "--lr", "0.5")
    assert code == 2 and "was made with other --lr" in err
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
    assert code == 2 and "is not a trusted segtrain checkpoint" in err
    assert "weights_only=False" not in err
    code, err = run(
        *base,
        "--out",
        tmp_path / "w",
        "--steps",
        "2",
        "--val-every",
        "2",
        "--model-width",
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


def cli(*args: str, cwd: Path = ROOT, **kwargs) -> subprocess.Popen[str]:
    """`python -m segtrain.cli ...` as a new process (this checkout's code, from any folder)."""
    return subprocess.Popen(
        [sys.executable, "-m", "segtrain.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **kwargs,
    )


def fit_args(cache: Path, out: Path) -> list[str]:
    # The CLI's defaults otherwise: --workers 2 (loader workers prefetching ahead of the loop).
    return [
        "fit",
        "--manifest",
        str(cache),
        "--segment-by",
        "source,manufacturer",
        "--out",
        str(out),
        "--steps",
        "12",
        "--val-every",
        "4",
        "--log-every",
        "1",
        "--batch-size",
        "8",
        "--model-width",
        "0.0625",
        "--device",
        "cpu",
        "--lr",
        "0.001",
    ]


def wait_for(predicate, process: subprocess.Popen[str], timeout: float = 300) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def logged_steps(run: Path) -> list[int]:
    path = run / "train.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [json.loads(line)["step"] for line in lines if line.endswith("}")]


def test_sigkill_with_loader_workers_then_resume_equals_uninterrupted(cache, tmp_path):
    straight = cli(*fit_args(cache, tmp_path / "a"))
    assert straight.wait(timeout=600) == 0, straight.communicate()[1][-3000:]
    run = tmp_path / "b"
    victim = cli(*fit_args(cache, run))
    # Killed between two validations (after last.pt of step 4, once step 6 is logged): the
    # workers have prefetched batches beyond step 6 that the loop never used.
    wait_for(lambda: max(logged_steps(run), default=0) >= 6, victim)
    victim.kill()
    victim.wait()
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # config.toml holds absolute paths: --resume works from any folder
    resumed = cli("fit", "--resume", str(run), cwd=elsewhere)
    assert resumed.wait(timeout=600) == 0, resumed.communicate()[1][-3000:]
    a, b = tmp_path / "a", run
    assert (b / "metrics.jsonl").read_text() == (a / "metrics.jsonl").read_text()
    ema_a = load_checkpoint(a / "checkpoints" / "last.pt")["ema"]["module"]
    ema_b = load_checkpoint(b / "checkpoints" / "last.pt")["ema"]["module"]
    for key, value in ema_a.items():
        assert torch.equal(ema_b[key], value), key
    losses = [
        [(r["step"], r["loss"]) for r in map(json.loads, (x / "train.jsonl").open())]
        for x in (a, b)
    ]
    assert losses[0] == losses[1] and [s for s, _ in losses[0]] == list(range(1, 13))


def test_ctrl_c_finishes_the_step_saves_and_says_how_to_resume(cache, tmp_path):
    import signal

    run = tmp_path / "run"
    victim = cli(*fit_args(cache, run))
    wait_for(lambda: max(logged_steps(run), default=0) >= 5, victim)
    victim.send_signal(signal.SIGINT)
    _, err = victim.communicate(timeout=300)
    assert victim.returncode == 130, err
    assert err.count("\n") == 1 and "Traceback" not in err
    step = load_checkpoint(run / "checkpoints" / "last.pt")["step"]
    assert 5 <= step < 12
    assert f"interrupted at step {step}; checkpoints/last.pt is saved" in err
    assert f"segtrain fit --resume {run}" in err
    resumed = cli("fit", "--resume", str(run))
    assert resumed.wait(timeout=600) == 0, resumed.communicate()[1][-3000:]
    assert logged_steps(run) == list(range(1, 13))


def test_a_log_run_on_some_segments_then_predict_its_validation_side(cache, tmp_path):
    # stdout is a pipe (as under nohup or SLURM): progress and validation lines, one each.
    run = tmp_path / "run"
    args = fit_args(cache, run)
    args[args.index("--steps") + 1] = "4"
    args[args.index("--log-every") + 1] = "2"
    fit = cli(*args, "--segments", "S1,Ma", "--workers", "0")
    out, err = fit.communicate(timeout=600)
    assert fit.returncode == 0, err
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "step 2",
        "step 4",
        "validation at step 4",
        f"wrote {run}",
    ]
    assert "images/s" in lines[0] and "loss" in lines[0]
    assert "AUC per segment: (S1, Ma) " in lines[2] and lines[2].endswith("best step 4")
    assert {r["segment"] for r in records(run)} == {"__global__", "(S1, Ma)"}
    logged = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [2, 4]
    assert all(set(r) == {"step", "loss", "lr", "images_s"} for r in logged)
    assert all(r["lr"] == 1e-3 and r["loss"] > 0 and r["images_s"] > 0 for r in logged)
    preds = tmp_path / "val.csv"
    argv = ["predict", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--manifest",
            str(cache), "--model-name", "m", "--out", str(preds), "--split", "val",
            "--segments", "(S1, Ma)", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    split = pd.read_parquet(run / "split.parquet")
    assert sorted(pd.read_csv(preds).image_id) == sorted(split.image_id[split.split == "val"])
    assert set(pd.read_csv(preds).source) == {"S1"}


def test_a_run_killed_before_its_first_checkpoint_starts_again(cache, tmp_path):
    run = tmp_path / "run"
    args = fit_args(cache, run)
    args[args.index("--val-every") + 1] = "12"
    victim = cli(*args)
    wait_for(lambda: max(logged_steps(run), default=0) >= 2, victim)
    victim.kill()
    victim.wait()
    assert (run / "config.toml").is_file() and not (run / "checkpoints" / "last.pt").exists()
    args[args.index("--steps") + 1] = "2"  # the same command (shorter): no --overwrite needed
    args[args.index("--val-every") + 1] = "2"
    again = cli(*args)
    assert again.wait(timeout=600) == 0, again.communicate()[1]
    assert logged_steps(run) == [1, 2]
    (run / "checkpoints" / "last.pt").unlink()  # as if killed before it again
    resumed = cli("fit", "--resume", str(run))  # starts from step 0
    assert resumed.wait(timeout=600) == 0, resumed.communicate()[1]
    assert logged_steps(run) == [1, 2] and {r["step"] for r in records(run)} == {2}


# A process that dies (SIGKILL) inside the atomic write of its run folder's FILE: the
# temporary file exists, the file itself not yet, as a kill at that instant leaves them.
DIE_WRITING = """
import os, signal, sys
import segeval.io
import segtrain.rundir

original = segeval.io.atomic_write

def dying(path, write):
    if os.path.basename(path) == sys.argv[1]:
        original(path, lambda tmp: os.kill(os.getpid(), signal.SIGKILL))
    original(path, write)

for module in (segeval.io, segtrain.rundir):
    module.atomic_write = dying
from segtrain.cli import main
sys.exit(main(sys.argv[2:]))
"""


def dies_writing(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`segtrain ARGS` in a new process killed while it writes the run folder's ``name``."""
    return subprocess.run(
        [sys.executable, "-c", DIE_WRITING, name, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
        check=False,
    )


def test_a_fit_killed_while_writing_its_split_starts_again(cache, tmp_path):
    run = tmp_path / "run"
    args = fit_args(cache, run)
    args[args.index("--steps") + 1] = "2"
    args[args.index("--val-every") + 1] = "2"
    killed = dies_writing("split.parquet", *args, "--workers", "0")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert [p.name for p in run.glob(".split.parquet.*.tmp")], sorted(os.listdir(run))
    again = cli(*args, "--workers", "0")  # the same command, no --overwrite
    assert again.wait(timeout=600) == 0, again.communicate()[1]
    assert not list(run.glob("*.tmp")) and not (run / ".segtrain.lock").exists()
    assert logged_steps(run) == [1, 2]


def test_a_second_writer_of_a_run_folder_is_refused(cache, tmp_path):
    run = tmp_path / "run"
    long = fit_args(cache, run)
    long[long.index("--steps") + 1] = "100000"  # runs until killed below
    first = cli(*long)
    wait_for(lambda: (run / "config.toml").is_file(), first)
    for command in ("fit", "pretrain"):
        args = fit_args(cache, run)
        args[0] = command
        second = cli(
            *args,
            "--overwrite",
            *(["--lesions", "x.csv", "--patch-size", "192"] if command == "pretrain" else []),
        )
        _, err = second.communicate(timeout=300)
        assert second.returncode == 2, err
        assert err == (
            f"segtrain {command}: error: The run folder {str(run)!r} is being written by "
            f"another segtrain process (pid {first.pid}); wait for it to end or give another "
            f"--out.\n"
        )
    assert first.poll() is None  # the first writer went on
    first.kill()  # the kernel releases its lock: a killed run leaves none behind
    first.wait()
    short = fit_args(cache, run)
    short[short.index("--steps") + 1] = "2"
    short[short.index("--val-every") + 1] = "2"
    again = cli(*short, "--overwrite", "--workers", "0")
    assert again.wait(timeout=600) == 0, again.communicate()[1][-3000:]
    assert logged_steps(run) == [1, 2] and not (run / ".segtrain.lock").exists()
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2
