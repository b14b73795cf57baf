"""``rlgrad tour``: a guided walk through rlgrad, in the order of course module E.3.

calculus → policy gradients → TD/DQN → GAE → PPO → Taylor and the trust region → GRPO →
entropy and SAC. Each :class:`Step` keeps its inputs as data and computes every number it prints
through rlgrad's functions (the formula layer, :mod:`rlgrad.tabular`, and for the trust-region
step a short PPO run with :mod:`rlgrad.support.taylor`), so changing an input changes the
output; the tests do exactly that. With ``--plots DIR`` each step also writes a figure
(:mod:`rlgrad.tour.plots`).
"""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

import rlgrad
from rlgrad.tabular import estimators, exact, sampling, soft, zoo
from rlgrad.tour.examples import f64, format_value, parabola


class MissingExtra(ImportError):
    """A step needs an optional extra that this install lacks; the tour skips it."""


@dataclass(frozen=True)
class Step:
    """One stop of the tour: what it shows, its inputs, and how to compute and draw it."""

    name: str
    title: str
    story: str
    inputs: dict[str, object]
    compute: Callable[..., dict[str, object]] = field(repr=False)
    figure: str = ""
    """The name of the plotting function in :mod:`rlgrad.tour.plots` ("" for none)."""

    def results(self, **overrides: object) -> dict[str, object]:
        return self.compute(**{**self.inputs, **overrides})


# 1. calculus ----------------------------------------------------------------------------------


def _ascent(theta0, lrs, steps):
    paths = {lr: rlgrad.gradient_ascent(parabola, f64(theta0), lr=lr, steps=steps) for lr in lrs}
    verdicts = {}
    for lr, path in paths.items():
        offsets = path - 0.8
        start, end = offsets[0].abs().item(), offsets[-1].abs().item()
        if end > start:
            verdicts[lr] = "diverges"
        elif bool((offsets[1:] * offsets[:-1] < 0).any()):
            verdicts[lr] = "overshoots, oscillating in"
        elif end > 0.05 * start:
            verdicts[lr] = "crawls"
        else:
            verdicts[lr] = "converges"
    return {
        "_paths": paths,
        "_verdicts": verdicts,
        **{f"θ_{steps} at α={lr:g}": path[-1] for lr, path in paths.items()},
        **{f"α={lr:g}": verdict for lr, verdict in verdicts.items()},
    }


def _chain_rule(theta):
    theta = f64(theta)
    y = 3 * theta
    dl_dy = rlgrad.gradient(lambda u: (u - 6) ** 2, y)
    dy_dtheta = rlgrad.gradient(lambda t: 3 * t, theta)
    loss, slope = (y - 6) ** 2, dl_dy * dy_dtheta
    return {
        "y = 3θ": y,
        "L = (y − 6)²": loss,
        "dL/dy": dl_dy,
        "dy/dθ": dy_dtheta,
        "dL/dy · dy/dθ": slope,
        "dL/dθ by autograd": rlgrad.gradient(lambda t: (3 * t - 6) ** 2, theta),
        "_theta": theta,
        "_loss": loss,
        "_factors": (dl_dy, dy_dtheta),
        "_slope": slope,
    }


def _taylor(x, h):
    x, h = f64(x), f64(h)

    def square(t):
        return t**2

    steps = torch.linspace(-2.5, 2.5, 41, dtype=torch.float64)
    first_order = rlgrad.taylor(square, x, h, order=1)
    return {
        "f(x)": square(x),
        "order 1": first_order,
        "order 2": rlgrad.taylor(square, x, h, order=2),
        "f(x + h)": square(x + h),
        "order-1 error = h²": square(x + h) - first_order,
        "_x": x,
        "_h": h,
        "_first_order": first_order,
        "_exact": square(x + h),
        "_steps": steps,
        "_curves": {
            "f(x + h) = (x + h)²": square(x + steps),
            "order 1: f(x) + f'(x)h": torch.stack(
                [rlgrad.taylor(square, x, step, order=1) for step in steps]
            ),
            "order 2: + ½f''(x)h² (exact here)": torch.stack(
                [rlgrad.taylor(square, x, step, order=2) for step in steps]
            ),
        },
    }


# 2. policy gradients on the two-state MDP -----------------------------------------------------


