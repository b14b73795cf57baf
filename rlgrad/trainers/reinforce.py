"""REINFORCE (Williams 1992), with or without a learned baseline, read top to bottom.

Each iteration: 1. run every environment until it finishes one complete episode; 2. compute the
reward-to-go G_t of each step (and the advantage G_t − V(s_t) with a baseline); 3. one gradient
step on −mean(Â log π) (+ the value loss with a baseline); 4. log, evaluate and checkpoint.

An episode cut off by a time limit has no Monte-Carlo tail: with a baseline the return
bootstraps from V of the true final observation; without one the tail counts as 0 (the return of
the time-limited task).

    >>> from rlgrad.trainers import reinforce
    >>> config = reinforce.Config(env="CartPole-v1", total_steps=300, eval_every=0,
    ...                           eval_episodes=2)
    >>> reinforce.train(config, run_dir=getfixture("tmp_path") / "run").rows[-1]["step"] >= 300
    True
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from rlgrad.distributions import entropy_loss
from rlgrad.grpo import masked_mean
from rlgrad.policy import policy_gradient_loss
from rlgrad.returns import normalize_advantages
from rlgrad.support import configs, training
from rlgrad.support.rollout import SeedRollout
from rlgrad.support.runs import History, single_history
from rlgrad.value import value_loss

ALGORITHM = "reinforce"


@dataclasses.dataclass(frozen=True)
class Config(configs.PolicyConfig):
    """REINFORCE's hyperparameters."""

    num_envs: int = 8
    """Environments stepped together; each update uses one complete episode from each."""
    baseline: bool = True
    """Subtract a learned V(s_t) from the return (variance reduction, no bias)."""
    normalize_advantages: bool = True
    """Normalize each batch's advantages (or returns) to mean 0, std 1."""
    max_episode_steps: int = 1000
    """Longest episode a batch can hold (the environment's own time limit should be shorter)."""
    lr: float = 1e-3
    """Adam learning rate."""
    max_grad_norm: float | None = None
    """Clip the global gradient norm to this (none: no clipping)."""


def check(config: Config) -> None:
    configs.check_policy_config(config)
    configs.positive(config, "max_episode_steps")


def metric_names(config: Config) -> tuple[str, ...]:
    """The columns an update writes, in order (value_loss only with a baseline)."""
    return ("policy_loss", "entropy", "grad_norm", "lr") + (
        ("value_loss",) if config.baseline else ()
    )


def build_agent(config: Config, spaces, seeds: int | None = None):
    return training.make_actor_critic(config, spaces, critic=config.baseline, seeds=seeds)


def make_optimizer(config: Config, agents) -> training.SeedAdam:
    return training.SeedAdam(agents.parameters(), lr=config.lr)


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train REINFORCE on ``config.seed``: :func:`rlgrad.trainers.ppo.train` says what it takes."""
    return single_history(train_seeds(config, [config.seed], run_dir, **run_options))


def train_seeds(
    config: Config, seeds: list[int], run_dir: str | Path | None = None, **run_options
) -> list[History]:
    """REINFORCE on every seed of ``seeds`` at once, as :func:`rlgrad.trainers.ppo.train_seeds`."""
    check(config)
    # 0. set up: for each seed its environments, networks, optimizer state and run directory;
    # the networks are stacked on a leading seed axis and trained as one batched computation
    setup = training.start_seeds(
        ALGORITHM, config, seeds, run_dir, build_agent, make_optimizer, **run_options
    )
    runs, envs, agents, generators = setup.runs, setup.envs, setup.agents, setup.generators
    S, N = len(seeds), config.num_envs
    device = generators[0].device
    rollout = SeedRollout(config.max_episode_steps, S, N, envs.spaces, device)
    seed_rows = torch.arange(S, device=device).unsqueeze(1)  # indexes [S, U] out of [S, T·N]

    while not runs.done:
        with runs.training():
            # each seed's own lr: its episodes, and so its progress, are its own
            lr = training.annealed_seed_lrs(setup.optimizer, config, runs.progress_fractions())

            # 1. collect one complete episode from each environment of each seed; a seed's
            # batch lasts until its longest episode ends (seed_steps[s] steps)
            seed_steps = rollout.collect(envs, agents, generators, runs.active, episodes=True)
            steps = max(seed_steps)

            # 2. returns G_t (bootstrapped with V only at a time limit) and advantages G_t − V
            runs.fail_non_finite("a reward", rollout.rewards[:steps], seed_axis=1)  # alone
            active = runs.active
            if not active.any():  # every seed failed on its rewards
                continue
            values, returns = rollout.returns(
                config.gamma, active, steps, agents if config.baseline else None
            )
            advantages = returns - values if config.baseline else returns

            # 3. update: one step per seed on −mean(Â log π) (+ c_v · ½(V − G)² with a
            # baseline) over its valid steps, gathered as [S, U] with padding that `kept` masks
            usable, kept = rollout.valid_samples(steps)

            def take(tensor, steps=steps, usable=usable):  # [steps, S, N, ...] -> [S, U, ...]
                return rollout.per_seed(tensor, steps)[seed_rows, usable]

            observations = take(rollout.observations)
            log_probs, entropy = agents.log_prob_and_entropy(observations, take(rollout.actions))
            step_advantages = take(advantages)
            if config.normalize_advantages:
                normalized = normalize_advantages(step_advantages, mask=kept, dim=1)
                enough = kept.sum(dim=1, keepdim=True) > 1  # a lone step stays as it is
                step_advantages = torch.where(enough, normalized, step_advantages)
            policy_loss = policy_gradient_loss(log_probs, step_advantages, mask=kept, dim=1)
            mean_entropy = masked_mean(entropy, kept, dim=1)
            loss = policy_loss + entropy_loss(mean_entropy, config.ent_coef)
            if config.baseline:
                critic_loss = value_loss(
                    agents.value(observations), take(returns), mask=kept, dim=1
                )
                loss = loss + config.vf_coef * critic_loss
            updating = torch.as_tensor(active, device=device)
            grad_norm = training.seed_gradient_step(
                runs, setup.optimizer, loss, config.max_grad_norm, updating
            )
            metrics = training.SeedMeans(S, *metric_names(config), device=device)
            metrics.add(
                updating,
                policy_loss=policy_loss,
                entropy=mean_entropy,
                grad_norm=grad_norm,
                lr=lr,
                **({"value_loss": critic_loss} if config.baseline else {}),
            )

        # 4. log, evaluate and checkpoint, each seed in its own run directory
        runs.end_iteration([n * N for n in seed_steps], metrics.means())
    return runs.finish()
