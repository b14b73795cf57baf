"""E.3.1 calculus basics: the worked numbers at the defaults, and the learning-rate sliders."""

from __future__ import annotations

import pytest
import torch

import rlgrad


def f64(value):
    return torch.as_tensor(value, dtype=torch.float64)


def objective(theta):  # the course's J(θ) = −(θ − 0.8)² + 1
    return -((theta - 0.8) ** 2) + 1


@pytest.fixture(scope="module")
def defs():
    from rlgrad.course.notebooks import e3_1_calculus_basics

    _, definitions = e3_1_calculus_basics.app.run()
    return definitions


def test_worked_numbers_at_the_defaults(defs):
    # J(0.2) = −0.36 + 1 = 0.64, J(0.5) = 0.91, J(0.8) = 1, J(1.0) = 0.96
    assert defs["table_values"] == pytest.approx([0.64, 0.91, 1.0, 0.96])
    # J'(θ) = −2(θ − 0.8): J'(0.2) = 1.2, J'(1.0) = −0.4
    assert defs["worked_slope_02"] == pytest.approx(1.2)
    assert defs["worked_slope_10"] == pytest.approx(-0.4)
    # θ₁ = 0.2 + 0.1·1.2 = 0.32, θ₂ = 0.32 + 0.1·(−2)(0.32 − 0.8) = 0.416
    assert defs["worked_trajectory"].tolist() == pytest.approx([0.2, 0.32, 0.416])
    # the slider starts at α = 0.1, so its trajectory starts the same way
    assert defs["ascent_trajectory"][:3].tolist() == pytest.approx([0.2, 0.32, 0.416])
    assert defs["ascent_factor"] == pytest.approx(1 - 2 * 0.1)
    # ∇J(0, 0) = [−2(0 − 1), −2(0 − 2)] = [2, 4]; one step of 0.1 → [0.2, 0.4]
    assert defs["bowl_gradient"].tolist() == pytest.approx([2.0, 4.0])
    assert defs["bowl_step"].tolist() == pytest.approx([0.2, 0.4])
    assert defs["partial_gradient"].tolist() == pytest.approx([2.0, 4.0])
    # y = 3, L = (3 − 6)² = 9, dL/dθ = 2(3 − 6)·3 = −18
    assert float(defs["chain_y"]) == pytest.approx(3.0)
    assert defs["chain_loss"] == pytest.approx(9.0)
    assert defs["chain_slope"] == pytest.approx(-18.0)
    assert (defs["code_y_grad"], defs["code_theta_grad"]) == pytest.approx((-6.0, -18.0))


def test_stabilisers_at_the_default_learning_rate(defs):
    paths = defs["stabilise_paths"]
    # α = 0.3 on J₅ = −5(θ − 0.8)² + 1: one plain step multiplies θ − 0.8 by 1 − 10·0.3 = −2
    assert paths["plain"][-1].item() == pytest.approx(0.8 + (0.2 - 0.8) * (-2.0) ** 25)
    # the others stay within reach of the top
    for name in ("clipped gradient", "Adam", "PPO clip"):
        assert abs(paths[name][-1].item() - 0.8) < 0.5, name
    # a clipped gradient has norm ≤ 1, so no step is longer than α = 0.3
    assert paths["clipped gradient"].diff().abs().max().item() <= 0.3 + 1e-12
    # PPO's clip bounds how far one batch moves θ; the same steps without it go further
    assert defs["ppo_largest_move"] < 0.25
    assert defs["unclipped_largest_move"] > 2 * defs["ppo_largest_move"]


def test_learning_rate_sliders_recompute_the_trajectories(open_chapter):
    chapter = open_chapter("e3-1", "e3-1-title")
    # the last cell's output: the whole page has computed before anything is moved
    assert chapter.number("code-theta-grad") == pytest.approx(-18.0, abs=1e-4)
    assert chapter.number("worked-theta-1") == pytest.approx(0.32, abs=1e-4)
    assert chapter.number("worked-theta-2") == pytest.approx(0.416, abs=1e-4)
    assert chapter.number("chain-slope") == pytest.approx(-18.0, abs=1e-4)
    assert [chapter.number(f"grad-{i}") for i in (1, 2)] == pytest.approx([2.0, 4.0])

    # gradient ascent on J: move α from 0.1 to 0.7, where steps overshoot and oscillate
    slider = chapter.slider("learning rate α for gradient ascent")
    chapter.press(slider, "ArrowRight", 60)
    lr = chapter.slider_value(slider)
    assert lr == pytest.approx(0.7)
    assert chapter.settled("ascent-lr", lr, 1e-6) == pytest.approx(lr)
    path = rlgrad.gradient_ascent(objective, f64(0.2), lr=lr, steps=20)
    assert chapter.number("ascent-theta-1") == pytest.approx(path[1].item(), abs=1e-4)
    assert chapter.number("ascent-final") == pytest.approx(path[-1].item(), abs=1e-4)
    assert chapter.number("ascent-factor") == pytest.approx(1 - 2 * lr, abs=1e-4)

    # the stabilisers: α from 0.3 down to 0.15, where plain ascent on J₅ converges again
    slider = chapter.slider("learning rate α for the three stabilisers")
    chapter.press(slider, "ArrowLeft", 15)
    lr = chapter.slider_value(slider)
    assert lr == pytest.approx(0.15)
    assert chapter.settled("stabilise-lr", lr, 1e-6) == pytest.approx(lr)
    steep = rlgrad.gradient_ascent(lambda t: -5 * (t - 0.8) ** 2 + 1, f64(0.2), lr=lr, steps=25)
    assert chapter.number("final-plain") == pytest.approx(steep[-1].item(), abs=1e-4)

    chapter.assert_no_errors()
    chapter.screenshot()