def _policy_gradient(gamma, slip, lrs, steps):
    mdp = zoo.two_state(gamma=gamma, slip=slip)
    theta0 = torch.zeros(2, 2, dtype=torch.float64)
    optimum = mdp.initial @ exact.evaluate(mdp, exact.optimal_policy(mdp))[0]
    theorem = exact.policy_gradient(mdp, theta0)
    autograd = rlgrad.gradient(lambda t: exact.objective(mdp, t), theta0)
    paths = {
        lr: rlgrad.gradient_ascent(lambda t: exact.objective(mdp, t), theta0, lr=lr, steps=steps)
        for lr in lrs
    }
    returns = {
        lr: torch.stack([exact.objective(mdp, t) for t in path]) for lr, path in paths.items()
    }
    right = {lr: exact.policy(path[-1])[:, 1] for lr, path in paths.items()}
    return {
        "J(θ=0)": exact.objective(mdp, theta0),
        "d^π(θ=0)": exact.state_visitation(mdp, exact.policy(theta0)),
        "∇J by the theorem Σ d Σ ∇π Q": theorem,
        "∇J by autograd of J": autograd,
        "J* (policy iteration)": optimum,
        **{f"J after {steps} steps, α={lr:g}": curve[-1] for lr, curve in returns.items()},
        **{f"π(right|·) after α={lr:g}": probs for lr, probs in right.items()},
        "_returns": returns,
        "_optimum": optimum,
    }


# 3. TD learning and the DQN target ------------------------------------------------------------


def _td(gamma, lr, episodes, horizon, seed, reward, next_q):
    mdp = zoo.two_state(gamma=gamma)
    theta = torch.zeros(2, 2, dtype=torch.float64)
    true_values = exact.evaluate(mdp, exact.policy(theta))[0]
    generator = torch.Generator().manual_seed(seed)
    batch = sampling.sample_episodes(mdp, theta, episodes, horizon, generator)
    features = torch.eye(mdp.num_states, dtype=torch.float64)  # one-hot φ(s): a table
    weights = torch.zeros(mdp.num_states, dtype=torch.float64)
    history = [weights]
    for t in range(horizon):  # one semi-gradient TD(0) step per time step, averaged over episodes
        weights = rlgrad.semi_gradient_td_update(
            weights,
            features[batch.states[t]],
            features[batch.next_states[t]],
            batch.rewards[t],
            batch.terminated[t],
            gamma,
            lr,
        )
        history.append(weights)
    target = rlgrad.dqn_targets(f64([reward]), f64([next_q]), torch.tensor([False]), gamma)
    return {
        "exact V (uniform policy)": true_values,
        f"TD(0) estimate after {horizon} steps": weights,
        "DQN target y = r + γ max Q⁻": target[0],
        "_history": torch.stack(history),
        "_true_values": true_values,
    }


# 4. GAE: bias and variance, measured ----------------------------------------------------------


def _gae(rewards, values, next_values, gamma, lam, episodes, critic_noise, seed):
    rewards, values, next_values = f64(rewards), f64(values), f64(next_values)
    flags = torch.zeros_like(rewards, dtype=torch.bool)
    mdp = zoo.two_state()
    result = estimators.study(
        mdp,
        torch.zeros(2, 2, dtype=torch.float64),
        num_episodes=episodes,
        critic_noise=critic_noise,
        seed=seed,
    )
    rows = result.rows
    return {
        "δ_t": rlgrad.td_errors(rewards, values, next_values, flags, gamma),
        f"Â_t (λ={lam:g})": rlgrad.gae(rewards, values, next_values, flags, flags, gamma, lam),
        **{
            f"two_state λ={lam_:g}: variance exact V / bias² noisy V̂": [
                rows[estimators.gae_key(lam_)].variance,
                rows[estimators.gae_key(lam_, noisy=True)].bias2_exact,
            ]
            for lam_ in result.lams
        },
        "_study": result,
    }


# 5. PPO's clipped objective -------------------------------------------------------------------


