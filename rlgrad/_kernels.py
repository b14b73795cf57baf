"""Compiled reverse-time scans for GAE and discounted returns (CPU, numba).

Both recurrences run backwards in time, so they cannot be one vectorized torch op; a Python loop
over T pays ~5 µs of dispatch per step, which dominates on 2 cores. A numba loop over time with a
contiguous inner loop over the batch is compiled once per dtype (and cached on disk), reads each
input exactly once and writes the output once, so it runs within ~3× of a single elementwise op
over the same bytes (see BENCHMARKS.md). The kernels also report whether every output is finite,
which lets the caller skip a separate pass over the inputs on the fast path.

Inputs are C-contiguous 2-D arrays ``[T, N]``; flags are ``bool``; ``gamma`` and ``lam`` carry the
arrays' dtype so the inner loop stays in single precision for float32 data.
"""

from __future__ import annotations

from functools import cache

import numpy as np


@cache
def _compiled():
    import numba  # imported lazily: compiling costs ~1 s once, and most imports never need it

    @numba.njit(cache=True, boundscheck=False)
    def gae_scan(rewards, values, next_values, terminated, truncated, gamma, lam, out):
        steps, batch = rewards.shape
        one = rewards.dtype.type(1.0)
        zero = rewards.dtype.type(0.0)
        trace = gamma * lam
        # Adding 0·x to a per-column accumulator turns it NaN as soon as any x is NaN or inf,
        # without a branch or a cross-lane reduction, so the loop still vectorizes.
        poison = np.zeros(batch, dtype=rewards.dtype)
        if steps == 0:
            return True
        # The last step has no A_{t+1}: A_{T-1} = δ_{T-1}. Peeling it keeps the hot loop branch-free.
        t = steps - 1
        for b in range(batch):
            alive = zero if terminated[t, b] else one
            out[t, b] = rewards[t, b] + gamma * alive * next_values[t, b] - values[t, b]
            poison[b] += zero * out[t, b]
        for t in range(steps - 2, -1, -1):
            for b in range(batch):
                alive = zero if terminated[t, b] else one
                carry = zero if (terminated[t, b] or truncated[t, b]) else trace
                delta = rewards[t, b] + gamma * alive * next_values[t, b] - values[t, b]
                out[t, b] = delta + carry * out[t + 1, b]
                poison[b] += zero * out[t, b]
        return np.all(poison == zero)

    @numba.njit(cache=True, boundscheck=False)
    def return_scan(rewards, terminated, truncated, bootstrap, gamma, out):
        steps, batch = rewards.shape
        one = rewards.dtype.type(1.0)
        zero = rewards.dtype.type(0.0)
        poison = np.zeros(batch, dtype=rewards.dtype)
        if steps == 0:
            return True
        t = steps - 1
        for b in range(batch):
            alive = zero if terminated[t, b] else one
            out[t, b] = rewards[t, b] + gamma * alive * bootstrap[t, b]
            poison[b] += zero * out[t, b]
        for t in range(steps - 2, -1, -1):
            for b in range(batch):
                alive = zero if terminated[t, b] else one
                future = bootstrap[t, b] if truncated[t, b] else out[t + 1, b]
                out[t, b] = rewards[t, b] + gamma * alive * future
                poison[b] += zero * out[t, b]
        return np.all(poison == zero)

    return gae_scan, return_scan


def available() -> bool:
    """Whether numba can be imported (the fast path); the torch loop is used otherwise."""
    try:
        _compiled()
    except ImportError:
        return False
    return True


def gae_scan(rewards, values, next_values, terminated, truncated, gamma, lam, out) -> bool:
    scalar = rewards.dtype.type
    return bool(
        _compiled()[0](
            rewards, values, next_values, terminated, truncated, scalar(gamma), scalar(lam), out
        )
    )


def return_scan(rewards, terminated, truncated, bootstrap, gamma, out) -> bool:
    return bool(
        _compiled()[1](rewards, terminated, truncated, bootstrap, rewards.dtype.type(gamma), out)
    )
