"""Trainers built only from the formula layer: REINFORCE, A2C, PPO, TRPO and GRPO (on-policy);
DQN, SAC and TD3 (off-policy, from a replay buffer).

Each module has a frozen ``Config`` and ``train(config, run_dir=None) -> History``, and its
``train`` reads top to bottom in numbered phases::

    from rlgrad.trainers import ppo
    history = ppo.train(ppo.Config(env="CartPole-v1"))

Which algorithms exist, and resuming a run by its directory, belong to the application layer
(:mod:`rlgrad.app.registry`).
"""
