"""Soft Actor-Critic (Haarnoja et al. 2018), read top to bottom.

SAC maximizes the return plus α times the policy's entropy. Each environment step: 1. act with
a squashed Gaussian sample (uniformly random actions before ``learning_starts``); 2. store the
transition; 3. when due, take ``gradient_steps`` gradient steps on a replayed minibatch:

    y = r + γ(1 − term)·(min_k Q⁻_k(s′, a′) − α log π(a′|s′)),  a′ ~ π(·|s′)
    L_Q = mean_k ½(Q_k(s, a) − y)²
    L_π = mean(α log π(ã|s) − min_k Q_k(s, ã)),  ã ~ π(·|s) reparameterized
    L_α = −mean(log α · (log π(ã|s) + H̄))      (automatic temperature, target entropy H̄)

4. move the target critics by Polyak averaging, θ⁻ ← τθ + (1 − τ)θ⁻, after every gradient step;
then log, evaluate and checkpoint.

One backward pass and one Adam step per gradient step: the three losses touch disjoint
parameters (the actor's loss reads the critics with detached weights, the targets and the
temperature's bracket are detached), so their sum has exactly each loss's gradient in each
parameter group. The actor therefore sees the critics as they were before this step's update
(SB3 and CleanRL update the critics first); the step is otherwise the same.

Many seeds train as one, as in :mod:`rlgrad.trainers.dqn`: the actor, the critics, their
targets and log α have a leading seed axis (all S·K critics one batched matmul per layer), each
seed has its own replay buffer, action and minibatch draws, temperature, gradient clipping and
Adam state, and seed s draws exactly what a run of seed s alone draws. One seed is the same
code with S = 1.

    >>> from rlgrad.trainers import sac
    >>> config = sac.Config(env="Pendulum-v1", total_steps=400, learning_starts=200,
    ...                     batch_size=32, hidden_sizes=(32, 32), log_every=200, eval_every=0,
    ...                     eval_episodes=1)
    >>> sac.train(config, run_dir=getfixture("tmp_path") / "run").rows[-1]["step"]
    400
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from rlgrad.continuous import sac_actor_loss, soft_q_targets, temperature_loss
from rlgrad.support import configs, offpolicy, training
from rlgrad.support.continuous_nets import (
    ActorCritics,
    CriticEnsemble,
    SquashedGaussianActor,
    check_continuous,
)
from rlgrad.support.replay import SeedReplayBuffer
from rlgrad.support.runs import History, single_history
from rlgrad.value import value_loss

ALGORITHM = "sac"
METRICS = ("critic_loss", "actor_loss", "alpha_loss", "entropy", "q_mean", "grad_norm")


@dataclasses.dataclass(frozen=True)
class Config(configs.ContinuousControlConfig):
    """SAC's hyperparameters (the shared ones in ContinuousControlConfig); the defaults are
    SB3's and CleanRL's for MuJoCo."""

    alpha: float | None = None
    """Fixed entropy temperature α (none: learn α to keep the entropy at target_entropy)."""
    alpha_init: float = 1.0
    """The learned α's starting value."""
    target_entropy: float | None = None
    """Target entropy H̄ of the learned α (none: −dim(action space))."""


def check(config: Config) -> None:
    configs.check_continuous_control_config(config)
    configs.positive(config, "alpha_init")
    configs.require(
        config.alpha is None or config.alpha >= 0,
        f"config field 'alpha' must be >= 0 or none (learned); got {config.alpha!r}",
    )


def build_agent(config: Config, spaces, seeds: int | None = None) -> ActorCritics:
    check_continuous(spaces, ALGORITHM)
    actor = SquashedGaussianActor(spaces, config.hidden_sizes, config.activation, seeds=seeds)
    critics = CriticEnsemble(
        spaces, config.hidden_sizes, config.activation, config.num_critics, seeds=seeds
    )
    log_alpha = math.log(config.alpha_init) if config.alpha is None else None
    return ActorCritics(spaces, actor, critics, log_alpha, seeds)


