"""segtrain pretrain on tiny data: it learns, fit's split, resume, init-backbone, bad input."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import confusion_matrix, log_loss, roc_auc_score

from segeval.validation import InputError
from segtrain.checkpoint import load_checkpoint
from segtrain.cli import main
from segtrain.config import TrainConfig
from segtrain.lesions import LESION_CLASSES
from segtrain.pretrain import (
    PretrainConfig,
    load_patches,
    patch_metrics,
    pretrain,
    read_records,
)
from segtrain.synth import make_dataset
from segtrain.train import build_model, load_data

# Images of 512x384 prepared to 448x336: a 224x224 patch is a quarter of the image, as in the
# paper (1152x832), so that a patch shows its lesion rather than the whole breast.
RAW = (512, 384)
SIZE = (448, 336)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("data")
    make_dataset(tmp, scale=0.01, segments=[("S1", "Ma"), ("S2", "Ma")], image_format="png", seed=1)
    return tmp


def config(raw: Path, out: Path, **changes) -> PretrainConfig:
    values = dict(
        manifest=str(raw / "manifest.csv"),
        lesions=str(raw / "lesions.csv"),
        segment_by="source,manufacturer",
        out=str(out),
        steps=30,
        val_every=10,
        batch_size=20,
        image_height=SIZE[0],
        image_width=SIZE[1],
        width=0.125,
        ema_decay=0.8,
        workers=0,
        device="cpu",
    )
    return PretrainConfig(**(values | changes))


@pytest.fixture(scope="module")
def run(raw, tmp_path_factory) -> Path:
    return pretrain(config(raw, tmp_path_factory.mktemp("runs") / "pre"), progress=False)


def test_a_tiny_run_beats_chance_on_the_five_classes(run):
    records = read_records(run)
    assert [r["step"] for r in records] == [10, 20, 30]
    # Macro one-vs-rest AUC on the validation patients' patches, after 30 steps of 20 patches
    # (chance: 0.5; about 30 patches, so a standard error near 0.05).
    assert records[-1]["auc"] > 0.65, records[-1]
    best = min(records, key=lambda r: r["wll"])
    assert sum(best["n"].values()) == np.sum(best["confusion"]) >= 20
    assert set(best["per_class_accuracy"]) == set(LESION_CLASSES)
    for name in ("config.toml", "split.parquet", "patches.csv", "report.html"):
        assert (run / name).is_file(), name
    page = (run / "report.html").read_text()
    assert "Confusion matrix" in page and f"<td>{best['step']}</td>" in page
    assert load_checkpoint(run / "checkpoints" / "best.pt")["step"] == best["step"]


def test_the_split_is_fits(raw, run):
    fit_config = TrainConfig(
        manifest=str(raw / "manifest.csv"), segment_by="source,manufacturer", out="unused"
    )
    fits = load_data(fit_config).manifest.set_index("image_id")["split"]
    ours = pd.read_parquet(run / "split.parquet").set_index("image_id")["split"]
    pd.testing.assert_series_equal(ours, fits.loc[ours.index], check_names=False)
    patches = pd.read_csv(run / "patches.csv")
    assert (patches.split.to_numpy() == fits.loc[patches.image_id.astype(str)].to_numpy()).all()
    assert set(patches.split) == {"train", "val"}


def test_fit_starts_from_the_pretrained_backbone_bit_for_bit(raw, run):
    best = run / "checkpoints" / "best.pt"
    fit_config = TrainConfig(
        manifest=str(raw / "manifest.csv"),
        segment_by="source,manufacturer",
        out="unused",
        image_height=SIZE[0],
        image_width=SIZE[1],
        width=0.125,
        init_backbone=str(best),
    )
    model = build_model(fit_config)
    pretrained = load_checkpoint(best)["ema"]["module"]
    own = model.backbone.state_dict()
    assert own.keys() == {k.removeprefix("backbone.") for k in pretrained}
    for key, value in own.items():
        assert torch.equal(value, pretrained[f"backbone.{key}"]), key
    with pytest.raises(InputError, match=r"made for another backbone: features.1.weight has shape"):
        build_model(replace(fit_config, width=0.0625))


def test_lesions_in_any_row_order_give_the_same_patches(raw, tmp_path):
    shuffled = pd.read_csv(raw / "lesions.csv").sample(frac=1.0, random_state=0)
    shuffled.to_csv(tmp_path / "lesions.csv", index=False)
    ours = load_patches(config(raw, tmp_path / "a", lesions=str(tmp_path / "lesions.csv")))
    theirs = load_patches(config(raw, tmp_path / "b"))
    key = ["image_id", "x0", "y0", "x1", "y1"]
    a = ours.table.sort_values(key).reset_index(drop=True)
    b = theirs.table.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[[*key, "cx", "cy", "split"]], b[[*key, "cx", "cy", "split"]])
    for ra, rb in zip(a.itertuples(), b.itertuples(), strict=True):
        np.testing.assert_array_equal(ours.images[ra.image], theirs.images[rb.image])


def test_interrupted_and_resumed_equals_uninterrupted(raw, tmp_path):
    short = dict(steps=6, val_every=2, batch_size=10)
    whole = pretrain(config(raw, tmp_path / "whole", **short), progress=False)
    part = pretrain(config(raw, tmp_path / "part", **(short | {"steps": 4})), progress=False)
    # Resumed with a data-loading worker: patches do not depend on who loads them.
    pretrain(config(raw, part, **(short | {"workers": 1})), resume=True, progress=False)
    a = load_checkpoint(whole / "checkpoints" / "last.pt")
    b = load_checkpoint(part / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema"):
        flat_a = a[key] if key == "model" else a[key]["module"]
        flat_b = b[key] if key == "model" else b[key]["module"]
        for name, value in flat_a.items():
            assert torch.equal(value, flat_b[name]), (key, name)
    assert (whole / "metrics.jsonl").read_text() == (part / "metrics.jsonl").read_text()


def test_patch_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), [30, 5, 12, 40, 8])
    logits = rng.normal(size=(y.size, 5)) + 1.5 * np.eye(5)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    m = patch_metrics(y, probs)
    assert m["auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"), abs=1e-12)
    weights = 1 / np.bincount(y)[y]  # each class counts the same: the paper's WLL per lesion
    assert m["wll"] == pytest.approx(log_loss(y, probs, sample_weight=weights), abs=1e-9)
    assert m["loss"] == pytest.approx(log_loss(y, probs), abs=1e-9)
    np.testing.assert_array_equal(m["confusion"], confusion_matrix(y, probs.argmax(1)))
    assert m["per_class_accuracy"]["benign_soft_tissue"] == pytest.approx(
        np.mean(probs[y == 1].argmax(1) == 1)
    )


def cli(*argv: object) -> list[str]:
    return [str(a) for a in argv]


def bad_table(raw: Path, tmp: Path, change) -> Path:
    table = pd.read_csv(raw / "lesions.csv")
    change(table)
    path = tmp / "lesions.csv"
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.loc.__setitem__((3, "lesion_class"), "cyst"),
            "unknown lesion_class value(s) cyst; expected one of healthy_tissue,",
        ),
        (
            lambda t: t.loc.__setitem__((2, "x1"), 500),
            "has 1 box(es) outside their image (x0, y0, x1, y1 in pixels of the original "
            "image, width x height): ",
        ),
        (
            lambda t: t.loc.__setitem__((0, "image_id"), "nobody"),
            "names 1 image_id(s) that are not in the manifest: nobody.",
        ),
        (
            lambda t: t.loc.__setitem__((1, "y0"), t.loc[1, "y1"]),
            "box(es) that are not numbers with x0 < x1 and y0 < y1 (line(s) 3)",
        ),
    ],
)
def test_bad_lesion_tables_end_with_one_line_and_code_2(raw, tmp_path, capsys, change, message):
    lesions = bad_table(raw, tmp_path, change)
    out = tmp_path / "run"
    code = main(
        cli(
            "pretrain",
            "--manifest",
            raw / "manifest.csv",
            "--lesions",
            lesions,
            "--segment-by",
            "source,manufacturer",
            "--out",
            out,
            "--steps",
            "2",
            "--val-every",
            "2",
            "--image-size",
            "224x224",
            "--model-width",
            "0.0625",
            "--device",
            "cpu",
            "--workers",
            "0",
        )
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert err.startswith("segtrain pretrain: error: ") and err.count("\n") == 1
    assert not (out / "checkpoints").exists()


def test_other_bad_input(raw, run, tmp_path, capsys):
    base = cli("pretrain", "--lesions", raw / "lesions.csv", "--segment-by", "source,manufacturer",
               "--device", "cpu", "--workers", "0")  # fmt: skip
    prepared = raw / "prepared.csv"  # beside the images its paths point at
    pd.read_csv(raw / "manifest.csv").assign(background=0.2).to_csv(prepared, index=False)
    for argv, message in [
        ([*base, "--manifest", prepared, "--out", tmp_path / "a"], "is a prepared manifest"),
        ([*base, "--out", tmp_path / "a"], "Missing setting(s): --manifest (flags or config"),
        ([*base, "--manifest", raw / "manifest.csv", "--out", run], "is not empty; give --resume"),
        (["pretrain", "--resume", tmp_path], "is not a segtrain run (no config.toml)"),
        (
            [
                *base,
                "--manifest",
                raw / "manifest.csv",
                "--out",
                tmp_path / "b",
                "--patch-size",
                "64",
            ],
            "patch-size 64 is too small for the backbone",
        ),
        (
            [*base, "--manifest", raw / "manifest.csv", "--out", tmp_path / "c", "--device", "tpu"],
            "device must be auto, cpu, cuda or cuda:N; got 'tpu'.",
        ),
    ]:
        assert main(cli(*argv)) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    before = (run / "metrics.jsonl").read_text()
    assert main(cli("pretrain", "--resume", run, "--batch-size", "8")) == 2
    assert "was made with other --batch-size" in capsys.readouterr().err
    assert (run / "metrics.jsonl").read_text() == before  # nothing written before is lost
    assert json.loads(before.splitlines()[0])["segment"] == "__global__"


def test_predict_names_a_pretrain_checkpoint(raw, run, tmp_path, capsys):
    argv = cli("predict", "--checkpoint", run / "checkpoints" / "best.pt", "--manifest",
               raw / "manifest.csv", "--model-name", "m", "--out", tmp_path / "p.csv")  # fmt: skip
    assert main(argv) == 2
    assert "is a checkpoint of segtrain pretrain, not of segtrain fit." in capsys.readouterr().err


def test_two_gloo_processes_equal_one_with_the_same_global_batch(raw, tmp_path):
    # pretrain gains torchrun through the skeleton: each rank draws its block of every global
    # batch (keys, hence patches, included) and batch norm covers the global batch.
    from tests.test_train import torchrun

    args = cli("pretrain", "--manifest", raw / "manifest.csv", "--lesions", raw / "lesions.csv",
               "--segment-by", "source,manufacturer", "--steps", "4", "--val-every", "2",
               "--batch-size", "10", "--image-size", f"{SIZE[0]}x{SIZE[1]}", "--model-width",
               "0.0625", "--workers", "0", "--device", "cpu", "--lr", "0.00001",
               "--ema-decay", "0", "--no-augment")  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    done = torchrun(*args, "--out", str(tmp_path / "two"))
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = read_records(tmp_path / "one"), read_records(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [2, 4]
    for a, b in zip(one, two, strict=True):
        assert b["n"] == a["n"]  # every validation patch scored once, gathered in order
        assert b["wll"] == pytest.approx(a["wll"], abs=1e-4)
    m1 = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")["model"]
    m2 = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")["model"]
    for key, value in m1.items():
        if "running" in key:
            torch.testing.assert_close(m2[key], value, rtol=1e-3, atol=1e-4)
        elif value.dtype.is_floating_point:  # Adam's first steps: lr * sign(gradient)
            assert float((m2[key] - value).abs().max()) <= 2 * 1e-5 * 4 + 1e-7, key


def test_a_nan_loss_stops_as_fits_does(raw, tmp_path, capsys, monkeypatch):
    import segtrain.pretrain as module

    monkeypatch.setattr(module.F, "cross_entropy", lambda *a, **k: torch.tensor(float("nan")))
    out = tmp_path / "run"
    argv = cli("pretrain", "--manifest", raw / "manifest.csv", "--lesions", raw / "lesions.csv",
               "--segment-by", "source,manufacturer", "--out", out, "--steps", "2",
               "--val-every", "2", "--batch-size", "10", "--image-size", f"{SIZE[0]}x{SIZE[1]}",
               "--model-width", "0.0625", "--device", "cpu", "--workers", "0")  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "The loss is nan at step 1; training stopped. No checkpoint was written: the first "
        "validation is at step 2." in err
    )  # not a checkpoint path that does not exist
    assert err.count("\n") == 1
    assert not out.exists()  # failed before its first checkpoint: nothing left behind


def small(raw: Path, out: Path, *extra: object) -> list[str]:
    """A pretrain command line that runs in seconds (192x192 images, 192x192 patches)."""
    return cli("pretrain", "--manifest", raw / "manifest.csv", "--lesions", raw / "lesions.csv",
               "--segment-by", "source,manufacturer", "--out", out, "--steps", "2",
               "--val-every", "2", "--batch-size", "10", "--image-size", "192x192",
               "--patch-size", "192", "--model-width", "0.0625", "--device", "cpu",
               "--workers", "0", *extra)  # fmt: skip


@pytest.fixture(scope="module")
def finished(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small") / "run"
    assert main(small(raw, out)) == 0
    return out


def contents(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_overwrite_with_a_bad_lesion_table_keeps_the_finished_run(raw, finished, tmp_path, capsys):
    before = contents(finished)
    lesions = bad_table(raw, tmp_path, lambda t: t.loc.__setitem__((3, "lesion_class"), "cyst"))
    assert main(small(raw, finished, "--overwrite", "--lesions", lesions)) == 2
    assert "unknown lesion_class value(s) cyst" in capsys.readouterr().err
    assert contents(finished) == before  # validated before anything was removed


def test_a_refused_pretrain_leaves_nothing_and_the_folder_starts_later(raw, tmp_path, capsys):
    out = tmp_path / "run"
    lesions = bad_table(raw, tmp_path, lambda t: t.loc.__setitem__((2, "x1"), 500))
    assert main(small(raw, out, "--lesions", lesions)) == 2
    assert "outside their image" in capsys.readouterr().err
    assert not out.exists()
    assert main(small(raw, out)) == 0


def test_a_pretrain_killed_before_its_first_checkpoint_restarts_and_resumes(raw, tmp_path):
    from tests.test_train import dies_writing

    out = tmp_path / "run"
    killed = dies_writing("patches.csv", *small(raw, out))
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (out / "config.toml").is_file() and list(out.glob(".patches.csv.*.tmp"))
    assert main(small(raw, out)) == 0  # the same command starts it again
    (out / "checkpoints" / "last.pt").unlink()  # as if killed before it
    assert main(cli("pretrain", "--resume", out)) == 0  # --resume starts from step 0
    assert [r["step"] for r in read_records(out)] == [2]


def test_the_config_holds_absolute_paths(raw, finished, tmp_path, monkeypatch):
    text = (finished / "config.toml").read_text()
    for key, path in [("manifest", raw / "manifest.csv"), ("lesions", raw / "lesions.csv")]:
        assert f'{key} = "{path.resolve()}"' in text
    run = tmp_path / "moved"
    shutil.copytree(finished, run)
    monkeypatch.chdir(tmp_path)  # --resume from another folder
    assert main(cli("pretrain", "--resume", run, "--steps", "4")) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--image-size", "16x16"], "--image-size 16x16 is too small for the model: each side"),
        (["--model-width", "nan"], "--model-width is out of range; got nan."),
        (
            ["--patch-size", "100000"],
            "--patch-size 100000 is larger than the image (--image-size 192x192): at most 192.",
        ),
    ],
)
def test_pretrain_refuses_bad_sizes(raw, tmp_path, capsys, extra, message):
    assert main(small(raw, tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


TAMPERED = {
    "optimizer": lambda s: s.update(optimizer="x"),
    "sampler list": lambda s: s.update(sampler=[[1]]),
    "sampler None": lambda s: s.update(sampler=[None]),
    "records": lambda s: s.update(records="5"),
    "step": lambda s: s.update(step=-5),
}


@pytest.mark.parametrize("name", list(TAMPERED))
def test_a_tampered_last_pt_is_refused_in_one_line(finished, tmp_path, capsys, name):
    from segtrain.checkpoint import save_checkpoint

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    TAMPERED[name](state)
    save_checkpoint(run / "checkpoints" / "last.pt", state)
    before = contents(run)
    assert main(cli("pretrain", "--resume", run, "--steps", "4")) == 2
    err = capsys.readouterr().err
    assert "--resume: checkpoints/last.pt does not fit this run (" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert contents(run) == before


def test_init_backbone_refuses_list_weights_and_nan_weights(finished, tmp_path):
    from segtrain.checkpoint import load_backbone, save_checkpoint
    from segtrain.model import Backbone

    state = load_checkpoint(finished / "checkpoints" / "best.pt")
    module = state["ema"]["module"]
    first = next(k for k in module if k.startswith("backbone.") and "weight" in k)
    bad = tmp_path / "bad.pt"
    save_checkpoint(bad, {**state, "ema": {**state["ema"], "module": {**module, first: [1.0]}}})
    with pytest.raises(InputError, match=r"holds no backbone weights: .* is a list, not a tensor"):
        load_backbone(Backbone(0.0625), bad)
    nan = {**module, first: module[first] * float("nan")}
    save_checkpoint(bad, {**state, "ema": {**state["ema"], "module": nan}})
    with pytest.raises(InputError, match=r"holds NaN or infinite backbone weights \(" + first):
        load_backbone(Backbone(0.0625), bad)
