"""One process or many (``torchrun``): rank, world size, device, and batch norm over all ranks.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is a single process. The
backend is NCCL on GPUs and gloo on CPUs. ``GlobalBatchNorm2d`` normalizes with the statistics of
the *global* batch (summed over ranks with an autograd-aware all-reduce, in float32 whatever the
input's dtype), so that W processes of batch b train like one process of batch W*b. On GPUs
torch's SyncBatchNorm does the same (it does not run on gloo, hence this layer).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from segeval.validation import InputError


@dataclass(frozen=True)
class Context:
    """Where this process stands: rank, world size, and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def resolve_device(device: str) -> str:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``, checked: the one
    device resolver of fit, pretrain and predict."""
    if not DEVICE.fullmatch(str(device)):
        raise InputError(f"--device must be auto, cpu, cuda or cuda:N; got {device!r}.")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device} was asked for, but no CUDA device is available.")
    return device


def setup(device: str = "auto") -> Context:
    """Join the process group when launched by torchrun, and pick the device (see
    :func:`resolve_device`)."""
    device = resolve_device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda") and world_size > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    elif device == "cuda":  # set_device needs an index (torch 2.11 refuses a bare "cuda")
        device = f"cuda:{torch.cuda.current_device()}"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    return Context(rank, world_size, torch.device(device))


def teardown() -> None:
    """Leave the process group once every rank is done (none exits while others still talk)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiably: the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


def global_batch_stats(
    x: torch.Tensor, shift: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel mean and (biased) variance of ``x`` (N, C, H, W) over every rank, and the count.

    The sums are taken in float32 whatever ``x``'s dtype (a convolution under CUDA autocast hands
    over bf16, whose 8-bit mantissa cannot hold sums of squares, nor counts above 256 exactly),
    around ``shift`` (a per-channel value every rank shares: the running mean), so that
    ``E[(x-K)^2] - E[x-K]^2`` does not cancel when the mean is large against the spread. The
    sums are all-reduced in float64, in which the count (up to 2^53) is exact.
    """
    c = x.shape[1]
    centred = x.float() - shift.detach().float().view(1, c, 1, 1)
    count = torch.tensor([x.numel() // c], dtype=torch.float64, device=x.device)
    sums = torch.cat([centred.sum((0, 2, 3)).double(), (centred * centred).sum((0, 2, 3)).double()])
    total = _AllReduceSum.apply(torch.cat([sums, count]))  # type: ignore[no-untyped-call]
    n = total[-1]
    offset = total[:c] / n
    var = (total[c : 2 * c] / n - offset * offset).clamp_min(0)
    return (shift.detach().double() + offset).float(), var.float(), n.detach()


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batches of all ranks (any backend).

    On GPUs :func:`convert_batchnorm` uses torch's SyncBatchNorm instead; this layer is for gloo.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        shift = self.running_mean if self.running_mean is not None else x.new_zeros(c)
        mean, var, n = global_batch_stats(x, shift)
        if self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                unbiased = var.detach() * (n / (n - 1).clamp_min(1)).float()
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        shape = (1, c, 1, 1)
        y = (x.float() - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Batch norm over the global batch: every BatchNorm2d inside ``module`` becomes torch's
    SyncBatchNorm on CUDA (NCCL), a :class:`GlobalBatchNorm2d` elsewhere (gloo), with its state.

    The children are replaced in place; ``module`` is returned.
    """
    if device.type == "cuda":
        converted: nn.Module = nn.SyncBatchNorm.convert_sync_batchnorm(module)  # type: ignore[no-untyped-call]
        return converted
    return _to_global(module)


def _to_global(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = GlobalBatchNorm2d(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
            )
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement)
        else:
            _to_global(child)
    return module


def shard(n: int, ctx: Context) -> np.ndarray:
    """Contiguous share of range(n) for this rank; shares concatenate to range(n) in order."""
    bounds = np.linspace(0, n, ctx.world_size + 1).round().astype(int)
    return np.arange(bounds[ctx.rank], bounds[ctx.rank + 1])


def barrier(ctx: Context) -> None:
    """Wait for every rank (nothing in a single process)."""
    if ctx.world_size > 1:
        dist.barrier()


def all_gather_concat(values: torch.Tensor) -> torch.Tensor:
    """Concatenate a 1-D tensor of any length from every rank, in rank order."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return values
    sizes = [
        torch.zeros(1, dtype=torch.long, device=values.device) for _ in range(dist.get_world_size())
    ]
    dist.all_gather(sizes, torch.tensor([values.numel()], device=values.device))
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=values.dtype, device=values.device)
    padded[: values.numel()] = values
    gathered = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(s.item())] for g, s in zip(gathered, sizes, strict=True)])
