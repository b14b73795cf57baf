"""E.3.5 (complete formulas): the page's numbers at its defaults and after a learner moves γ, λ
and ε.

The expected values are derived here: finite differences for the policy gradient, the DQN and
GRPO numbers by hand, GAE and the returns by a plain loop over the definition, and rlgrad's own
formula on the values read off the page's sliders.
"""

from __future__ import annotations

import math

import pytest
import torch

import rlgrad
import rlgrad.tabular

marimo = pytest.importorskip("marimo")

from rlgrad.course.notebooks import e3_5_complete_formulas  # noqa: E402

STEPS = 6


def f64(values):
    return torch.as_tensor(values, dtype=torch.float64)


@pytest.fixture(scope="module")
def defs():
    _, definitions = e3_5_complete_formulas.app.run()
    return definitions


def loop_gae(rewards, values, next_values, terminated, gamma, lam):
    """GAE by its definition: δ_t, then Σ_l (γλ)^l δ_{t+l} within the episode."""
    deltas = [
        r + gamma * (0.0 if done else v_next) - v
        for r, v, v_next, done in zip(rewards, values, next_values, terminated, strict=True)
    ]
    advantages = []
    for t in range(len(deltas)):
        advantages.append(sum((gamma * lam) ** k * deltas[t + k] for k in range(len(deltas) - t)))
    return deltas, advantages


def test_policy_gradient_theorem_in_every_form(defs):
    mdp = rlgrad.tabular.two_state()
    theta = torch.zeros(2, 2, dtype=torch.float64)
    by_differences = rlgrad.numerical_gradient(lambda t: rlgrad.tabular.objective(mdp, t), theta)
    for name in ("pg_theorem", "pg_log_form", "pg_advantage_form", "pg_reference"):
        assert torch.allclose(defs[name], by_differences, atol=1e-6), name
    # θ = 0 is the uniform policy, d sums to 1/(1 − γ) = 10 discounted visits
    assert torch.allclose(defs["pg_probs"], torch.full((2, 2), 0.5, dtype=torch.float64))
    assert defs["pg_visits"].sum().item() == pytest.approx(1 / (1 - 0.9))


def test_dqn_reference_example(defs):
    # r = 1, γ = 0.9, max Q⁻(s′, ·) = max(0.5, 2) = 2 → y = 2.8; Q = 1 → L = ½·1.8² = 1.62
    assert defs["dqn_target"].item() == pytest.approx(1 + 0.9 * 2.0)
    assert defs["dqn_value"].item() == pytest.approx(0.5 * (1.0 - 2.8) ** 2)
    assert defs["dqn_slope"].item() == pytest.approx(1.0 - 2.8)  # ∂L/∂Q = Q − y
    assert defs["dqn_delta"].item() == pytest.approx(2.8 - 1.0)  # δ = y − Q


def test_gae_at_the_defaults_and_its_two_ends(defs):
    rewards = defs["gae_rewards"].tolist()
    values = defs["gae_values"].tolist()
    next_values = defs["gae_next_values"].tolist()
    terminated = defs["gae_terminated"].tolist()
    assert terminated == [False] * 5 + [True]
    deltas, advantages = loop_gae(rewards, values, next_values, terminated, 0.9, 0.95)
    assert defs["gae_deltas"].tolist() == pytest.approx(deltas, abs=1e-12)
    assert defs["gae_advantages"].tolist() == pytest.approx(advantages, abs=1e-12)
    assert defs["gae_td"].tolist() == pytest.approx(deltas, abs=1e-12)  # λ = 0 is one-step TD
    # λ = 1 is the Monte-Carlo return minus V: G_t = Σ_k γ^k r_{t+k} (the episode terminates)
    returns = [sum(0.9**k * r for k, r in enumerate(rewards[t:])) for t in range(STEPS)]
    assert defs["gae_returns"].tolist() == pytest.approx(returns, abs=1e-12)
    mc = [g - v for g, v in zip(returns, values, strict=True)]
    assert defs["gae_mc"].tolist() == pytest.approx(mc, abs=1e-12)


def test_ppo_flat_region_at_the_defaults(defs):
    # r = 1.3 > 1 + ε = 1.2 with Â = 1: the clipped value 1.2 and a zero gradient
    assert defs["ppo_value"].item() == pytest.approx(1.2)
    assert defs["ppo_slope"].item() == 0.0


