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
from torch import nn

from segeval.io import atomic_write
from segeval.validation import InputError

SCHEMA_VERSION = 1


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


def load_backbone(backbone: nn.Module, path: str | Path) -> None:
    """Load the EMA backbone weights of a checkpoint (``pretrain`` or ``fit``) into ``backbone``.

    Every tensor must be there with the shape ``backbone`` has; if not, one sentence names the
    first that differs (a different model width, usually).
    """
    state = load_checkpoint(path)
    module = state.get("ema", {}).get("module", {}) if isinstance(state.get("ema"), dict) else {}
    module = module if isinstance(module, dict) else {}
    weights = {
        k.removeprefix("backbone."): v
        for k, v in module.items()
        if isinstance(k, str) and k.startswith("backbone.")
    }
    own = backbone.state_dict()
    odd = [k for k, v in weights.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise InputError(
            f"{str(path)!r} holds no backbone weights: backbone.{odd[0]} is a "
            f"{type(weights[odd[0]]).__name__}, not a tensor."
        )
    missing = [k for k in own if k not in weights]
    if missing or len(weights) != len(own):
        raise InputError(
            f"{str(path)!r} holds no backbone of this model ({len(missing)} of its "
            f"{len(own)} tensors missing, {len(weights)} found)."
        )
    wrong = [k for k, v in own.items() if tuple(weights[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise InputError(
            f"{str(path)!r} was made for another backbone: {k} has shape "
            f"{tuple(weights[k].shape)} there and {tuple(own[k].shape)} here ({len(wrong)} "
            f"tensor(s) differ; another model width?)."
        )
    broken = [k for k, v in weights.items() if v.is_floating_point() and not v.isfinite().all()]
    if broken:
        raise InputError(
            f"{str(path)!r} holds NaN or infinite backbone weights (backbone.{broken[0]} and "
            f"{len(broken) - 1} more): the run that wrote it diverged."
        )
    backbone.load_state_dict(weights)
