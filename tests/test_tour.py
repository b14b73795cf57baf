"""The guided tour: every number it prints (derived here from the seeds' formulas, or recorded
where it is a Monte Carlo estimate or a training run), that every number follows its inputs, and
that every figure renders with a title, axis labels and a legend."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from rlgrad.app.cli import main
from rlgrad.tabular import evaluate, soft_evaluate, soft_optimal_policy, two_state
from rlgrad.tour import plots as tour_plots
from rlgrad.tour.tour import STEPS, render_step, run_tour

STEP = {step.name: step for step in STEPS}

# For each step, inputs changed together; afterwards every printed number must differ, except
# those in UNMOVED, which the changed inputs cannot move (each with its reason).
CHANGES = {
    "calculus-ascent": {"theta0": 0.5},
    "calculus-chain": {"theta": 1.5},
    "calculus-taylor": {"x": 2.0, "h": 0.3},
    "policy-gradient": {"gamma": 0.8, "slip": 0.2},
    "td": {"gamma": 0.8},
    "gae": {"rewards": (2.0, 1.0, 3.0), "lam": 0.5, "critic_noise": 0.5, "seed": 1},
    "ppo": {"new_prob": 0.45, "clip_eps": 0.1, "ratio_range": (0.6, 1.4)},
    "taylor-trust-region": {"seed": 1},
    "grpo": {"groups": ((2.0, 4.0, 6.0, 9.0), (2.0, 4.0, 11.0))},
    "entropy-sac": {"probs": (0.1, 0.4, 0.5), "slip": 0.2},
}
TRUST_SLICES = (
    "surrogate change L(θ_old + tΔθ) − L(θ_old)",
    "first order t·gᵀΔθ",
    "second order + ½t²ΔθᵀHΔθ",
    "mean KL(π_old ‖ π_t)",
    "second order ½t²ΔθᵀFΔθ",
    "fraction of ratios outside [1 − 0.2, 1 + 0.2]",
)
UNMOVED = {
    # (1 − 2α) = 0 at α = 0.5: one step lands on 0.8 from any start
    "calculus-ascent": {("θ_20 at α=0.5", 0)},
    "calculus-chain": {("dy/dθ", 0)},  # y = 3θ: the slope is 3 at every θ
    # SAC's soft target averages to Q* for any MDP and α: the error is 0 (to 1e-8)
    "entropy-sac": {
        ("max |E[SAC soft target] − Q*| over α", 0),
        # at α ≤ 0.1 π*(right|right) is 1 to four decimals, for slip 0.1 and 0.2 alike
        ("α=0.01: π*(right|left), π*(right|right)", 1),
        ("α=0.1: π*(right|left), π*(right|right)", 1),
    },
    # λ = 1 is the Monte Carlo return, unbiased whatever the critic's noise
    "gae": {("two_state λ=1: variance exact V / bias² noisy V̂", 1)},
    # the grid of scales is an input; at t = 0 (θ_old itself) every model and measure is 0; at
    # t = 0.25 no ratio leaves the clip range; the first-scale summaries live on the 0.25 grid
    "taylor-trust-region": {("last update, scale t", i) for i in range(13)}
    | {(name, 0) for name in TRUST_SLICES}
    | {
        ("fraction of ratios outside [1 − 0.2, 1 + 0.2]", 1),
        ("the clip engages from t", 0),
        ("first-order surrogate off by > 10% from t", 0),
    },
}


def test_the_tour_follows_the_issue_order():
    order = [step.name.split("-")[0] for step in STEPS]
    assert order == ["calculus"] * 3 + ["policy", "td", "gae", "ppo", "taylor", "grpo", "entropy"]
    assert set(CHANGES) == set(STEP)


@pytest.fixture(scope="module")
def results():
    return {name: step.results() for name, step in STEP.items()}


def printed(step, results) -> dict[str, str]:
    """The step's printout as {label: value}, one entry per "  → label = value" line."""
    lines = render_step(step, results).splitlines()
    return dict(line[4:].rsplit(" = ", 1) for line in lines if line.startswith("  → "))


