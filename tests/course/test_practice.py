"""The practice page: worked answers at the defaults, the sliders, and typed answers checked."""

from __future__ import annotations

import math
import time

import pytest

from rlgrad import tabular


def status(chapter, key):
    """The verdict's status ('empty', 'unreadable', 'right', 'wrong') on exercise ``key``."""
    return chapter.page.locator(f"#{key}-verdict").get_attribute("data-status")


def wait_for_status(chapter, key, wanted, seconds=90):
    deadline = time.monotonic() + seconds
    while status(chapter, key) != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
    return status(chapter, key)


@pytest.fixture(scope="module")
def defs():
    from rlgrad.course.notebooks import practice_calculus_for_rl

    _, definitions = practice_calculus_for_rl.app.run()
    return definitions


def test_core_concepts_at_the_defaults(defs):
    sigmoid = 1 / (1 + math.exp(-0.7))  # σ(0.7), the slope of ln(1 + eˣ) at the default x
    assert defs["softplus_slope"] == pytest.approx(sigmoid)
    assert defs["softplus_numerical"] == pytest.approx(sigmoid, abs=1e-8)
    assert defs["sigmoid_value"] == pytest.approx(sigmoid)
    # y = sin(x²) at x = 1: cos(1)·2
    assert (defs["chain_outer"], defs["chain_inner"]) == pytest.approx((math.cos(1.0), 2.0))
    assert defs["chain_whole"] == pytest.approx(2 * math.cos(1.0))
    # ∇(wᵀAw) = 2Aw with A = [[2, 1], [1, 3]], w = [1, −1]: 2·[1, −2]
    assert defs["quadratic_gradient"].tolist() == pytest.approx([2.0, -4.0])


def test_practice_questions_at_the_defaults(defs):
    assert defs["root_slope"] == pytest.approx(0.5 / math.sqrt(1.25))  # x/√(1 + x²)
    assert defs["practice_gradient"].tolist() == pytest.approx([4.0, 5.0])  # [2w₁+w₂, w₁+2w₂]
    assert defs["autograd_square"] == pytest.approx(4.0)
    assert defs["product_slope"] == pytest.approx(0.0)
    prob_grad, trick = defs["log_trick"]
    assert prob_grad.tolist() == pytest.approx(trick.tolist())


def test_graded_exercises_at_the_defaults(defs):
    assert defs["power_slope"] == pytest.approx(14.0)  # 3·2² + 2
    # δ = 1 + 0.9·(−0.5) − 0.5 = 0.05; w₁ ← 0.5 + 0.1·0.05·1 = 0.505
    assert defs["td_delta"] == pytest.approx(0.05)
    assert defs["td_updated"].tolist() == pytest.approx([0.505, -0.5])
    assert defs["td_semi_gradient"].tolist() == pytest.approx([-0.05, 0.0])  # −δφ(s)
    assert defs["td_full_gradient"].tolist() == pytest.approx([-0.05, 0.045])  # −δ(φ(s) − γφ(s'))
    assert defs["cube_slope"] == pytest.approx(6.0)  # 6(2·0 + 1)²
    other = 1 / (1 + math.exp(0.3 - (-0.2)))  # π₁ for logits [0.3, −0.2]
    assert defs["score"].tolist() == pytest.approx([other, -other])
    # 6xy + y³ = 12 + 8 = 20; 3x² + 3xy² = 3 + 12 = 15 (the course prints 9, a slip)
    assert defs["polynomial_gradient"].tolist() == pytest.approx([20.0, 15.0])
    assert (defs["ppo_value"], defs["ppo_slope"]) == pytest.approx((1.2, 0.0))
    # slopes of ½δ², |δ| and Huber (δ_H = 1): δ, sign δ, and δ below 1 / sign δ above
    assert defs["loss_slopes"][0.5] == pytest.approx([0.5, 1.0, 0.5])
    assert defs["loss_slopes"][2.0] == pytest.approx([2.0, 1.0, 1.0])
    # −(log 0.2 + 1) = 0.609 (the course's code comment prints 2.609, a slip)
    assert defs["entropy_slopes"][0].item() == pytest.approx(-(math.log(0.2) + 1))
    probs = (0.2, 0.5, 0.3)
    assert defs["entropy_value"] == pytest.approx(-sum(p * math.log(p) for p in probs))


def test_temperature_moves_the_soft_policy_between_greedy_and_uniform(defs):
    curves = defs["temperature_curves"]
    coldest, hottest = curves[0][0], curves[-1][0]
    assert coldest[:, 1].min().item() > 0.99  # α → 0: right in both states, like π*
    assert (hottest - 0.5).abs().max().item() < 0.15  # large α: close to uniform
    assert defs["greedy_return"] == pytest.approx(8.1)  # V*(left) of two_state
    # at the default α = 1 the page's policy is the soft-optimal one
    probs, _ = tabular.soft_optimal_policy(tabular.two_state(), 1.0)
    assert defs["soft_probs"].flatten().tolist() == pytest.approx(probs.flatten().tolist())


def test_sliders_and_typed_answers(open_chapter):
    chapter = open_chapter("practice", "practice-title")
    # the last cell's output: the whole page has computed before anything is moved
    assert chapter.number("greedy-return") == pytest.approx(8.1, abs=1e-4)

    # the softplus slider: x from 0.7 to 1.5; the slope shown is σ(x) for the new x
    slider = chapter.slider("x for the softplus")
    chapter.press(slider, "ArrowRight", 8)
    x = chapter.slider_value(slider)
    assert x == pytest.approx(1.5)
    assert chapter.settled("softplus-x", x, 1e-6) == pytest.approx(x)
    sigmoid = 1 / (1 + math.exp(-x))
    assert chapter.number("softplus-slope") == pytest.approx(sigmoid, abs=1e-6)
    assert chapter.number("sigmoid-value") == pytest.approx(sigmoid, abs=1e-6)

    # the temperature: α from 1 down to 0.1, where the policy is nearly greedy
    slider = chapter.slider("α over the soft-optimal policy of two_state")
    chapter.press(slider, "ArrowLeft", 18)
    alpha = chapter.slider_value(slider)
    assert alpha == pytest.approx(0.1)
    assert chapter.settled("temperature-alpha", alpha, 1e-6) == pytest.approx(alpha)
    probs, _ = tabular.soft_optimal_policy(tabular.two_state(), alpha)
    assert chapter.number("soft-right-in-left") == pytest.approx(probs[0, 1].item(), abs=1e-4)
    assert chapter.number("soft-right-in-right") == pytest.approx(probs[1, 1].item(), abs=1e-4)

    # typed answers: the power rule right, the course's misprinted entropy slope wrong
    assert status(chapter, "ex1") == "empty"
    chapter.type_answer("Exercise 1 answer", "14")
    assert wait_for_status(chapter, "ex1", "right") == "right"
    assert "Right" in chapter.text("ex1-verdict")
    chapter.type_answer("Exercise 8 answer", "2.609")
    assert wait_for_status(chapter, "ex8", "wrong") == "wrong"
    chapter.type_answer("Exercise 5 answer, ∂f/∂y", "15")
    assert wait_for_status(chapter, "ex5y", "right") == "right"

    chapter.assert_no_errors()
    chapter.screenshot()
