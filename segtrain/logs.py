"""What a training run reports while it runs: progress, validation lines, train.jsonl, TensorBoard.

On a terminal a progress bar; elsewhere (nohup, SLURM, a redirected log) one short line every
``log_every`` steps and one per validation. ``RUN/train.jsonl`` gets a record every
``log_every`` steps (step, mean loss since the last record, learning rate, images/s) and, with
``--tensorboard``, so does ``RUN/tensorboard/`` (plus every segment's validation WLL and AUC).
Only rank 0 reports.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from segeval import GLOBAL
from segeval.validation import InputError


def check_tensorboard() -> None:
    """InputError if the tensorboard package is missing (checked before a run starts)."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise InputError(
            "--tensorboard needs the tensorboard package: pip install 'segeval[tensorboard]'."
        ) from None


def tensorboard_writer(folder: Path) -> Any:
    """A ``SummaryWriter`` on ``folder``."""
    check_tensorboard()
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder))


class TrainLog:
    """Rank 0's reports of one run, from step ``start`` on."""

    def __init__(
        self,
        out: Path,
        *,
        steps: int,
        start: int,
        every: int,
        show: bool,
        tensorboard: bool,
        name: str = "fit",
    ) -> None:
        self.path = out / "train.jsonl"
        self.every = every
        self.terminal = show and sys.stdout.isatty()
        self.lines = show and not self.terminal
        self.bar = None
        if self.terminal:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=steps, initial=start, desc=name, unit="step")
        self.writer = tensorboard_writer(out / "tensorboard") if tensorboard else None
        self._reset()

    def _reset(self) -> None:
        self.loss_sum, self.count, self.images, self.started = 0.0, 0, 0, time.perf_counter()

    def step(self, step: int, loss: float, lr: float, images: int) -> None:
        """After optimizer step ``step``: ``loss`` of its batch of ``images`` (all ranks)."""
        self.loss_sum += loss
        self.count += 1
        self.images += images
        rate = self.images / max(time.perf_counter() - self.started, 1e-9)
        if self.bar is not None:
            self.bar.update()
            self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:.1f}")
        if step % self.every:
            return
        record = {"step": step, "loss": self.loss_sum / self.count, "lr": lr, "images_s": rate}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            self.writer.add_scalar("train/loss", record["loss"], step)
            self.writer.add_scalar("train/lr", lr, step)
        if self.lines:
            print(f"step {step}: loss {record['loss']:.4f}, {rate:.1f} images/s", flush=True)
        self._reset()

    def validation(self, records: list[dict[str, Any]], best_step: int | None) -> None:
        """One line for a validation step: global WLL and AUC, each segment's AUC, best step."""
        glob = next(r for r in records if r["segment"] == GLOBAL)
        local = ", ".join(f"{r['segment']} {_num(r['auc'])}" for r in records if r is not glob)
        line = (
            f"validation at step {glob['step']}: WLL {_num(glob['wll'])}, AUC "
            f"{_num(glob['auc'])}; "
            + (f"AUC per segment: {local}; " if local else "")
            + f"best step {best_step or '-'}"
        )
        if self.bar is not None:
            self.bar.write(line)
        elif self.lines:
            print(line, flush=True)
        if self.writer is not None:
            for r in records:
                name = "global" if r is glob else r["segment"]
                for metric in ("wll", "auc"):
                    if r[metric] is not None and math.isfinite(r[metric]):
                        self.writer.add_scalar(f"val/{metric}/{name}", r[metric], r["step"])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _num(value: float | None) -> str:
    return f"{value:.4f}" if value is not None and math.isfinite(value) else "n/a"