def _ppo(old_prob, new_prob, advantage, clip_eps, ratio_range):
    ratio = f64([new_prob / old_prob])
    low, high = ratio_range
    ratios = torch.linspace(low, high, 201, dtype=torch.float64)
    curves, slopes = {}, {}
    for sign in (1.0, -1.0):
        grid = ratios.clone().requires_grad_(True)
        objective = rlgrad.ppo_objective(grid, torch.full_like(grid, sign), clip_eps)
        (slope,) = torch.autograd.grad(objective.sum(), grid)
        curves[sign], slopes[sign] = objective.detach(), slope
    flat = {
        sign: (ratios[slopes[sign] == 0].min().item(), ratios[slopes[sign] == 0].max().item())
        for sign in curves
    }
    return {
        "r = π/π_old": ratio[0],
        "unclipped r·Â": (ratio * advantage)[0],
        "clipped objective": rlgrad.ppo_objective(ratio, f64([advantage]), clip_eps)[0],
        "flat (zero-gradient) ratios for Â>0": flat[1.0],
        "flat (zero-gradient) ratios for Â<0": flat[-1.0],
        "_flat": flat,
        "_ratios": ratios,
        "_curves": curves,
        "_clip_eps": clip_eps,
    }


# 6. Taylor and the trust region: one PPO update, sliced along its direction -------------------


def _last_ppo_update(env, seed, updates, lr, clip_eps):
    """Train PPO for a few updates, then rebuild the last one: the agent at θ_new, θ_old, and the
    update's batch, collected again from the checkpoint before it (the same environments and
    random stream, so the very same samples)."""
    try:  # the trainers import gymnasium only once they build environments: ask here
        import gymnasium  # noqa: F401
    except ImportError:
        raise MissingExtra(f"trains PPO on {env}: pip install 'rlgrad[gym]'") from None
    from rlgrad.support import taylor, training
    from rlgrad.support.rollout import Rollout
    from rlgrad.trainers import ppo

    batch_size = 4 * 128  # num_envs · num_steps
    config = ppo.Config(
        env=env,
        seed=seed,
        num_envs=4,
        num_steps=128,
        lr=lr,
        clip_eps=clip_eps,
        anneal_lr=False,
        total_steps=updates * batch_size,
        eval_every=0,
        eval_episodes=1,
        checkpoint_every=batch_size,  # a checkpoint after every update: θ_old of the next one
        keep_checkpoints=2,
        taylor_every=1,
    )
    with tempfile.TemporaryDirectory() as directory:
        history = ppo.train(config, Path(directory) / "run")
        paths = sorted((history.run_dir / "checkpoints").glob("step_*.pt"))[-2:]
        before, after = (torch.load(path, weights_only=False) for path in paths)
    vector_env = training.make_env(config)
    vector_env.load_state(before["env"], seed)
    agent = ppo.build_agent(config, vector_env.spaces)
    agent.load_state_dict(before["modules"]["agent"])
    generator = torch.Generator()
    generator.set_state(before["generator"])
    rollout = Rollout(config.num_steps, config.num_envs, vector_env.spaces)
    rollout.collect(vector_env, agent, generator)
    vector_env.close()
    _, advantages, _ = rollout.gae(agent, config.gamma, config.lam)
    usable = rollout.valid_indices()
    batch = (
        rollout.flat("observations")[usable],
        rollout.flat("actions")[usable],
        rollout.flat("log_probs")[usable],
        advantages.flatten()[usable],
    )
    old_vector = taylor.policy_vector(agent)
    agent.load_state_dict(after["modules"]["agent"])
    return history, agent, old_vector, batch


def _first_scale(scales, condition):
    """The first scale t where ``condition`` holds, or a note that none in the grid does."""
    hits = [t for t, hit in zip(scales.tolist(), condition.tolist(), strict=True) if hit]
    return hits[0] if hits else f"none up to t = {scales.max().item():g}"


