"""The run skeleton that ``fit`` and ``pretrain`` share: one way to start, step, validate,
checkpoint, stop and resume.

A command supplies a :class:`Task` (what a batch is, the loss, how the EMA weights are
validated, what is written at the start and the end) and a ``build`` function that makes the
:class:`Run` (every object of the run, restored from a checkpoint when resuming); :func:`execute`
does the rest, in the same order for both:

1. ``distributed.setup``: rank, world size and device (one resolver);
2. the run folder is checked (``rundir``), by rank 0, before anything is written;
3. ``build`` checks every input and makes the run; a resumed run gets its ``TrainState`` back
   (model, EMA, optimizer, the sampler's fingerprinted state, RNG, step, records);
4. rank 0 writes ``config.toml`` and the task's files, then :func:`train_loop` runs
   :func:`train_step` (forward, the task's loss, backward, Adam, EMA) until ``steps``,
   validating and checkpointing every ``val_every`` steps (best = lowest global WLL);
5. the task finishes (fit's validation predictions, pretrain's page).

A NaN loss is a :class:`TrainingError` naming the last good checkpoint; Ctrl-C finishes the
step, writes ``last.pt`` and raises :class:`Interrupted`; on CPU the run is deterministic
(``torch.use_deterministic_algorithms``, restored afterwards), and a resumed run equals an
uninterrupted one bit for bit.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pandas as pd
import torch
from torch.utils.data import DataLoader

from segeval import GLOBAL
from segeval.validation import InputError
from segtrain import distributed, reproducible
from segtrain.checkpoint import load_checkpoint, save_checkpoint
from segtrain.config import RunConfig
from segtrain.inference import autocast
from segtrain.logs import TrainLog, check_tensorboard
from segtrain.rundir import (
    check_run_dir,
    discard_unstarted,
    last_checkpoint,
    run_lock,
    start_run_dir,
    write_validation,
)
from segtrain.state import TrainState
from segtrain.stop import Interrupted, StopRequest

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
C = TypeVar("C", bound=RunConfig)


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss); the message says what was kept."""


