"""``TrainState``: everything a checkpoint saves and restores, on one rank or many.

``fit`` and ``pretrain`` share it: a model, its EMA, the optimizer, a batch sampler following
the :class:`segtrain.sampler.BatchStream` protocol (``state_dict`` / ``load_state_dict``, its
state fingerprinted), the augmentation RNG, the step, the best WLL and the validation records.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from segeval.io import to_jsonable
from segeval.validation import InputError
from segtrain import distributed
from segtrain.config import RunConfig
from segtrain.ema import ModelEMA
from segtrain.sampler import BatchStream


@dataclass
class TrainState:
    """What a checkpoint restores: the model, its EMA, the optimizer, the sampler position, the
    augmentation RNG, the step, the best global validation WLL, and the validation records."""

    model: torch.nn.Module
    ema: ModelEMA
    optimizer: torch.optim.Optimizer
    sampler: BatchStream
    generator: torch.Generator
    step: int = 0
    best_wll: float = math.inf
    records: list[dict[str, Any]] = field(default_factory=list)

    def checkpoint(self, config: RunConfig, ctx: distributed.Context) -> dict[str, Any]:
        """The checkpoint dict (a collective under torchrun: every rank must call it)."""
        return {
            "kind": config.KIND,
            "config": config.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": _gather_objects(self.sampler.state_dict(), ctx),
            "rng": {"augment": _gather_objects(self.generator.get_state(), ctx)},
            "best_wll": self.best_wll,
            "records": json.dumps(to_jsonable(self.records)),
        }

    def restore(self, checkpoint: dict[str, Any], rank: int) -> None:
        """Load a checkpoint; InputError if its content does not fit this run."""
        try:
            self.model.load_state_dict(checkpoint["model"])
            self.ema.load_state_dict(checkpoint["ema"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.sampler.load_state_dict(checkpoint["sampler"][rank])
            self.generator.set_state(checkpoint["rng"]["augment"][rank])
            self.step = _whole(checkpoint["step"])
            self.best_wll = float(checkpoint["best_wll"])
            self.records = json.loads(checkpoint["records"])
            if not all(isinstance(r, dict) for r in self.records):
                raise TypeError("its validation records are not a list of records")
        # A tampered file reaches torch's and the sampler's loaders with any type of value.
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else "no detail"
            raise InputError(
                f"--resume: checkpoints/last.pt does not fit this run ({type(exc).__name__}: "
                f"{detail})."
            ) from exc


def _whole(value: Any) -> int:
    """A step: a whole number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"its step is {value!r}, not a whole number")
    return value


def _gather_objects(value: Any, ctx: distributed.Context) -> list[Any]:
    """The value of every rank, in rank order (one-element list in a single process)."""
    if ctx.world_size == 1:
        return [value]
    gathered: list[Any] = [None] * ctx.world_size
    torch.distributed.all_gather_object(gathered, value)
    return gathered
