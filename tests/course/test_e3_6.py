"""Course page E.3.6 (formula reference and exercises): every number on the page against rlgrad
computed here, the exercise checker against ``rlgrad examples``, and the sliders in a browser."""

from __future__ import annotations

import math

import pytest
import torch

import rlgrad
import rlgrad.tabular as tabular
from rlgrad.tour.examples import EXAMPLES, format_value

F64 = torch.float64
SLUG, READY = "e3-6", "e3-6-title"


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


def course_example(title_start: str):
    """The E.3.6 exercise as ``rlgrad examples --section E.3.6`` prints it."""
    (found,) = [e for e in EXAMPLES if e.section == "E.3.6" and e.title.startswith(title_start)]
    return found


def printed(title_start: str, result: str) -> str:
    """The value as the CLI prints it, e.g. ``3.6``: what a learner would type."""
    return format_value(course_example(title_start).results()[result])


def log_softmax_slope(logits, action, weight) -> float:
    """∂/∂z₀ of weight·log softmax(z)[action], by autograd on torch's log_softmax."""
    z = t(logits).requires_grad_(True)
    (weight * torch.log_softmax(z, -1)[action]).backward()
    return float(z.grad[0])


def reference_values() -> dict[str, float]:
    """The reference table's live examples, each computed independently of the page's way."""
    uniform = torch.zeros(2, 2, dtype=F64, requires_grad=True)
    tabular.objective(tabular.two_state(), uniform).backward()  # ∇J by autograd, not the theorem
    logits = t([0.5, -1.0, 0.2]).requires_grad_(True)
    torch.softmax(logits, -1)[0].backward()
    return {
        # θ₁ = 0.2 + 0.1·(−2)(0.2 − 0.8) = 0.32
        "ascent": 0.2 + 0.1 * -2 * (0.2 - 0.8),
        # θ₁ = 1 − 0.01·6(3·1 − 6) = 1.18
        "descent": 1 - 0.01 * 6 * (3 - 6),
        # dL/dθ = 2(3θ − 6)·3 = −18 at θ = 1
        "chain": 2 * (3 - 6) * 3,
        "pg-sample": log_softmax_slope((0.3, -0.2), 0, 2.0),
        "pg-theorem": float(uniform.grad[1, 1]),
        "log-derivative-left": float(logits.grad[0]),
        "log-derivative-right": float(logits.grad[0]),
        "advantage": log_softmax_slope((0.3, -0.2), 0, -0.5),
        "ratio": 0.65 / 0.5,
        "taylor": 3.1**2,  # exact for a quadratic
        "clip": 1.2,  # min(1.3·1, clip(1.3, 0.8, 1.2)·1)
        "grpo": 3 / math.sqrt(5),  # (8 − 5)/√5, population σ
    }


def bias(error: float, lam: float) -> float:
    """‖E[GAE(λ) gradient] − ∇J‖ on the two-state MDP at θ = 0 for V̂ = V^π + (e, −e)."""
    mdp, theta = tabular.two_state(), torch.zeros(2, 2, dtype=F64)
    values, _ = tabular.evaluate(mdp, tabular.policy(theta))
    critic = values + t([error, -error])
    gae = tabular.expected_gae_gradient(mdp, theta, lam, critic)
    return float((gae - tabular.policy_gradient(mdp, theta)).norm())


# ---------------------------------------------------------------- without a browser


@pytest.fixture(scope="module")
def defs():
    from rlgrad.course.notebooks import e3_6_reference_and_exercises as page

    _, definitions = page.app.run()  # every cell, widgets at their defaults
    return definitions


def test_reference_table_values_match_rlgrad_computed_another_way(defs):
    for key, expected in reference_values().items():
        # 1e-8: GRPO divides by σ + ε with ε = 1e-8
        assert float(defs["ref"][key]) == pytest.approx(expected, abs=1e-8), key