def _trust_region(env, seed, updates, lr, clip_eps, scales, probe_size):
    from rlgrad.support import taylor

    history, agent, old_vector, batch = _last_ppo_update(env, seed, updates, lr, clip_eps)
    line = taylor.step_slice(
        agent, old_vector, *batch, f64(scales), clip_eps, probe_size, normalize=True
    )
    logged = [
        [row[f"taylor_{name}"] for row in history.rows]
        for name in ("kl_predicted", "kl_actual", "surrogate_predicted", "surrogate_actual")
    ]
    off = (line.surrogate_first - line.surrogate).abs() > 0.1 * line.surrogate.abs()
    kl_off = (line.kl_second - line.kl).abs() > 0.1 * line.kl
    clip_from = _first_scale(line.scales, line.clip_fraction > 0)
    return {
        "each update: KL model ½ΔθᵀFΔθ": logged[0],
        "each update: true mean KL": logged[1],
        "each update: surrogate model gᵀΔθ": logged[2],
        "each update: true surrogate change": logged[3],
        "last update, scale t": line.scales,
        "surrogate change L(θ_old + tΔθ) − L(θ_old)": line.surrogate,
        "first order t·gᵀΔθ": line.surrogate_first,
        "second order + ½t²ΔθᵀHΔθ": line.surrogate_second,
        "mean KL(π_old ‖ π_t)": line.kl,
        "second order ½t²ΔθᵀFΔθ": line.kl_second,
        f"fraction of ratios outside [1 − {clip_eps:g}, 1 + {clip_eps:g}]": line.clip_fraction,
        "the clip engages from t": clip_from,
        "first-order surrogate off by > 10% from t": _first_scale(line.scales, off),
        "quadratic KL off by > 10% from t": _first_scale(line.scales, kl_off),
        "_slice": line,
        "_clip_eps": clip_eps,
        "_clip_from": clip_from,
    }


# 7. GRPO's group-relative advantages ----------------------------------------------------------


def _grpo(groups):
    advantages = {tuple(g): rlgrad.group_advantages(f64([g]))[0] for g in groups}
    return {
        **{f"Â for rewards {list(g)}": a for g, a in advantages.items()},
        "_advantages": advantages,
    }


# 8. entropy and SAC's max-entropy objective ---------------------------------------------------


def _soft_optimum(mdp, alpha):
    """π*_α's P(right|·), its entropy per step (1 − γ)Σ_s d(s)H(s), its plain return, and Q*."""
    probs, q_star = soft.soft_optimal_policy(mdp, alpha)
    logits = q_star / alpha  # π*_α = softmax(Q*/α)
    entropies = rlgrad.categorical_entropy(logits)  # [S]
    per_step = (1 - mdp.gamma) * exact.state_visitation(mdp, probs) @ entropies
    return probs[:, zoo.RIGHT], per_step, exact.objective(mdp, logits), q_star


def _sac_target_error(mdp, alpha, q_star):
    """max |E_{s′~P, a′~π*}[SAC's soft target] − Q*|, every (s, a, s′, a′) one sample."""
    num_states, num_actions = q_star.shape
    grid = (num_states, num_actions, num_states, num_actions)  # [s, a, s′, a′]
    log_probs = torch.log_softmax(q_star / alpha, dim=-1)  # log π*(a′|s′)
    targets = rlgrad.soft_q_targets(
        mdp.rewards[:, :, None, None].expand(grid),
        q_star[None, None, :, :, None].expand(*grid, 1),  # one target critic, K = 1
        log_probs[None, None].expand(grid),
        torch.zeros(grid, dtype=torch.bool),
        mdp.gamma,
        alpha,
    )
    weights = mdp.transitions[:, :, :, None] * log_probs.exp()[None, None]  # P(s′|s, a)π*(a′|s′)
    return ((weights * targets).sum(dim=(2, 3)) - q_star).abs().max()


def _entropy(probs, gamma, slip, alphas):
    probs = f64(probs)
    slopes = -(probs.log() + 1)  # the course's answer, ∂H/∂π(a) = −(log π(a) + 1)
    autograd = rlgrad.gradient(lambda p: -(p * p.log()).sum(), probs)
    through_logits = rlgrad.gradient(rlgrad.categorical_entropy, probs.log())
    projected = probs * (slopes - probs @ slopes)
    mdp = zoo.two_state(gamma=gamma, slip=slip)
    optimum = mdp.initial @ exact.evaluate(mdp, exact.optimal_policy(mdp))[0]
    table = {alpha: _soft_optimum(mdp, alpha) for alpha in alphas}
    grid = torch.logspace(
        torch.log10(f64(min(alphas))), torch.log10(f64(max(alphas))), 41, dtype=torch.float64
    ).tolist()
    curves = [_soft_optimum(mdp, alpha)[:3] for alpha in grid]
    return {
        "∂H/∂π(a) = −(log π(a) + 1)": slopes,
        "∂H/∂π by autograd of −Σ π log π": autograd,
        "∂H/∂θ by autograd of categorical_entropy, θ = log π": through_logits,
        "π(a)(∂H/∂π(a) − Σ_b π(b)∂H/∂π(b)), the +1 gone": projected,
        "J* (α → 0: policy iteration)": optimum,
        **{
            key: value
            for alpha, (right, per_step, plain, _) in table.items()
            for key, value in (
                (f"α={alpha:g}: π*(right|left), π*(right|right)", right),
                (f"α={alpha:g}: return J(π*), entropy per step", [plain, per_step]),
            )
        },
        "max |E[SAC soft target] − Q*| over α": max(
            _sac_target_error(mdp, alpha, q_star) for alpha, (*_, q_star) in table.items()
        ),
        "_alphas": list(alphas),
        "_table": {alpha: row[:3] for alpha, row in table.items()},
        "_grid": grid,
        "_right": torch.stack([right for right, _, _ in curves]),  # [α, S]
        "_entropy": torch.stack([per_step for _, per_step, _ in curves]),
        "_return": torch.stack([plain for _, _, plain in curves]),
        "_optimum": optimum,
        "_max_entropy": torch.log(f64(mdp.num_actions)),
    }


