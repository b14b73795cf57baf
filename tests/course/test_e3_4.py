"""E.3.4 (derivations): the page's numbers at its defaults and after a learner moves a control.

Each expected value is computed here from its definition (softmax by hand, x² by hand, the
population mean and standard deviation by hand) or by calling rlgrad's formula on the value the
test reads off the page, never copied from the page.
"""

from __future__ import annotations

import math

import pytest
import torch

import rlgrad
import rlgrad.tabular

marimo = pytest.importorskip("marimo")

from rlgrad.course.notebooks import e3_4_derivations  # noqa: E402


def f64(values):
    return torch.as_tensor(values, dtype=torch.float64)


@pytest.fixture(scope="module")
def defs():
    _, definitions = e3_4_derivations.app.run()
    return definitions


def population(values):
    """μ and the population σ of a list, by their definitions."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def test_log_derivative_trick_matches_the_softmax_jacobian(defs):
    # ∂π(a)/∂z = π(a)(e_a − π) for a softmax; the page shows it for a = 0
    logits = defs["logits"]
    probs = torch.exp(logits) / torch.exp(logits).sum()
    by_hand = probs[0] * (torch.eye(3, dtype=torch.float64)[0] - probs)
    assert torch.allclose(defs["grad_prob"], by_hand, atol=1e-12)
    assert torch.allclose(defs["prob"] * defs["grad_log_prob"], by_hand, atol=1e-12)
    assert torch.allclose(defs["grad_log_prob"], torch.eye(3, dtype=torch.float64)[0] - probs)


def test_exact_and_sampled_policy_gradient_on_two_state(defs):
    mdp = rlgrad.tabular.two_state()
    theta = torch.zeros(2, 2, dtype=torch.float64)
    # the exact gradient by autograd through J(θ) = μ₀ᵀV (independent of the theorem's formula)
    by_autograd = rlgrad.gradient(lambda t: rlgrad.tabular.objective(mdp, t), theta)
    assert torch.allclose(defs["exact_gradient"], by_autograd, atol=1e-9)
    # the REINFORCE estimate converges: after all 3000 episodes it is near the exact value,
    # after 10 it is far (standard error ≈ spread/√N)
    means = defs["running_means"]
    assert means.shape == (3000, 2, 2)
    assert (means[-1] - by_autograd).abs().max() < 0.2
    assert (means[9] - by_autograd).norm() > (means[-1] - by_autograd).norm()
    # the page's slider starts at N = 30: the shown estimate is the mean of the first 30
    assert torch.equal(defs["sampled_gradient"], means[29])


def test_taylor_numbers_of_the_course(defs):
    # f(x) = x² at x = 3, h = 0.1: 9 + 6·0.1 = 9.6, + ½·2·0.01 = 9.61 = 3.1²
    assert defs["first_order"].item() == pytest.approx(9.6, abs=1e-12)
    assert defs["second_order"].item() == pytest.approx(9.61, abs=1e-12)
    assert defs["true_value"].item() == pytest.approx(3.1**2, abs=1e-12)


def test_ratio_models_and_where_first_order_breaks(defs):
    step_size = 0.3
    true, first, second = defs["ratio_models"](step_size)
    theta, direction = defs["ratio_theta"], defs["ratio_direction"]
    new_probs = torch.softmax(theta + step_size * direction, -1)
    assert torch.allclose(true, new_probs / torch.softmax(theta, -1), atol=1e-12)
    # first order: 1 + t·(dℓ_i/dθ · d), with ∇ℓ_i = e_i − π for the softmax
    probs = torch.softmax(theta, -1)
    slopes = (torch.eye(3, dtype=torch.float64) - probs) @ direction
    assert torch.allclose(first, 1 + step_size * slopes, atol=1e-12)
    # the second-order model is closer to the truth than the first at this small step
    assert (second - true).norm() < (first - true).norm()
    # the clip range is left before the first-order model goes wrong by > 10%
    assert 0 < defs["clip_engages"] < defs["first_order_breaks"] <= 2.5


def test_grpo_numbers_of_the_course(defs):
    # r = [2, 4, 6, 8]: μ = 5, σ = √5, Â₄ = 3/√5 ≈ 1.34
    assert defs["group"] == [2.0, 4.0, 6.0, 8.0]
    assert defs["group_mean"].item() == pytest.approx(5.0)
    assert defs["group_std"].item() == pytest.approx(math.sqrt(5), abs=1e-7)
    advantages = defs["group_advantages"].tolist()
    assert advantages == pytest.approx([(r - 5) / math.sqrt(5) for r in (2, 4, 6, 8)], abs=1e-7)
    assert round(advantages[-1], 2) == 1.34


def test_typed_rewards_are_read_or_skipped_with_a_note(defs):
    read = defs["read_rewards"]
    assert read("1, 2.5, 3/4", (2.0, 4.0)) == ([1.0, 2.5, 0.75], "")
    rewards, note = read("1, abc, 1e400, 3", (2.0, 4.0))
    assert rewards == [1.0, 3.0]
    assert "'abc'" in note and "'1e400'" in note
    rewards, note = read("7", (2.0, 4.0))
    assert rewards == [2.0, 4.0] and "at least two" in note


def test_moving_h_and_typing_rewards(open_chapter):
    page = open_chapter("e3-4", "e3-4-title")
    assert page.number("taylor-first") == pytest.approx(9.6)
    assert page.number("taylor-second") == pytest.approx(9.61)

    # move h four steps right (0.1 → 0.3) and compare with rlgrad.taylor at the slider's value
    h_slider = page.slider("step h")
    before = page.text("taylor-first")
    page.press(h_slider, "ArrowRight", 4)
    page.wait_for_change("taylor-first", before)
    h = page.slider_value(h_slider)
    assert h == pytest.approx(0.3)
    x, step = f64(3.0), f64(h)
    for order, element in ((1, "taylor-first"), (2, "taylor-second")):
        expected = rlgrad.taylor(lambda t: t**2, x, step, order=order).item()
        assert page.settled(element, expected, 1e-6) == pytest.approx(expected, abs=1e-6)
    assert page.number("taylor-true") == pytest.approx((3 + h) ** 2, abs=1e-6)

    # type a new group of rewards: μ, σ and every Â follow
    rewards = [1.0, 2.0, 3.0, 10.0]
    before = page.text("grpo-mu")
    page.type_answer("Group rewards", "1, 2, 3, 10")
    page.wait_for_change("grpo-mu", before)
    mean, std = population(rewards)
    assert page.number("grpo-mu") == pytest.approx(mean, abs=1e-4)
    assert page.number("grpo-sigma") == pytest.approx(std, abs=1e-4)
    expected = rlgrad.group_advantages(f64([rewards]))[0]
    for i, value in enumerate(expected.tolist()):
        assert page.number(f"grpo-adv-{i + 1}") == pytest.approx(value, abs=1e-4)

    # shrink the group to its first three answers with the group-size slider
    size = page.slider("group size G")
    before = page.text("grpo-mu")
    page.press(size, "ArrowLeft", 1)
    page.wait_for_change("grpo-mu", before)
    group = rewards[: int(page.slider_value(size))]
    assert group == [1.0, 2.0, 3.0]
    assert page.number("grpo-mu") == pytest.approx(population(group)[0], abs=1e-4)
    expected = rlgrad.group_advantages(f64([group]))[0]
    assert page.number("grpo-adv-3") == pytest.approx(expected[2].item(), abs=1e-4)
    assert page.page.locator("#grpo-adv-4").count() == 0

    page.assert_no_errors()
    page.screenshot()
