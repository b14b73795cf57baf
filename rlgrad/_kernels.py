"""Compiled reverse-time scans for GAE and discounted returns (CPU, numba).

Both recurrences run backwards in time, so they cannot be one vectorized torch op; a Python loop
over T pays several microseconds of dispatch per step, which dominates on 2 cores. A numba loop
over time with a contiguous inner loop over the batch is compiled once per dtype (and cached on
disk), reads each input once and writes the output once, so it runs within ~3× of a single
elementwise op over the same bytes (see BENCHMARKS.md).

The kernels also report whether every output is finite, so the caller needs no separate pass over
the inputs: NaN or inf in any input reaches the output at its own step (0·inf is NaN too). The
test is ``(x − x) == 0``, false only for NaN and ±inf, folded into a boolean AND that vectorizes.
Only FMA contraction is enabled among the fast-math flags: reassociation would fold x − x to 0.

Inputs are C-contiguous 2-D arrays ``[T, N]``; flags are ``uint8`` views of bool arrays (0/1), used
arithmetically so the inner loop has no branch; ``gamma`` and ``lam`` carry the arrays' dtype so
float32 data stays in single precision.
"""

from __future__ import annotations

from functools import cache

import numpy as np


@cache
def _compiled():
    import numba  # imported lazily: compiling costs ~1 s once, and most imports never need it

    options = {"cache": True, "boundscheck": False, "fastmath": {"contract"}}

    @numba.njit(**options)
    def gae_scan(rewards, values, next_values, terminated, truncated, gamma, lam, out):
        steps, batch = rewards.shape
        one = rewards.dtype.type(1.0)
        zero = rewards.dtype.type(0.0)
        trace = gamma * lam
        finite = True
        if steps == 0:
            return finite
        # The last step has no A_{t+1}: A_{T-1} = δ_{T-1}. Peeling it keeps the hot loop uniform.
        t = steps - 1
        for b in range(batch):
            alive = one - terminated[t, b]
            advantage = rewards[t, b] + gamma * alive * next_values[t, b] - values[t, b]
            out[t, b] = advantage
            finite &= (advantage - advantage) == zero
        for t in range(steps - 2, -1, -1):
            r, v, nv, term, trunc = rewards[t], values[t], next_values[t], terminated[t], truncated[t]
            here, later = out[t], out[t + 1]
            for b in range(batch):
                alive = one - term[b]
                carry = trace * alive * (one - trunc[b])
                advantage = r[b] + gamma * alive * nv[b] - v[b] + carry * later[b]
                here[b] = advantage
                finite &= (advantage - advantage) == zero
        return finite

    @numba.njit(**options)
    def return_scan(rewards, terminated, truncated, bootstrap, gamma, out):
        steps, batch = rewards.shape
        one = rewards.dtype.type(1.0)
        zero = rewards.dtype.type(0.0)
        finite = True
        if steps == 0:
            return finite
        t = steps - 1
        for b in range(batch):
            value = rewards[t, b] + gamma * (one - terminated[t, b]) * bootstrap[t, b]
            out[t, b] = value
            finite &= (value - value) == zero
        for t in range(steps - 2, -1, -1):
            r, term, trunc, boot = rewards[t], terminated[t], truncated[t], bootstrap[t]
            here, later = out[t], out[t + 1]
            for b in range(batch):
                cut = trunc[b]
                future = cut * boot[b] + (one - cut) * later[b]
                value = r[b] + gamma * (one - term[b]) * future
                here[b] = value
                finite &= (value - value) == zero
        return finite

    return gae_scan, return_scan


def available() -> bool:
    """Whether numba can be imported (the fast path); the torch loop is used otherwise."""
    try:
        _compiled()
    except ImportError:
        return False
    return True


def _flags(x: np.ndarray) -> np.ndarray:
    return x.view(np.uint8)


def gae_scan(rewards, values, next_values, terminated, truncated, gamma, lam, out) -> bool:
    scalar = rewards.dtype.type
    return bool(
        _compiled()[0](
            rewards, values, next_values, _flags(terminated), _flags(truncated),
            scalar(gamma), scalar(lam), out,
        )
    )


def return_scan(rewards, terminated, truncated, bootstrap, gamma, out) -> bool:
    return bool(
        _compiled()[1](
            rewards, _flags(terminated), _flags(truncated), bootstrap,
            rewards.dtype.type(gamma), out,
        )
    )
