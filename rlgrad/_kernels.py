"""The Python side of the compiled scans (:mod:`rlgrad._scans`): when they apply, and the call.

The scans take NumPy views of the tensors' memory (no copy): floats as ``[T, N]`` arrays of
their dtype, flags as ``[T, N]`` uint8 read as ``!= 0`` (so a bool byte other than 0/1 still
counts as true). numba is imported on the first scan, not with rlgrad (it costs ~0.5 s).
"""

from __future__ import annotations

import math
from functools import cache

import torch

from rlgrad import _checks

KERNEL_DTYPES = (torch.float32, torch.float64)


@cache
def _compiled():
    from rlgrad import _scans

    return _scans.gae_scan, _scans.return_scan


def available() -> bool:
    """Whether numba can be imported (the fast path); the torch loop is used otherwise."""
    try:
        _compiled()
    except ImportError:
        return False
    return True


def takes(floats, flags) -> bool:
    """Whether the scans can run on these tensors as they are: C-contiguous CPU tensors of one
    non-empty shape ``[T, *B]``, ``floats`` of one dtype (float32 or float64) that needs no
    gradient, ``flags`` bool, none batched by vmap. The usual call, tested with cheap attribute
    reads only; a caller that gets False checks each argument in full (and explains what is
    wrong) first."""
    rewards = floats[0]
    if type(rewards) is not torch.Tensor:
        return False
    shape, dtype = rewards.shape, rewards.dtype
    if dtype not in KERNEL_DTYPES or not shape or 0 in shape or not available():
        return False
    try:
        return all(_plain(x, dtype, shape) for x in floats) and all(
            _plain(x, torch.bool, shape) for x in flags
        )
    except RuntimeError:  # is_contiguous() of a sparse tensor; the full checks explain it
        return False


def _plain(x, dtype: torch.dtype, shape: torch.Size) -> bool:
    return (
        type(x) is torch.Tensor
        and not _checks.batched(x)  # vmap's tensors are torch.Tensor too, without numpy()
        and x.dtype is dtype
        and x.shape == shape
        and x.is_cpu
        and x.is_contiguous()
        and not (x.requires_grad and torch.is_grad_enabled())
    )


def _rows(x: torch.Tensor):
    """``[T, *B]`` as a ``[T, N]`` NumPy view (bool flags as uint8)."""
    if x.dtype == torch.bool:
        x = x.view(torch.uint8)
    elif x.requires_grad:  # allowed under torch.no_grad(); numpy() refuses it otherwise
        x = x.detach()
    return x.numpy().reshape(x.shape[0], math.prod(x.shape[1:]))


def gae_scan(rewards, values, next_values, terminated, truncated, gamma, lam, out) -> bool:
    """GAE into ``out`` (a C-contiguous tensor like ``rewards``); True when all are finite."""
    arrays = [_rows(x) for x in (rewards, values, next_values, terminated, truncated)]
    return _compiled()[0](*arrays, gamma, lam, _rows(out))


def return_scan(rewards, bootstrap, terminated, truncated, gamma, out) -> bool:
    """Discounted returns into ``out``, with the contract of :func:`gae_scan`."""
    arrays = [_rows(x) for x in (rewards, bootstrap, terminated, truncated)]
    return _compiled()[1](*arrays, gamma, _rows(out))
