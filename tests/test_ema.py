"""EMA of the weights."""

from __future__ import annotations

import torch

from segtrain.ema import ModelEMA


def test_ema_follows_the_formula_and_copies_integer_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = ModelEMA(model, decay=0.9)
    start = ema.module[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model.train()
    model(torch.randn(4, 3))  # bumps BatchNorm's running stats and batch counter
    ema.update(model)
    torch.testing.assert_close(ema.module[0].weight, 0.9 * start + 0.1 * model[0].weight)
    assert ema.module[1].num_batches_tracked == model[1].num_batches_tracked == 1
    assert not any(p.requires_grad for p in ema.module.parameters())
    other = ModelEMA(model, decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.9
    torch.testing.assert_close(other.module[0].weight, ema.module[0].weight)
