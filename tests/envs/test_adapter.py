"""The adapter example of docs/envs.md: a simulator that holds its own state, wrapped as a
TorchVectorEnv, follows the same time-limit and autoreset rules as the built-in tasks.

The example is run from the page itself, so the page cannot drift from what is tested. The
reference is the same toy written the other way the page describes (three methods on
TorchVectorEnv, whose ``step`` owns the rules): drawing its starts in the same order from the same
generator, it must step bit for bit as the adapter does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from rlgrad.envs import TorchVectorEnv

PAGE = Path(__file__).resolve().parents[2] / "docs" / "envs.md"


def page_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def adapter_example() -> dict:
    """The names the page's adapter example defines (it also runs its own two steps)."""
    [block] = [b for b in page_examples() if "class PointMassEnv" in b]
    namespace: dict = {}
    exec(compile(block, str(PAGE), "exec"), namespace)
    return namespace


PAGE_NAMES = adapter_example()
PointMassEnv = PAGE_NAMES["PointMassEnv"]


class PointMassReference(TorchVectorEnv):
    """The toy as a state function: state (x, v), v' = v + 0.1·clip(F, −1, 1), x' = x + 0.1·v'."""

    id = "PointMass-v0"
    observation_space = PointMassEnv.observation_space
    action_space = PointMassEnv.action_space
    default_max_episode_steps = 50
    state_size = 2

    def initial_states(self, n):
        starts = torch.rand(n, generator=self.generator, device=self.device) - 0.5
        return torch.stack((starts, torch.zeros_like(starts)), dim=-1)

    def transition(self, state, action):
        positions, velocities = state.unbind(-1)
        velocities = velocities + 0.1 * action[:, 0].clamp(-1.0, 1.0)
        positions = positions + 0.1 * velocities
        terminated = positions.abs() > 1.0
        return torch.stack((positions, velocities), dim=-1), -positions.square(), terminated

    def observe(self, state):
        return state.to(torch.float32)


def test_every_example_of_the_page_runs():
    for block in page_examples():
        exec(compile(block, str(PAGE), "exec"), {})


DEVICES = ["cpu"] + ["cuda"] * torch.cuda.is_available()


@pytest.mark.parametrize("device", DEVICES)
def test_the_adapter_steps_exactly_as_a_torch_vector_env_through_many_episodes(device):
    adapted = PointMassEnv(16, device=device, seed=7)
    reference = PointMassReference(16, device=device, seed=7)
    torch.testing.assert_close(adapted.reset()[0], reference.reset()[0], rtol=0, atol=0)
    actions = torch.Generator().manual_seed(0)
    # odd copies push with their own bias and leave |x| ≤ 1; even ones only jitter, to the limit
    bias = (torch.linspace(-0.6, 0.6, 16) * (torch.arange(16) % 2))[:, None]
    ends = torch.zeros(2, dtype=torch.long)
    for _ in range(400):
        action = (bias + 0.05 * torch.randn(16, 1, generator=actions)).to(device)
        ours, theirs = adapted.step(action), reference.step(action)
        for mine, expected in zip(ours[:4], theirs[:4], strict=True):
            torch.testing.assert_close(mine, expected, rtol=0, atol=0)
        assert ours[1].shape == ours[2].shape == ours[3].shape == (16,)
        assert ours[2].dtype == ours[3].dtype == torch.bool
        ends += torch.stack((ours[2].sum(), ours[3].sum())).cpu()
    assert ends[0] > 40 and ends[1] > 40, ends  # many terminations and many truncations


def test_after_an_episode_ends_the_next_step_starts_a_new_one_whatever_the_action():
    env = PointMassEnv(2, seed=0)
    env.reset()
    env.simulator.positions = torch.tensor([0.99, 0.0])
    env.simulator.velocities = torch.tensor([0.5, 0.0])
    observations, rewards, terminated, truncated, _ = env.step(torch.zeros(2, 1))
    assert terminated.tolist() == [True, False] and not truncated.any()
    assert observations[0, 0] == 0.99 + 0.1 * 0.5  # the true final observation
    observations, rewards, terminated, truncated, _ = env.step(torch.ones(2, 1))  # a push, void
    assert rewards[0] == 0 and not terminated[0] and not truncated[0]
    assert observations[0, 0].abs() <= 0.5 and observations[0, 1] == 0  # a fresh start
    assert env.elapsed.tolist() == [0, 2]


def test_a_first_step_ends_nothing_even_from_a_start_the_simulator_calls_terminal():
    env = PointMassEnv(1, seed=0)
    env.reset()
    env.simulator.positions = torch.tensor([1.5])
    assert env.step(torch.zeros(1, 1))[2].item()  # |x| > 1: terminated
    restart = env.simulator.reset

    def restart_outside(mask, generator):  # a simulator whose starts fail the task's test
        restart(mask, generator)
        env.simulator.positions = torch.where(mask, 1.5, env.simulator.positions)

    env.simulator.reset = restart_outside
    _, rewards, terminated, truncated, _ = env.step(torch.zeros(1, 1))
    assert not terminated.item() and not truncated.item() and rewards.item() == 0
    assert env.step(torch.zeros(1, 1))[2].item()  # its next step ends the episode


def test_truncation_comes_at_the_time_limit_and_restarts_the_count():
    env = PointMassEnv(3, seed=1, max_episode_steps=5)
    env.reset()
    flags = []
    for _ in range(12):  # no force: the masses stay put, so only the time limit ends episodes
        _, _, terminated, truncated, _ = env.step(torch.zeros(3, 1))
        assert not terminated.any()
        flags.append(bool(truncated.all()))
    # steps 5 and 11 truncate: step 6 starts the new episode, which counts 1, ..., 5 again
    assert [i + 1 for i, f in enumerate(flags) if f] == [5, 11]


def test_the_same_seed_gives_the_same_episodes():
    a, b = PointMassEnv(4, seed=3), PointMassEnv(4)
    first = a.reset()[0]
    torch.testing.assert_close(b.reset(seed=3)[0], first, rtol=0, atol=0)
    assert not torch.equal(PointMassEnv(4, seed=4).reset()[0], first)
