"""Statistics over many seeds: aggregate scores with interval estimates.

Deep-RL results vary a lot from seed to seed, so a point estimate from a handful of runs says
little. Following Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (NeurIPS), each aggregate comes with a 95% confidence interval from a
*stratified* bootstrap: runs are resampled with replacement within each task (environment), never
across tasks, so every resample keeps the design of the experiment.

Written with NumPy rather than on top of rliable: rliable 1.2.0 imports ``arch``, which fails to
import next to pandas 3, and these few functions are short enough to test against hand-computed
cases (``tests/test_statistics.py``). The conventions are rliable's: the IQM trims
``int(0.25 · n)`` runs from each end (``scipy.stats.trim_mean``), scores are pooled over tasks,
and intervals are percentile intervals.

Every statistic ``f(x, axis)`` reduces the runs axis of ``x``; the runs axis comes first in every
input, ``[runs, *rest]``, so a learning curve ``[runs, points]`` gets one interval per point.

    >>> float(iqm(np.array([1.0, 2, 3, 4, 5, 6, 7, 100])))  # trims 1, 2 and 7, 100: 3..6
    4.5
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rlgrad.errors import BadInputError

Statistic = Callable[..., np.ndarray]


def _scores(name: str, x: object) -> np.ndarray:
    """``x`` as a float array with at least one run and no NaN, or a ValueError naming it."""
    array = np.asarray(x, dtype=np.float64)
    if array.ndim == 0 or array.shape[0] == 0:
        raise BadInputError(f"{name}: needs at least one run; got shape {array.shape}")
    if np.isnan(array).any():
        raise BadInputError(f"{name}: scores must not be NaN; got {array.ravel()[:8]}...")
    return array


def iqm(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Interquartile mean: the mean of the middle runs after trimming ⌊n/4⌋ from each end.

    IQM = mean(sort(x)[k : n − k]),  k = ⌊0.25 n⌋.

    Robust to a few outlying runs, like the median, but uses half of the runs instead of one or
    two, so its interval is tighter. ``+inf`` entries (a run that never reached a threshold, in a
    time-to-solve) stay finite-safe: they are trimmed while fewer than a quarter of the runs, and
    make the IQM ``inf`` once more than a quarter never got there.
    """
    x = np.sort(np.asarray(x, dtype=np.float64), axis=axis)
    n = x.shape[axis]
    k = int(0.25 * n)
    return np.take(x, np.arange(k, n - k), axis=axis).mean(axis=axis)


