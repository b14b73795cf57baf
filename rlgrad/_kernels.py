"""Compiled reverse-time scans for GAE and discounted returns (CPU, numba): the Python side.

Both recurrences run backwards in time, so they cannot be one vectorized torch op; a Python loop
over T pays several microseconds of dispatch per step, which dominates on 2 cores. A numba loop
over time with a SIMD inner loop over the batch is compiled once per dtype (and cached on disk),
reads each input once and writes the output once, so it runs close to a single elementwise op
over the same bytes (see BENCHMARKS.md). The GAE scan goes one step further for data that comes
from memory: it computes each row one cache line at a time, prefetching the previous row and, for
large outputs, writing with streaming stores (``rlgrad._scans`` explains why).

The kernels also report whether every output is finite, so the caller needs no separate pass over
the inputs: NaN or inf in any input reaches the output at its own step (0·inf is NaN too). The
test is ``(x − x) == 0``, false only for NaN and ±inf, folded into a boolean AND that vectorizes.
Only FMA contraction is enabled among the fast-math flags: reassociation would fold x − x to 0.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch

# Outputs from this size on are written with streaming stores (x86). They leave the output in
# memory, so the caller's next read of it costs more: `benchmarks/probes/gae_stores.py` times gae
# followed by `advantages + values`. From memory, streaming won at every size (128 KiB–4 MiB).
# With warm caches it lost at 128–256 KiB and ranged from 26 % slower to 12 % faster from 512 KiB
# on, where the scan's working set (~4.5× the output) outgrows a per-core L2 anyway.
STREAM_BYTES = 512 * 1024


@cache
def _compiled():
    from rlgrad import _scans  # imported lazily: numba costs ~0.5 s to import, ~1 s to compile

    return _scans.gae_scan, _scans.return_scan


def available() -> bool:
    """Whether numba can be imported (the fast path); the torch loop is used otherwise."""
    try:
        _compiled()
    except ImportError:
        return False
    return True


# A zero of each supported dtype: the kernels' ``like`` argument, made once (building a NumPy
# scalar per call costs ~50 µs from memory).
_LIKE = {torch.float32: np.float32(0), torch.float64: np.float64(0)}


def takes(floats, flags) -> bool:
    """Whether the kernels can run on these tensors as they are: plain C-contiguous CPU tensors of
    one non-empty shape ``[T, *B]``, ``floats`` of one dtype (float32 or float64) that needs no
    gradient, ``flags`` bool.

    This is the usual call, tested in one pass of cheap attribute reads; a caller that gets False
    checks each argument in full (and explains what is wrong) before falling back. From memory
    the first tensor attribute read costs ~15–25 µs and each further kind ~5–10 µs
    (``benchmarks/probes/gae_overhead.py``), so the test reads as few kinds as it can.
    """
    rewards = floats[0]
    if type(rewards) is not torch.Tensor:
        return False
    shape, dtype = rewards.shape, rewards.dtype
    if dtype not in _LIKE or not shape or 0 in shape or not available():
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
        and x.dtype is dtype
        and x.shape == shape
        and x.is_cpu
        and x.is_contiguous()
        and not (x.requires_grad and torch.is_grad_enabled())
    )


def _layout(rewards: torch.Tensor) -> tuple[int, int]:
    """``[T, *B]`` read as ``[T, N]`` (from the shape: every torch call costs from memory)."""
    steps, *batch = rewards.shape
    return steps, math.prod(batch)


def gae_scan(rewards, values, next_values, terminated, truncated, gamma, lam, out) -> bool:
    """GAE into ``out``; True when every advantage is finite.

    The inputs must pass :func:`takes` and ``out`` must be a C-contiguous CPU tensor of their
    shape and dtype. The kernel reads and writes their memory directly, by address: cheaper than
    a NumPy view, and the reason a wrong tensor here corrupts memory instead of raising.
    """
    like = _LIKE[rewards.dtype]
    addresses = [x.data_ptr() for x in (rewards, values, next_values, terminated, truncated, out)]
    steps, batch = _layout(rewards)
    stream = steps * batch * like.itemsize >= STREAM_BYTES
    return _compiled()[0](*addresses, steps, batch, gamma, lam, stream, like)


def return_scan(rewards, bootstrap, terminated, truncated, gamma, out) -> bool:
    """Discounted returns into ``out``, with the contract of :func:`gae_scan`."""
    addresses = [x.data_ptr() for x in (rewards, bootstrap, terminated, truncated, out)]
    return _compiled()[1](*addresses, *_layout(rewards), gamma, _LIKE[rewards.dtype])
