"""Compiled reverse-time scans for GAE and discounted returns (CPU, numba).

Both recurrences run backwards in time, so they cannot be one vectorized torch op; a Python loop
over T pays several microseconds of dispatch per step, which dominates on 2 cores. A numba loop
over time with a SIMD inner loop over the batch is compiled once per dtype (and cached on disk),
reads each input once and writes the output once, so it runs close to a single elementwise op
over the same bytes (see BENCHMARKS.md). The GAE scan goes one step further for data that
comes from memory: each row is computed one cache line at a time by ``rlgrad._llvm.gae_line``,
which prefetches the previous row and can write with streaming stores.

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
import torch

# Outputs from this size on are written with streaming stores (x86): the scan's working set is then
# ~4.5× this, past a typical per-core L2 (1–2 MiB), so the output would not stay cached anyway,
# and skipping the read of every output line pays even when the caller reads the result next
# (measured for gae + `advantages + values` on [2048, 64] and [1024, 1024]; at [256, 256] the
# caller's read cost more than the store saved).
STREAM_BYTES = 512 * 1024


@cache
def _compiled():
    import numba  # imported lazily: compiling costs ~1 s once, and most imports never need it

    options = {"cache": True, "boundscheck": False, "fastmath": {"contract"}}

    from rlgrad._llvm import (
        elements_before_line,
        gae_line,
        gae_line_streamed,
        line_elements,
        pointer_to,
        store_fence,
    )

    flag = np.uint8(0)

    @numba.njit(**options)
    def rows(address, steps, batch, like):
        """The C-contiguous ``[steps, batch]`` array of ``like``'s type at ``address``."""
        return numba.carray(pointer_to(address, like), (steps, batch))

    @numba.njit(**options)
    def gae_step(
        rewards, values, next_values, terminated, truncated, gamma, trace, later, out, t, b
    ):
        """One element of GAE, for the columns before and after the whole cache lines of a row."""
        one = rewards.dtype.type(1.0)
        alive = one - terminated[t, b]
        continues = trace * alive * (one - truncated[t, b])
        advantage = (
            rewards[t, b] + gamma * alive * next_values[t, b] - values[t, b] + continues * later[b]
        )
        later[b] = advantage
        out[t, b] = advantage
        return (advantage - advantage) == rewards.dtype.type(0.0)

    @numba.njit(**options)
    def gae_scan(
        rewards_at, values_at, next_values_at, terminated_at, truncated_at, out_at,
        steps, batch, gamma, lam, stream,
    ):  # fmt: skip
        rewards = rows(rewards_at, steps, batch, gamma)
        values = rows(values_at, steps, batch, gamma)
        next_values = rows(next_values_at, steps, batch, gamma)
        terminated = rows(terminated_at, steps, batch, flag)
        truncated = rows(truncated_at, steps, batch, flag)
        out = rows(out_at, steps, batch, gamma)
        trace = gamma * lam
        width = line_elements(out)
        # A_{t+1} for the row being computed; a private row stays in L1 while `out` streams.
        later = np.zeros(batch, dtype=rewards.dtype)  # A_T = 0: the last step is A = δ
        inputs = (rewards, values, next_values, terminated, truncated, gamma, trace, later, out)
        finite = True
        for t in range(steps - 1, -1, -1):
            first_line = min(elements_before_line(out, t), batch)
            for b in range(first_line):
                finite &= gae_step(*inputs, t, b)
            b = first_line
            while b + width <= batch:
                if stream:
                    finite &= gae_line_streamed(*inputs, t, b)
                else:
                    finite &= gae_line(*inputs, t, b)
                b += width
            while b < batch:
                finite &= gae_step(*inputs, t, b)
                b += 1
        store_fence()
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
    def return_scan(
        rewards_at, bootstrap_at, terminated_at, truncated_at, out_at, steps, batch, gamma
    ):
        rewards = rows(rewards_at, steps, batch, gamma)
        bootstrap = rows(bootstrap_at, steps, batch, gamma)
        terminated = rows(terminated_at, steps, batch, flag)
        truncated = rows(truncated_at, steps, batch, flag)
        out = rows(out_at, steps, batch, gamma)
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