def median(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """The median over runs."""
    return np.median(np.asarray(x, dtype=np.float64), axis=axis)


def mean(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """The mean over runs."""
    return np.mean(np.asarray(x, dtype=np.float64), axis=axis)


def optimality_gap(x: np.ndarray, axis: int = 0, target: float = 1.0) -> np.ndarray:
    """How far runs fall short of ``target`` on average; going beyond it earns nothing.

    gap = mean(max(target − x, 0)); with scores normalized so that 1 is "solved", 0 means every
    run solved the task.
    """
    return np.mean(np.maximum(target - np.asarray(x, dtype=np.float64), 0.0), axis=axis)


AGGREGATES: dict[str, Statistic] = {
    "IQM": iqm,
    "median": median,
    "mean": mean,
    "optimality gap": optimality_gap,
}


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval (arrays for curves, floats otherwise)."""

    point: np.ndarray | float
    low: np.ndarray | float
    high: np.ndarray | float


def stratified_bootstrap(
    tasks: Sequence[np.ndarray],
    statistic: Statistic,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``statistic`` of the pooled runs with a percentile stratified-bootstrap interval.

    ``tasks``: one array ``[runs, *rest]`` per task. Each resample draws, within every task
    independently, as many runs as it has, with replacement; the statistic of the pooled resample
    is computed ``reps`` times, and the interval is its (1 ± confidence)/2 quantiles (taken as the
    nearest resample below and above, so runs at ``inf`` never turn into NaN by interpolation).
    """
    if not tasks:
        raise BadInputError("stratified_bootstrap: needs at least one task; got none")
    if not 0 < confidence < 1:
        raise BadInputError(f"stratified_bootstrap: confidence must be in (0, 1); got {confidence}")
    if reps < 1:
        raise BadInputError(f"stratified_bootstrap: reps must be >= 1; got {reps}")
    arrays = [_scores(f"stratified_bootstrap task {i}", t) for i, t in enumerate(tasks)]
    rest = {a.shape[1:] for a in arrays}
    if len(rest) > 1:
        raise BadInputError(
            f"stratified_bootstrap: tasks must agree past the runs axis; got {rest}"
        )
    rng = np.random.default_rng(seed)
    resamples = np.concatenate(  # [reps, pooled runs, *rest]
        [a[rng.integers(0, len(a), size=(reps, len(a)))] for a in arrays], axis=1
    )
    estimates = statistic(resamples, axis=1)  # [reps, *rest]
    tail = (1 - confidence) / 2 * 100
    return Interval(
        point=_plain(statistic(np.concatenate(arrays), axis=0)),
        low=_plain(np.percentile(estimates, tail, axis=0, method="lower")),
        high=_plain(np.percentile(estimates, 100 - tail, axis=0, method="higher")),
    )


def _plain(x: np.ndarray) -> np.ndarray | float:
    return float(x) if np.ndim(x) == 0 else x


def probability_of_improvement(x: Sequence[np.ndarray], y: Sequence[np.ndarray]) -> float:
    """P(X > Y): how often a run of X beats a run of Y, averaged over tasks (ties count half).

    P = (1/M) Σ_m (1/(N_m K_m)) Σ_i Σ_j [x_mi > y_mj] + ½[x_mi = y_mj],

    the Mann-Whitney U statistic of each task scaled to [0, 1]. 0.5 means no difference; for a
    lower-is-better quantity (time to solve) pass the arguments the other way round.

        >>> probability_of_improvement([np.array([1.0, 2, 3])], [np.array([0.0, 2, 5])])
        0.5
    """
    xs = [_scores("probability_of_improvement X", a) for a in x]
    ys = [_scores("probability_of_improvement Y", b) for b in y]
    return float(np.mean(_improvement(xs, ys, axes=(0, 1))))


def _improvement(x, y, axes) -> np.ndarray:
    if len(x) != len(y) or not x:
        raise BadInputError(
            f"probability_of_improvement: X and Y need the same tasks; got {len(x)} and {len(y)}"
        )
    per_task = []
    for a, b in zip(x, y, strict=True):
        a = np.expand_dims(a, -1)  # [..., N, 1]
        b = np.expand_dims(b, -2)  # [..., 1, K]
        per_task.append(np.mean((a > b) + 0.5 * (a == b), axis=axes))
    return np.mean(per_task, axis=0)


def probability_of_improvement_interval(
    x: Sequence[np.ndarray],
    y: Sequence[np.ndarray],
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """:func:`probability_of_improvement` with a stratified-bootstrap interval (the runs of X and
    of Y resampled independently within each task)."""
    xs = [_scores("probability_of_improvement X", a) for a in x]
    ys = [_scores("probability_of_improvement Y", b) for b in y]
    rng = np.random.default_rng(seed)
    x_resampled = [a[rng.integers(0, len(a), size=(reps, len(a)))] for a in xs]
    y_resampled = [b[rng.integers(0, len(b), size=(reps, len(b)))] for b in ys]
    estimates = _improvement(x_resampled, y_resampled, axes=(1, 2))  # [reps]
    tail = (1 - confidence) / 2 * 100
    return Interval(
        point=probability_of_improvement(xs, ys),
        low=float(np.percentile(estimates, tail, method="lower")),
        high=float(np.percentile(estimates, 100 - tail, method="higher")),
    )


def performance_profile(thresholds: np.ndarray) -> Statistic:
    """The statistic "fraction of runs with a score above τ", one value per τ in ``thresholds``.

    Use it with :func:`stratified_bootstrap` for the profile with its confidence band.

        >>> performance_profile(np.array([0.0, 1.5]))(np.array([1.0, 2.0]), axis=0)
        array([1. , 0.5])
    """
    taus = np.asarray(thresholds, dtype=np.float64)

    def fraction_above(x: np.ndarray, axis: int = 0) -> np.ndarray:
        return np.mean(np.expand_dims(x, -1) > taus, axis=axis)

    return fraction_above


def wilson_interval(successes: int, runs: int, confidence: float = 0.95) -> Interval:
    """A success rate with its Wilson score interval (which stays inside [0, 1] and is not
    degenerate at 0/n or n/n, unlike the normal approximation).

    p̂ = s/n;  centre, half-width = (p̂ + z²/2n, z·√(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n).

        >>> interval = wilson_interval(19, 20)
        >>> round(interval.low, 3), round(interval.high, 3)
        (0.764, 0.991)
    """
    if runs <= 0 or not 0 <= successes <= runs:
        raise BadInputError(
            f"wilson_interval: need 0 <= successes <= runs and runs > 0; got {successes}/{runs}"
        )
    z = _normal_quantile(0.5 + confidence / 2)
    p = successes / runs
    denominator = 1 + z * z / runs
    centre = (p + z * z / (2 * runs)) / denominator
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / denominator
    return Interval(point=p, low=max(centre - half, 0.0), high=min(centre + half, 1.0))


def _normal_quantile(q: float) -> float:
    """The standard normal quantile (scipy-free: bisection on math.erf is exact enough here)."""
    low, high = -10.0, 10.0
    for _ in range(100):
        middle = (low + high) / 2
        if 0.5 * (1 + math.erf(middle / math.sqrt(2))) < q:
            low = middle
        else:
            high = middle
    return (low + high) / 2
