"""The statistics of `rlgrad report` against hand-computed cases and their nominal coverage."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rlgrad.app import statistics as stats


def test_iqm_trims_a_quarter_from_each_end():
    # n = 8: k = 2 runs trimmed from each end, mean of the middle four (3, 4, 5, 6)
    assert float(stats.iqm(np.array([7.0, 1, 100, 3, 5, 2, 4, 6]))) == 4.5
    # n = 10: k = 2; sorted 0..9 keeps 2..7, mean 4.5; one huge outlier changes nothing
    assert float(stats.iqm(np.r_[np.arange(9.0), 1e9])) == pytest.approx(4.5)
    # n = 3: k = 0, the plain mean
    assert float(stats.iqm(np.array([1.0, 2.0, 6.0]))) == 3.0


def test_iqm_of_times_with_runs_that_never_solved():
    # 2 of 8 unsolved (inf): both trimmed, IQM of the middle four finite times
    times = np.array([1.0, 2, 3, 4, 5, 6, math.inf, math.inf])
    assert float(stats.iqm(times)) == 4.5
    # 3 of 8 unsolved: one inf stays in the middle, so the IQM is inf
    assert math.isinf(float(stats.iqm(np.array([1.0, 2, 3, 4, 5] + [math.inf] * 3))))


def test_optimality_gap_counts_only_the_shortfall():
    # shortfalls below 1: 1 - 0.2 = 0.8, 1 - 0.5 = 0.5, and 0 for the run at 1.5
    assert float(stats.optimality_gap(np.array([0.2, 0.5, 1.5]))) == pytest.approx(1.3 / 3)


def test_aggregates_reduce_the_runs_axis_of_curves():
    curves = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 11.0]])  # [runs, points]
    np.testing.assert_allclose(stats.mean(curves, axis=0), [2.0, 5.0])
    np.testing.assert_allclose(stats.median(curves, axis=0), [2.0, 3.0])
    np.testing.assert_allclose(stats.iqm(curves, axis=0), [2.0, 5.0])  # n = 3: nothing trimmed


def test_bootstrap_of_a_constant_is_that_constant():
    interval = stats.stratified_bootstrap([np.full(7, 3.0), np.full(4, 3.0)], stats.iqm, reps=50)
    assert (interval.point, interval.low, interval.high) == (3.0, 3.0, 3.0)


def test_stratified_bootstrap_resamples_within_tasks_only():
    # task A's runs are all 0 and task B's all 10: a resample within tasks always keeps 5 of
    # each, so the pooled mean is exactly 5 in every resample; resampling across tasks would not
    tasks = [np.zeros(5), np.full(5, 10.0)]
    interval = stats.stratified_bootstrap(tasks, stats.mean, reps=500, seed=1)
    assert (interval.point, interval.low, interval.high) == (5.0, 5.0, 5.0)


def test_bootstrap_interval_covers_the_true_mean_at_about_its_rate():
    # 400 synthetic experiments of 20 runs from N(3, 2²): the 95% percentile interval of the
    # mean should contain 3 in about 95% of them (the percentile bootstrap runs a little narrow
    # at n = 20, so allow 0.89-0.98)
    rng = np.random.default_rng(123)
    covered = 0
    for i in range(400):
        runs = rng.normal(3.0, 2.0, size=20)
        interval = stats.stratified_bootstrap([runs], stats.mean, reps=1000, seed=i)
        covered += interval.low <= 3.0 <= interval.high
    assert 0.89 <= covered / 400 <= 0.98


def test_bootstrap_interval_covers_the_true_iqm_at_about_its_rate():
    # a symmetric distribution's IQM is its centre: logistic(1, 1) has IQM 1
    rng = np.random.default_rng(7)
    covered = sum(
        (lambda iv: iv.low <= 1.0 <= iv.high)(
            stats.stratified_bootstrap(
                [rng.logistic(1.0, 1.0, size=30)], stats.iqm, reps=1000, seed=i
            )
        )
        for i in range(300)
    )
    assert 0.89 <= covered / 300 <= 0.99


def test_wider_confidence_gives_a_wider_interval():
    runs = np.random.default_rng(0).normal(size=25)
    narrow = stats.stratified_bootstrap([runs], stats.mean, confidence=0.5, reps=2000)
    wide = stats.stratified_bootstrap([runs], stats.mean, confidence=0.99, reps=2000)
    assert wide.low < narrow.low < narrow.point < narrow.high < wide.high


def test_probability_of_improvement_by_hand():
    # x = [1, 2, 3], y = [0, 2, 5]: of 9 pairs x wins (1,0) (2,0) (3,0) (3,2), ties (2,2)
    x, y = np.array([1.0, 2, 3]), np.array([0.0, 2, 5])
    assert stats.probability_of_improvement([x], [y]) == pytest.approx((4 + 0.5) / 9)
    # two tasks are averaged, not pooled: task 2 is a certain win
    p = stats.probability_of_improvement([x, np.array([9.0])], [y, np.array([1.0])])
    assert p == pytest.approx((4.5 / 9 + 1.0) / 2)


@given(
    arrays(np.float64, st.integers(1, 8), elements=st.integers(-5, 5).map(float)),
    arrays(np.float64, st.integers(1, 8), elements=st.integers(-5, 5).map(float)),
)
def test_probability_of_improvement_is_antisymmetric(x, y):
    # P(X > Y) + P(Y > X) = 1, ties counted half on each side (integers make ties common)
    forward = stats.probability_of_improvement([x], [y])
    backward = stats.probability_of_improvement([y], [x])
    assert forward + backward == pytest.approx(1.0)


def test_probability_of_improvement_interval_brackets_its_point():
    rng = np.random.default_rng(3)
    x, y = rng.normal(1.0, 1.0, 15), rng.normal(0.0, 1.0, 15)
    interval = stats.probability_of_improvement_interval([x], [y], reps=500)
    assert interval.low <= interval.point <= interval.high
    assert interval.point > 0.6  # X is a full standard deviation better


def test_performance_profile_by_hand():
    profile = stats.performance_profile(np.array([0.0, 0.5, 1.0, 2.0]))
    scores = np.array([0.2, 0.7, 1.0, 1.5])
    # above 0: all four; above 0.5: 0.7, 1.0, 1.5; above 1.0: 1.5 only (strict); above 2: none
    np.testing.assert_allclose(profile(scores, axis=0), [1.0, 0.75, 0.25, 0.0])
    band = stats.stratified_bootstrap([scores], profile, reps=200)
    assert np.all(band.low <= band.point) and np.all(band.point <= band.high)


def test_wilson_interval_by_hand():
    # z = 1.96, n = 20, p = 0.95: centre (0.95 + 0.09604) / 1.19208 = 0.87749,
    # half-width 1.96 · sqrt(0.002375 + 0.0024010) / 1.19208 = 0.11363
    interval = stats.wilson_interval(19, 20)
    assert interval.point == 0.95
    assert interval.low == pytest.approx(0.7639, abs=1e-4)
    assert interval.high == pytest.approx(0.9911, abs=1e-4)
    # all successes: the upper end is 1, the lower end well below it
    full = stats.wilson_interval(20, 20)
    assert full.high == 1.0 and full.low == pytest.approx(0.8389, abs=1e-4)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: stats.stratified_bootstrap([], stats.mean), "at least one task"),
        (lambda: stats.stratified_bootstrap([np.zeros(0)], stats.mean), "at least one run"),
        (lambda: stats.stratified_bootstrap([np.array([np.nan])], stats.mean), "NaN"),
        (lambda: stats.stratified_bootstrap([np.ones(3)], stats.mean, confidence=1.5), "(0, 1)"),
        (lambda: stats.wilson_interval(3, 2), "successes <= runs"),
        (lambda: stats.probability_of_improvement([np.ones(2)], []), "same tasks"),
    ],
)
def test_bad_input_names_the_problem(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
