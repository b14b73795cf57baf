"""What the trainers share: vector environments, networks, rollout storage, the replay buffer,
configs, run directories (metrics, checkpoints, evaluation) and learning-curve plots.

Arrows point one way: ``rlgrad.app`` imports the trainers, the trainers import this package and
the formula layer, and this package imports the formula layer only (``tests/test_layers.py``).
"""
