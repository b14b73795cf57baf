"""Deep Q-Networks (Mnih et al. 2015) and the variants people ask for, read top to bottom.

Each iteration (``log_every`` environment steps): 1. act ε-greedily in N environments; 2. store
the transitions in the replay buffer; 3. every ``train_frequency`` steps take ``gradient_steps``
gradient steps on the TD loss of sampled minibatches,

    y = r + γ(1 − term)·max_a' Q_θ⁻(s', a'),    L = mean ½(Q_θ(s, a) − y)²  (or Huber);

4. move the target network θ⁻ towards θ every ``target_update_every`` steps (a copy, or Polyak
averaging with τ < 1); then log, evaluate and checkpoint. Switches: ``double`` (the online network
picks a', the target network values it), ``dueling`` heads, ``n_step`` returns (stopped at the
first end of episode; a truncation still bootstraps from its true final observation).

    >>> from rlgrad.trainers import dqn
    >>> config = dqn.Config(env="CartPole-v1", total_steps=600, learning_starts=200,
    ...                     log_every=200, eval_every=0, eval_episodes=2)
    >>> dqn.train(config, run_dir=getfixture("tmp_path") / "run").rows[-1]["step"]
    600
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import torch

from rlgrad.support import configs, offpolicy, training
from rlgrad.support.nets import QNetwork, epsilon_greedy
from rlgrad.support.replay import Batch, ReplayBuffer
from rlgrad.support.runs import History
from rlgrad.value import dqn_loss, dqn_targets, epsilon_schedule, polyak_update

ALGORITHM = "dqn"
LOSSES = ("mse", "huber")


@dataclasses.dataclass(frozen=True)
class Config(configs.OffPolicyConfig):
    """DQN's hyperparameters (the shared ones in OffPolicyConfig); the defaults are close to
    CleanRL's for classic control."""

    lr: float = 2.5e-4
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over total_steps."""
    max_grad_norm: float | None = 10.0
    buffer_size: int = 100_000
    batch_size: int = 128
    learning_starts: int = 1_000
    train_frequency: int = 4
    target_update_every: int = 500
    """Update the target network every this many environment steps."""
    tau: float = 1.0
    epsilon_start: float = 1.0
    """Exploration ε at the start of the linear schedule."""
    epsilon_end: float = 0.05
    """Exploration ε at the end of the schedule and after it; also the ε of a loaded agent's
    act(obs, deterministic=False)."""
    exploration_fraction: float = 0.5
    """Fraction of total_steps over which ε falls linearly from epsilon_start to epsilon_end."""
    loss: str = "mse"
    """TD loss: 'mse' is ½(Q − y)² (the course's loss), 'huber' is Huber with δ = 1 (SB3's)."""
    double: bool = False
    """Double DQN: the online network picks argmax_a' Q_θ(s', a'), the target network values it."""
    dueling: bool = False
    """Dueling heads: Q(s, a) = V(s) + A(s, a) − mean_a' A(s, a')."""


def check(config: Config) -> None:
    configs.check_off_policy_config(config)
    configs.positive(config, "target_update_every")
    configs.non_negative(config, "exploration_fraction")
    configs.in_unit_interval(config, "epsilon_start", "epsilon_end")
    configs.require(
        config.buffer_size >= config.batch_size,
        f"config field 'buffer_size' = {config.buffer_size} is smaller than a batch "
        f"(batch_size = {config.batch_size}); raise buffer_size or lower batch_size",
    )
    configs.require(
        config.buffer_size // config.num_envs > config.n_step,
        f"config field 'buffer_size' = {config.buffer_size} holds "
        f"{config.buffer_size // config.num_envs} steps per environment for num_envs = "
        f"{config.num_envs}; n_step = {config.n_step} needs more",
    )
    configs.require(
        config.loss in LOSSES,
        f"config field 'loss' must be one of {', '.join(LOSSES)}; got {config.loss!r}",
    )


def build_agent(config: Config, spaces) -> QNetwork:
    return QNetwork(
        spaces, config.hidden_sizes, config.activation, config.dueling, config.epsilon_end
    )


