"""The application layer: the ``rlgrad`` command line, the algorithm presets, loading trained
agents, and many-seed work (sweeps on Ray, reports with interval estimates, Optuna tuning).

Arrows point one way: this package imports the trainers (and ``tabular``, ``tour``, ``lm``), the
trainers import ``rlgrad.support``, and ``rlgrad.support`` imports the formula layer, ``rlgrad``.
"""

from rlgrad.app.agents import Agent, load_agent

__all__ = ["Agent", "load_agent"]