NUMBER = r"-?\d+(?:\.\d+)?"


def numbers(value: str) -> list[float]:
    return [float(x) for x in re.findall(NUMBER, value)]


def words(value: str) -> str:
    """The printout with its numbers taken out: what must match to the letter."""
    return re.sub(NUMBER, "#", value)


# --- the worked numbers, derived here without rlgrad -------------------------------------------


def two_state_mdp(gamma: float, slip: float):
    """The seeds' two-state MDP in numpy: an action leads to the state it names unless it slips
    (probability ``slip``); staying left pays 0.5, staying right 1; the episode starts left."""
    moves = np.array([[1 - slip, slip], [slip, 1 - slip]])  # [a, s′]
    return np.broadcast_to(moves, (2, 2, 2)), np.array([[0.5, 0.0], [0.0, 1.0]])  # [s, a, s′]


def solve(probs, gamma: float, slip: float):
    """V = (I − γP_π)⁻¹ r_π, Q = r + γPV and the discounted visits d = μ₀ᵀ(I − γP_π)⁻¹."""
    transitions, rewards = two_state_mdp(gamma, slip)
    inverse = np.linalg.inv(np.eye(2) - gamma * np.einsum("sa,sat->st", probs, transitions))
    values = inverse @ (probs * rewards).sum(1)
    return values, rewards + gamma * transitions @ values, np.array([1.0, 0.0]) @ inverse


def softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def optimal_return(gamma: float, slip: float) -> float:
    transitions, rewards = two_state_mdp(gamma, slip)
    values = np.zeros(2)
    for _ in range(2000):  # value iteration: the error shrinks by γ a sweep
        values = (rewards + gamma * transitions @ values).max(1)
    return values[0]


def exact_ascent(gamma: float, slip: float, lr: float, steps: int):
    """θ ← θ + α∇J(θ) from θ = 0, with ∇J(s, a) = d(s)π(a|s)(Q(s, a) − V(s)) (the theorem)."""
    theta = np.zeros((2, 2))
    for _ in range(steps):
        probs = softmax(theta)
        values, q, visits = solve(probs, gamma, slip)
        theta = theta + lr * visits[:, None] * probs * (q - values[:, None])
    probs = softmax(theta)
    return solve(probs, gamma, slip)[0][0], probs[:, 1]


def soft_optimum(gamma: float, slip: float, alpha: float):
    """Soft value iteration V(s) = α log Σ_a exp(Q(s, a)/α), Q = r + γPV, π* = softmax(Q/α);
    then π*'s plain return V^π*(left) and its entropy per step (1 − γ) Σ_s d(s)H(π*(s))."""
    transitions, rewards = two_state_mdp(gamma, slip)
    values = np.zeros(2)
    for _ in range(2000):
        q = rewards + gamma * transitions @ values
        values = q.max(1) + alpha * np.log(np.exp((q - q.max(1, keepdims=True)) / alpha).sum(1))
    probs = softmax(q / alpha)
    plain, _, visits = solve(probs, gamma, slip)
    entropy = -(probs * np.log(probs)).sum(1)
    return probs[:, 1], [plain[0], (1 - gamma) * visits @ entropy]