STEPS: list[Step] = [
    Step(
        "calculus-ascent",
        "Gradient ascent and the learning rate",
        "J(θ) = −(θ − 0.8)² + 1 climbed by θ ← θ + αJ'(θ). The step multiplies the distance to "
        "0.8 by (1 − 2α): too small an α crawls, α = 0.5 lands in one step, above 1 the "
        "iterates overshoot further each time and diverge.",
        {"theta0": 0.2, "lrs": (0.02, 0.1, 0.5, 0.9, 1.05), "steps": 20},
        _ascent,
        "ascent",
    ),
    Step(
        "calculus-chain",
        "The chain rule",
        "y = 3θ, L = (y − 6)²: dL/dθ = dL/dy · dy/dθ, each factor from rlgrad.gradient.",
        {"theta": 1.0},
        _chain_rule,
        "chain_rule",
    ),
    Step(
        "calculus-taylor",
        "Taylor approximations of x²",
        "Around x the first-order (tangent) approximation misses by exactly h²; the second order "
        "is exact for a quadratic.",
        {"x": 3.0, "h": 0.1},
        _taylor,
        "taylor",
    ),
    Step(
        "policy-gradient",
        "The policy gradient theorem, exactly, on the two-state MDP",
        "J(θ) = μ₀ᵀV is a linear solve; ∇J = Σ_s d(s) Σ_a ∇π(a|s) Q(s, a) matches autograd. At "
        "θ = 0 the left state's gradient points left (staying pays now), yet exact ascent "
        "still reaches the optimal policy, right in both states.",
        {"gamma": 0.9, "slip": 0.1, "lrs": (0.1, 1.0, 5.0), "steps": 60},
        _policy_gradient,
        "policy_gradient",
    ),
    Step(
        "td",
        "TD(0) and the DQN target",
        "Semi-gradient TD(0) with one-hot features (a table) learns V of the uniform policy on "
        "two_state from sampled transitions; it approaches the exact V of the linear solve.",
        {
            "gamma": 0.9,
            "lr": 0.5,
            "episodes": 64,
            "horizon": 400,
            "seed": 0,
            "reward": 1.0,
            "next_q": (0.5, 2.0),
        },
        _td,
        "td",
    ),
    Step(
        "gae",
        "GAE: λ trades bias for variance",
        "Â_t = Σ_l (γλ)^l δ_{t+l}. Measured against the exact ∇J on two_state: with the exact V "
        "every λ is unbiased and variance grows with λ; with a noisy critic small λ is biased, "
        "and λ = 1 is not.",
        {
            "rewards": (1.0, 0.0, 2.0),
            "values": (0.5, 0.4, 1.0),
            "next_values": (0.4, 1.0, 0.0),
            "gamma": 0.9,
            "lam": 0.95,
            "episodes": 1000,
            "critic_noise": 1.0,
            "seed": 0,
        },
        _gae,
        "gae",
    ),
    Step(
        "ppo",
        "PPO's clipped objective and its flat regions",
        "min(rÂ, clip(r, 1−ε, 1+ε)Â): for Â > 0 nothing is gained beyond r = 1+ε, for Â < 0 "
        "nothing below 1−ε; there the gradient is exactly 0.",
        {
            "old_prob": 0.4,
            "new_prob": 0.6,
            "advantage": 3.0,
            "clip_eps": 0.2,
            "ratio_range": (0.5, 1.5),
        },
        _ppo,
        "ppo",
    ),
    Step(
        "taylor-trust-region",
        "Taylor and the trust region",
        "Course page E.3.4: a step can be trusted while its Taylor models hold. A few PPO "
        "updates on CartPole, then the last update's direction as the line θ_old + tΔθ "
        "(t = 1 is the update itself). For small t the surrogate follows its first-order "
        "model t·gᵀΔθ and "
        "the KL its quadratic model ½t²ΔθᵀFΔθ (Fisher-vector products); as t grows they part, "
        "the curvature term ½t²ΔθᵀHΔθ takes over, and more and more ratios leave PPO's clip "
        "range, where the clipped objective stops pulling. The per-update rows are the run's "
        "own taylor_* metrics (taylor_every = 1); the slice at t = 1 reproduces the last.",
        {
            "env": "CartPole-v1",
            "seed": 0,
            "updates": 3,
            "lr": 0.01,
            "clip_eps": 0.2,
            "scales": tuple(0.25 * k for k in range(13)),
            "probe_size": 512,
        },
        _trust_region,
        "trust_region",
    ),
    Step(
        "grpo",
        "GRPO: advantages relative to the group",
        "Â_i = (r_i − μ)/σ within each group of answers to one prompt: above the group mean "
        "is positive, whatever the absolute reward.",
        {"groups": ((2.0, 4.0, 6.0, 8.0), (2.0, 4.0, 10.0))},
        _grpo,
        "grpo",
    ),
    Step(
        "entropy-sac",
        "Entropy and SAC: the temperature α trades return for entropy",
        "The course's exercise: ∂H/∂π(a) = −(log π(a) + 1), 0.609 for π(a) = 0.2 (the course "
        "page's code prints 2.609, which is −log π(a) + 1). Through the logits the +1 drops "
        "out, since the probabilities must keep summing to 1. SAC maximizes the return plus "
        "αH at every step; "
        "on two_state the soft-optimal policy π* ∝ exp(Q*/α) moves from always right (α → 0, "
        "J*) towards uniform (entropy log 2 per step) as α grows, giving up return. For "
        "moderate α it even leans left in the left state: staying pays 0.5 now, while entropy "
        "shrinks what being right is worth. SAC's sampled soft target r + γ(Q*(s′, a′) − "
        "α log π*(a′|s′)) averages to Q* exactly: Q* is its fixed point.",
        {"probs": (0.2, 0.5, 0.3), "gamma": 0.9, "slip": 0.1, "alphas": (0.01, 0.1, 0.5, 1, 2, 5)},
        _entropy,
        "entropy",
    ),
]