def test_exercises_are_the_examples_that_the_cli_prints(defs):
    assert defs["exercise1"] is course_example("Exercise 1")
    assert defs["exercise2"] is course_example("Exercise 2")
    assert defs["exercise3"] is course_example("Exercise 3")
    # and their values are the course's: θ₁ = 0 + 0.1·2, r = 0.6/0.4, δ = 2 + 0.9·6 − 5
    assert float(defs["exercise1_results"]["θ₁"]) == pytest.approx(0.2)
    assert float(defs["exercise2_results"]["r·Â"]) == pytest.approx(1.5 * 3)
    assert float(defs["exercise2_results"]["clipped"]) == pytest.approx(1.2 * 3)
    assert float(defs["exercise3_results"]["δ"]) == pytest.approx(2 + 0.9 * 6 - 5)
    for name in ("verdict1", "verdict2_unclipped", "verdict2_clipped", "verdict3"):
        assert defs[name].status == "empty"


def test_critic_bias_at_the_default_sliders(defs):
    error, lam = defs["critic_error"].value, defs["trap3_lam"].value
    assert defs["bias_norm"] == pytest.approx(bias(error, lam), abs=1e-12)
    assert defs["bias_norm"] > 1  # λ = 0, e = 1: far from the truth
    # at λ = 0 with e = 1 the right state's gradient points left although right is better
    assert defs["true_gradient"][1, 1] > 0 > defs["biased_gradient"][1, 1]


def test_trap1_steps_are_lr_times_the_possibly_clipped_gradient(defs):
    lr, max_norm = defs["trap1_lr"].value, defs["trap1_max_norm"].value
    gradient = tabular.policy_gradient(tabular.two_state(), torch.zeros(2, 2, dtype=F64))
    steps = defs["trap1_steps"]
    assert torch.allclose(steps["plain"], lr * gradient)
    assert float(steps["clipped"].norm()) == pytest.approx(lr * max_norm, rel=1e-5)
    # Adam's first step is α·g/(|g| + ε) entry by entry: about α·sign(g)
    assert torch.allclose(steps["adam"], lr * gradient.sign(), atol=1e-6)


# ---------------------------------------------------------------- in the browser


def test_page_shows_the_reference_values(open_chapter):
    page = open_chapter(SLUG, READY)
    for key, expected in reference_values().items():
        assert page.number(f"ref-{key}") == pytest.approx(expected, abs=5e-5), key
    page.assert_no_errors()


def verdict(page, element_id: str, before: str) -> str:
    page.wait_for_change(element_id, before)
    return page.page.locator(f"#{element_id}").get_attribute("data-status")


@pytest.mark.parametrize(
    ("label", "verdict_id", "title", "result"),
    [
        ("Exercise 1 answer", "ex1-verdict", "Exercise 1", "θ₁"),
        ("Exercise 2 unclipped answer", "ex2-unclipped-verdict", "Exercise 2", "r·Â"),
        ("Exercise 2 clipped answer", "ex2-clipped-verdict", "Exercise 2", "clipped"),
        ("Exercise 3 answer", "ex3-verdict", "Exercise 3", "δ"),
    ],
)
def test_exercise_checks_the_value_rlgrad_examples_prints(
    open_chapter, label, verdict_id, title, result
):
    page = open_chapter(SLUG, READY)
    right = printed(title, result)
    before = page.text(verdict_id)
    page.type_answer(label, right)
    assert verdict(page, verdict_id, before) == "right", page.text(verdict_id)
    before = page.text(verdict_id)
    page.type_answer(label, format_value(float(right) + 1))
    assert verdict(page, verdict_id, before) == "wrong", page.text(verdict_id)
    page.assert_no_errors()


