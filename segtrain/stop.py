"""Ctrl-C during training: finish the current step, save, and say how to resume.

The first Ctrl-C only raises a flag that the loop reads after each step (under torchrun every
rank learns whether any rank was asked); a second one interrupts at once.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import torch

from segtrain import distributed


class Interrupted(KeyboardInterrupt):
    """Ctrl-C: the current step was finished and last.pt written; the message says how to resume."""


class StopRequest:
    """Ctrl-C asks the loop to stop after the current step; a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.asked = False
        self.previous: Any = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def requested(self, ctx: distributed.Context) -> bool:
        """Whether any rank was asked to stop (a collective under torchrun)."""
        if ctx.world_size == 1:
            return self.asked
        flag = torch.tensor([float(self.asked)], device=ctx.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())
