"""Trust Region Policy Optimization (Schulman et al. 2015), read top to bottom.

Each iteration: 1. collect T steps from N environments; 2. compute GAE(λ) advantages; 3. the
policy step, course page E.3.4 made exact: maximize the surrogate L(θ) = mean(r Â) subject to
mean KL(π_old ‖ π_θ) ≤ δ, with the KL modelled to second order by the Fisher matrix F:

    g = ∇L(θ_old),   solve F s = g by conjugate gradient (F·v by double backward, never F),
    Δθ = √(2δ / sᵀFs)·s,   then backtrack Δθ·ρᵏ until L improves and the true KL ≤ δ;

4. fit the critic with ``critic_epochs`` passes of Adam minibatch steps on ½(V − G)²;
5. log, evaluate and checkpoint. ``line_search=False`` takes the full step Δθ unchecked: the
natural policy gradient (Kakade 2001) with a KL-sized step.

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
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from rlgrad.returns import normalize_advantages
from rlgrad.support import configs, taylor, training
from rlgrad.support.rollout import Rollout
from rlgrad.support.runs import History
from rlgrad.trust_region import (
    backtracking_line_search,
    conjugate_gradient,
    fisher_operator,
    surrogate_objective,
    trust_region_step,
)
from rlgrad.value import explained_variance, value_loss

ALGORITHM = "trpo"


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


def check(config: Config) -> None:
    configs.check_policy_config(config)
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


def build_agent(config: Config, spaces):
    return training.make_actor_critic(config, spaces)


def make_optimizer(config: Config, agent) -> torch.optim.Optimizer:
    """Adam for the critic only: the actor moves by the trust-region step."""
    return training.adam(agent.critic.parameters(), lr=config.lr)


class PolicyStep(NamedTuple):
    """What one trust-region step did."""

    improvement: float  # L(θ_new) − L(θ_old) of the surrogate
    kl: float  # the true mean KL(π_old ‖ π_new)
    accepted: bool  # False: the line search found no step and θ stayed θ_old
    backtracks: int  # k of the accepted step Δθ·ρᵏ
    cg_residual: float  # ‖F s − g‖ after conjugate gradient


def policy_step(
    config: Config,
    agent,
    actor_parameters: list[torch.Tensor],
    observations: torch.Tensor,
    actions: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
) -> PolicyStep:
    """3. maximize the surrogate within the KL radius; the actor's parameters move in place."""
    with torch.no_grad():  # π_old, kept fixed while θ moves
        old_policy = tuple(
            None if x is None else x.detach().clone() for x in agent.distribution(observations)
        )

    def surrogate() -> torch.Tensor:
        log_probs, _ = agent.log_prob_and_entropy(observations, actions)
        return surrogate_objective(log_probs, old_log_probs, advantages)

    def mean_kl() -> torch.Tensor:
        return agent.kl_from(old_policy, observations).mean()

    old_surrogate = surrogate()
    gradient = torch.autograd.grad(old_surrogate, actor_parameters)
    gradient = torch.cat([g.reshape(-1) for g in gradient])  # g, [P]
    old_surrogate = old_surrogate.item()
    if not bool(gradient.any()):  # e.g. equal advantages, normalized to 0: nothing to climb
        return PolicyStep(0.0, 0.0, False, 0, 0.0)
    # v ↦ (F + λI)v at θ_old, the KL's gradient built once for every product below
    fisher = fisher_operator(mean_kl, actor_parameters, config.cg_damping)
    solved = conjugate_gradient(fisher, gradient, config.cg_iterations)  # s ≈ F⁻¹g
    full_step = trust_region_step(solved.solution, fisher(solved.solution), config.max_kl)
    del fisher  # its graph; θ moves next
    old_vector = parameters_to_vector(actor_parameters).detach()

    def evaluate(step: torch.Tensor) -> tuple[float, float]:
        """The surrogate's improvement and the true mean KL at θ_old + step."""
        vector_to_parameters(old_vector + step, actor_parameters)
        with torch.no_grad():
            return surrogate().item() - old_surrogate, mean_kl().item()

    residual = float(solved.residual_norms[-1])
    if not config.line_search:  # the natural policy gradient: the full step, unchecked
        improvement, kl = evaluate(full_step)  # leaves θ = θ_old + Δθ
        return PolicyStep(improvement, kl, True, 0, residual)
    search = backtracking_line_search(
        full_step, evaluate, config.max_kl, config.backtrack_ratio, config.max_backtracks
    )
    # the search left θ at its last candidate: set the accepted step (zero when rejected)
    vector_to_parameters(old_vector + search.step, actor_parameters)
    return PolicyStep(search.improvement, search.kl, search.accepted, search.backtracks, residual)


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train TRPO; return the metric history (also written to ``run_dir``).

    ``run_options``: ``resume``, ``checkpoint`` and ``progress``, as for :func:`ppo.train`.
    """
    check(config)
    # 0. set up: seeds, environments, networks, the critic's optimizer and the run directory
    setup = training.start(ALGORITHM, config, run_dir, build_agent, make_optimizer, **run_options)
    run, env, agent = setup.run, setup.env, setup.agent
    actor_parameters = list(agent.actor.parameters())
    if not env.spaces.discrete:
        actor_parameters.append(agent.log_std)
    rollout = Rollout(config.num_steps, config.num_envs, env.spaces)

    while not run.done:
        with run.training():
            # 1. collect T steps from N environments with the current policy
            rollout.collect(env, agent, setup.generator)

            # 2. advantages: GAE(λ); a truncation bootstraps from V of the true final observation
            values, advantages, returns = rollout.gae(agent, config.gamma, config.lam)
            usable = rollout.valid_indices()  # Gymnasium's autoreset steps carry no action
            observations = rollout.flat("observations")[usable]
            actions = rollout.flat("actions")[usable]
            old_log_probs = rollout.flat("log_probs")[usable]
            step_advantages = advantages.flatten()[usable]
            if config.normalize_advantages and len(usable) > 1:
                step_advantages = normalize_advantages(step_advantages)

            # 3. the policy step: g, then F s = g by conjugate gradient, scaled to the KL radius
            # θ_old, when this update's Taylor diagnostics are due (else None)
            policy_before = taylor.snapshot(agent, config.taylor_every, run.updates)
            stepped = policy_step(
                config,
                agent,
                actor_parameters,
                observations,
                actions,
                old_log_probs,
                step_advantages,
            )
            # the step's Taylor models against what it did (empty cells between taylor_every)
            diagnosed = {}
            if config.taylor_every:
                diagnosed = taylor.diagnostics(
                    agent, policy_before, observations, actions, old_log_probs, step_advantages
                )

            # 4. the critic: epochs of Adam minibatch steps on ½(V − G)²
            step_returns = returns.flatten()[usable]
            means = training.Means("value_loss", "grad_norm")
            for _ in range(config.critic_epochs):
                order = torch.randperm(len(usable), generator=setup.generator)
                for batch in order.split(config.minibatch_size):
                    critic_loss = value_loss(agent.value(observations[batch]), step_returns[batch])
                    grad_norm = training.gradient_step(
                        run, setup.optimizer, critic_loss, config.max_grad_norm
                    )
                    means.add(value_loss=critic_loss.detach(), grad_norm=grad_norm)
            with torch.no_grad():
                _, entropies = agent.log_prob_and_entropy(observations, actions)

        # 5. log, evaluate and checkpoint
        valid = rollout.valid.flatten()
        averaged = means.means()
        run.end_iteration(
            config.num_steps * config.num_envs,
            {
                "surrogate_improvement": stepped.improvement,
                "kl": stepped.kl,
                "step_accepted": float(stepped.accepted),
                "backtracks": stepped.backtracks,
                "cg_residual": stepped.cg_residual,
                "value_loss": averaged["value_loss"],
                "entropy": float(entropies.mean()),
                "grad_norm": averaged["grad_norm"],
                "explained_variance": float(
                    explained_variance(values.flatten()[valid], returns.flatten()[valid])
                ),
                **diagnosed,
            },
        )
    return run.finish()
