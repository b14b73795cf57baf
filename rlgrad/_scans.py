"""The compiled reverse-time scans behind :func:`rlgrad.gae` and :func:`rlgrad.discounted_returns`.

Both recurrences run backwards in time, so neither is one vectorized torch op, and a Python loop
over T pays microseconds of dispatch per step. These numba loops walk the rows of ``[T, N]``
arrays from the last step to the first; the inner loop over the batch has no branch (flags are
read as ``!= 0`` into a select), so LLVM vectorizes it. Each kernel writes into ``out`` and
returns whether every output is finite: ``(x − x) == 0`` fails only for NaN and ±inf, and a NaN
or inf in any input reaches the output at its own step. Only FMA contraction is allowed among the
fast-math flags (reassociation would fold x − x to 0). Compiled once per dtype, cached on disk.
"""

from __future__ import annotations

import numba
import numpy as np

_OPTIONS = {"cache": True, "boundscheck": False, "fastmath": {"contract"}}


@numba.njit(**_OPTIONS)
def gae_scan(rewards, values, next_values, terminated, truncated, gamma, lam, out):
    """A_t = r_t + γ(1 − term_t)V(s_{t+1}) − V(s_t) + γλ(1 − term_t)(1 − trunc_t)·A_{t+1}.

    Floats ``[T, N]`` of one dtype, flags ``[T, N]`` uint8; γ and λ are cast to that dtype.
    """
    one, zero = rewards.dtype.type(1.0), rewards.dtype.type(0.0)
    gamma = rewards.dtype.type(gamma)
    trace = gamma * rewards.dtype.type(lam)
    later = np.zeros(rewards.shape[1], dtype=rewards.dtype)  # A_T = 0: the last A is δ
    finite = True
    for t in range(rewards.shape[0] - 1, -1, -1):
        for b in range(rewards.shape[1]):
            alive = zero if terminated[t, b] != 0 else one
            continues = trace * alive * (zero if truncated[t, b] != 0 else one)
            advantage = (
                rewards[t, b] + gamma * alive * next_values[t, b] - values[t, b]
                + continues * later[b]
            )  # fmt: skip
            later[b] = advantage
            out[t, b] = advantage
            finite &= (advantage - advantage) == zero
    return finite


@numba.njit(**_OPTIONS)
def return_scan(rewards, bootstrap, terminated, truncated, gamma, out):
    """G_t = r_t + γ(1 − term_t)·F_t; F_t = bootstrap_t after a cut or at t = T − 1, else G_{t+1}.

    Arrays as for :func:`gae_scan`; ``bootstrap`` is V(s_{t+1}).
    """
    one, zero = rewards.dtype.type(1.0), rewards.dtype.type(0.0)
    gamma = rewards.dtype.type(gamma)
    steps = rewards.shape[0]
    finite = True
    for t in range(steps - 1, -1, -1):
        for b in range(rewards.shape[1]):
            cut = truncated[t, b] != 0 or t == steps - 1  # the rollout ends: bootstrap
            future = bootstrap[t, b] if cut else out[t + 1, b]
            alive = zero if terminated[t, b] != 0 else one
            value = rewards[t, b] + gamma * alive * future
            out[t, b] = value
            finite &= (value - value) == zero
    return finite
