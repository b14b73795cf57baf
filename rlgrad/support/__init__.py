"""What the trainers share: environments, networks, rollout storage, runs, configs and presets.

Arrows point one way: the CLI imports trainers, trainers import this package and the formula
layer, and this package imports the formula layer only.
"""