def test_grpo_with_eps_on_the_course_example(defs):
    rewards = [2.0, 4.0, 10.0]
    mean = sum(rewards) / 3  # 16/3 ≈ 5.33
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / 3)
    assert defs["grpo_rewards"] == rewards
    assert round(defs["grpo_mean"].item(), 2) == 5.33
    assert defs["grpo_mean"].item() == pytest.approx(mean)
    assert defs["grpo_std"].item() == pytest.approx(std, abs=1e-7)
    expected = [(r - mean) / (std + 1e-8) for r in rewards]
    assert defs["grpo_advantages"].tolist() == pytest.approx(expected, abs=1e-9)
    assert defs["grpo_advantages"][0] < 0 < defs["grpo_advantages"][2]


def test_moving_gamma_lambda_and_eps(open_chapter, defs):
    page = open_chapter("e3-5", "e3-5-title")
    # θ = 0: raising the logit of right in state left lowers J (docstring of policy_gradient)
    assert page.number("pgt-sum-left") == pytest.approx(-0.44, abs=1e-6)
    assert page.number("ppo-objective") == pytest.approx(1.2, abs=1e-6)
    assert page.text("ppo-flat") == "flat"

    # the page's fixed episode, as rlgrad.gae takes it
    names = ("rewards", "values", "next_values", "terminated", "truncated")
    inputs = tuple(defs[f"gae_{name}"] for name in names)

    # λ: three steps left (0.95 → 0.8); every advantage is rlgrad.gae at the slider's values
    lam_slider, gamma_slider = page.slider("λ"), page.slider("GAE discount")
    before = page.text("gae-adv-0")
    page.press(lam_slider, "ArrowLeft", 3)
    page.wait_for_change("gae-adv-0", before)
    lam, gamma = page.slider_value(lam_slider), page.slider_value(gamma_slider)
    assert (lam, gamma) == (pytest.approx(0.8), pytest.approx(0.9))
    expected = rlgrad.gae(*inputs, gamma, lam)
    for t in range(STEPS):
        shown = page.settled(f"gae-adv-{t}", expected[t].item(), 1e-4)
        assert shown == pytest.approx(expected[t].item(), abs=1e-4)

    # γ: ten steps left (0.9 → 0.8); the TD errors and the advantages follow
    before = page.text("gae-delta-0")  # δ and Â are drawn by one cell: both change together
    page.press(gamma_slider, "ArrowLeft", 10)
    page.wait_for_change("gae-delta-0", before)
    gamma = page.slider_value(gamma_slider)
    assert gamma == pytest.approx(0.8)
    rewards, values, next_values, terminated, _ = inputs
    deltas = rlgrad.td_errors(rewards, values, next_values, terminated, gamma)
    expected = rlgrad.gae(*inputs, gamma, lam)
    for t in range(STEPS):
        shown = page.settled(f"gae-delta-{t}", deltas[t].item(), 1e-4)
        assert shown == pytest.approx(deltas[t].item(), abs=1e-4)
        assert page.number(f"gae-adv-{t}") == pytest.approx(expected[t].item(), abs=1e-4)

    # ε: three steps right (0.2 → 0.35): r = 1.3 is back inside the clip range, so the
    # objective is r·Â and the sample pushes again
    eps_slider = page.slider("clip ε")
    before = page.text("ppo-objective")
    page.press(eps_slider, "ArrowRight", 3)
    page.wait_for_change("ppo-objective", before)
    eps = page.slider_value(eps_slider)
    ratio = page.slider_value(page.slider("ratio r"))
    advantage = page.slider_value(page.slider("advantage Â"))
    assert (eps, ratio, advantage) == (pytest.approx(0.35), pytest.approx(1.3), 1.0)
    ratios = f64([ratio]).requires_grad_(True)
    objective = rlgrad.ppo_objective(ratios, f64([advantage]), eps)
    (slope,) = torch.autograd.grad(objective.sum(), ratios)
    shown = page.settled("ppo-objective", objective.item(), 1e-6)
    assert shown == pytest.approx(objective.item(), abs=1e-6)
    assert page.number("ppo-slope") == pytest.approx(slope.item(), abs=1e-6)
    assert page.text("ppo-flat") == "active"

    page.assert_no_errors()
    page.screenshot()
