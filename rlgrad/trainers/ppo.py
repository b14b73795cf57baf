"""Proximal Policy Optimization (Schulman et al. 2017), read top to bottom.

Each iteration: 1. collect T steps from N environments; 2. compute GAE(λ) advantages; 3. run
``epochs`` passes of minibatch gradient steps on the clipped surrogate, the value loss and the
entropy bonus; 4. log, evaluate and checkpoint. Every formula comes from the formula layer.
Every tensor carries a leading seed axis: :func:`train_seeds` trains many seeds as one batched
computation (each loss a per-seed mean, ``dim=1``), and :func:`train` is its one-seed case.

    >>> from rlgrad.trainers import ppo
    >>> config = ppo.Config(env="CartPole-v1", total_steps=512, num_envs=4, num_steps=64,
    ...                     eval_every=0, eval_episodes=2)
    >>> history = ppo.train(config, run_dir=getfixture("tmp_path") / "run")
    >>> history.rows[-1]["step"]
    512
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from rlgrad.distributions import entropy_loss
from rlgrad.grpo import masked_mean
from rlgrad.policy import approx_kl, clip_fraction, ppo_clip_loss
from rlgrad.returns import normalize_advantages
from rlgrad.support import configs, taylor, training
from rlgrad.support.rollout import SeedRollout
from rlgrad.support.runs import History, single_history
from rlgrad.value import explained_variance, value_loss

ALGORITHM = "ppo"
METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm")


@dataclasses.dataclass(frozen=True)
class Config(configs.PolicyConfig):
    """PPO's hyperparameters; the defaults are CleanRL's for classic control."""

    num_envs: int = 4
    """Environments stepped together (gymnasium.make_vec)."""
    num_steps: int = 128
    """Steps per environment in each rollout (T); a rollout holds num_steps · num_envs samples."""
    lam: float = 0.95
    """GAE λ: 0 is the one-step TD error, 1 the Monte-Carlo return minus V."""
    epochs: int = 4
    """Passes over each rollout."""
    minibatch_size: int = 128
    """Samples per gradient step; at most num_steps · num_envs."""
    clip_eps: float = 0.2
    """Clip range ε of the probability ratio, clip(r, 1 − ε, 1 + ε)."""
    clip_value_eps: float | None = None
    """Clip the value update to ±this around the old values (none: unclipped value loss)."""
    normalize_advantages: bool = True
    """Normalize advantages to mean 0, std 1 within each minibatch."""
    target_kl: float | None = None
    """Stop the epochs of an update once the approximate KL exceeds 1.5 × this (none: never)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over total_steps."""
    lr: float = 2.5e-4
    """Adam learning rate."""
    taylor_every: int = 0
    """Every this many updates, log the update's Taylor diagnostics: predicted against actual
    surrogate change, KL and probability ratios (taylor_* columns; 0: never)."""


def check(config: Config, seeds: int = 1) -> None:
    """Refuse a bad config for training ``seeds`` seeds at once (ValueError naming the field)."""
    configs.check_policy_config(config)
    taylor.check_single_seed(config.taylor_every, seeds)
    configs.positive(config, "num_steps", "epochs", "minibatch_size", "clip_eps")
    configs.non_negative(config, "taylor_every")
    configs.in_unit_interval(config, "lam")
    rollout_size = config.num_steps * config.num_envs
    configs.require(
        config.minibatch_size <= rollout_size,
        f"config field 'minibatch_size' = {config.minibatch_size} is larger than a rollout of "
        f"num_steps · num_envs = {rollout_size} samples; lower it or raise num_steps",
    )
    for name in ("clip_value_eps", "target_kl"):
        value = getattr(config, name)
        configs.require(
            value is None or value > 0, f"config field '{name}' must be > 0 or none; got {value!r}"
        )


def build_agent(config: Config, spaces, seeds: int | None = None):
    return training.make_actor_critic(config, spaces, seeds=seeds)


def make_optimizer(config: Config, agents) -> training.SeedAdam:
    return training.SeedAdam(agents.parameters(), lr=config.lr, eps=1e-5)


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train PPO; return the metric history (also written to ``run_dir``).

    ``run_options``: ``resume=True`` continues the run in ``run_dir`` from its latest checkpoint
    (or ``checkpoint=PATH``); ``progress=True`` shows a progress bar. A diverging run raises
    :class:`~rlgrad.support.runs.TrainingError`.
    """
    return single_history(train_seeds(config, [config.seed], run_dir, **run_options))


