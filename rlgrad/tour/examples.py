"""Every worked example and exercise answer of course module E.3, recomputed by rlgrad's functions.

Each :class:`Example` keeps its inputs as data and computes its results only through the public
API, so changing an input changes what is printed (the tests do exactly that). ``rlgrad
examples`` prints them grouped by course page.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

import rlgrad

SECTIONS = {
    "E.3.1": "Calculus basics: derivatives, gradients and the chain rule",
    "Practice": "Calculus for RL: practice questions and graded exercises",
    "E.3.4": "Derivations: log-derivative trick, Taylor expansion, GRPO normalization",
    "E.3.5": "Complete formulas: PG theorem, DQN, GAE, PPO, GRPO",
    "E.3.6": "Formula reference: short exercises",
}


def f64(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float64)


@dataclass(frozen=True)
class Example:
    section: str
    title: str
    formula: str
    api: str
    inputs: dict[str, object]
    compute: Callable[..., dict[str, object]] = field(repr=False)
    note: str = ""

    def results(self, **overrides: object) -> dict[str, object]:
        return self.compute(**{**self.inputs, **overrides})


def parabola(theta):  # E.3.1: J(θ) = −(θ − 0.8)² + 1
    return -((theta - 0.8) ** 2) + 1


def _bowl(theta):
    return -((theta[0] - 1) ** 2) - (theta[1] - 2) ** 2 + 5


def _table(thetas):
    return {f"J({t})": parabola(f64(t)) for t in thetas}


def _derivatives(thetas):
    return {f"J'({t})": rlgrad.gradient(parabola, f64(t)) for t in thetas}


def _ascent(theta0, lr, steps):
    return {"θ_k": rlgrad.gradient_ascent(parabola, f64(theta0), lr=lr, steps=steps)}


def _one_ascent_step(objective, slope_label):
    def compute(theta0, lr):
        theta0 = f64(theta0)
        return {
            slope_label: rlgrad.gradient(objective, theta0),
            "θ₁": rlgrad.gradient_ascent(objective, theta0, lr=lr, steps=1)[1],
        }

    return compute


def _chain(theta):
    def loss(t):
        return (3 * t - 6) ** 2

    return {"L": loss(f64(theta)), "dL/dθ": rlgrad.gradient(loss, f64(theta))}


def _taylor(x, h):
    def square(t):
        return t**2

    x, h = f64(x), f64(h)
    return {
        "order 1": rlgrad.taylor(square, x, h, order=1),
        "order 2": rlgrad.taylor(square, x, h, order=2),
        "true f(x+h)": square(x + h),
    }


def _grpo(rewards):
    rewards = f64([rewards])
    centered = rlgrad.group_advantages(rewards, scale=False)
    advantages = rlgrad.group_advantages(rewards)
    return {
        "μ": (rewards - centered).mean(),
        "σ": (centered / advantages).nan_to_num()[0].max(),
        "Â": advantages[0],
    }


def _log_derivative(logits, action):
    logits = f64(logits)

    def prob(t):
        return torch.softmax(t, -1)[action]

    def log_prob(t):
        return torch.log_softmax(t, -1)[action]

    return {
        "∇π(a)": rlgrad.gradient(prob, logits),
        "π(a)·∇log π(a)": prob(logits) * rlgrad.gradient(log_prob, logits),
    }


def _softmax_score(logits):
    logits = f64(logits)
    return {
        "π": torch.softmax(logits, -1),
        "∇log π(a=0)": rlgrad.gradient(lambda t: torch.log_softmax(t, -1)[0], logits),
    }


def _dqn(q_taken, reward, next_q, gamma):
    q_values = f64([[q_taken, 0.0]]).requires_grad_(True)
    target = rlgrad.dqn_targets(f64([reward]), f64([next_q]), torch.tensor([False]), gamma)
    loss = rlgrad.dqn_loss(q_values, torch.tensor([0]), target)
    loss.backward()
    return {"y": target[0], "L": loss, "∂L/∂Q(s,a) = Q − y": q_values.grad[0, 0]}


def _gae(rewards, values, next_values, gamma, lam):
    rewards, values, next_values = f64(rewards), f64(values), f64(next_values)
    flags = torch.zeros_like(rewards, dtype=torch.bool)
    return {
        "δ_t": rlgrad.td_errors(rewards, values, next_values, flags, gamma),
        "Â_t": rlgrad.gae(rewards, values, next_values, flags, flags, gamma, lam),
    }


def _ppo(old_prob, new_prob, advantage, clip_eps):
    ratio = f64([new_prob / old_prob])
    advantage = f64([advantage])
    return {
        "r": ratio[0],
        "r·Â": (ratio * advantage)[0],
        "clipped": rlgrad.ppo_objective(ratio, advantage, clip_eps)[0],
    }


def _ppo_flat(ratio, advantage, clip_eps):
    ratios = f64([ratio]).requires_grad_(True)
    objective = rlgrad.ppo_objective(ratios, f64([advantage]), clip_eps)
    objective.sum().backward()
    return {"J": objective[0], "∂J/∂r": ratios.grad[0]}


def _td(value, reward, next_value, gamma):
    delta = rlgrad.td_errors(
        f64([reward]), f64([value]), f64([next_value]), torch.tensor([False]), gamma
    )
    return {"δ": delta[0]}


def _exercise_objective(theta):  # E.3.6 exercise 1: J(θ) = −(θ − 1)² + 2
    return -((theta - 1) ** 2) + 2


def _derivative_at(function):
    def compute(x):
        return {"f'(x)": rlgrad.gradient(function, f64(x))}

    return compute


def _partials(function):
    def compute(point):
        return {"∇f": rlgrad.gradient(function, f64(point))}

    return compute


def _softplus(x):
    x = f64(x)
    return {
        "d/dx ln(1+eˣ)": rlgrad.gradient(lambda t: torch.log1p(torch.exp(t)), x),
        "σ(x)": torch.sigmoid(x),
    }


def _quadratic_form(matrix, w):
    matrix, w = f64(matrix), f64(w)
    return {"∇(wᵀAw)": rlgrad.gradient(lambda t: t @ matrix @ t, w), "2Aw": 2 * matrix @ w}


def _semi_gradient(weights, features, next_features, reward, gamma, lr):
    return {
        "w ← w + αδφ(s)": rlgrad.semi_gradient_td_update(
            f64(weights),
            f64(features),
            f64(next_features),
            f64(reward),
            torch.tensor(False),
            gamma,
            lr,
        )
    }


def _entropy_slope(probs, action):
    probs = f64(probs)

    def entropy(p):
        return -(p * p.log()).sum()

    return {"∂H/∂π(a)": rlgrad.gradient(entropy, probs)[action]}


EXAMPLES: list[Example] = [
    Example(
        "E.3.1",
        "An objective over one parameter",
        "J(θ) = −(θ − 0.8)² + 1",
        "evaluating J directly",
        {"thetas": (0.2, 0.5, 0.8, 1.0)},
        _table,
    ),
    Example(
        "E.3.1",
        "Its derivative tells the direction",
        "J'(θ) = −2(θ − 0.8)",
        "rlgrad.gradient",
        {"thetas": (0.2, 1.0)},
        _derivatives,
    ),
    Example(
        "E.3.1",
        "Gradient ascent",
        "θ ← θ + α J'(θ)",
        "rlgrad.gradient_ascent",
        {"theta0": 0.2, "lr": 0.1, "steps": 2},
        _ascent,
    ),
    Example(
        "E.3.1",
        "Gradient of two parameters and one ascent step",
        "J(θ₁,θ₂) = −(θ₁−1)² − (θ₂−2)² + 5,  θ ← θ + α∇J",
        "rlgrad.gradient, rlgrad.gradient_ascent",
        {"theta0": (0.0, 0.0), "lr": 0.1},
        _one_ascent_step(_bowl, "∇J(θ₀)"),
    ),
    Example(
        "E.3.1",
        "The chain rule",
        "y = 3θ, L = (y − 6)²,  dL/dθ = dL/dy · dy/dθ",
        "rlgrad.gradient",
        {"theta": 1.0},
        _chain,
    ),
    Example(
        "Practice",
        "Softplus differentiates to the sigmoid",
        "d/dx ln(1 + eˣ) = σ(x)",
        "rlgrad.gradient",
        {"x": 0.7},
        _softplus,
    ),
    Example(
        "Practice",
        "Chain rule on a square root",
        "y = √(1 + x²),  dy/dx = x/√(1 + x²)",
        "rlgrad.gradient",
        {"x": 0.5},
        _derivative_at(lambda t: torch.sqrt(1 + t**2)),
    ),
    Example(
        "Practice",
        "Chain rule on a sine",
        "y = sin(x²),  dy/dx = cos(x²)·2x",
        "rlgrad.gradient",
        {"x": 1.0},
        _derivative_at(lambda t: torch.sin(t**2)),
    ),
    Example(
        "Practice",
        "Partial derivatives",
        "f = w₁² + w₁w₂ + w₂²,  ∇f = [2w₁+w₂, w₁+2w₂]",
        "rlgrad.gradient",
        {"point": (1.0, 2.0)},
        _partials(lambda w: w[0] ** 2 + w[0] * w[1] + w[1] ** 2),
    ),
    Example(
        "Practice",
        "Autograd on a square",
        "y = x²,  dy/dx = 2x",
        "rlgrad.gradient",
        {"x": 2.0},
        _derivative_at(lambda t: t**2),
    ),
    Example(
        "Practice",
        "Product rule",
        "f = x²eˣ,  f' = eˣ(2x + x²)",
        "rlgrad.gradient",
        {"x": 0.0},
        _derivative_at(lambda t: t**2 * torch.exp(t)),
    ),
    Example(
        "Practice",
        "Power rule",
        "f = x³ + 2x − 5,  f' = 3x² + 2",
        "rlgrad.gradient",
        {"x": 2.0},
        _derivative_at(lambda t: t**3 + 2 * t - 5),
    ),
    Example(
        "Practice",
        "Chain rule on a cube",
        "f = (2x + 1)³,  f' = 6(2x + 1)²",
        "rlgrad.gradient",
        {"x": 0.0},
        _derivative_at(lambda t: (2 * t + 1) ** 3),
    ),
    Example(
        "Practice",
        "Partials of a polynomial",
        "f = 3x²y + xy³,  ∇f = [6xy + y³, 3x² + 3xy²]",
        "rlgrad.gradient",
        {"point": (1.0, 2.0)},
        _partials(lambda p: 3 * p[0] ** 2 * p[1] + p[0] * p[1] ** 3),
        note="the course page's answer for ∂f/∂y, 3 + 6 = 9, drops a factor: 3xy² = 12 at (1, 2), "
        "so ∂f/∂y = 15",
    ),
    Example(
        "Practice",
        "Gradient of a quadratic form",
        "∇(wᵀAw) = 2Aw for symmetric A",
        "rlgrad.gradient",
        {"matrix": ((2.0, 1.0), (1.0, 3.0)), "w": (1.0, -1.0)},
        _quadratic_form,
    ),
    Example(
        "Practice",
        "Semi-gradient TD(0) for a linear V",
        "δ = r + γw·φ(s') − w·φ(s)",
        "rlgrad.semi_gradient_td_update",
        {
            "weights": (0.5, -0.5),
            "features": (1.0, 0.0),
            "next_features": (0.0, 1.0),
            "reward": 1.0,
            "gamma": 0.9,
            "lr": 0.1,
        },
        _semi_gradient,
    ),
    Example(
        "Practice",
        "Score of a two-action softmax",
        "∇log π(a=0) = [1 − π₀, −π₁] = [π₁, −π₁]",
        "rlgrad.gradient",
        {"logits": (0.3, -0.2)},
        _softmax_score,
    ),
    Example(
        "Practice",
        "PPO's flat region",
        "J = min(rA, clip(r, 1−ε, 1+ε)A) with A = 1",
        "rlgrad.ppo_objective",
        {"ratio": 1.3, "advantage": 1.0, "clip_eps": 0.2},
        _ppo_flat,
    ),
    Example(
        "Practice",
        "Slope of the entropy",
        "∂H/∂π(a) = −(log π(a) + 1)",
        "rlgrad.gradient",
        {"probs": (0.2, 0.5, 0.3), "action": 0},
        _entropy_slope,
        note="the course page prints ≈ 2.609, which is −log π(a) + 1; the formula it states, "
        "−(log 0.2 + 1), is 0.609",
    ),
    Example(
        "E.3.4",
        "The log-derivative trick",
        "∇π = π ∇log π",
        "rlgrad.gradient",
        {"logits": (0.5, -1.0, 0.2), "action": 0},
        _log_derivative,
    ),
    Example(
        "E.3.4",
        "Taylor expansion of x²",
        "f(x+h) ≈ f(x) + f'(x)h + ½f''(x)h²",
        "rlgrad.taylor",
        {"x": 3.0, "h": 0.1},
        _taylor,
    ),
    Example(
        "E.3.4",
        "GRPO group normalization",
        "Â_i = (r_i − μ)/(σ + ε), population σ",
        "rlgrad.group_advantages",
        {"rewards": (2.0, 4.0, 6.0, 8.0)},
        _grpo,
    ),
    Example(
        "E.3.5",
        "DQN target, loss and gradient",
        "y = r + γ max Q⁻(s',·),  L = ½(Q − y)²,  ∇L = (Q − y)∇Q",
        "rlgrad.dqn_targets, rlgrad.dqn_loss",
        {"q_taken": 1.0, "reward": 1.0, "next_q": (0.5, 2.0), "gamma": 0.9},
        _dqn,
    ),
    Example(
        "E.3.5",
        "GAE sums discounted TD errors",
        "Â_t = Σ_l (γλ)^l δ_{t+l}",
        "rlgrad.td_errors, rlgrad.gae",
        {
            "rewards": (1.0, 0.0, 2.0),
            "values": (0.5, 0.4, 1.0),
            "next_values": (0.4, 1.0, 0.0),
            "gamma": 0.9,
            "lam": 0.95,
        },
        _gae,
    ),
    Example(
        "E.3.5",
        "GRPO on three answers",
        "μ = mean(r); above μ → Â > 0",
        "rlgrad.group_advantages",
        {"rewards": (2.0, 4.0, 10.0)},
        _grpo,
    ),
    Example(
        "E.3.6",
        "Exercise 1: one ascent step",
        "J(θ) = −(θ − 1)² + 2",
        "rlgrad.gradient, rlgrad.gradient_ascent",
        {"theta0": 0.0, "lr": 0.1},
        _one_ascent_step(_exercise_objective, "J'(θ₀)"),
    ),
    Example(
        "E.3.6",
        "Exercise 2: PPO clipping",
        "min(rÂ, clip(r, 1−ε, 1+ε)Â)",
        "rlgrad.ppo_objective",
        {"old_prob": 0.4, "new_prob": 0.6, "advantage": 3.0, "clip_eps": 0.2},
        _ppo,
    ),
    Example(
        "E.3.6",
        "Exercise 3: one-step TD error",
        "δ = R + γV(s') − V(s)",
        "rlgrad.td_errors",
        {"value": 5.0, "reward": 2.0, "next_value": 6.0, "gamma": 0.9},
        _td,
    ),
]


def format_value(value: object) -> str:
    if isinstance(value, torch.Tensor):
        value = value.detach().tolist()
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def render(examples: list[Example] | None = None, width: int = 88) -> str:
    """The examples as text, grouped by course page, every result computed now."""
    examples = EXAMPLES if examples is None else examples
    lines: list[str] = []
    for section, heading in SECTIONS.items():
        chosen = [e for e in examples if e.section == section]
        if not chosen:
            continue
        lines += ["", f"{section}  {heading}", "═" * width]
        for example in chosen:
            given = ", ".join(f"{k} = {format_value(v)}" for k, v in example.inputs.items())
            lines.append(f"  {example.title}")
            lines.append(f"      {example.formula}")
            lines += textwrap.wrap(
                given, width, initial_indent="      given  ", subsequent_indent=" " * 13
            )
            for name, value in example.results().items():
                lines.append(f"      → {name} = {format_value(value)}")
            if example.note:
                lines += textwrap.wrap(
                    example.note, width, initial_indent="      note   ", subsequent_indent=" " * 13
                )
            lines.append(f"      via {example.api}")
            lines.append("")
    return "\n".join(lines)
