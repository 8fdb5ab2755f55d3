"""The training configuration: one typed dataclass, read from TOML and saved beside the run.

Defaults follow the paper (Adam 1e-4, batch 24, EMA 0.99, validation every 1000 steps,
1152x832 images). Resolution order: defaults, then ``--config file.toml``, then command-line
flags. ``RUN/config.toml`` holds the resolved values and reproduces the run. ``RunConfig`` holds
what every run has; ``TrainConfig`` (fit) and ``segtrain.pretrain.PretrainConfig`` add theirs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from segeval.io import read_table
from segeval.validation import InputError
from segtrain.distributed import DEVICE
from segtrain.model import MIN_SIDE
from segtrain.sampling import STRATEGIES, Strategy


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """The settings every training run has (``fit`` and ``pretrain``), checked once here.

    A subclass adds its own settings, checks, and the class attributes below.
    """

    # Settings that may differ when a run is resumed: where it runs, how long (a resumed run may
    # be extended) and what it logs; not what it computes.
    RUNTIME_FIELDS: ClassVar[tuple[str, ...]] = (
        "out",
        "device",
        "workers",
        "steps",
        "log_every",
        "tensorboard",
    )
    # Settings that are paths: stored absolute, so that `--resume RUN` works from any folder.
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("manifest", "out")
    REQUIRED: ClassVar[tuple[str, ...]] = ("manifest", "segment_by", "out")
    KIND: ClassVar[str] = "run"  # the command; checkpoints record it

    manifest: str
    segment_by: str
    out: str
    steps: int = 150_000
    batch_size: int = 24  # global: split over the ranks under torchrun
    lr: float = 1e-4
    ema_decay: float = 0.99
    val_every: int = 1000
    image_height: int = 1152
    image_width: int = 832
    width: float = 1.0  # channel multiplier of the model (--model-width)
    split_by: str = "source"
    val_fraction: float = 0.2
    augment: bool = True
    rotation: float = 10.0
    zoom_min: float = 0.9
    zoom_max: float = 1.1
    shear: float = 5.0
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    log_every: int = 100  # steps between progress lines and train.jsonl records
    tensorboard: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "val_every", "log_every"):
            _check_int(self, name, 1)
        for name in ("seed", "workers"):
            _check_int(self, name, 0)
        for name in ("image_height", "image_width"):
            if _check_int(self, name, 1) < MIN_SIDE:
                raise InputError(
                    f"--image-size {self.image_height}x{self.image_width} is too small for the "
                    f"model: each side must be at least {MIN_SIDE} pixels."
                )
        if self.steps < self.val_every:
            raise InputError(
                f"--steps ({self.steps}) must be at least --val-every ({self.val_every}): a run "
                f"with no validation step has no best checkpoint."
            )
        for flag, value, ok in (
            ("--lr", self.lr, _finite(self.lr) and 0 < self.lr < 1),
            ("--ema-decay", self.ema_decay, _finite(self.ema_decay) and 0 <= self.ema_decay < 1),
            ("--model-width", self.width, _finite(self.width) and 0 < self.width <= 64),
            (
                "val_fraction",
                self.val_fraction,
                _finite(self.val_fraction) and 0 < self.val_fraction < 1,
            ),
            (
                "zoom_min, zoom_max",
                (self.zoom_min, self.zoom_max),
                _finite(self.zoom_min)
                and _finite(self.zoom_max)
                and 0 < self.zoom_min <= self.zoom_max,
            ),
        ):
            if not ok:
                raise InputError(f"{flag} is out of range; got {value!r}.")
        if not DEVICE.fullmatch(str(self.device)):
            raise InputError(f"--device must be auto, cpu, cuda or cuda:N; got {self.device!r}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, other: RunConfig) -> list[str]:
        """Names of the settings (runtime ones aside) whose values differ."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if k not in self.RUNTIME_FIELDS and a[k] != b.get(k)]


