"""Trainers built only from the formula layer: REINFORCE, A2C, PPO, DQN and GRPO.

Each module has a frozen ``Config`` and ``train(config, run_dir=None) -> History``::

    from rlgrad.trainers import ppo
    history = ppo.train(ppo.Config(env="CartPole-v1"))

Which algorithms exist, and resuming a run by its directory, belong to the application layer
(:mod:`rlgrad.app.registry`).
"""