def train_seeds(
    config: Config, seeds: list[int], run_dir: str | Path | None = None, **run_options
) -> list[History]:
    """Train PPO on every seed in ``seeds`` at once, each as ``train`` would with
    ``config.seed`` set to it (same initial networks, environments and random draws), into its
    own run directory (``run_dir/seed{s}``); return one history per seed. A seed that diverges
    is recorded as failed in its summary; the others go on."""
    check(config, len(seeds))
    # 0. set up: for each seed its environments, networks, optimizer state and run directory;
    # the networks are stacked on a leading seed axis and trained as one batched computation
    setup = training.start_seeds(
        ALGORITHM, config, seeds, run_dir, build_agent, make_optimizer, **run_options
    )
    runs, envs, agents, generators = setup.runs, setup.envs, setup.agents, setup.generators
    # the Taylor diagnostics of the one seed's update, when taylor_every asks for them
    diagnose = taylor.SeedDiagnostics(
        config.taylor_every, agents, lambda n: build_agent(config, envs.spaces, n)
    )

    S = len(seeds)
    device = setup.generators[0].device
    rollout = SeedRollout(config.num_steps, S, config.num_envs, envs.spaces, device)
    # indexes [S, B] minibatches out of [S, samples]
    seed_rows = torch.arange(S, device=device).unsqueeze(1)

    while not runs.done:
        active = runs.active
        with runs.training():
            lr = training.annealed_lr(setup.optimizer, config, runs.progress_fraction())

            # 1. collect T steps from N environments per seed with each seed's current policy
            rollout.collect(envs, agents, generators, active)

            # 2. advantages: GAE(λ); a truncation bootstraps from V of the true final observation
            runs.fail_non_finite("a reward", rollout.rewards, seed_axis=1)  # that seed alone
            values, advantages, returns = rollout.gae(agents, config.gamma, config.lam, runs.active)

            # 3. update: epochs of minibatch steps on the clipped surrogate, value loss and
            # entropy; every tensor below is [S, samples, ...], every loss [S], one per seed
            observations = rollout.per_seed(rollout.observations)
            actions = rollout.per_seed(rollout.actions)
            old_log_probs, old_values = (
                rollout.per_seed(rollout.log_probs),
                rollout.per_seed(values),
            )
            flat_advantages, flat_returns = rollout.per_seed(advantages), rollout.per_seed(returns)
            valid = rollout.per_seed(rollout.valid)  # Gymnasium's autoreset steps carry no action
            usable = [row.nonzero().squeeze(1) for row in valid]
            # summed over minibatches, per seed
            means = training.SeedMeans(S, *METRICS, device=device)
            minibatches = torch.zeros(S, dtype=torch.int64, device=device)
            # seeds still taking gradient steps in this update (target KL ends a seed's update)
            stepping = torch.as_tensor(active, device=device)
            # θ_old, when this update's Taylor diagnostics are due (else None)
            policy_before = diagnose.before(runs.runs[0].updates)
            for _ in range(config.epochs):
                # each seed's own random order of its usable samples, padded to the longest
                for batch, in_batch in training.seed_minibatches(
                    generators, usable, config.minibatch_size
                ):
                    updating = stepping & in_batch.any(dim=1)
                    if not bool(updating.any()):
                        continue

                    def take(tensor, batch=batch):  # [S, samples, ...] -> [S, B, ...]
                        return tensor[seed_rows, batch]

                    batch_observations = take(observations)  # one gather for the policy and V
                    log_probs, entropy = agents.log_prob_and_entropy(
                        batch_observations, take(actions)
                    )
                    # per seed: every reduction runs over dim 1, the samples of each seed's row
                    old, kept = take(old_log_probs), in_batch
                    kl = approx_kl(log_probs.detach(), old, mask=kept, dim=1)
                    if config.target_kl is not None:
                        # the policy moved far enough: this seed's update ends
                        stepping &= ~(updating & (kl > 1.5 * config.target_kl))
                        updating &= stepping
                    batch_advantages = take(flat_advantages)
                    if config.normalize_advantages:
                        normalized = normalize_advantages(batch_advantages, mask=kept, dim=1)
                        enough = kept.sum(dim=1, keepdim=True) > 1  # a lone sample stays as is
                        batch_advantages = torch.where(enough, normalized, batch_advantages)
                    policy_loss = ppo_clip_loss(
                        log_probs, old, batch_advantages, config.clip_eps, mask=kept, dim=1
                    )
                    critic_loss = value_loss(
                        agents.value(batch_observations),
                        take(flat_returns),
                        take(old_values) if config.clip_value_eps is not None else None,
                        config.clip_value_eps,
                        mask=kept,
                        dim=1,
                    )
                    mean_entropy = masked_mean(entropy, kept, dim=1)
                    loss = (
                        policy_loss
                        + config.vf_coef * critic_loss
                        + entropy_loss(mean_entropy, config.ent_coef)
                    )
                    grad_norm = training.seed_gradient_step(
                        runs, setup.optimizer, loss, config.max_grad_norm, updating
                    )
                    ratios = torch.exp(log_probs.detach() - old)
                    means.add(
                        updating,
                        policy_loss=policy_loss,
                        value_loss=critic_loss,
                        entropy=mean_entropy,
                        approx_kl=kl,
                        clip_fraction=clip_fraction(ratios, config.clip_eps, mask=kept, dim=1),
                        grad_norm=grad_norm,
                    )
                    minibatches += updating
                if not bool(stepping.any()):
                    break

            # the update's Taylor models against what it did (one seed only; empty cells
            # between taylor_every)
            diagnosed = diagnose.after(
                policy_before,
                usable[0],
                observations,
                actions,
                old_log_probs,
                flat_advantages,
                normalize=config.normalize_advantages,
            )

        # 4. log, evaluate and checkpoint, each seed in its own run directory
        enough = (valid.sum(dim=1) > 1).tolist()
        minibatch_counts = minibatches.tolist()
        explained = explained_variance(old_values, flat_returns, mask=valid, dim=1).tolist()
        explained = [e if enough[s] and active[s] else None for s, e in enumerate(explained)]
        runs.end_iteration(
            config.num_steps * config.num_envs,
            [
                {
                    **seed_means,
                    "explained_variance": explained[s],
                    "lr": lr,
                    "minibatches": minibatch_counts[s],
                    **diagnosed,
                }
                for s, seed_means in enumerate(means.means())
            ],
        )
    return runs.finish()
