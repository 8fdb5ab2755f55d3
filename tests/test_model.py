"""The paper's model: feature-map shapes and the head."""

from __future__ import annotations

import pytest
import torch

from segtrain.model import Backbone, Classifier, backbone_output_size


def test_backbone_shapes_from_the_paper():
    backbone = Backbone(width=0.0625).eval()
    with torch.no_grad():
        assert backbone(torch.zeros(1, 1, 224, 224)).shape == (1, 5, 1, 1)
        assert backbone(torch.zeros(1, 1, 1152, 832)).shape == (1, 5, 16, 11)
    assert backbone_output_size(1152, 832) == (16, 11)
    assert backbone_output_size(224, 224) == (1, 1)


def test_head_gives_two_logits_for_any_size():
    for size in ((1152, 832), (384, 288), (224, 224)):
        model = Classifier(size, width=0.0625).eval()
        with torch.no_grad():
            assert model(torch.zeros(3, 1, *size)).shape == (3, 2)
    paper = Classifier((1152, 832), width=1.0)
    assert paper.head.shallow[1].kernel_size == (3, 2)  # the paper's (3, 2) kernels
    assert paper.head.pool.kernel_size == (5, 5)
    assert [m.out_channels for m in paper.head.deep if isinstance(m, torch.nn.Conv2d)] == [16, 8, 2]


def test_width_scales_channels_and_too_small_images_fail():
    small, full = Backbone(0.25), Backbone(1.0)
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small < sum(p.numel() for p in full.parameters()) / 10
    with pytest.raises(ValueError, match="too small"):
        Classifier((128, 128))
