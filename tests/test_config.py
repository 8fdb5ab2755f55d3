"""Training configuration: TOML round trip, resolution order, checks."""

from __future__ import annotations

import pytest

from segeval.validation import InputError
from segtrain.config import TrainConfig, load_toml, resolve, to_toml


def test_toml_round_trip_and_resolution_order(tmp_path):
    config = TrainConfig(
        manifest="m.csv",
        segment_by="source,manufacturer",
        out="run",
        steps=50,
        val_every=10,
        segment="(S1, Ma)",
        hflip=True,
        width=0.5,
    )
    path = tmp_path / "c.toml"
    path.write_text(to_toml(config))
    assert resolve(path) == config
    assert resolve(path, steps=70, lr=None).steps == 70  # flags override the file
    assert resolve(path).lr == 1e-4  # defaults fill the rest


def test_bad_settings(tmp_path):
    with pytest.raises(InputError, match=r"steps \(5\) must be at least val-every \(10\)"):
        TrainConfig(manifest="m", segment_by="s", out="o", steps=5, val_every=10)
    with pytest.raises(InputError, match="strategy must be one of"):
        TrainConfig(manifest="m", segment_by="s", out="o", strategy="random")
    path = tmp_path / "c.toml"
    path.write_text('manifest = "m"\nlearning_rate = 3\n')
    with pytest.raises(InputError, match="unknown setting\\(s\\): learning_rate"):
        load_toml(path)
    path.write_text("manifest = \n")
    with pytest.raises(InputError, match="is not valid TOML"):
        load_toml(path)
    with pytest.raises(InputError, match="Missing setting\\(s\\): segment_by, out"):
        resolve(None, manifest="m")


def test_differences_ignore_where_and_how_long():
    a = TrainConfig(manifest="m", segment_by="s", out="o", steps=10, val_every=5)
    b = TrainConfig(
        manifest="m", segment_by="s", out="elsewhere", steps=20, val_every=5, workers=0, lr=0.01
    )
    assert a.differences(b) == ["lr"]