def expected_printout() -> dict[str, dict[str, object]]:
    """Every number the tour prints at its default inputs, step by step."""
    ascent = {  # θ_20 = 0.8 + (0.2 − 0.8)(1 − 2α)²⁰, since J'(θ) = −2(θ − 0.8)
        f"θ_20 at α={lr:g}": 0.8 - 0.6 * (1 - 2 * lr) ** 20 for lr in (0.02, 0.1, 0.5, 0.9, 1.05)
    }
    # |1 − 2α|²⁰: 0.44 (> 5% left: crawls), 0.012, 0 (converge), 0.8²⁰ with the sign flipping
    # each step (overshoots), 1.1²⁰ = 6.7 (diverges)
    ascent |= {"α=0.02": "crawls", "α=0.1": "converges", "α=0.5": "converges"}
    ascent |= {"α=0.9": "overshoots, oscillating in", "α=1.05": "diverges"}
    # y = 3·1 = 3, L = (3 − 6)² = 9, dL/dy = 2(3 − 6) = −6, dy/dθ = 3, dL/dθ = −6·3 = −18 (E.3.2)
    chain = {"y = 3θ": 3, "L = (y − 6)²": 9, "dL/dy": -6, "dy/dθ": 3}
    chain |= {"dL/dy · dy/dθ": -18, "dL/dθ by autograd": -18}
    # f(3) = 9, order 1: 9 + 6·0.1 = 9.6, order 2: + ½·2·0.1² = 9.61 = 3.1², error h² = 0.01 (E.3.3)
    taylor = {"f(x)": 9, "order 1": 9.6, "order 2": 9.61, "f(x + h)": 9.61}
    taylor |= {"order-1 error = h²": 0.01}
    # θ = 0 is uniform: from either state P(left) = ½·0.9 + ½·0.1 = ½, so V = r_π + γ·mean(V):
    # mean(V) = 0.375/(1 − 0.9) = 3.75, V = [0.25, 0.5] + 3.375 = [3.625, 3.875]; d = [1, 0] +
    # 0.9/0.1·[½, ½] = [5.5, 4.5]; ∇J(left) = 5.5·½·(Q(left, left) − V) = 2.75·(0.5 + 0.9·3.65 −
    # 3.625) = 0.44, ∇J(right) = 4.5·½·(1 + 0.9·3.85 − 3.875) = 1.3275
    uniform = np.full((2, 2), 0.5)
    values, q, visits = solve(uniform, 0.9, 0.1)
    gradient = visits[:, None] * uniform * (q - values[:, None])
    policy_gradient = {
        "J(θ=0)": values[0],
        "d^π(θ=0)": visits,
        "∇J by the theorem Σ d Σ ∇π Q": gradient,
        "∇J by autograd of J": gradient,
        "J* (policy iteration)": optimal_return(0.9, 0.1),  # V*(left) = 8.1
    }
    ascents = {lr: exact_ascent(0.9, 0.1, lr, 60) for lr in (0.1, 1.0, 5.0)}
    policy_gradient |= {f"J after 60 steps, α={lr:g}": j for lr, (j, _) in ascents.items()}
    policy_gradient |= {f"π(right|·) after α={lr:g}": p for lr, (_, p) in ascents.items()}
    td = {
        "exact V (uniform policy)": values,
        # recorded: 64 sampled episodes of 400 steps at seed 0 (within 0.04 of the exact V)
        "TD(0) estimate after 400 steps": "[3.6218, 3.8408]",
        "DQN target y = r + γ max Q⁻": 1 + 0.9 * 2.0,  # y = 1 + 0.9·max(0.5, 2) = 2.8
    }
    # δ = r + γV′ − V = [1 + 0.36 − 0.5, 0 + 0.9 − 0.4, 2 + 0 − 1] = [0.86, 0.5, 1]; Â_2 = 1,
    # Â_1 = 0.5 + 0.855·1 = 1.355, Â_0 = 0.86 + 0.855·1.355 = 2.018525 (γλ = 0.855)
    gae = {"δ_t": [0.86, 0.5, 1.0], "Â_t (λ=0.95)": [2.018525, 1.355, 1.0]}
    # recorded: 1000 sampled episodes at seed 0 (variance climbs with λ, bias² falls to 0)
    study = {0: "[0.2151, 13.0896]", 0.5: "[0.4283, 3.2724]", 0.9: "[1.3761, 0.1309]"}
    study |= {0.95: "[1.8042, 0.0327]", 1: "[2.6016, 0]"}
    gae |= {f"two_state λ={lam:g}: variance exact V / bias² noisy V̂": v for lam, v in study.items()}
    # r = 0.6/0.4 = 1.5, 1.5·3 = 4.5, clipped 1.2·3 = 3.6; the gradient is 0 strictly beyond
    # 1 + ε = 1.2 (Â > 0) or below 1 − ε = 0.8 (Â < 0): on the 0.005 grid of [0.5, 1.5], from
    # 1.205 and up to 0.795
    ppo = {"r = π/π_old": 1.5, "unclipped r·Â": 4.5, "clipped objective": 3.6}
    ppo |= {"flat (zero-gradient) ratios for Â>0": [1.205, 1.5]}
    ppo |= {"flat (zero-gradient) ratios for Â<0": [0.5, 0.795]}
    scales = "[0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75, 3]"
    trust_region = {  # recorded, as printed: three PPO updates on CartPole at seed 0
        "each update: KL model ½ΔθᵀFΔθ": "[0.0226, 0.0193, 0.0182]",
        "each update: true mean KL": "[0.0077, 0.0359, 0.012]",
        "each update: surrogate model gᵀΔθ": "[0.0439, 0.0319, 0.0475]",
        "each update: true surrogate change": "[0.0239, 0.0437, 0.0364]",
        "last update, scale t": scales,
        "surrogate change L(θ_old + tΔθ) − L(θ_old)": "[0, 0.0112, 0.021, 0.0294, 0.0364, "
        "0.0421, 0.0467, 0.05, 0.0522, 0.0533, 0.0534, 0.0523, 0.0503]",
        # t·gᵀΔθ with gᵀΔθ the last update's 0.0475: linear in t (checked below)
        "first order t·gᵀΔθ": "[0, 0.0119, 0.0237, 0.0356, 0.0475, 0.0594, 0.0712, 0.0831, "
        "0.095, 0.1068, 0.1187, 0.1306, 0.1425]",
        "second order + ½t²ΔθᵀHΔθ": "[0, 0.0112, 0.0211, 0.0297, 0.0369, 0.0428, 0.0474, "
        "0.0507, 0.0527, 0.0533, 0.0527, 0.0507, 0.0473]",
        "mean KL(π_old ‖ π_t)": "[0, 0.001, 0.0038, 0.0076, 0.012, 0.0166, 0.0209, 0.0247, "
        "0.028, 0.0305, 0.0324, 0.0336, 0.0344]",
        # ½t²ΔθᵀFΔθ with ½ΔθᵀFΔθ the last update's 0.0182: quadratic in t (checked below)
        "second order ½t²ΔθᵀFΔθ": "[0, 0.0011, 0.0046, 0.0103, 0.0182, 0.0285, 0.041, 0.0559, "
        "0.0729, 0.0923, 0.114, 0.1379, 0.1641]",
        "fraction of ratios outside [1 − 0.2, 1 + 0.2]": "[0, 0, 0.018, 0.096, 0.148, 0.226, "
        "0.336, 0.408, 0.458, 0.472, 0.498, 0.498, 0.496]",
        "the clip engages from t": "0.5",
        "first-order surrogate off by > 10% from t": "0.5",
        "quadratic KL off by > 10% from t": "0.5",
    }
    grpo = {}  # Â = (r − μ)/σ, population σ: [2, 4, 6, 8] has μ = 5, σ = √5 (E.3.4)
    for group in ([2.0, 4.0, 6.0, 8.0], [2.0, 4.0, 10.0]):
        grpo[f"Â for rewards {group}"] = (np.array(group) - np.mean(group)) / np.std(group)
    probs = np.array([0.2, 0.5, 0.3])
    slopes = -(np.log(probs) + 1)  # ∂H/∂π(a) = −(log π(a) + 1): 0.609438 at π(a) = 0.2
    # H(softmax θ) at θ = log π: ∂H/∂θ(a) = −π(a)(log π(a) + H), the +1 gone; H = 1.029653
    through_logits = -probs * (np.log(probs) - (probs * np.log(probs)).sum())
    entropy = {
        "∂H/∂π(a) = −(log π(a) + 1)": slopes,
        "∂H/∂π by autograd of −Σ π log π": slopes,
        "∂H/∂θ by autograd of categorical_entropy, θ = log π": through_logits,
        "π(a)(∂H/∂π(a) − Σ_b π(b)∂H/∂π(b)), the +1 gone": through_logits,
        "J* (α → 0: policy iteration)": optimal_return(0.9, 0.1),
    }
    for alpha in (0.01, 0.1, 0.5, 1, 2, 5):
        right, plain_and_entropy = soft_optimum(0.9, 0.1, alpha)
        entropy[f"α={alpha:g}: π*(right|left), π*(right|right)"] = right
        entropy[f"α={alpha:g}: return J(π*), entropy per step"] = plain_and_entropy
    entropy["max |E[SAC soft target] − Q*| over α"] = 0.0  # Q* is the soft target's fixed point
    return {
        "calculus-ascent": ascent,
        "calculus-chain": chain,
        "calculus-taylor": taylor,
        "policy-gradient": policy_gradient,
        "td": td,
        "gae": gae,
        "ppo": ppo,
        "taylor-trust-region": trust_region,
        "grpo": grpo,
        "entropy-sac": entropy,
    }


