"""Sampled policy-gradient estimators, measured against the exact ∇J of a :class:`TabularMDP`.

Every estimator here has the form

    ĝ = (1/N) Σ_n g_n,    g_n = Σ_{t<H} w_t ∇_θ log π_θ(a_t | s_t)    (episode n)

and differs only in the weight w_t:

| key                  | w_t                                | expectation                  |
|----------------------|------------------------------------|------------------------------|
| `total_return`       | G_0 (every step)                   | ∇J                           |
| `reinforce`          | γ^t G_t                            | ∇J                           |
| `constant_baseline`  | γ^t (G_t − b), b = d·V / Σd        | ∇J                           |
| `value_baseline`     | γ^t (G_t − V(s_t))                 | ∇J                           |
| `advantage`          | γ^t A(s_t, a_t) (exact)            | ∇J                           |
| `gae(λ)`             | γ^t GAE_λ with the exact V          | ∇J (any λ)                   |
| `gae(λ)+noise`       | γ^t GAE_λ with V̂ = V + e           | `expected_gae_gradient` (exact) |

G_t is the reward-to-go bootstrapped with V(s_H) at the truncation (see
:mod:`~rlgrad.tabular.sampling`).
The γ^t factor is what makes the sampled sum an unbiased estimate of the policy gradient theorem
Σ_s d^π(s) Σ_a ∇π Q, whose discounted visitation d^π weights step t by γ^t; the common practice
of dropping γ^t estimates a different vector (the gradient of no objective, Nota & Thomas 2020).
``value_baseline`` and ``gae(1)`` are the same estimator, episode by episode.

g_n comes from autograd of :func:`rlgrad.policy_gradient_loss` (the loss a trainer descends),
one copy of θ per episode, so the estimator measured is exactly the one a trainer would use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

import rlgrad
from rlgrad import _checks
from rlgrad.errors import BadInputError
from rlgrad.tabular.exact import (
    checked_mdp,
    checked_table,
    evaluate,
    expected_gae_gradient,
    policy,
    policy_gradient,
    state_visitation,
)
from rlgrad.tabular.mdp import TabularMDP
from rlgrad.tabular.sampling import Episodes, default_horizon, sample_episodes

LAMS = (0.0, 0.5, 0.9, 0.95, 1.0)
"""The λ values of the study (the issue's grid)."""


def gae_key(lam: float, noisy: bool = False) -> str:
    """The key of the GAE(λ) estimator, e.g. ``gae(0.95)`` or ``gae(0)+noise``."""
    return f"gae({lam:g})" + ("+noise" if noisy else "")


def critic_error(num_states: int, size: float, generator: torch.Generator) -> Tensor:
    """A random critic error e ``[S]`` with mean 0 and root-mean-square ``size`` (float64).

    The mean is removed because a constant error cannot bias the gradient (it is a constant
    baseline shift; see :func:`~rlgrad.tabular.exact.expected_gae_gradient`), so ``size``
    measures only the part that can. One state has no such part: e = 0.
    """
    fn = "critic_error"
    size = _checks.non_negative(fn, "size", size)
    direction = torch.randn(num_states, generator=generator, dtype=torch.float64)
    direction = direction - direction.mean()
    rms = direction.pow(2).mean().sqrt()
    return torch.zeros_like(direction) if rms == 0 else size * direction / rms


def estimator_weights(
    mdp: TabularMDP,
    logits: Tensor,
    episodes: Episodes,
    lams: tuple[float, ...] = LAMS,
    critic_values: Tensor | None = None,
) -> dict[str, Tensor]:
    """The weights w_t ``[H, N]`` of every estimator in the module table, by key.

    Returns come from :func:`rlgrad.discounted_returns` and advantages from :func:`rlgrad.gae`,
    both bootstrapping from the state after the truncation. The ``+noise`` keys appear only when
    ``critic_values`` (V̂ ``[S]``) is given.
    """
    fn = "estimator_weights"
    mdp = checked_mdp(fn, mdp)
    logits = checked_table(fn, "logits", mdp, logits)
    probs = policy(logits).detach()
    values, q_values = (x.detach() for x in evaluate(mdp, probs))
    states, next_states = episodes.states, episodes.next_states
    rewards, terminated, truncated = episodes.rewards, episodes.terminated, episodes.truncated
    horizon = rewards.shape[0]
    discounts = mdp.gamma ** torch.arange(horizon, dtype=rewards.dtype).unsqueeze(1)  # [H, 1]

    returns = rlgrad.discounted_returns(
        rewards, terminated, truncated, mdp.gamma, next_values=values[next_states]
    )
    visitation = state_visitation(mdp, probs).detach()
    constant = (visitation @ values) / visitation.sum()  # the average value under d^π
    weights = {
        "total_return": returns[:1].expand_as(returns),
        "reinforce": discounts * returns,
        "constant_baseline": discounts * (returns - constant),
        "value_baseline": discounts * (returns - values[states]),
        "advantage": discounts * (q_values - values.unsqueeze(-1))[states, episodes.actions],
    }
    critics = {False: values}
    if critic_values is not None:
        critics[True] = critic_values
    for noisy, critic in critics.items():
        for lam in lams:
            advantages = rlgrad.gae(
                rewards,
                critic[states],
                critic[next_states],
                terminated,
                truncated,
                mdp.gamma,
                lam,
            )
            weights[gae_key(lam, noisy)] = discounts * advantages
    return weights


def episode_gradients(logits: Tensor, episodes: Episodes, weights: Tensor) -> Tensor:
    """g_n = Σ_t w_t ∇_θ log π_θ(a_t|s_t) for every episode n and every weighting k at once.

    Computed as autograd of :func:`rlgrad.policy_gradient_loss` with one copy of θ per (k, n):
    that loss is −mean over its K·H·N entries of w·log π, so g = −K·H·N · ∂L/∂θ_(k, n).

    Args:
        logits: ``[S, A]`` θ.
        episodes: :class:`Episodes` with fields ``[H, N]``.
        weights: ``[K, H, N]`` w_t per weighting.

    Returns:
        ``[K, N, S, A]``.
    """
    fn = "episode_gradients"
    logits = _checks.floats(fn, "logits", logits)
    weights = _checks.floats(fn, "weights", weights)
    num_weightings, horizon, num_episodes = weights.shape
    if episodes.states.shape != (horizon, num_episodes):
        raise BadInputError(
            f"{fn}(): 'weights' must have shape [K, H, N] with [H, N] = "
            f"{tuple(episodes.states.shape)}; got {tuple(weights.shape)}"
        )
    copies = logits.detach().expand(num_weightings, num_episodes, *logits.shape).clone()
    copies.requires_grad_(True)  # [K, N, S, A]
    with torch.enable_grad():
        log_policies = torch.log_softmax(copies, dim=-1)  # [K, N, S, A]
        columns = torch.arange(num_episodes).expand(horizon, -1)  # [H, N]
        log_probs = log_policies[:, columns, episodes.states, episodes.actions]  # [K, H, N]
        loss = rlgrad.policy_gradient_loss(log_probs, weights.detach())
        (grad,) = torch.autograd.grad(loss, copies)
    return -grad * weights.numel()


@dataclass(frozen=True)
class Row:
    """One estimator's statistics against the truth (all norms over the flattened ``[S, A]``).

    | Field           | Meaning                                                             |
    |-----------------|---------------------------------------------------------------------|
    | `mean`          | ĝ = mean of the N episode gradients ``[S, A]``                      |
    | `expected`      | its exact expectation E[g] ``[S, A]`` (infinite horizon)            |
    | `bias2_exact`   | ‖E[g] − ∇J‖²                                                        |
    | `bias2`         | ‖ĝ − ∇J‖² − tr(Σ̂)/N, an unbiased estimate of the bias²            |
    | `variance`      | tr(Σ̂) = E‖g − E g‖², the variance of one episode's estimate        |
    | `cosine`        | cos(ĝ, ∇J)                                                          |
    | `p_unbiased`    | p-value of H₀: E[g] = ∇J_H (Hotelling-type χ² test on ĝ), where   |
    |                 | ∇J_H is the exact gradient of the first H steps (see `Study`)       |
    """

    key: str
    mean: Tensor
    expected: Tensor
    bias2_exact: float
    bias2: float
    variance: float
    cosine: float
    p_unbiased: float


@dataclass(frozen=True)
class Study:
    """The result of :func:`study`; see :func:`render_study` and :mod:`rlgrad.tabular.plots`."""

    mdp: TabularMDP
    logits: Tensor
    num_episodes: int
    horizon: int
    lams: tuple[float, ...]
    critic_noise: float
    true_gradient: Tensor
    truncation_bias: float
    critic_values: Tensor
    rows: dict[str, Row]
    samples: dict[str, Tensor] = field(repr=False)
    """Episode gradients ``[N, S·A]`` per key, for the cosine-vs-N curves."""
    noise_sizes: Tensor = field(repr=False)
    noise_bias2: dict[float, Tensor] = field(repr=False)
    """Exact bias² ``[len(noise_sizes)]`` per λ as the critic error grows."""


def _zero_below(x: float, floor: float = 1e-24) -> float:
    """Round-off (a bias² of 1e-31 from a formula that is exactly 0) printed as 0."""
    return 0.0 if abs(x) < floor else x


def _p_value(offset: Tensor, samples: Tensor) -> float:
    """P(χ²_r ≥ N·b̂ᵀΣ̂⁺b̂): how surprising the offset of the mean is if E[g] = truth.

    Σ̂ is singular (each state's gradient row sums to 0), so the pseudo-inverse on its range of
    rank r is used; an offset outside that range is impossible under H₀ and gives p = 0.
    """
    num = samples.shape[0]
    covariance = torch.cov(samples.T)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    keep = eigenvalues > 1e-10 * eigenvalues.max().clamp_min(1e-300)
    projected = eigenvectors.T @ offset
    outside = projected[~keep].abs().max() if bool((~keep).any()) else offset.new_zeros(())
    if float(outside) > 1e-8 * (1 + float(offset.abs().max())):
        return 0.0
    rank = int(keep.sum())
    if rank == 0:
        return 1.0
    statistic = num * (projected[keep] ** 2 / eigenvalues[keep]).sum()
    return float(torch.special.gammaincc(torch.tensor(rank / 2.0), statistic / 2.0))


def study(
    mdp: TabularMDP,
    logits: Tensor,
    num_episodes: int = 2000,
    lams: tuple[float, ...] = LAMS,
    critic_noise: float = 1.0,
    seed: int = 0,
    horizon: int | None = None,
) -> Study:
    """Sample N episodes of π_θ and measure every estimator's bias and variance against ∇J.

    The critic of the ``+noise`` rows is V̂ = V + e with e from :func:`critic_error` (RMS
    ``critic_noise``). All randomness comes from one ``torch.Generator`` seeded with ``seed``.

    Args:
        mdp: the MDP.
        logits: ``[S, A]`` θ, float64 like the MDP.
        num_episodes: N ≥ 2.
        lams: the λ grid for GAE.
        critic_noise: RMS size of the critic error (≥ 0).
        seed: the seed.
        horizon: H; default :func:`~rlgrad.tabular.sampling.default_horizon` (γ^H ≤ 1e-4).

    Returns:
        A :class:`Study`.
    """
    fn = "study"
    mdp = checked_mdp(fn, mdp)
    logits = checked_table(fn, "logits", mdp, logits).detach()
    num_episodes = _checks.count(fn, "num_episodes", num_episodes)
    if num_episodes < 2:
        raise BadInputError(
            f"{fn}(): 'num_episodes' must be >= 2 for a variance; got {num_episodes}"
        )
    lams = tuple(_checks.unit_interval(fn, "lams", lam) for lam in lams)
    critic_noise = _checks.non_negative(fn, "critic_noise", critic_noise)
    horizon = default_horizon(mdp.gamma) if horizon is None else horizon
    generator = torch.Generator().manual_seed(_checks.count(fn, "seed", seed))

    values = evaluate(mdp, policy(logits))[0]
    direction = critic_error(mdp.num_states, 1.0, generator).to(mdp.dtype)
    critic_values = values + critic_noise * direction
    episodes = sample_episodes(mdp, logits, num_episodes, horizon, generator)
    weights = estimator_weights(mdp, logits, episodes, lams, critic_values)
    gradients = episode_gradients(logits, episodes, torch.stack(list(weights.values())))
    true_gradient = policy_gradient(mdp, logits)
    truth = true_gradient.reshape(-1)
    # What an unbiased estimator on H-step episodes averages to. It differs from ∇J by O(γ^H),
    # which is invisible in ĝ except along directions where g does not vary at all (for the
    # exact advantage on two actions, g is a deterministic function of the visits), where any
    # offset, however small, would be "significant".
    truncated = policy_gradient(mdp, logits, horizon=horizon).reshape(-1)

    rows: dict[str, Row] = {}
    samples: dict[str, Tensor] = {}
    for key, per_episode in zip(weights, gradients, strict=True):
        flat = per_episode.reshape(num_episodes, -1)  # [N, S·A]
        if key.endswith("+noise"):
            lam = float(key[len("gae(") : key.index(")")])
            expected = expected_gae_gradient(mdp, logits, lam, critic_values)
        else:
            expected = true_gradient
        mean = flat.mean(dim=0)
        variance = float(flat.var(dim=0).sum())
        rows[key] = Row(
            key=key,
            mean=mean.reshape(logits.shape),
            expected=expected,
            bias2_exact=_zero_below(float(((expected - true_gradient) ** 2).sum())),
            bias2=float(((mean - truth) ** 2).sum()) - variance / num_episodes,
            variance=variance,
            cosine=float(torch.nn.functional.cosine_similarity(mean, truth, dim=0)),
            p_unbiased=_p_value(mean - truncated, flat),
        )
        samples[key] = flat

    noise_sizes = torch.linspace(0.0, 2.0 * max(critic_noise, 1e-3), 9, dtype=mdp.dtype)
    noise_bias2 = {
        lam: torch.stack(
            [
                (
                    (
                        expected_gae_gradient(mdp, logits, lam, values + size * direction)
                        - true_gradient
                    )
                    ** 2
                ).sum()
                for size in noise_sizes
            ]
        )
        for lam in lams
    }
    return Study(
        mdp=mdp,
        logits=logits,
        num_episodes=num_episodes,
        horizon=horizon,
        lams=lams,
        critic_noise=critic_noise,
        true_gradient=true_gradient,
        truncation_bias=float((truncated - truth).norm()),
        critic_values=critic_values,
        rows=rows,
        samples=samples,
        noise_sizes=noise_sizes,
        noise_bias2=noise_bias2,
    )


def cosine_curve(
    samples: Tensor, truth: Tensor, sizes: list[int], max_batches: int = 256
) -> Tensor:
    """The mean cos(ĝ_n, ∇J) of the average of n episode gradients, for each n in ``sizes``.

    Averaged over up to ``max_batches`` disjoint batches of n episodes from ``samples`` ``[N, D]``.
    """
    truth = truth.reshape(-1)
    curve = []
    for size in sizes:
        batches = min(samples.shape[0] // size, max_batches)
        means = samples[: batches * size].reshape(batches, size, -1).mean(dim=1)
        curve.append(torch.nn.functional.cosine_similarity(means, truth.expand_as(means)).mean())
    return torch.stack(curve)


LABELS = {
    "total_return": "G₀ (total return)",
    "reinforce": "G_t (REINFORCE)",
    "constant_baseline": "G_t − b (constant)",
    "value_baseline": "G_t − V(s_t)",
    "advantage": "A(s_t,a_t) exact",
}


def label(key: str) -> str:
    """A readable name for an estimator key."""
    if key.startswith("gae("):
        lam = key[len("gae(") : key.index(")")]
        return f"GAE λ={lam}" + (", noisy critic" if key.endswith("+noise") else ", exact V")
    return LABELS.get(key, key)


def render_study(result: Study) -> str:
    """The study as a text table, one row per estimator."""
    mdp, truth = result.mdp, result.true_gradient
    lines = [
        f"rlgrad study: {mdp.name} (S={mdp.num_states}, A={mdp.num_actions}, γ={mdp.gamma:g}), "
        f"N={result.num_episodes} episodes of H={result.horizon} steps",
        f"  θ = {result.logits.tolist()}",
        f"  exact ∇J = {[[round(v, 4) for v in row] for row in truth.tolist()]}   "
        f"‖∇J‖² = {float((truth**2).sum()):.4g}",
        f"  noisy critic: V̂ − V has RMS {result.critic_noise:g} "
        f"(V = {[round(v, 3) for v in evaluate(mdp, policy(result.logits))[0].tolist()]})",
        "",
        f"  {'estimator':<26}{'bias² exact':>12}{'bias² sampled':>15}{'variance':>11}"
        f"{'MSE of mean':>13}{'cos(ĝ,∇J)':>11}{'p(unbiased)':>13}",
        "  " + "─" * 99,
    ]
    for key, row in result.rows.items():
        mse = row.bias2_exact + row.variance / result.num_episodes
        lines.append(
            f"  {label(key):<26}{row.bias2_exact:>12.3g}{row.bias2:>15.3g}{row.variance:>11.4g}"
            f"{mse:>13.3g}{row.cosine:>11.4f}{row.p_unbiased:>13.3g}"
        )
    lines += [
        "",
        "  variance: E‖g − E g‖² of ONE episode's estimate; MSE of mean = bias² + variance/N.",
        "  bias² sampled: ‖ĝ − ∇J‖² − variance/N (unbiased, so it can dip below 0).",
        "  p(unbiased): p-value of H₀ E[g] = ∇J (of the H sampled steps); tiny p: bias detected.",
        "  G_t − V(s_t) and GAE λ=1 with exact V are the same estimator.",
        f"  truncation after H steps (bootstrapped with V(s_H)) shifts every expectation by "
        f"‖·‖ = {result.truncation_bias:.2g}.",
    ]
    return "\n".join(lines)