def make_optimizer(config: Config, q_network: QNetwork) -> torch.optim.Optimizer:
    return training.adam(q_network.parameters(), lr=config.lr)


class Companions(NamedTuple):
    """DQN's checkpointed companions of the Q-network."""

    target: QNetwork  # θ⁻, a frozen copy of θ
    replay: ReplayBuffer
    counters: offpolicy.Counters  # gradient steps so far


def build_companions(config: Config, spaces, q_network: QNetwork) -> Companions:
    replay = offpolicy.replay_buffer(config, spaces, q_network)
    return Companions(offpolicy.frozen_copy(q_network), replay, offpolicy.Counters())


def td_loss(config: Config, q_network, target_network, batch: Batch):
    """The TD loss of one minibatch (the formula layer's targets and loss) and Q(s, a)."""
    with torch.no_grad():
        next_q_target = target_network(batch.next_observations)
        next_q_online = q_network(batch.next_observations) if config.double else None
    targets = dqn_targets(
        batch.returns, next_q_target, batch.terminated, batch.discounts, next_q_online
    )
    q_values = q_network(batch.observations)
    taken = q_values.gather(-1, batch.actions[:, None]).squeeze(-1)
    return dqn_loss(q_values, batch.actions, targets, config.loss), taken


def train(config: Config, run_dir: str | Path | None = None, **run_options) -> History:
    """Train DQN; return the metric history (also written to ``run_dir``).

    ``run_options``: ``resume``, ``checkpoint`` and ``progress``, as for :func:`ppo.train`.
    """
    check(config)
    # 0. set up: seeds, environments, Q-network, target network, replay buffer, optimizer, run
    setup = training.start(
        ALGORITHM, config, run_dir, build_agent, make_optimizer, build_companions, **run_options
    )
    run, env, q_network, optimizer, generator = setup[:5]
    target_network, replay, counters = setup.extras
    schedule = offpolicy.Schedule.of(config, config.target_update_every)
    decay_steps = config.exploration_fraction * config.total_steps
    steps = run.steps

    while not run.done:
        means = training.Means("loss", "q_taken_mean", "grad_norm")
        gradient_steps_before = counters.gradient_steps
        lr = training.annealed_lr(optimizer, config, run.progress_fraction())
        row_due = offpolicy.iteration_end(run, config.log_every)
        with run.training():
            while steps < row_due:
                # 1. act ε-greedily with the online network (ε is a function of the step count)
                epsilon = epsilon_schedule(
                    steps, decay_steps, config.epsilon_start, config.epsilon_end
                )
                observations = env.observations
                with torch.inference_mode():
                    q_values = q_network(torch.from_numpy(observations))
                actions = epsilon_greedy(q_values, epsilon, generator)

                # 2. step and store (the buffer keeps the true final observation of a cut episode)
                previous = steps
                steps += offpolicy.step_and_store(env, replay, observations, actions)

                # 3. gradient steps on the TD loss of replayed minibatches, when due
                for _ in range(schedule.gradient_steps_due(previous, steps, len(replay))):
                    batch = replay.sample(config.batch_size, generator, config.n_step, config.gamma)
                    loss, taken = td_loss(config, q_network, target_network, batch)
                    grad_norm = training.gradient_step(run, optimizer, loss, config.max_grad_norm)
                    means.add(
                        loss=loss.detach(), q_taken_mean=taken.detach().mean(), grad_norm=grad_norm
                    )
                    counters.gradient_steps += 1

                # 4. θ⁻ ← τθ + (1 − τ)θ⁻ (a copy for τ = 1), when due
                if schedule.target_update_due(previous, steps):
                    polyak_update(target_network.parameters(), q_network.parameters(), config.tau)

        # 5. log, evaluate and checkpoint
        run.end_iteration(
            steps - run.steps,
            {
                **means.means(),
                "epsilon": epsilon,
                "lr": lr,
                "gradient_steps": counters.gradient_steps - gradient_steps_before,
                "total_gradient_steps": counters.gradient_steps,
                "buffer_transitions": len(replay),
            },
        )
    return run.finish()
