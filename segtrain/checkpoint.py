"""Checkpoints: one dict with a schema version, written atomically, read without pickle code.

A checkpoint holds the config, the step, the model, the EMA, the optimizer, the sampler and the
random states. It is written to a temporary file and moved into place (``os.replace``), so a
process killed while saving leaves the previous checkpoint intact; it is read with
``torch.load(weights_only=True)``, so opening one cannot run arbitrary code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from segeval.io import atomic_write
from segeval.validation import InputError

SCHEMA_VERSION = 1
MODEL_KEYS = ("image_height", "image_width", "width")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the schema version) atomically."""
    payload = {"schema_version": SCHEMA_VERSION, **state}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; InputError if it is not one."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"The checkpoint {str(p)!r} does not exist.")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message advises weights_only=False, i.e. running the file's code: never that.
        raise InputError(
            f"{str(p)!r} is not a trusted segtrain checkpoint: segtrain did not write it, or it "
            f"holds Python objects that segtrain does not load."
        ) from exc
    except Exception as exc:  # torch raises many types for truncated or foreign files
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"The checkpoint {str(p)!r} cannot be read ({detail}).") from exc
    if not isinstance(state, dict) or state.get("schema_version") != SCHEMA_VERSION:
        version = state.get("schema_version") if isinstance(state, dict) else None
        raise InputError(
            f"{str(p)!r} is not a segtrain checkpoint of schema {SCHEMA_VERSION} "
            f"(schema {version!r})."
        )
    return state


def check_same_model(saved: dict[str, Any], wanted: dict[str, Any], what: str) -> None:
    """Raise naming every model setting in which a checkpoint's config differs from ours."""
    mismatched = [
        f"{k} is {saved.get(k)!r} there and {wanted.get(k)!r} here"
        for k in MODEL_KEYS
        if saved.get(k) != wanted.get(k)
    ]
    if mismatched:
        raise InputError(f"{what} was made for another model: {'; '.join(mismatched)}.")
