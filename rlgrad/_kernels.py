"""Compiled reverse-time scans for GAE and discounted returns (CPU, numba): the entry points.

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


_SCALARS = {torch.float32: np.float32, torch.float64: np.float64}


def _layout(rewards: torch.Tensor) -> tuple[int, int]:
    """``[T, *B]`` read as ``[T, N]``."""
    steps = rewards.shape[0]
    return steps, rewards.numel() // steps


def gae_scan(rewards, values, next_values, terminated, truncated, gamma, lam, out) -> bool:
    """GAE into ``out``; True when every advantage is finite.

    All tensors are C-contiguous CPU tensors of one shape ``[T, *B]``: float32 or float64 (one
    dtype), the flags bool. The kernel reads and writes their memory directly, so the caller
    guarantees this (``rlgrad.returns`` checks it); an address costs less than a NumPy view.
    """
    scalar = _SCALARS[rewards.dtype]
    addresses = [x.data_ptr() for x in (rewards, values, next_values, terminated, truncated, out)]
    stream = out.numel() * out.element_size() >= STREAM_BYTES
    return bool(_compiled()[0](*addresses, *_layout(rewards), scalar(gamma), scalar(lam), stream))


def return_scan(rewards, bootstrap, terminated, truncated, gamma, out) -> bool:
    """Discounted returns into ``out``, with the contract of :func:`gae_scan`."""
    addresses = [x.data_ptr() for x in (rewards, bootstrap, terminated, truncated, out)]
    scalar = _SCALARS[rewards.dtype]
    return bool(_compiled()[1](*addresses, *_layout(rewards), scalar(gamma)))
