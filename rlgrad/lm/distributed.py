"""Data parallelism under ``torchrun``: each process takes its share of the prompts, and the
gradients are averaged after each process weighs its loss by its share of the aggregation's
denominator, so the update equals one process's update on the whole batch. With one process
every function here is the identity (or does nothing)."""

from __future__ import annotations

import os

import torch
from torch import Tensor


def join_process_group() -> tuple[int, int]:
    """(rank, world size); joins the process group that ``torchrun`` describes in the
    environment when nobody has yet (gloo on CPU, NCCL on GPU), as TRL users expect from a
    launcher."""
    if not torch.distributed.is_available():
        return 0, 1
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ
    if launched and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def gather(x: Tensor, world_size: int) -> Tensor:
    """Every process's ``x`` ``[N, ...]`` joined in rank order, ``[world_size · N, ...]``."""
    if world_size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size)]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_lists(items: list, world_size: int) -> list:
    """The lists ``items`` of every process joined, in rank order (on every process)."""
    if world_size == 1:
        return items
    parts = [None] * world_size
    torch.distributed.all_gather_object(parts, items)
    return [item for part in parts for item in part]


def loss_share(completion_mask: Tensor, aggregation: str, world_size: int) -> float:
    """This process's share of the aggregation's denominator, times the number of processes:
    averaged gradients then equal those of the whole batch's loss. ``completion_mask``:
    ``[B, L]``, this process's."""
    if world_size == 1 or aggregation != "token_mean":
        return 1.0  # seq_mean and const_norm: every process holds the same number of sequences
    local = completion_mask.sum()
    total = local.clone()
    torch.distributed.all_reduce(total)
    return float(local / total.clamp(min=1.0)) * world_size


def average_gradients(model, world_size: int) -> None:
    """Replace each parameter's gradient by its mean over the processes."""
    if world_size == 1:
        return
    for parameter in model.parameters():
        if parameter.grad is not None:
            torch.distributed.all_reduce(parameter.grad)
            parameter.grad /= world_size