def test_every_printed_number_is_its_worked_value(results):
    # The tour prints four decimals, so a derived value and its printout differ by at most
    # 0.00005; a printed number that moved by one unit in its last place (0.0001) fails. A
    # recorded value (a string, from a short training run or a sampled study) is compared as
    # printed, its words exactly and its numbers to 1.5 units of the fourth decimal: float32
    # sums round otherwise on another CPU, which can carry a number across a rounding boundary
    # of its printout (measured: 0.1068 printed as 0.1069 on an AVX-512 machine).
    expected = expected_printout()
    assert list(expected) == list(STEP)
    for name, step in STEP.items():
        shown = printed(step, results[name])
        assert list(shown) == list(expected[name]), name  # every printed line, in order
        for label, value in expected[name].items():
            if isinstance(value, str):
                assert words(shown[label]) == words(value), (name, label, shown[label])
                got, want = numbers(shown[label]), numbers(value)
                assert len(got) == len(want), (name, label, shown[label])
                for g, w in zip(got, want, strict=True):
                    assert abs(g - w) <= 1.5e-4 * max(1.0, abs(w)), (name, label, shown[label])
                continue
            want = np.asarray(value, dtype=np.float64).flatten().tolist()
            got = numbers(shown[label])
            assert len(got) == len(want), (name, label, shown[label])
            for g, w in zip(got, want, strict=True):
                assert abs(g - w) <= 0.6e-4, (name, label, shown[label], want)
    # the recorded trust-region slices keep their models' shapes: t·gᵀΔθ and ½t²ΔθᵀFΔθ
    line = results["taylor-trust-region"]["_slice"]
    torch.testing.assert_close(line.surrogate_first, line.scales * line.surrogate_first[4])
    torch.testing.assert_close(line.kl_second, line.scales**2 * line.kl_second[4])


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

    def scalars(results) -> dict[tuple[str, int], float]:
        shown = printed(step, results)
        return {(label, i): x for label, v in shown.items() for i, x in enumerate(numbers(v))}

    before, after = scalars(step.results()), scalars(step.results(**CHANGES[name]))
    assert before
    # a number moves when it changes or its line goes (a label that names the input, as λ=0.95)
    unmoved = {key for key, value in before.items() if after.get(key) == value}
    assert unmoved == UNMOVED.get(name, set())


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
