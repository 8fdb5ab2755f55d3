"""Exponential moving average of a model's weights (the paper: decay 0.99, used for validation)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEMA:
    """``ema = decay * ema + (1 - decay) * weights`` after every optimizer step.

    Floating-point parameters and buffers are averaged; integer buffers (BatchNorm's batch
    counter) are copied. The averaged copy is what validation and prediction use.
    """

    def __init__(self, model: nn.Module, decay: float = 0.99) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1); got {decay!r}.")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        current = model.state_dict()
        for name, average in self.module.state_dict().items():
            value = current[name].detach()
            if average.dtype.is_floating_point:
                average.mul_(self.decay).add_(value.to(average.dtype), alpha=1 - self.decay)
            else:
                average.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.module.load_state_dict(state["module"])
