"""The compiled reverse-time scans behind :func:`rlgrad.gae` and :func:`rlgrad.discounted_returns`.

Both recurrences run backwards in time, so neither is one vectorized torch op, and a Python loop
over T pays microseconds of dispatch per step. These numba loops walk the rows of ``[T, N]``
arrays from the last step to the first; the inner loop over the batch has no branch (flags are
read as ``!= 0`` into a select), so LLVM vectorizes it. Each kernel writes into ``out`` and
returns whether every output is finite: ``x − x`` is +0 for a finite x and NaN for NaN or ±inf,
so their running sum stays exactly 0 unless some output is not finite (a NaN or inf in any input
reaches the output at its own step). A float sum, not a boolean ``&=``: the boolean reduction
kept LLVM from vectorizing the loop (3.5× slower). Only FMA contraction is allowed among the
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
    nonfinite = zero
    for t in range(rewards.shape[0] - 1, -1, -1):
        reward, value, next_value = rewards[t], values[t], next_values[t]
        ended, cut, advantages = terminated[t], truncated[t], out[t]
        for b in range(rewards.shape[1]):
            alive = zero if ended[b] != 0 else one
            continues = trace * alive * (zero if cut[b] != 0 else one)
            advantage = (
                reward[b] + gamma * alive * next_value[b] - value[b] + continues * later[b]
            )  # fmt: skip
            later[b] = advantage
            advantages[b] = advantage
            nonfinite += advantage - advantage
    return nonfinite == zero


@numba.njit(**_OPTIONS)
def return_scan(rewards, bootstrap, terminated, truncated, gamma, out):
    """G_t = r_t + γ(1 − term_t)·F_t; F_t = bootstrap_t after a cut or at t = T − 1, else G_{t+1}.

    Arrays as for :func:`gae_scan`; ``bootstrap`` is V(s_{t+1}).
    """
    one, zero = rewards.dtype.type(1.0), rewards.dtype.type(0.0)
    gamma = rewards.dtype.type(gamma)
    steps = rewards.shape[0]
    nonfinite = zero
    for t in range(steps - 1, -1, -1):
        reward, ended, cut, returns = rewards[t], terminated[t], truncated[t], out[t]
        last = t == steps - 1  # the rollout ends: bootstrap every column
        later = out[t] if last else out[t + 1]  # not read at the last step
        for b in range(rewards.shape[1]):
            future = bootstrap[t, b] if last or cut[b] != 0 else later[b]
            alive = zero if ended[b] != 0 else one
            value = reward[b] + gamma * alive * future
            returns[b] = value
            nonfinite += value - value
    return nonfinite == zero
