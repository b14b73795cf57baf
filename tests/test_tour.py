"""The guided tour: its numbers (from the seeds), that every number follows its inputs, and that
every figure renders with a title, axis labels and a legend."""

from __future__ import annotations

import math

import pytest
import torch

from rlgrad.app.cli import main
from rlgrad.tabular import evaluate, soft_evaluate, soft_optimal_policy, two_state
from rlgrad.tour import plots as tour_plots
from rlgrad.tour.tour import STEPS, render_step, run_tour

STEP = {step.name: step for step in STEPS}

# For each step, one input changed; every step must print different numbers afterwards.
CHANGES = {
    "calculus-ascent": {"theta0": 0.5},
    "calculus-chain": {"theta": 1.5},
    "calculus-taylor": {"h": 0.3},
    "policy-gradient": {"slip": 0.2},
    "td": {"gamma": 0.8},
    "gae": {"lam": 0.5, "critic_noise": 0.5},
    "ppo": {"new_prob": 0.45},
    "taylor-trust-region": {"seed": 1},
    "grpo": {"groups": ((2.0, 4.0, 6.0, 9.0), (2.0, 4.0, 11.0))},
    "entropy-sac": {"probs": (0.1, 0.6, 0.3), "slip": 0.2},
}


def test_the_tour_follows_the_issue_order():
    order = [step.name.split("-")[0] for step in STEPS]
    assert order == ["calculus"] * 3 + ["policy", "td", "gae", "ppo", "taylor", "grpo", "entropy"]
    assert set(CHANGES) == set(STEP)


@pytest.fixture(scope="module")
def results():
    return {name: step.results() for name, step in STEP.items()}


def test_the_seeds_numbers(results):
    chain_rule = results["calculus-chain"]
    # y = 3, dL/dy = 2(3 − 6) = −6, dy/dθ = 3, so dL/dθ = −18 both ways.
    assert chain_rule["dL/dy"].item() == -6 and chain_rule["dy/dθ"].item() == 3
    assert chain_rule["dL/dθ by autograd"].item() == chain_rule["dL/dy · dy/dθ"].item() == -18
    taylor = results["calculus-taylor"]  # x² at 3 + 0.1: 9 + 6·0.1 = 9.6, + 0.01 = 9.61
    assert taylor["order 1"].item() == pytest.approx(9.6)
    assert taylor["order 2"].item() == pytest.approx(9.61)
    ppo = results["ppo"]  # r = 0.6/0.4 = 1.5: 1.5·3 = 4.5 unclipped, 1.2·3 = 3.6 clipped
    assert ppo["unclipped r·Â"].item() == pytest.approx(4.5)
    assert ppo["clipped objective"].item() == pytest.approx(3.6)
    # The flat regions start at the clip edges 1 ± ε (to the 0.005 grid of ratios).
    assert ppo["flat (zero-gradient) ratios for Â>0"] == pytest.approx((1.2, 1.5), abs=0.006)
    assert ppo["flat (zero-gradient) ratios for Â<0"] == pytest.approx((0.5, 0.8), abs=0.006)
    grpo = results["grpo"]["Â for rewards [2.0, 4.0, 6.0, 8.0]"]  # (8 − 5)/√5 = 1.3416
    assert grpo[-1].item() == pytest.approx(3 / 5**0.5)
    assert results["td"]["DQN target y = r + γ max Q⁻"].item() == pytest.approx(2.8)