def _printable(results: dict[str, object]) -> dict[str, object]:
    """What a reader sees: keys starting with "_" hold data for the figure only."""
    return {k: v for k, v in results.items() if not k.startswith("_")}


def render_step(step: Step, results: dict[str, object], width: int = 88) -> str:
    lines = [f"{step.name}: {step.title}", "─" * width]
    lines += textwrap.wrap(step.story, width, initial_indent="  ", subsequent_indent="  ")
    given = ", ".join(f"{k} = {format_value(v)}" for k, v in step.inputs.items())
    lines += textwrap.wrap(given, width, initial_indent="  given  ", subsequent_indent=" " * 9)
    for name, value in _printable(results).items():
        lines.append(f"  → {name} = {format_value(value)}")
    return "\n".join(lines)


def run_tour(plots: str | Path | None = None, step: str | None = None) -> int:
    """Print every step (or those whose name starts with ``step``); with ``plots`` draw them."""
    chosen = [s for s in STEPS if step is None or s.name.startswith(step)]
    if not chosen:
        names = ", ".join(s.name for s in STEPS)
        print(f"rlgrad tour: no step matches {step!r}; steps are {names}")
        return 2
    shown = 0
    for number, current in enumerate(chosen, start=1):
        try:
            results = current.results()
        except MissingExtra as error:  # a core install still gets every other step
            print(f"\n{number}. {current.name}: {current.title} (skipped: it {error})")
            continue
        shown += 1
        print(f"\n{number}. " + render_step(current, results))
        if plots is not None and current.figure:
            from rlgrad.tour import plots as figures

            path = getattr(figures, current.figure)(results, Path(plots) / f"{current.name}.png")
            print(f"  figure: {path}")
    return 0 if shown else 2