def make_optimizer(config: Config, agents: ActorCritics) -> training.SeedAdam:
    """One Adam over the actor and log α (at lr) and the critics (at critic_lr, or lr): three
    parameter groups of ``torch.optim.Adam``, per seed."""
    actor, critics = list(agents.actor.parameters()), list(agents.critics.parameters())
    temperature = [agents.log_alpha] if config.alpha is None else []
    critic_lr = config.critic_lr or config.lr
    return training.SeedAdam(
        actor + critics + temperature,
        lr=config.lr,
        param_lrs=[None] * len(actor) + [critic_lr] * len(critics) + [None] * len(temperature),
    )


class Companions(NamedTuple):
    """SAC's checkpointed companions of the agents, seed-batched; each seed's run saves its
    slice of each."""

    target_critics: CriticEnsemble  # θ⁻, Polyak averages of the critics
    replay: SeedReplayBuffer
    counters: offpolicy.SeedCounters  # gradient steps so far: the actor updates on every
    # policy_delay-th


def build_companions(config: Config, spaces, agents: ActorCritics, seeds: int) -> Companions:
    replay = offpolicy.replay_buffer(config, spaces, agents, seeds)
    device = next(agents.parameters()).device
    return Companions(
        offpolicy.frozen_copy(agents.critics), replay, offpolicy.SeedCounters(seeds, device)
    )


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train SAC on ``config.seed``: :func:`rlgrad.trainers.ppo.train` says what it takes."""
    return single_history(train_seeds(config, [config.seed], run_dir, **run_options))


def train_seeds(
    config: Config, seeds: list[int], run_dir: str | Path | None = None, **run_options
) -> list[History]:
    """SAC on every seed of ``seeds`` at once, as :func:`rlgrad.trainers.ppo.train_seeds`."""
    check(config)
    # 0. set up: for each seed its environments, actor, critics and log α, target critics,
    # replay buffer, optimizer state and run directory; all stacked on a seed axis
    setup = training.start_seeds(
        ALGORITHM,
        config,
        seeds,
        run_dir,
        build_agent,
        make_optimizer,
        build_companions,
        device=config.device,  # SAC and TD3 can train on a GPU
        matmul_precision=config.matmul_precision,
        **run_options,
    )
    runs, envs, agents, optimizer, generators = setup[:5]
    target_critics, replay, counters = setup.extras
    actor, critics = agents.actor, agents.critics
    S, device = len(seeds), generators[0].device
    target_entropy = entropy_target(config, actor)
    schedule = offpolicy.Schedule.of(config)  # the targets move after every gradient step

    while not runs.done:
        active = runs.active  # [S] bool: the seeds still training (a failure drops one below)
        steps = runs.steps  # every seed still training has taken the same steps
        means = training.SeedMeans(S, *METRICS, device=device)
        gradient_steps_before = counters.gradient_steps.clone()
        row_due = offpolicy.iteration_end(runs, config.log_every)
        with runs.training():
            while steps < row_due and active.any():
                # 1. act (uniformly random before learning starts, then samples of the policy),
                # each seed from its own generator
                observations = envs.observations  # [S, N, *obs]
                actions = offpolicy.seed_explore(
                    actor, observations, steps, config.learning_starts, generators, active
                )

                # 2. step and store (the buffer keeps the true final observation of a cut
                # episode); a seed whose reward is not finite fails before its buffer holds it
                active = offpolicy.seed_step_and_store(
                    runs, envs, replay, observations, actions, active
                )
                previous, steps = steps, steps + envs.num_envs

                # 3. gradient steps when due and a seed's buffer holds a minibatch: the critics,
                # and the actor and α when delayed due
                ready = active & (np.array(replay.usable_counts) >= config.batch_size)
                due = schedule.gradient_steps_due(previous, steps, stored=config.batch_size)
                for _ in range(due if ready.any() else 0):
                    batch = replay.sample(
                        config.batch_size, generators, config.n_step, config.gamma, ready
                    )
                    alpha = temperature(config, agents)  # [S, 1]: one α per seed (or fixed)
                    with torch.no_grad():
                        next_actions, next_log_probs = actor.sample(
                            batch.next_observations, generators, ready
                        )
                        next_q = target_critics(batch.next_observations, next_actions)  # [S, B, K]
                    targets = soft_q_targets(
                        batch.returns,
                        next_q,
                        next_log_probs,
                        batch.terminated,
                        batch.discounts,
                        alpha,
                    )  # [S, B]
                    q_values = critics(batch.observations, batch.actions)  # [S, B, K]
                    critic_loss = value_loss(
                        q_values.flatten(1),
                        targets[..., None].expand_as(q_values).flatten(1),
                        dim=1,
                    )  # [S]
                    losses = critic_loss
                    updating = torch.as_tensor(ready, device=device)
                    # the seeds of a batch take their gradient steps together, so one count
                    # decides for all of them
                    count = int(counters.gradient_steps[ready.argmax()])
                    if count % config.policy_delay == 0:
                        losses = losses + policy_losses(
                            agents,
                            batch.observations,
                            alpha,
                            target_entropy,
                            generators,
                            ready,
                            means,
                        )
                    grad_norms = training.seed_gradient_step(
                        runs, optimizer, losses, config.max_grad_norm, updating
                    )
                    means.add(
                        updating,
                        critic_loss=critic_loss,
                        q_mean=q_values.detach().mean(dim=(1, 2)),
                        grad_norm=grad_norms,
                    )
                    counters.gradient_steps += updating
                    active, ready = active & ~runs.failed, ready & ~runs.failed

                    # 4. move each seed's target critics, θ⁻ ← τθ + (1 − τ)θ⁻
                    offpolicy.seed_polyak_update(target_critics, critics, config.tau, ready)

        # 5. log, evaluate and checkpoint, each seed in its own run directory
        counts = offpolicy.seed_counts(counters, gradient_steps_before, replay)
        alpha = temperature(config, agents)
        alphas = [alpha] * S if config.alpha is not None else alpha.flatten().tolist()
        runs.end_iteration(
            steps - runs.steps,
            [metrics(*seed_row) for seed_row in zip(means.means(), alphas, counts, strict=True)],
        )
    return runs.finish()


def entropy_target(config: Config, actor: SquashedGaussianActor) -> float:
    """H̄ of the learned α: target_entropy, or −dim(action space) by default."""
    action_dims = len(actor.action_scale)
    return -action_dims if config.target_entropy is None else config.target_entropy


def temperature(config: Config, agents: ActorCritics) -> float | torch.Tensor:
    """α for this gradient step: each seed's learned exp(log α), detached, as ``[S, 1]`` (it
    broadcasts over a seed's minibatch), or the fixed one."""
    if config.alpha is not None:
        return config.alpha
    return agents.log_alpha.detach().exp()[:, None]