def test_the_story_each_step_tells(results):
    ascent = results["calculus-ascent"]
    assert ascent["α=0.02"] == "crawls" and ascent["α=0.5"] == "converges"
    assert ascent["α=0.9"].startswith("overshoots") and ascent["α=1.05"] == "diverges"
    pg = results["policy-gradient"]
    torch.testing.assert_close(pg["∇J by the theorem Σ d Σ ∇π Q"], pg["∇J by autograd of J"])
    assert float(pg["J* (policy iteration)"] - pg["J after 60 steps, α=5"]) < 0.01
    td = results["td"]
    torch.testing.assert_close(
        td["TD(0) estimate after 400 steps"], td["exact V (uniform policy)"], rtol=0, atol=0.1
    )
    gae = [
        results["gae"][f"two_state λ={lam:g}: variance exact V / bias² noisy V̂"]
        for lam in (0, 0.5, 0.9, 0.95, 1)
    ]
    variances, biases = [v for v, _ in gae], [b for _, b in gae]
    assert variances == sorted(variances) and biases == sorted(biases, reverse=True)


def test_the_entropy_step_is_the_soft_ground_truth(results):
    entropy = results["entropy-sac"]
    # The seeds' exercise at π = [0.2, 0.5, 0.3]: −(log 0.2 + 1) = −(−1.609438 + 1) = 0.609438
    # (not the seed's printed 2.609), −(log 0.5 + 1) = −0.306853, −(log 0.3 + 1) = 0.203973.
    slopes = torch.tensor([0.609438, -0.306853, 0.203973], dtype=torch.float64)
    torch.testing.assert_close(entropy["∂H/∂π(a) = −(log π(a) + 1)"], slopes, rtol=0, atol=1e-6)
    torch.testing.assert_close(
        entropy["∂H/∂π by autograd of −Σ π log π"], entropy["∂H/∂π(a) = −(log π(a) + 1)"]
    )
    # Through the logits: H = 1.029653, so ∂H/∂θ(0) = 0.2·(1.609438 − 1.029653) = 0.115957.
    through_logits = entropy["∂H/∂θ by autograd of categorical_entropy, θ = log π"]
    assert through_logits[0].item() == pytest.approx(0.115957, abs=1e-6)
    torch.testing.assert_close(
        through_logits, entropy["π(a)(∂H/∂π(a) − Σ_b π(b)∂H/∂π(b)), the +1 gone"]
    )
    # Each α's row is the tabular ground truth, called directly.
    mdp = two_state()
    returns, entropies = [], []
    for alpha in STEP["entropy-sac"].inputs["alphas"]:
        probs, _ = soft_optimal_policy(mdp, alpha)
        torch.testing.assert_close(
            entropy[f"α={alpha:g}: π*(right|left), π*(right|right)"], probs[:, 1]
        )
        plain, per_step = entropy[f"α={alpha:g}: return J(π*), entropy per step"]
        assert float(plain) == pytest.approx(float(evaluate(mdp, probs)[0][0]), abs=1e-8)
        # J_α(π*) = return + α Σ_s d(s)H(s) and Σ_s d(s) = 1/(1 − γ) = 10.
        soft_return = soft_evaluate(mdp, probs, alpha)[0][0]
        assert float(soft_return) == pytest.approx(float(plain + alpha * 10 * per_step), abs=1e-8)
        returns.append(float(plain))
        entropies.append(float(per_step))
    # α trades return for entropy: the return falls from J* = 8.1 and the entropy climbs to log 2.
    assert returns == sorted(returns, reverse=True) and entropies == sorted(entropies)
    assert entropy["J* (α → 0: policy iteration)"].item() == pytest.approx(8.1)
    assert returns[0] == pytest.approx(8.1, abs=1e-6) and entropies[0] < 1e-6
    assert 0.68 < entropies[-1] < math.log(2)
    # The story's claim: at α = 1 the left state leans left.
    assert entropy["α=1: π*(right|left), π*(right|right)"][0].item() < 0.5
    # Zero up to soft value iteration's tolerance (1e-10 relative to |V*|, here up to ~80).
    assert entropy["max |E[SAC soft target] − Q*| over α"].item() < 1e-8
    # A change of α moves the rows.
    moved = STEP["entropy-sac"].results(alphas=(0.3,))
    assert float(moved["α=0.3: π*(right|left), π*(right|right)"][0]) == pytest.approx(
        float(soft_optimal_policy(mdp, 0.3)[0][0, 1])
    )