def test_worked_answers_show_the_examples_values_and_follow_epsilon(open_chapter):
    page = open_chapter(SLUG, READY)
    for n in (1, 2, 3):
        switch = page.page.locator(f'marimo-switch[data-label*="worked answer to exercise {n}"]')
        switch.locator("[role=switch]").first.click()
    assert page.number("ex1-worked-theta1") == pytest.approx(float(printed("Exercise 1", "θ₁")))
    assert page.number("ex1-worked-slope") == pytest.approx(float(printed("Exercise 1", "J'(θ₀)")))
    assert page.number("ex2-worked-unclipped") == pytest.approx(float(printed("Exercise 2", "r·Â")))
    assert page.number("ex2-worked-clipped") == pytest.approx(
        float(printed("Exercise 2", "clipped"))
    )
    assert page.number("ex3-worked-delta") == pytest.approx(float(printed("Exercise 3", "δ")))

    # move ε: the clipped term follows rlgrad.ppo_objective at the slider's new value
    slider = page.slider("Exercise 2 clip range")
    for key in ("ArrowRight", "End"):
        page.press(slider, key)
        eps = page.slider_value(slider)
        expected = float(rlgrad.ppo_objective(t([0.6 / 0.4]), t([3.0]), clip_eps=eps)[0])
        shown = page.settled("ex2-worked-clipped", expected)
        assert shown == pytest.approx(expected, abs=5e-5), eps
    assert eps == pytest.approx(0.6) and shown == pytest.approx(4.5)  # r = 1.5 < 1.6: no clip

    # the checker follows ε too: at ε = 0.6 the clipped answer is 4.5
    before = page.text("ex2-clipped-verdict")
    page.type_answer("Exercise 2 clipped answer", "4.5")
    assert verdict(page, "ex2-clipped-verdict", before) == "right"
    page.assert_no_errors()


def test_critic_error_slider_moves_the_bias(open_chapter):
    page = open_chapter(SLUG, READY)
    error_slider, lam_slider = page.slider("critic error"), page.slider("GAE λ")
    lam = page.slider_value(lam_slider)
    assert page.number("trap3-bias") == pytest.approx(
        bias(page.slider_value(error_slider), lam), abs=5e-5
    )

    page.press(error_slider, "ArrowRight", 2)
    error = page.slider_value(error_slider)
    assert error == pytest.approx(1.5)
    expected = bias(error, lam)
    assert page.settled("trap3-bias", expected) == pytest.approx(expected, abs=5e-5)

    # λ = 1: the critic is only a baseline and the bias is gone, whatever its error
    page.press(lam_slider, "End")
    assert page.slider_value(lam_slider) == pytest.approx(1.0)
    shown = page.settled("trap3-bias", bias(error, 1.0))
    assert shown == pytest.approx(bias(error, 1.0), abs=5e-5) and abs(shown) < 5e-5
    page.assert_no_errors()


def test_learning_rate_slider_moves_the_steps(open_chapter):
    page = open_chapter(SLUG, READY)
    gradient = tabular.policy_gradient(tabular.two_state(), torch.zeros(2, 2, dtype=F64))
    assert page.number("trap1-grad-norm") == pytest.approx(float(gradient.norm()), abs=5e-5)
    lr_slider, norm_slider = page.slider("learning rate α"), page.slider("largest norm")
    page.press(lr_slider, "ArrowRight", 5)
    page.press(norm_slider, "ArrowLeft", 2)
    lr, max_norm = page.slider_value(lr_slider), page.slider_value(norm_slider)
    assert (lr, max_norm) == pytest.approx((0.15, 0.3))
    expected = lr * float(gradient.norm())
    assert page.settled("trap1-plain-norm", expected) == pytest.approx(expected, abs=5e-5)
    expected = lr * min(max_norm, float(gradient.norm()))
    assert page.settled("trap1-clipped-norm", expected) == pytest.approx(expected, abs=5e-5)
    page.assert_no_errors()


def test_screenshot_with_answers_revealed(open_chapter):
    page = open_chapter(SLUG, READY)
    for label, title, result in (
        ("Exercise 1 answer", "Exercise 1", "θ₁"),
        ("Exercise 2 unclipped answer", "Exercise 2", "r·Â"),
        ("Exercise 2 clipped answer", "Exercise 2", "clipped"),
        ("Exercise 3 answer", "Exercise 3", "δ"),
    ):
        page.type_answer(label, printed(title, result))
    page.page.locator('[data-status="right"]').nth(3).wait_for(timeout=30_000)
    page.page.locator('marimo-switch[data-label*="worked answer to exercise 2"]').locator(
        "[role=switch]"
    ).first.click()
    page.page.locator("#ex2-worked-clipped").wait_for(timeout=30_000)
    page.assert_no_errors()
    page.screenshot()
