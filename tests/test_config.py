"""Training configuration: TOML round trip, resolution order, checks."""

from __future__ import annotations

import re

import pytest

from segeval.validation import InputError
from segtrain.config import TrainConfig, load_toml, resolve, to_toml


def test_toml_round_trip_and_resolution_order(tmp_path):
    config = TrainConfig(
        manifest=str(tmp_path / "m.csv"),
        segment_by="source,manufacturer",
        out=str(tmp_path / "run"),
        steps=50,
        val_every=10,
        strategy="single-segment",
        segment="(S1, Ma)",
        hflip=True,
        width=0.5,
    )
    path = tmp_path / "c.toml"
    path.write_text(to_toml(config))
    assert resolve(path) == config
    assert resolve(path, steps=70, lr=None).steps == 70  # flags override the file
    assert resolve(path).lr == 1e-4  # defaults fill the rest


def test_paths_are_stored_absolute(tmp_path, monkeypatch):
    # Paths in a file are relative to its folder; flags to the current one. Stored absolute,
    # RUN/config.toml works from any folder (`segtrain fit --resume RUN`).
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "c.toml"
    path.write_text('manifest = "data/m.csv"\nsegment_by = "source"\nout = "../runs/a"\n')
    monkeypatch.chdir(tmp_path)
    config = resolve(path)
    assert config.manifest == str(tmp_path / "cfg" / "data" / "m.csv")
    assert config.out == str(tmp_path / "runs" / "a")
    assert resolve(path, manifest="here.csv").manifest == str(tmp_path / "here.csv")


def test_bad_settings(tmp_path):
    with pytest.raises(InputError, match=r"--steps \(5\) must be at least --val-every \(10\)"):
        TrainConfig(manifest="m", segment_by="s", out="o", steps=5, val_every=10)
    with pytest.raises(InputError, match="--strategy must be one of"):
        TrainConfig(manifest="m", segment_by="s", out="o", strategy="random")
    path = tmp_path / "c.toml"
    path.write_text('manifest = "m"\nlearning_rate = 3\n')
    with pytest.raises(InputError, match="unknown setting\\(s\\): learning_rate"):
        load_toml(path)
    path.write_text("manifest = \n")
    with pytest.raises(InputError, match="is not valid TOML"):
        load_toml(path)
    with pytest.raises(InputError, match="Missing setting\\(s\\): --segment-by, --out"):
        resolve(None, manifest="m")


def test_differences_ignore_where_and_how_long():
    a = TrainConfig(manifest="m", segment_by="s", out="o", steps=10, val_every=5)
    b = TrainConfig(
        manifest="m", segment_by="s", out="elsewhere", steps=20, val_every=5, workers=0, lr=0.01
    )
    assert a.differences(b) == ["lr"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"image_height": 16, "image_width": 16},
            "--image-size 16x16 is too small for the model: each side must be at least 190 pixels",
        ),
        ({"width": float("nan")}, "--model-width is out of range; got nan"),
        ({"seed": -1}, "--seed must be an integer >= 0; got -1"),
        ({"workers": -1}, "--workers must be an integer >= 0; got -1"),
        ({"device": "foo"}, "--device must be auto, cpu, cuda or cuda:N; got 'foo'"),
        ({"lr": float("inf")}, "--lr is out of range; got inf"),
        ({"strategy": "single-segment"}, "--strategy single-segment needs --segment"),
        ({"segment": "S1/Ma"}, "--segment is only used with --strategy single-segment; got"),
    ],
)
def test_each_bad_setting_is_named_by_its_flag(change, message):
    with pytest.raises(InputError, match=re.escape(message)):
        TrainConfig(manifest="m", segment_by="s", out="o", **change)


def test_every_registered_strategy_is_a_setting_and_a_fit_choice():
    from segtrain.cli import build_parser
    from segtrain.sampling import STRATEGIES

    fit = build_parser()._subparsers._group_actions[0].choices["fit"]  # type: ignore[union-attr]
    (strategy,) = [a for a in fit._actions if a.dest == "strategy"]
    assert list(strategy.choices) == list(STRATEGIES)
    config = TrainConfig(manifest="m", segment_by="s", out="o", strategy="square-root")
    assert config.strategy == "square-root"
