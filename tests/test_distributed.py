"""Batch norm over the global batch: exact statistics whatever the input dtype, on any backend."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segtrain import distributed
from segtrain.distributed import GlobalBatchNorm2d, convert_batchnorm, global_batch_stats


@pytest.fixture
def two_ranks(monkeypatch):
    """As if this process were one of 2 ranks: ``others`` holds what the other rank adds."""
    others: list[torch.Tensor] = []

    def all_reduce(tensor, *args, **kwargs):
        tensor.add_(others.pop(0))

    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(distributed.dist, "all_reduce", all_reduce)
    return others


def features(seed: int, shape: tuple[int, ...], device: str = "cpu") -> torch.Tensor:
    # Mean 10, sd 0.3: a mean large against the spread, as after a ReLU-free convolution.
    g = torch.Generator().manual_seed(seed)
    x = 10 + 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
    return x.to(torch.bfloat16).to(device)


def sums_of(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """What a rank holding ``x`` contributes to the all-reduce (recorded by an identity stub)."""
    seen: list[torch.Tensor] = []
    original = distributed.dist.all_reduce
    distributed.dist.all_reduce = lambda t, *a, **k: seen.append(t.clone())  # type: ignore[assignment]
    try:
        global_batch_stats(x, shift)
    finally:
        distributed.dist.all_reduce = original
    return seen[0]


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_bf16_statistics_and_output_match_float64(two_ranks, device):
    # A global batch of 6 images of 208 x 288 (3 per rank): 359,424 values per channel, which
    # bf16 cannot count (it rounds to 360,448) and whose sums of squares it cannot hold (the
    # former float-in-the-input's-dtype arithmetic gave a variance of 0.50 for 0.09).
    mine, theirs = features(0, (3, 4, 208, 288), device), features(1, (3, 4, 208, 288), device)
    layer = GlobalBatchNorm2d(4).to(device).train()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 1.5]))
        layer.bias.copy_(torch.tensor([0.0, -1.0, 0.25, 3.0]))
    two_ranks.append(sums_of(theirs, layer.running_mean))
    with torch.no_grad():
        y = layer(mine)
    both = torch.cat([mine, theirs]).double().cpu()
    mean, var = both.mean((0, 2, 3)), both.var((0, 2, 3), unbiased=False)
    reference = (mine.double().cpu() - mean.view(1, 4, 1, 1)) / torch.sqrt(
        var.view(1, 4, 1, 1) + 1e-5
    )
    reference = reference * layer.weight.double().cpu().view(1, 4, 1, 1)
    reference = reference + layer.bias.double().cpu().view(1, 4, 1, 1)
    y = y.cpu()
    assert y.dtype == torch.bfloat16
    # bf16 keeps 8 significant bits: |y| <= ~8 is rounded to within 2^-5.
    torch.testing.assert_close(y.double(), reference, rtol=2**-8, atol=2**-5)
    assert float(var.mean()) == pytest.approx(0.09, rel=0.01)
    # Running statistics after one step from (0, 1) with momentum 0.1, in float32.
    n = both.numel() / 4
    running_mean, running_var = layer.running_mean.double().cpu(), layer.running_var.double().cpu()
    torch.testing.assert_close(running_mean, 0.1 * mean, rtol=1e-6, atol=0)
    expected_var = 0.9 + 0.1 * var * n / (n - 1)
    torch.testing.assert_close(running_var, expected_var, rtol=1e-5, atol=0)


def test_the_count_is_exact(two_ranks):
    mine, theirs = features(2, (3, 2, 208, 288)), features(3, (3, 2, 208, 288))
    shift = torch.zeros(2)
    two_ranks.append(sums_of(theirs, shift))
    mean, var, n = global_batch_stats(mine, shift)
    assert int(n) == 359_424
    both = torch.cat([mine, theirs]).double()
    torch.testing.assert_close(var.double(), both.var((0, 2, 3), unbiased=False), rtol=1e-4, atol=0)
    torch.testing.assert_close(mean.double(), both.mean((0, 2, 3)), rtol=1e-7, atol=0)


def test_gradient_of_two_identical_ranks_matches_float64(monkeypatch):
    # Both ranks hold x: the forward's sums and the backward's gradients double. The gradient
    # each rank gets is that of the loss of both ranks with respect to its own copy.
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(distributed.dist, "all_reduce", lambda t, *a, **k: t.mul_(2))
    g = torch.Generator().manual_seed(0)
    x = (5 + torch.randn(4, 3, 6, 5, generator=g)).requires_grad_()
    w = torch.randn(4, 3, 6, 5, generator=g)
    layer = GlobalBatchNorm2d(3).train()
    (layer(x) * w).sum().backward()
    x64 = x.detach().double()
    both = torch.cat([x64, x64]).requires_grad_()
    reference = nn.functional.batch_norm(both, None, None, training=True, eps=1e-5)
    (reference * torch.cat([w, w]).double()).sum().backward()
    torch.testing.assert_close(x.grad.double(), both.grad[:4], rtol=1e-4, atol=1e-5)


def test_outside_a_process_group_it_is_plain_batch_norm():
    x = torch.randn(4, 3, 5, 5)
    plain, layer = nn.BatchNorm2d(3), GlobalBatchNorm2d(3)
    torch.testing.assert_close(layer(x), plain(x))


def test_gpus_get_sync_batch_norm_and_gloo_the_global_layer():
    def model() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.BatchNorm2d(3))

    cpu = convert_batchnorm(model(), torch.device("cpu"))
    assert [type(m) for m in cpu if "Norm" in type(m).__name__] == [GlobalBatchNorm2d] * 2
    cuda = convert_batchnorm(model(), torch.device("cuda"))  # converting needs no GPU
    assert [type(m) for m in cuda if "Norm" in type(m).__name__] == [nn.SyncBatchNorm] * 2
    assert cuda.state_dict().keys() == model().state_dict().keys()


def test_a_single_gpu_run_sets_an_indexed_device(monkeypatch):
    """On an H200 with torch 2.11, set_device(torch.device("cuda")) raised "Expected a
    torch.device with a specified index" and `segtrain fit` stopped before its first step:
    setup now resolves a bare "cuda" to the current device's index (replayed here with CUDA's
    calls stubbed)."""
    seen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: seen.append(device))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = distributed.setup("auto")
    assert seen and seen[0].index == 0
    assert ctx.device == torch.device("cuda:0")
