"""CrossQ end to end: the batch-renormalised critics equal K separate torch networks, the
training-mode passes are exactly the joint critic pass and the actor's own pass (counted by the
layers' step buffers), the actor's loss trains no critic, every parameter trains, same seed →
same numbers, exact resume (Pendulum with n-step returns and two environments, and Hopper), and
bad input."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from conftest import dataclasses_replace, read_rows, without_timing

from rlgrad.app import load_agent
from rlgrad.app.registry import resume
from rlgrad.support.batch_renorm import BatchRenorm, batch_statistics
from rlgrad.support.continuous_nets import CriticEnsemble, SquashedGaussianActor
from rlgrad.support.envs import VectorEnv
from rlgrad.trainers import crossq

TINY = {
    "env": "Pendulum-v1",
    "total_steps": 500,
    "learning_starts": 200,
    "batch_size": 32,
    "hidden_sizes": (32, 32),
    "critic_hidden_sizes": (32, 32),
    "log_every": 100,
    "eval_every": 250,
    "eval_episodes": 2,
    "checkpoint_every": 200,
    "keep_checkpoints": 100,
}
EXACT = {"rtol": 0, "atol": 1e-12}
RENORM = {"momentum": 0.1, "eps": 1e-3, "r_max": 3.0, "d_max": 5.0, "warmup_steps": 1}


def checkpoint(run_dir, steps: int) -> dict:
    return torch.load(run_dir / "checkpoints" / f"step_{steps:010d}.pt", weights_only=False)


def torch_critic(critics: CriticEnsemble, k: int) -> torch.nn.Sequential:
    """Critic k as ordinary torch layers: BatchNorm1d (what BatchRenorm is in its warm-up), Linear
    and ReLU, holding copies of critic k's weights and statistics."""
    layers = []
    last = len(critics.weights) - 1
    for i, (weight, bias) in enumerate(zip(critics.weights, critics.biases, strict=True)):
        norm = critics.norms[i]
        batch_norm = torch.nn.BatchNorm1d(
            weight.shape[1], eps=norm.eps, momentum=norm.momentum, dtype=torch.float64
        )
        with torch.no_grad():
            batch_norm.weight.copy_(norm.weight[k])
            batch_norm.bias.copy_(norm.bias[k])
            batch_norm.running_mean.copy_(norm.running_mean[k])
            batch_norm.running_var.copy_(norm.running_var[k])
        linear = torch.nn.Linear(*weight.shape[1:], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(weight[k].T)
            linear.bias.copy_(bias[k, 0])
        layers += [batch_norm, linear] + ([torch.nn.ReLU()] if i < last else [])
    return torch.nn.Sequential(*layers)


def test_the_renormalised_critics_equal_k_separate_torch_networks_in_both_modes(pendulum_spaces):
    torch.manual_seed(0)
    critics = CriticEnsemble(pendulum_spaces, (8, 8), "relu", 3, {**RENORM, "warmup_steps": 5})
    critics = critics.double()
    with torch.no_grad():  # distinct affine parameters per critic, so a mix-up shows
        for norm in critics.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    references = [torch_critic(critics, k) for k in range(3)]
    observations = torch.randn(16, 3, dtype=torch.float64) * 2 + 1
    actions = torch.rand(16, 1, dtype=torch.float64) * 4 - 2
    unit_inputs = torch.cat([observations, actions / 2], dim=-1)  # the critics' scaling of a

    with batch_statistics(critics):
        values = critics(observations, actions)  # [B, K], training mode
    assert not critics.training  # back to evaluation mode
    for k, reference in enumerate(references):
        reference.train()
        torch.testing.assert_close(values[:, k], reference(unit_inputs).squeeze(-1), **EXACT)
        for norm, batch_norm in zip(critics.norms, reference[0::3], strict=True):
            torch.testing.assert_close(norm.running_mean[k], batch_norm.running_mean, **EXACT)
            torch.testing.assert_close(norm.running_var[k], batch_norm.running_var, **EXACT)
    evaluated = critics(observations, actions)  # evaluation mode: running statistics
    for k, reference in enumerate(references):
        reference.eval()
        torch.testing.assert_close(evaluated[:, k], reference(unit_inputs).squeeze(-1), **EXACT)
    assert all(int(norm.steps) == 1 for norm in critics.norms)  # the evaluation pass moved none


def test_frozen_critics_pass_gradients_to_the_actions_only(pendulum_spaces):
    critics = CriticEnsemble(pendulum_spaces, (8,), "relu", 2, RENORM).eval()
    actions = torch.zeros(4, 1, requires_grad=True)
    critics(torch.randn(4, 3), actions, frozen=True).sum().backward()
    assert actions.grad is not None and actions.grad.abs().sum() > 0
    assert all(p.grad is None for p in critics.parameters())
    critics(torch.randn(4, 3), actions).sum().backward()  # not frozen: γ and β train too
    assert all(norm.weight.grad is not None for norm in critics.norms)


def test_the_actor_renormalises_its_input_and_hidden_layers(pendulum_spaces):
    actor = SquashedGaussianActor(pendulum_spaces, (8, 8), "relu", RENORM)
    norms = [m for m in actor.net if isinstance(m, BatchRenorm)]
    linears = [m for m in actor.net if isinstance(m, torch.nn.Linear)]
    assert [n.num_features for n in norms] == [lin.in_features for lin in linears] == [3, 8, 8]
    for i, layer in enumerate(actor.net):  # each renorm sits right before a linear layer
        if isinstance(layer, BatchRenorm):
            assert isinstance(actor.net[i + 1], torch.nn.Linear)


def test_a_short_run_trains_every_parameter_and_only_the_training_passes_move_statistics(
    tmp_path,
):
    config = crossq.Config(**TINY)
    history = crossq.train(config, tmp_path / "run")
    rows = read_rows(tmp_path / "run")
    assert int(rows[-1]["step"]) == 500 and rows[-1]["eval_return_mean"] is not None
    trained = [r for r in rows if r["critic_loss"] is not None]
    for column in ("critic_loss", "actor_loss", "q_mean", "alpha_loss"):
        assert trained and all(math.isfinite(float(r[column])) for r in trained), column
    initial = checkpoint(tmp_path / "run", 0)["modules"]["agent"]
    final = load_agent(tmp_path / "run").network.state_dict()
    for name, value in initial.items():
        if name.endswith(("action_scale", "action_shift", "action_low", "action_high")):
            continue
        assert not torch.equal(value, final[name]), f"{name} never changed"
    assert not any("target" in name for name in checkpoint(tmp_path / "run", 400)["modules"])
    # one critic training pass per gradient step (the joint one: the actor's loss, acting and
    # evaluation read the running statistics), one actor training pass per actor update
    gradient_steps = history.rows[-1]["total_gradient_steps"]
    assert gradient_steps == 500 - 200 + 1
    actor_updates = math.ceil(gradient_steps / config.policy_delay)
    for name, value in final.items():
        if name.endswith(".steps"):
            expected = gradient_steps if name.startswith("critics.") else actor_updates
            assert int(value) == expected, name


def test_the_same_seed_gives_the_same_metrics(tmp_path):
    config = crossq.Config(**{**TINY, "total_steps": 400})
    first = crossq.train(config, tmp_path / "a")
    second = crossq.train(config, tmp_path / "b")
    assert without_timing(first.rows) == without_timing(second.rows)
    other = crossq.train(dataclasses_replace(config, seed=1), tmp_path / "c")
    assert without_timing(other.rows) != without_timing(first.rows)


@pytest.mark.parametrize(
    "options",
    [
        {"num_envs": 2, "n_step": 2, "batch_renorm_warmup": 50},  # renorm on after 50 steps
        {"env": "Hopper-v5", "total_steps": 300, "learning_starts": 100},
    ],
    ids=["pendulum", "hopper"],
)
def test_resuming_mid_run_continues_exactly_with_the_batch_statistics(options, tmp_path):
    config = crossq.Config(**{**TINY, **options})
    whole = crossq.train(config, tmp_path / "whole")
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    mid = tmp_path / "cut" / "checkpoints" / "step_0000000200.pt"
    state = torch.load(mid, weights_only=False)["modules"]["agent"]
    assert any(name.endswith("running_var") for name in state)  # the statistics are saved
    resumed = resume(tmp_path / "cut", checkpoint=mid)
    assert without_timing(resumed.rows) == without_timing(whole.rows)
    a = load_agent(tmp_path / "whole").network.state_dict()
    b = load_agent(tmp_path / "cut").network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("tau", 0.005, r"'tau' must be 1: crossq has no target networks"),
        ("adam_betas", (0.5,), r"'adam_betas' must be two numbers in \[0, 1\)"),
        ("adam_betas", (0.5, 1.0), r"'adam_betas' must be two numbers in \[0, 1\)"),
        ("critic_hidden_sizes", (), r"'critic_hidden_sizes' must be one or more widths"),
        ("batch_size", 1, r"'batch_size' must be >= 2"),
        ("batch_renorm_r_max", 0.5, r"'batch_renorm_r_max' must be >= 1"),
        ("batch_renorm_momentum", 1.5, r"'batch_renorm_momentum'"),
        ("policy_delay", 0, r"'policy_delay'"),
    ],
)
def test_bad_config_fields_name_the_field(field, value, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        crossq.train(crossq.Config(**{**TINY, field: value}), tmp_path / "run")


def test_a_discrete_environment_gets_one_line_naming_what_fits(tmp_path):
    with pytest.raises(ValueError, match=r"crossq needs a Box .* use dqn, ppo"):
        crossq.train(crossq.Config(**{**TINY, "env": "CartPole-v1"}), tmp_path / "run")


@pytest.fixture
def pendulum_spaces():
    return VectorEnv("Pendulum-v1", 1, seed=0).spaces