@dataclass(frozen=True, kw_only=True)
class TrainConfig(RunConfig):
    """Everything that determines a training run (``segtrain fit``)."""

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("manifest", "out", "init_backbone")
    KIND: ClassVar[str] = "fit"

    strategy: Strategy = "periodic"  # a name of segtrain.sampling.STRATEGIES
    segment: str | None = None  # the DS of the single-segment strategy
    segments: str | None = None  # train on these DSs only ("(S1, Ma);(S2, Ma)"); None: all
    hflip: bool = False
    vflip: bool = False
    compile: bool = False
    init_backbone: str | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InputError(
                f"--strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}."
            )
        super().__post_init__()
        needs_segment = STRATEGIES[self.strategy].needs_segment
        if needs_segment and self.segment is None:
            raise InputError(f"--strategy {self.strategy} needs --segment, e.g. '(S1, Ma)'.")
        if not needs_segment and self.segment is not None:
            raise InputError(
                f"--segment is only used with --strategy single-segment; got --strategy "
                f"{self.strategy}."
            )


def load_toml(path: str | Path, kind: type[RunConfig] = TrainConfig) -> dict[str, Any]:
    """A flat table of ``kind``'s settings from a TOML file (unknown keys are an error)."""
    try:
        with open(path, "rb") as handle:
            values = tomllib.load(handle)
    except OSError as exc:
        raise InputError(f"The config file {str(path)!r} cannot be read ({exc.strerror}).") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"The config file {str(path)!r} is not valid TOML ({exc}).") from exc
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(
            f"The config file {str(path)!r} has unknown setting(s): {', '.join(unknown)}."
        )
    return values


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(config: RunConfig, name: str, low: int) -> int:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"--{name.replace('_', '-')} must be an integer >= {low}; got {value!r}.")
    return value


C = TypeVar("C", bound=RunConfig)


def resolve(
    file: str | Path | None = None,
    kind: type[C] = TrainConfig,  # type: ignore[assignment]
    **overrides: Any,
) -> C:
    """``kind``'s settings: defaults < config file < overrides (None overrides are ignored).

    Paths in the file are relative to the file's folder, paths in ``overrides`` to the current
    one; both are made absolute. Without an image size, a manifest written by
    ``segtrain prepare`` gives its own.
    """
    values = load_toml(file, kind) if file else {}
    for key in kind.PATH_FIELDS:
        if values.get(key) is not None and file is not None:
            values[key] = str((Path(file).parent / values[key]).resolve())
    values.update({k: v for k, v in overrides.items() if v is not None})
    missing = [k for k in kind.REQUIRED if k not in values]
    if missing:
        flags = ", ".join("--" + k.replace("_", "-") for k in missing)
        raise InputError(f"Missing setting(s): {flags} (flags or config file).")
    for key in kind.PATH_FIELDS:
        if values.get(key) is not None:
            values[key] = str(Path(values[key]).resolve())
    if "image_height" not in values:
        values.update(prepared_size(values["manifest"]))
    try:
        return kind(**values)
    except TypeError as exc:
        raise InputError(f"Bad settings: {exc}.") from exc


def prepared_size(manifest: str | Path) -> dict[str, int]:
    """``image_height`` and ``image_width`` of a manifest written by ``segtrain prepare``."""
    if not Path(manifest).is_file():
        return {}  # reported with the manifest's other problems
    table = read_table(manifest, "manifest")
    if not {"height", "width", "background"} <= set(table.columns) or table.empty:
        return {}
    sizes = table[["height", "width"]].drop_duplicates()
    if len(sizes) != 1:
        raise InputError(
            f"The manifest {str(manifest)!r} mixes arrays of several sizes; run segtrain "
            f"prepare again."
        )
    return {"image_height": int(sizes.height.iloc[0]), "image_width": int(sizes.width.iloc[0])}


def to_toml(config: RunConfig) -> str:
    """The config as TOML (unset optional settings left out)."""
    lines = [f"# segtrain {config.KIND} configuration (fully resolved)"]
    for key, value in config.to_dict().items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            text = json.dumps(str(value))  # a TOML basic string
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"
