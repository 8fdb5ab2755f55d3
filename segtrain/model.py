"""The paper's classifier (Appendix A.2): a VGG-like fully convolutional backbone and a head.

Backbone: six blocks of batch norm, 3x3 convolution + ReLU and 2x2 max pooling (the first five
convolutions unpadded, the last padded), then convolutions with 1024, 512 and 5 kernels of sizes
2x2, 1x1 and 1x1. A 224x224 patch gives a 1x1x5 output (the five patch classes the backbone is
pre-trained on) and a 1152x832 image a 16x11x5 map.

Head: 5x5 max pooling with stride 5, then two parts whose outputs are summed into 2 logits:
three BN-ReLU-conv blocks with 16, 8 and 2 kernels of sizes (3, 2), 1x1 and 1x1; and BN plus a
conv with 2 kernels of size (3, 2). The (3, 2) kernels cover the whole pooled map of a 1152x832
image; for other image sizes they take the pooled map's size, so the output is always 1x1.

``width`` scales every channel count except the 5 and 2 outputs, for fast CPU runs.
"""

from __future__ import annotations

import torch
from torch import nn

BLOCK_CHANNELS = (32, 64, 128, 256, 256, 512)
BLOCK_PADDING = (0, 0, 0, 0, 0, 1)


def _channels(c: int, width: float) -> int:
    return max(1, round(c * width))


def backbone_output_size(height: int, width: int) -> tuple[int, int]:
    """Spatial size of the backbone's feature map for an input of (height, width)."""
    size = [height, width]
    for pad in BLOCK_PADDING:
        size = [(s - 2 + 2 * pad) // 2 for s in size]
    return size[0] - 1, size[1] - 1


def min_image_side() -> int:
    """The smallest image height (or width) the backbone gives a feature map of."""
    side = 2
    while backbone_output_size(side, side)[0] < 1:
        side += 1
    return side


MIN_SIDE = min_image_side()  # 190


class Backbone(nn.Module):
    """VGG-like feature extractor: (B, 1, H, W) -> (B, 5, h, w)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c, pad in zip(BLOCK_CHANNELS, BLOCK_PADDING, strict=True):
            c_out = _channels(c, width)
            layers += [
                nn.BatchNorm2d(c_in),
                nn.Conv2d(c_in, c_out, 3, padding=pad),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in = c_out
        layers += [
            nn.Conv2d(c_in, _channels(1024, width), 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(_channels(1024, width), _channels(512, width), 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(_channels(512, width), 5, 1),
        ]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.features(x)
        return out


class Head(nn.Module):
    """(B, 5, h, w) feature map -> (B, 2) logits."""

    def __init__(self, feature_size: tuple[int, int], width: float = 1.0) -> None:
        super().__init__()
        pool = tuple(min(5, s) for s in feature_size)
        self.pool = nn.MaxPool2d(pool, stride=pool)
        kernel = (
            (feature_size[0] - pool[0]) // pool[0] + 1,
            (feature_size[1] - pool[1]) // pool[1] + 1,
        )
        c16, c8 = _channels(16, width), _channels(8, width)
        self.deep = nn.Sequential(
            nn.BatchNorm2d(5),
            nn.ReLU(),
            nn.Conv2d(5, c16, kernel),
            nn.BatchNorm2d(c16),
            nn.ReLU(),
            nn.Conv2d(c16, c8, 1),
            nn.BatchNorm2d(c8),
            nn.ReLU(),
            nn.Conv2d(c8, 2, 1),
        )
        self.shallow = nn.Sequential(nn.BatchNorm2d(5), nn.Conv2d(5, 2, kernel))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(features)
        logits: torch.Tensor = (self.deep(pooled) + self.shallow(pooled)).flatten(1)
        return logits


class Classifier(nn.Module):
    """Backbone + head: (B, 1, H, W) images -> (B, 2) logits (class 1 = malignant)."""

    def __init__(self, image_size: tuple[int, int] = (1152, 832), width: float = 1.0) -> None:
        super().__init__()
        feature_size = backbone_output_size(*image_size)
        if min(feature_size) < 1:
            raise ValueError(
                f"Images of {image_size} are too small for the backbone: each side must be at "
                f"least {MIN_SIDE} pixels."
            )
        self.image_size = image_size
        self.backbone = Backbone(width)
        self.head = Head(feature_size, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.backbone(x))
        return logits