def test_the_trust_region_step_slices_the_runs_last_update(results):
    found = results["taylor-trust-region"]
    line = found["_slice"]
    one = line.scales.tolist().index(1.0)
    # The batch is recollected from the checkpoint before the last update, so t = 1 reproduces
    # the diagnostics the run itself logged for that update (taylor_every = 1).
    assert line.kl[one].item() == pytest.approx(found["each update: true mean KL"][-1], rel=1e-5)
    assert line.surrogate[one].item() == pytest.approx(
        found["each update: true surrogate change"][-1], rel=1e-5
    )
    assert line.kl_second[one].item() == pytest.approx(
        found["each update: KL model ½ΔθᵀFΔθ"][-1], rel=1e-5
    )
    # t = 0 is θ_old; near it the models hold, far along the line they do not and the clip engages
    assert line.kl[0] == line.surrogate[0] == line.clip_fraction[0] == 0
    quarter = line.scales.tolist().index(0.25)
    assert abs(line.surrogate_first[quarter] / line.surrogate[quarter] - 1) < 0.1
    assert abs(line.surrogate_first[-1] / line.surrogate[-1] - 1) > 0.5
    assert abs(line.kl_second[-1] / line.kl[-1] - 1) > 0.5
    assert line.clip_fraction[-1] > 0.2
    clip_from = found["the clip engages from t"]
    assert isinstance(clip_from, float) and line.clip_fraction[line.scales == clip_from] > 0


@pytest.mark.parametrize("name", CHANGES)
def test_every_number_follows_its_inputs(name):
    step = STEP[name]
    before = render_step(step, step.results())
    after = render_step(step, step.results(**CHANGES[name]))

    def numbers(text):
        values = [line.rsplit(" = ", 1)[1] for line in text.splitlines() if line.startswith("  → ")]
        return [v for v in values if any(c.isdigit() for c in v)]

    printed, changed = numbers(before), numbers(after)
    assert printed and len(printed) == len(changed)
    # Every number is recomputed: most of them move with the input (a few, such as the α = 0.5
    # ascent that lands on 0.8 from anywhere, legitimately do not).
    assert sum(a != b for a, b in zip(printed, changed, strict=True)) >= max(1, len(printed) // 2)


def test_every_figure_renders_readably(tmp_path, monkeypatch, capsys):
    checked = []
    original = tour_plots._save

    def inspect_then_save(fig, path):
        for axis in fig.axes:
            assert axis.get_title(), path
            assert axis.get_xlabel() and axis.get_ylabel(), path
        assert any(axis.get_legend() is not None for axis in fig.axes) or "grpo" in str(path)
        checked.append(path.name)
        return original(fig, path)

    monkeypatch.setattr(tour_plots, "_save", inspect_then_save)
    from rlgrad.tabular import plots as tabular_plots

    monkeypatch.setattr(tabular_plots, "_save", inspect_then_save)
    assert run_tour(plots=tmp_path) == 0
    out = capsys.readouterr().out
    assert out.count("figure: ") == len(STEPS)
    assert sorted(checked) == sorted(f"{step.name}.png" for step in STEPS)
    import matplotlib.image

    for name in checked:
        pixels = matplotlib.image.imread(tmp_path / name)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500
        assert float(pixels[..., :3].std()) > 0.05  # not a blank canvas
        assert (tmp_path / name).stat().st_size < 200_000


def test_cli_tour_selects_steps(capsys):
    assert main(["tour", "--step", "grpo"]) == 0
    out = capsys.readouterr().out
    assert "grpo: GRPO" in out and "calculus" not in out
    assert main(["tour", "--step", "nothing"]) == 2
    capsys.readouterr()
    assert main(["tour", "--step", "entropy"]) == 0
    out = capsys.readouterr().out
    assert "entropy-sac: Entropy and SAC" in out and "grpo" not in out