class Task(Protocol):
    """What a command adds to the skeleton."""

    def batch(self, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A loader batch as (inputs, targets) on the device, augmented if the run augments."""

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch (a scalar)."""

    def validate(self, state: TrainState) -> list[dict[str, Any]]:
        """Validation records of the EMA weights at ``state.step`` (one has segment GLOBAL and
        the ``wll`` that picks best.pt); a collective under torchrun."""

    def split(self) -> pd.DataFrame:
        """image_id -> train/val(/test): what ``split.parquet`` records."""

    def start(self, out: Path) -> None:
        """Rank 0, before the first step (after the run folder is started): the task's files."""

    def finish(self, run: Run) -> None:
        """After the last step (every rank): the task's final outputs."""


@dataclass
class Run:
    """Every object of a run, built by the command's ``build``."""

    config: RunConfig
    ctx: distributed.Context
    state: TrainState
    model: torch.nn.Module  # what the step calls: the model, under DDP and torch.compile
    loader: DataLoader[Any]
    task: Task


def train_step(
    state: TrainState,
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    ctx: distributed.Context,
    loss: Loss,
) -> float:
    """One optimizer step: forward, ``loss``, backward, Adam, EMA; returns the loss.

    ``model`` is what is called (``state.model`` itself, or wrapped by DDP / torch.compile).
    """
    model.train()
    with autocast(ctx):
        outputs = model(images)
    value_tensor = loss(outputs.float(), labels)
    value = float(value_tensor.item())
    if not math.isfinite(value):
        raise TrainingError(f"The loss is {value} at step {state.step + 1}; training stopped.")
    state.optimizer.zero_grad(set_to_none=True)
    value_tensor.backward()  # type: ignore[no-untyped-call]
    state.optimizer.step()
    state.ema.update(state.model)
    state.step += 1
    return value


def wrap_model(model: torch.nn.Module, ctx: distributed.Context, *, compile: bool) -> Any:
    """What the step calls: ``model`` (its batch norm converted to the global batch's) under
    DDP when there are several ranks, and torch.compile'd if asked."""
    step_model: torch.nn.Module = model
    if ctx.world_size > 1:
        step_model = torch.nn.parallel.DistributedDataParallel(model)
    if compile:
        return torch.compile(step_model)
    return step_model


def train_loop(run: Run, log: TrainLog | None, stop: StopRequest) -> None:
    """Steps until ``config.steps``: validate and checkpoint every ``val_every`` steps."""
    state, config, ctx, task = run.state, run.config, run.ctx, run.task
    batches = iter(state.sampler.track(run.loader))
    while state.step < config.steps:
        images, labels = task.batch(_next_batch(batches), state.generator)
        try:
            loss = train_step(state, run.model, images, labels, ctx, task.loss)
        except TrainingError as exc:
            last = last_checkpoint(config.out)
            if not last.is_file():  # diverged before the first validation: nothing kept
                raise TrainingError(
                    f"{exc} No checkpoint was written: the first validation is at step "
                    f"{config.val_every}."
                ) from None
            raise TrainingError(
                f"{exc} The last good checkpoint is {str(last)!r} (step of the last validation)."
            ) from None
        if log is not None:
            lr = float(state.optimizer.param_groups[0]["lr"])
            log.step(state.step, loss, lr, images.shape[0] * ctx.world_size)
        saved = state.step % config.val_every == 0 or state.step == config.steps
        if saved:
            best = validate_and_save(run)
            if log is not None:
                log.validation([r for r in state.records if r["step"] == state.step], best)
        if stop.requested(ctx):
            if not saved:
                save_last(run)
            raise Interrupted(
                f"interrupted at step {state.step}; checkpoints/last.pt is saved. Continue with: "
                f"segtrain {config.KIND} --resume {config.out}"
            )


def _next_batch(batches: Iterator[Any]) -> Any:
    try:
        return next(batches)
    except InputError as exc:
        # A loader worker's error arrives as a whole traceback: keep its last line.
        last = str(exc).strip().splitlines()[-1]
        raise InputError(last.split(": ", 1)[-1] if "Traceback" in str(exc) else last) from None


def validate_and_save(run: Run) -> int | None:
    """Validate the EMA weights; rank 0 logs the metrics and writes last.pt (and best.pt).

    Returns the step of the best validation so far.
    """
    state, config, ctx = run.state, run.config, run.ctx
    new = run.task.validate(state)
    state.records += new
    wll = next(r["wll"] for r in new if r["segment"] == GLOBAL)
    improved = wll is not None and math.isfinite(wll) and wll < state.best_wll
    if improved:
        state.best_wll = wll
    checkpoint = state.checkpoint(config, ctx)
    if ctx.is_main:
        write_validation(config.out, checkpoint, state.records, improved=improved)
    distributed.barrier(ctx)  # every rank sees the checkpoints rank 0 has just written
    best = [
        r["step"] for r in state.records if r["segment"] == GLOBAL and r["wll"] == state.best_wll
    ]
    return best[0] if best else None


def save_last(run: Run) -> None:
    """Write last.pt without validating (Ctrl-C between two validations)."""
    checkpoint = run.state.checkpoint(run.config, run.ctx)
    if run.ctx.is_main:
        save_checkpoint(last_checkpoint(run.config.out), checkpoint)
    distributed.barrier(run.ctx)


@contextlib.contextmanager
def deterministic(ctx: distributed.Context) -> Iterator[None]:
    """Deterministic algorithms on CPU while the run lasts; the caller's setting afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if ctx.device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


def execute(
    config: C,
    build: Callable[[C, distributed.Context, dict[str, Any] | None], Run],
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Run ``config`` from start (or from its last checkpoint) to end; return the run folder.

    Every input is checked before the run folder is written. Ctrl-C finishes the current step,
    writes last.pt and raises :class:`Interrupted`.
    """
    try:
        ctx = distributed.setup(config.device)
    except ValueError as exc:  # InputError, or torch's on a bad torchrun environment
        raise InputError(str(exc)) from exc
    try:
        with deterministic(ctx):
            return _execute(
                config, build, ctx, resume=resume, overwrite=overwrite, progress=progress
            )
    finally:
        distributed.teardown()


def _execute(
    config: C,
    build: Callable[[C, distributed.Context, dict[str, Any] | None], Run],
    ctx: distributed.Context,
    *,
    resume: bool,
    overwrite: bool,
    progress: bool,
) -> Path:
    if config.tensorboard:
        check_tensorboard()
    with contextlib.ExitStack() as lock:  # rank 0 holds the run folder's lock until the end
        checkpoint = _checked_run_dir(config, ctx, lock, resume=resume, overwrite=overwrite)
        return _run(config, build, ctx, checkpoint, progress=progress)


def _run(
    config: C,
    build: Callable[[C, distributed.Context, dict[str, Any] | None], Run],
    ctx: distributed.Context,
    checkpoint: dict[str, Any] | None,
    *,
    progress: bool,
) -> Path:
    if config.batch_size % ctx.world_size:
        raise InputError(
            f"--batch-size {config.batch_size} does not split over {ctx.world_size} processes."
        )
    run = build(config, ctx, checkpoint)
    if run.state.step > config.steps:  # before config.toml is rewritten with the smaller number
        raise InputError(
            f"--steps {config.steps} is below the {run.state.step} steps this run has done; "
            f"give --steps {run.state.step} or more to continue it."
        )
    out = Path(config.out)
    log = None
    try:
        if ctx.is_main:
            start_run_dir(
                config,
                run.task.split(),
                step=run.state.step,
                environment=reproducible.describe(ctx.device, ctx.world_size),
            )
            run.task.start(out)
            log = TrainLog(
                out,
                steps=config.steps,
                start=run.state.step,
                every=config.log_every,
                show=progress,
                tensorboard=config.tensorboard,
                name=config.KIND,
            )
        with StopRequest() as stop:
            train_loop(run, log, stop)
    except (InputError, TrainingError):
        if ctx.is_main and checkpoint is None:
            discard_unstarted(out)  # failed before its first checkpoint: leave nothing behind
        raise
    finally:
        if log is not None:
            log.close()
    run.task.finish(run)
    return out


def _checked_run_dir(
    config: RunConfig,
    ctx: distributed.Context,
    lock: contextlib.ExitStack,
    *,
    resume: bool,
    overwrite: bool,
) -> dict[str, Any] | None:
    """Rank 0 takes the run folder's lock (held by ``lock``) and checks the folder; every rank
    stops with its message, none waits forever."""
    state, error = None, None
    if ctx.is_main:
        try:
            if not resume or Path(config.out).is_dir():  # --resume of no folder: its message
                lock.enter_context(run_lock(config.out))
            state = check_run_dir(config, resume=resume, overwrite=overwrite)
        except InputError as exc:
            error = str(exc)
    if ctx.world_size > 1:
        shared: list[Any] = [error, state is not None]
        torch.distributed.broadcast_object_list(shared, src=0)
        error = shared[0]
        if shared[1] and not ctx.is_main:
            state = load_checkpoint(last_checkpoint(config.out))
    if error is not None:
        raise InputError(error)
    return state
