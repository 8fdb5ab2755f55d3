"""The training configuration: one typed dataclass, read from TOML and saved beside the run.

Defaults follow the paper (Adam 1e-4, batch 24, EMA 0.99, validation every 1000 steps,
1152x832 images). Resolution order: defaults, then ``--config file.toml``, then command-line
flags. ``RUN/config.toml`` holds the resolved values and reproduces the run.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from segeval.validation import InputError
from segtrain.sampling import STRATEGIES

# Settings that may differ when a run is resumed: where it runs, and how long (a resumed run may
# be extended); not what it computes.
RUNTIME_FIELDS = ("out", "device", "workers", "steps")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run."""

    manifest: str
    segment_by: str
    out: str
    strategy: str = "periodic"
    segment: str | None = None  # the DS of the single-segment strategy
    steps: int = 150_000
    batch_size: int = 24  # global: split over the ranks under torchrun
    lr: float = 1e-4
    ema_decay: float = 0.99
    val_every: int = 1000
    image_height: int = 1152
    image_width: int = 832
    width: float = 1.0  # channel multiplier of the model
    split_by: str = "source"
    val_fraction: float = 0.2
    augment: bool = True
    rotation: float = 10.0
    zoom_min: float = 0.9
    zoom_max: float = 1.1
    shear: float = 5.0
    hflip: bool = False
    vflip: bool = False
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    compile: bool = False
    init_backbone: str | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InputError(
                f"strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}."
            )
        for name in ("steps", "batch_size", "val_every", "image_height", "image_width"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1; got {getattr(self, name)!r}.")
        if self.steps < self.val_every:
            raise InputError(
                f"steps ({self.steps}) must be at least val-every ({self.val_every}): a run "
                f"with no validation step has no best checkpoint."
            )
        if not 0 < self.lr < 1 or not 0 <= self.ema_decay < 1 or self.width <= 0:
            raise InputError(
                f"Need 0 < lr < 1, 0 <= ema-decay < 1 and width > 0; got lr={self.lr}, "
                f"ema-decay={self.ema_decay}, width={self.width}."
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, other: TrainConfig) -> list[str]:
        """Names of the settings (runtime ones aside) whose values differ."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if k not in RUNTIME_FIELDS and a[k] != b[k]]


def load_toml(path: str | Path) -> dict[str, Any]:
    """A flat table of settings from a TOML file (unknown keys are an error)."""
    try:
        with open(path, "rb") as handle:
            values = tomllib.load(handle)
    except OSError as exc:
        raise InputError(f"The config file {str(path)!r} cannot be read ({exc.strerror}).") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"The config file {str(path)!r} is not valid TOML ({exc}).") from exc
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(
            f"The config file {str(path)!r} has unknown setting(s): {', '.join(unknown)}."
        )
    return values


def resolve(file: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults < config file < overrides (None overrides are ignored)."""
    values = load_toml(file) if file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    missing = [k for k in ("manifest", "segment_by", "out") if k not in values]
    if missing:
        raise InputError(f"Missing setting(s): {', '.join(missing)} (flags or config file).")
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise InputError(f"Bad settings: {exc}.") from exc


def to_toml(config: TrainConfig) -> str:
    """The config as TOML (unset optional settings left out)."""
    lines = ["# segtrain run configuration (fully resolved)"]
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