def policy_losses(
    agents: ActorCritics,
    observations: torch.Tensor,
    alpha: float | torch.Tensor,
    target_entropy: float,
    generators,
    ready: np.ndarray,
    means: training.SeedMeans,
) -> torch.Tensor:
    """L_π per seed ``[S]``, plus L_α when α is learned, on each policy's own reparameterized
    actions ã ~ π(·|s) (drawn by the ``ready`` seeds). The critics judge ã with detached
    weights, by the pessimistic min_k as in the targets, so only the actors (and log α) get
    gradients; adds both to ``means`` with the entropy."""
    own_actions, log_probs = agents.actor.sample(observations, generators, ready)  # [S, B]
    q_policy = agents.critics(observations, own_actions, frozen=True)  # [S, B, K]
    actor_loss = sac_actor_loss(log_probs, q_policy.min(dim=-1).values, alpha, dim=1)
    updating = torch.as_tensor(ready, device=actor_loss.device)
    means.add(updating, actor_loss=actor_loss, entropy=-log_probs.detach().mean(dim=1))
    if not hasattr(agents, "log_alpha"):  # α is fixed
        return actor_loss
    alpha_loss = temperature_loss(agents.log_alpha, log_probs, target_entropy, dim=1)
    means.add(updating, alpha_loss=alpha_loss)
    return actor_loss + alpha_loss


def metrics(averaged: dict, alpha: float, counts: dict) -> dict:
    """A seed's metrics row: the averaged losses, α, the entropy and Q, and the counts
    (:func:`~rlgrad.support.offpolicy.seed_counts`)."""
    return {
        "critic_loss": averaged["critic_loss"],
        "actor_loss": averaged["actor_loss"],
        "alpha_loss": averaged["alpha_loss"],
        "alpha": alpha,
        "entropy": averaged["entropy"],
        "q_mean": averaged["q_mean"],
        "grad_norm": averaged["grad_norm"],
        **counts,
    }
