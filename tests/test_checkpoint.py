"""Checkpoints: atomic, schema-versioned, loaded without pickle code."""

from __future__ import annotations

import pytest
import torch

from segeval.validation import InputError
from segtrain.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip_and_atomic_failure(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 3, "model": {"w": torch.ones(2)}, "config": {"width": 1.0}})
    assert load_checkpoint(path)["step"] == 3

    def broken(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 4})
    assert load_checkpoint(path)["step"] == 3  # the previous one is intact
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_foreign_files_are_refused(tmp_path):
    torch.save({"step": 1}, tmp_path / "old.pt")
    with pytest.raises(InputError, match="is not a segtrain checkpoint of schema 1"):
        load_checkpoint(tmp_path / "old.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot be read"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_weights_only_refuses_code(tmp_path):
    torch.save({"schema_version": 1, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match="is not a trusted segtrain checkpoint") as caught:
        load_checkpoint(tmp_path / "evil.pt")
    assert "weights_only=False" not in str(caught.value)  # never advise turning it off
