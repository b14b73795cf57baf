"""Compiled reverse-time scans for GAE and discounted returns (CPU, numba).

Both recurrences run backwards in time, so they cannot be one vectorized torch op; a Python loop
over T pays several microseconds of dispatch per step, which dominates on 2 cores. A numba loop
over time with a SIMD inner loop over the batch is compiled once per dtype (and cached on disk),
reads each input once and writes the output once, so it runs close to a single elementwise op
over the same bytes (see BENCHMARKS.md).

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

    # Each time step is a separate function over 1-D rows: LLVM can then prove (with a runtime
    # check) that the rows do not overlap and emits SIMD code, which it does not for the same loop
    # written over 2-D arrays. That alone halves the run time on [1024, 1024].
    @numba.njit(**options)
    def gae_row(rewards, values, next_values, terminated, truncated, gamma, trace, later, here):
        one = rewards.dtype.type(1.0)
        zero = rewards.dtype.type(0.0)
        finite = True
        for b in range(rewards.shape[0]):
            alive = one - terminated[b]
            carry = trace * alive * (one - truncated[b])
            advantage = rewards[b] + gamma * alive * next_values[b] - values[b] + carry * later[b]
            here[b] = advantage
            finite &= (advantage - advantage) == zero
        return finite

    @numba.njit(**options)
    def gae_scan(rewards, values, next_values, terminated, truncated, gamma, lam, out):
        steps, batch = rewards.shape
        finite = True
        later = np.zeros(batch, dtype=rewards.dtype)  # A_T = 0: the last step is A = δ
        for t in range(steps - 1, -1, -1):
            finite &= gae_row(
                rewards[t],
                values[t],
                next_values[t],
                terminated[t],
                truncated[t],
                gamma,
                gamma * lam,
                later,
                out[t],
            )
            later = out[t]
        return finite

    @numba.njit(**options)
    def return_row(rewards, terminated, truncated, bootstrap, gamma, later, here):
        one = rewards.dtype.type(1.0)
        zero = rewards.dtype.type(0.0)
        finite = True
        for b in range(rewards.shape[0]):
            cut = truncated[b]
            future = cut * bootstrap[b] + (one - cut) * later[b]
            value = rewards[b] + gamma * (one - terminated[b]) * future
            here[b] = value
            finite &= (value - value) == zero
        return finite

    @numba.njit(**options)
    def return_scan(rewards, terminated, truncated, bootstrap, gamma, out):
        steps = rewards.shape[0]
        finite = True
        for t in range(steps - 1, -1, -1):
            # After the last step the rollout is cut: the future is the bootstrap itself.
            later = bootstrap[t] if t == steps - 1 else out[t + 1]
            finite &= return_row(
                rewards[t], terminated[t], truncated[t], bootstrap[t], gamma, later, out[t]
            )
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
            rewards,
            values,
            next_values,
            _flags(terminated),
            _flags(truncated),
            scalar(gamma),
            scalar(lam),
            out,
        )
    )


def return_scan(rewards, bootstrap, terminated, truncated, gamma, out) -> bool:
    return bool(
        _compiled()[1](
            rewards,
            _flags(terminated),
            _flags(truncated),
            bootstrap,
            rewards.dtype.type(gamma),
            out,
        )
    )
