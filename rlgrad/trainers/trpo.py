"""Trust Region Policy Optimization (Schulman et al. 2015), read top to bottom.

Each iteration: 1. collect T steps from N environments; 2. compute GAE(λ) advantages; 3. the
policy step, course page E.3.4 made exact: maximize the surrogate L(θ) = mean(r Â) subject to
mean KL(π_old ‖ π_θ) ≤ δ, with the KL modelled to second order by the Fisher matrix F:

    g = ∇L(θ_old),   solve F s = g by conjugate gradient (F·v by double backward, never F),
    Δθ = √(2δ / sᵀFs)·s,   then backtrack Δθ·ρᵏ until L improves and the true KL ≤ δ;

4. fit the critic with ``critic_epochs`` passes of Adam minibatch steps on ½(V − G)²;
5. log, evaluate and checkpoint. ``line_search=False`` takes the full step Δθ unchecked: the
natural policy gradient (Kakade 2001) with a KL-sized step.

Every tensor carries a leading seed axis, as in :mod:`rlgrad.trainers.ppo`: :func:`train_seeds`
trains many seeds as one batched computation and :func:`train` is its one-seed case. The seeds
share nothing, so the Fisher matrix of all of them is block-diagonal: the conjugate gradient, the
step scale and the line search run per seed, on one row of parameters each.

    >>> from rlgrad.trainers import trpo
    >>> config = trpo.Config(env="CartPole-v1", total_steps=512, num_envs=4, num_steps=64,
    ...                      eval_every=0, eval_episodes=2)
    >>> trpo.train(config, run_dir=getfixture("tmp_path") / "run").rows[-1]["step"]
    512
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import torch

from rlgrad.grpo import masked_mean
from rlgrad.returns import normalize_advantages
from rlgrad.support import configs, taylor, training
from rlgrad.support.rollout import SeedRollout
from rlgrad.support.runs import History, single_history
from rlgrad.support.seeded import SeedVectors
from rlgrad.trust_region import (
    backtracking_line_search,
    conjugate_gradient,
    fisher_operator,
    surrogate_objective,
    trust_region_step,
)
from rlgrad.value import explained_variance, value_loss

ALGORITHM = "trpo"
# the policy step's metrics, in the order of PolicyStep's fields
STEP_METRICS = ("surrogate_improvement", "kl", "step_accepted", "backtracks", "cg_residual")


@dataclasses.dataclass(frozen=True)
class Config(configs.PolicyConfig):
    """TRPO's hyperparameters; the defaults are sb3-contrib's (lr is the critic's)."""

    num_envs: int = 1
    """Environments stepped together (gymnasium.make_vec)."""
    num_steps: int = 2048
    """Steps per environment in each rollout (T); one policy step per rollout."""
    lam: float = 0.95
    """GAE λ."""
    lr: float = 1e-3
    """Adam learning rate of the critic (the actor moves by the trust-region step)."""
    max_kl: float = 0.01
    """δ, the KL radius of one policy step."""
    cg_iterations: int = 15
    """Conjugate-gradient iterations for F s = g."""
    cg_damping: float = 0.1
    """λ of F + λI: keeps conjugate gradient well posed where F is nearly singular."""
    line_search: bool = True
    """Backtrack until the surrogate improves within the KL radius (false: the natural policy
    gradient, the full step unchecked)."""
    backtrack_ratio: float = 0.8
    """ρ: each backtracking step multiplies the step by it."""
    max_backtracks: int = 10
    """Candidates tried after the full step before the update is skipped."""
    critic_epochs: int = 10
    """Passes of the critic over each rollout."""
    minibatch_size: int = 128
    """Samples per critic gradient step; at most num_steps · num_envs."""
    normalize_advantages: bool = True
    """Normalize advantages to mean 0, std 1 over the rollout."""
    max_grad_norm: float | None = None
    """Clip the critic's gradient norm to this (none: no clipping)."""
    taylor_every: int = 0
    """Every this many updates, log the policy step's Taylor diagnostics: predicted against
    actual surrogate change, KL and probability ratios (taylor_* columns; 0: never)."""


def check(config: Config, seeds: int = 1) -> None:
    """Refuse a bad config for training ``seeds`` seeds at once (ValueError naming the field)."""
    configs.check_policy_config(config)
    taylor.check_single_seed(config.taylor_every, seeds)
    configs.positive(
        config,
        "num_steps",
        "max_kl",
        "cg_iterations",
        "backtrack_ratio",
        "critic_epochs",
        "minibatch_size",
    )
    configs.non_negative(config, "cg_damping", "max_backtracks", "taylor_every")
    configs.in_unit_interval(config, "lam")
    configs.require(
        config.backtrack_ratio < 1,
        f"config field 'backtrack_ratio' must be in (0, 1); got {config.backtrack_ratio!r}",
    )
    configs.require(
        config.ent_coef == 0,
        f"config field 'ent_coef' must be 0 for TRPO (the surrogate has no entropy bonus); "
        f"got {config.ent_coef!r}",
    )
    rollout_size = config.num_steps * config.num_envs
    configs.require(
        config.minibatch_size <= rollout_size,
        f"config field 'minibatch_size' = {config.minibatch_size} is larger than a rollout of "
        f"num_steps · num_envs = {rollout_size} samples; lower it or raise num_steps",
    )


def build_agent(config: Config, spaces, seeds: int | None = None):
    return training.make_actor_critic(config, spaces, seeds=seeds)


def make_optimizer(config: Config, agents) -> training.SeedAdam:
    """Adam for the critic only: the actor moves by the trust-region step."""
    return training.SeedAdam(agents.critic.parameters(), lr=config.lr)


def actor_parameters(agents) -> list[torch.Tensor]:
    """θ, the parameters the trust-region step moves: the policy network and, for a Gaussian
    policy, log σ."""
    parameters = list(agents.actor.parameters())
    return parameters if agents.spaces.discrete else [*parameters, agents.log_std]


class PolicyStep(NamedTuple):
    """What one trust-region step did, per seed (``[S]`` tensors)."""

    improvement: torch.Tensor  # L(θ_new) − L(θ_old) of the surrogate (float64)
    kl: torch.Tensor  # the true mean KL(π_old ‖ π_new) (float64)
    accepted: torch.Tensor  # False: no step was found (or nothing to climb); θ stayed θ_old
    backtracks: torch.Tensor  # k of the accepted step Δθ·ρᵏ
    cg_residual: torch.Tensor  # ‖F s − g‖ after conjugate gradient


def policy_step(
    config: Config,
    agents,
    observations: torch.Tensor,
    actions: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    kept: torch.Tensor,
    stepping: torch.Tensor,
) -> PolicyStep:
    """3. maximize each seed's surrogate within its KL radius; the actor's parameters move in
    place. Inputs are ``[S, samples, ...]``; ``kept [S, samples]`` marks each seed's usable
    samples and ``stepping [S]`` the seeds that take a step (the others stay where they are)."""
    theta = SeedVectors(actor_parameters(agents))  # each seed's θ as one row, [S, P]
    with torch.no_grad():  # π_old, kept fixed while θ moves
        old_policy = tuple(
            None if x is None else x.detach().clone() for x in agents.distribution(observations)
        )

    def surrogates() -> torch.Tensor:  # L(θ) per seed, [S]
        log_probs, _ = agents.log_prob_and_entropy(observations, actions)
        return surrogate_objective(log_probs, old_log_probs, advantages, mask=kept, dim=1)

    def mean_kls() -> torch.Tensor:  # KL̄(π_old ‖ π_θ) per seed, [S]
        return masked_mean(agents.kl_from(old_policy, observations), kept, dim=1)

    old_surrogates = surrogates()
    # g per seed: each seed's surrogate reads only its own slice of θ
    gradient = theta.rows(torch.autograd.grad(old_surrogates.sum(), theta.parameters))
    old_surrogates = old_surrogates.detach().double()
    # a seed climbs unless it stopped or its gradient is 0 (e.g. equal advantages, normalized to 0)
    climbing = stepping & gradient.ne(0).any(dim=1)
    zeros = torch.zeros_like(old_surrogates)
    if not bool(climbing.any()):
        return PolicyStep(zeros, zeros, climbing, zeros.long(), zeros)
    gradient = torch.where(climbing.unsqueeze(1), gradient, 0.0)
    full_steps, residuals = natural_steps(config, theta, mean_kls, gradient, climbing)
    old_rows = theta.rows().detach()

    def evaluate(steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each seed's surrogate improvement and true mean KL at θ_old + its step."""
        theta.assign(old_rows + steps)
        with torch.no_grad():
            return surrogates().double() - old_surrogates, mean_kls().double()

    if not config.line_search:  # the natural policy gradient: the full step, unchecked
        improvements, kls = evaluate(full_steps)  # leaves θ = θ_old + Δθ
        return PolicyStep(improvements, kls, climbing, zeros.long(), residuals)
    search = backtracking_line_search(
        full_steps, evaluate, config.max_kl, config.backtrack_ratio, config.max_backtracks
    )
    # the search left θ at its last candidate: set the accepted steps (zero where rejected)
    theta.assign(old_rows + search.step)
    backtracks = torch.where(climbing, search.backtracks, 0)
    return PolicyStep(search.improvement, search.kl, search.accepted, backtracks, residuals)


def natural_steps(
    config: Config, theta: SeedVectors, mean_kls, gradient: torch.Tensor, climbing: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each climbing seed's full step Δθ = √(2δ / sᵀFs)·s with F s = g solved by conjugate
    gradient, ``[S, P]`` (0 for the other seeds), and the residual ‖F s − g‖ per seed. The
    Hessian of the summed KLs is block-diagonal, one block per seed's Fisher matrix, so one
    product serves every seed; the KL's gradient is built once for all of them (its graph goes
    when this returns, before θ moves)."""
    times_fisher = fisher_operator(lambda: mean_kls().sum(), theta.parameters, config.cg_damping)

    def fisher(rows: torch.Tensor) -> torch.Tensor:  # [S, P] ↦ the rows F_s v_s + λ v_s
        return theta.rows_of(times_fisher(theta.flat(rows)))

    solved = conjugate_gradient(fisher, gradient, config.cg_iterations)  # s ≈ F⁻¹g, per seed
    full_steps = torch.zeros_like(gradient)
    full_steps[climbing] = trust_region_step(
        solved.solution[climbing], fisher(solved.solution)[climbing], config.max_kl
    )
    return full_steps, torch.where(climbing, solved.residual_norms[-1], 0.0)


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train TRPO on ``config.seed``: :func:`rlgrad.trainers.ppo.train` says what it takes."""
    return single_history(train_seeds(config, [config.seed], run_dir, **run_options))


def train_seeds(
    config: Config, seeds: list[int], run_dir: str | Path | None = None, **run_options
) -> list[History]:
    """TRPO on every seed of ``seeds`` at once, as :func:`rlgrad.trainers.ppo.train_seeds`."""
    check(config, len(seeds))
    # 0. set up: for each seed its environments, networks, the critic's optimizer state and run
    # directory; the networks are stacked on a leading seed axis and trained as one computation
    setup = training.start_seeds(
        ALGORITHM, config, seeds, run_dir, build_agent, make_optimizer, **run_options
    )
    runs, envs, agents, generators = setup.runs, setup.envs, setup.agents, setup.generators

    S = len(seeds)
    device = generators[0].device
    rollout = SeedRollout(config.num_steps, S, config.num_envs, envs.spaces, device)
    seed_rows = torch.arange(S, device=device).unsqueeze(1)  # indexes [S, B] minibatches
    # the Taylor diagnostics of the one seed's update, when taylor_every asks for them
    diagnose = taylor.SeedDiagnostics(
        config.taylor_every, agents, lambda n: build_agent(config, envs.spaces, n)
    )

    while not runs.done:
        active = runs.active
        with runs.training():
            # 1. collect T steps from N environments per seed with each seed's current policy
            rollout.collect(envs, agents, generators, active)

            # 2. advantages: GAE(λ); a truncation bootstraps from V of the true final observation
            runs.fail_non_finite("a reward", rollout.rewards, seed_axis=1)  # that seed alone
            values, advantages, returns = rollout.gae(agents, config.gamma, config.lam, runs.active)
            stepping = torch.as_tensor(runs.active, device=device)  # [S] the seeds that go on
            # Gymnasium's autoreset steps carry no action; every tensor below is [S, T·N, ...]
            valid = rollout.per_seed(rollout.valid)
            kept = valid & stepping.unsqueeze(1)
            observations = rollout.per_seed(rollout.observations)
            actions = rollout.per_seed(rollout.actions)
            old_log_probs = rollout.per_seed(rollout.log_probs)
            step_advantages = rollout.per_seed(advantages)
            if config.normalize_advantages:
                normalized = normalize_advantages(step_advantages, mask=kept, dim=1)
                enough = kept.sum(dim=1, keepdim=True) > 1  # a lone sample stays as is
                step_advantages = torch.where(enough, normalized, step_advantages)

            # 3. the policy step: g, then F s = g by conjugate gradient, scaled to the KL radius
            # θ_old, when this update's Taylor diagnostics are due (else None)
            policy_before = diagnose.before(runs.runs[0].updates)
            stepped = policy_step(
                config,
                agents,
                observations,
                actions,
                old_log_probs,
                step_advantages,
                kept,
                stepping,
            )
            # the step's Taylor models against what it did (one seed only; empty cells between
            # taylor_every)
            diagnosed = diagnose.after(
                policy_before,
                kept[0].nonzero().squeeze(1),
                observations,
                actions,
                old_log_probs,
                step_advantages,
            )

            # 4. the critic: epochs of Adam minibatch steps on ½(V − G)², each seed its own
            # random order of its usable samples (padded to the longest)
            step_returns = rollout.per_seed(returns)
            usable = [row.nonzero().squeeze(1) for row in kept]
            means = training.SeedMeans(S, "value_loss", "grad_norm", device=device)
            for _ in range(config.critic_epochs):
                for batch, in_batch in training.seed_minibatches(
                    generators, usable, config.minibatch_size
                ):
                    updating = stepping & in_batch.any(dim=1)
                    if not bool(updating.any()):
                        continue
                    critic_loss = value_loss(
                        agents.value(observations[seed_rows, batch]),
                        step_returns[seed_rows, batch],
                        mask=in_batch,
                        dim=1,
                    )
                    grad_norm = training.seed_gradient_step(
                        runs, setup.optimizer, critic_loss, config.max_grad_norm, updating
                    )
                    means.add(updating, value_loss=critic_loss, grad_norm=grad_norm)
            with torch.no_grad():
                _, entropies = agents.log_prob_and_entropy(observations, actions)
                mean_entropies = masked_mean(entropies, kept, dim=1)

        # 5. log, evaluate and checkpoint, each seed in its own run directory
        enough = (valid.sum(dim=1) > 1).tolist()
        explained = explained_variance(
            rollout.per_seed(values), step_returns, mask=valid, dim=1
        ).tolist()
        # one host sync: a row [improvement, kl, accepted, backtracks, residual, entropy] per seed
        measured = torch.stack(
            [*(field.double() for field in stepped), mean_entropies.double()], dim=1
        ).tolist()
        runs.end_iteration(
            config.num_steps * config.num_envs,
            [
                {
                    **dict(zip(STEP_METRICS, numbers, strict=True)),
                    "value_loss": seed_means["value_loss"],
                    "entropy": entropy,
                    "grad_norm": seed_means["grad_norm"],
                    "explained_variance": explained[s] if enough[s] and active[s] else None,
                    **diagnosed,
                }
                for s, ((*numbers, entropy), seed_means) in enumerate(
                    zip(measured, means.means(), strict=True)
                )
            ],
        )
    return runs.finish()
