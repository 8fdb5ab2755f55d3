"""Training-time augmentation on torch tensors: random rotation, zoom, shear, optional flips.

One batched affine resampling (``affine_grid`` + ``grid_sample``) on whatever device the images
are on, so it runs on the GPU when training does. When an image has a lesion box, transforms
that would push any corner of the box out of the frame are rejected and redrawn (the paper:
"while ensuring the malignant lesion remains visible"); after ``tries`` rejections the image is
left as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transform (degrees for angles; zoom as a factor)."""

    rotation: float = 10.0
    zoom: tuple[float, float] = (0.9, 1.1)
    shear: float = 5.0
    hflip: bool = False
    vflip: bool = False
    tries: int = 10


def _random_matrices(n: int, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 2) maps from output to input pixel offsets around the image centre."""
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    angle = torch.deg2rad((2 * u[:, 0] - 1) * cfg.rotation)
    shear = torch.tan(torch.deg2rad((2 * u[:, 1] - 1) * cfg.shear))
    zoom = cfg.zoom[0] + u[:, 2] * (cfg.zoom[1] - cfg.zoom[0])
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shearing = torch.eye(2, dtype=torch.float64).repeat(n, 1, 1)
    shearing[:, 0, 1] = shear
    m = rotation @ shearing / zoom[:, None, None]  # zoom > 1 samples a smaller region
    flips = torch.ones(n, 2, dtype=torch.float64)
    coin = torch.rand(n, 2, generator=generator, dtype=torch.float64) < 0.5
    if cfg.hflip:
        flips[coin[:, 0], 0] = -1
    if cfg.vflip:
        flips[coin[:, 1], 1] = -1
    return m * flips[:, None, :]


def _boxes_inside(m: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Whether every corner of each box (pixels) lands inside the frame after the transform."""
    centre = torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=torch.float64)
    x0, y0, x1, y1 = boxes.unbind(-1)
    corners = torch.stack(
        [
            torch.stack([x0, y0], -1),
            torch.stack([x1, y0], -1),
            torch.stack([x0, y1], -1),
            torch.stack([x1, y1], -1),
        ],
        -2,
    )
    # input = m @ output  =>  output = m^-1 @ input (offsets from the centre)
    out = (torch.linalg.inv(m)[..., None, :, :] @ (corners - centre)[..., None])[..., 0] + centre
    inside = (
        (out[..., 0] >= 0) & (out[..., 0] <= width) & (out[..., 1] >= 0) & (out[..., 1] <= height)
    )
    ok: torch.Tensor = inside.all(-1) | torch.isnan(boxes).any(-1)
    return ok


def random_transforms(
    boxes: torch.Tensor, height: int, width: int, cfg: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """(B, 2, 2) transforms, each keeping its image's lesion box (NaN: none) in the frame."""
    b = boxes.shape[0]
    chosen = torch.eye(2, dtype=torch.float64).repeat(b, 1, 1)
    todo = torch.ones(b, dtype=torch.bool)
    for _ in range(cfg.tries):
        m = _random_matrices(b, cfg, generator)
        ok = todo & _boxes_inside(m, boxes.to(torch.float64), height, width)
        chosen[ok] = m[ok]
        todo &= ~ok
        if not todo.any():
            break
    return chosen


def augment(
    images: torch.Tensor,
    *,
    boxes: torch.Tensor | None = None,
    background: torch.Tensor | None = None,
    cfg: AugmentConfig = AugmentConfig(),
    generator: torch.Generator,
) -> torch.Tensor:
    """Augment a batch (B, 1, H, W); pixels brought in from outside take each image's background.

    ``boxes`` (B, 4) in pixels (x0, y0, x1, y1), NaN where an image has no lesion; ``generator``
    is a CPU generator, so that the same seed gives the same transforms on any device.
    """
    b, _, h, w = images.shape
    boxes = torch.full((b, 4), math.nan) if boxes is None else boxes.detach().cpu()
    m = random_transforms(boxes, h, w, cfg, generator)
    # In affine_grid's normalized coordinates (x right, y down, both in [-1, 1]).
    scale = torch.tensor([w / 2, h / 2], dtype=torch.float64)
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, :, :2] = m * scale[None, None, :] / scale[None, :, None]
    grid = F.affine_grid(
        theta.to(images.dtype).to(images.device), list(images.shape), align_corners=False
    )
    fill = (torch.zeros(b) if background is None else background.cpu()).to(images)[
        :, None, None, None
    ]
    return (
        F.grid_sample(
            images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        + fill
    )
