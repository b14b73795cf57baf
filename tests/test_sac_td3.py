"""SAC and TD3 end to end: every parameter trains, targets move by exactly τ, time limits
bootstrap, the batched critics equal separate ones, same seed → same numbers, exact resume with
the replay buffer, and bad input."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import toy_envs
from conftest import dataclasses_replace, read_rows, without_timing

from rlgrad.app import load_agent
from rlgrad.app.registry import resume
from rlgrad.support.continuous_nets import CriticEnsemble
from rlgrad.support.envs import VectorEnv
from rlgrad.support.runs import TrainingError
from rlgrad.trainers import sac, td3

toy_envs.register()

TRAINERS = {"sac": sac, "td3": td3}
TINY = {
    "env": "Pendulum-v1",
    "total_steps": 500,
    "learning_starts": 200,
    "batch_size": 32,
    "hidden_sizes": (32, 32),
    "log_every": 100,
    "eval_every": 250,
    "eval_episodes": 2,
    "checkpoint_every": 200,
    "keep_checkpoints": 100,
}


def checkpoint(run_dir, steps: int) -> dict:
    return torch.load(run_dir / "checkpoints" / f"step_{steps:010d}.pt", weights_only=False)


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_a_short_run_trains_every_parameter_and_loads_back(name, tmp_path):
    trainer = TRAINERS[name]
    config = trainer.Config(**TINY)
    history = trainer.train(config, tmp_path / "run")
    # the run's own starting weights: its first checkpoint is written before any update
    initial = checkpoint(tmp_path / "run", 0)["modules"]["agent"]
    rows = read_rows(tmp_path / "run")
    assert int(rows[-1]["step"]) == 500 and rows[-1]["eval_return_mean"] is not None
    assert rows[0]["critic_loss"] is None  # no gradient step before learning_starts
    trained = [r for r in rows if r["critic_loss"] is not None]
    for column in ("critic_loss", "actor_loss", "q_mean"):
        assert trained and all(math.isfinite(float(r[column])) for r in trained), column
    # one gradient step per environment step from learning_starts on (the step that reaches
    # learning_starts is the first to learn)
    assert float(rows[-1]["total_gradient_steps"]) == 500 - 200 + 1
    agent = load_agent(tmp_path / "run")
    names = [n for n, _ in agent.network.named_parameters()]
    expected = {"actor", "critics"} | ({"log_alpha"} if name == "sac" else set())
    assert {n.split(".")[0] for n in names} == expected
    for key, after in agent.network.named_parameters():
        assert not torch.equal(initial[key], after.detach()), f"{key} did not change"
    action = agent.act(np.zeros(3, np.float32))
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    if name == "sac":
        alphas = [float(r["alpha"]) for r in trained]
        assert alphas[-1] < 1.0 and all(math.isfinite(float(r["entropy"])) for r in trained)
    assert history.summary["final_eval_return_mean"] < 0  # Pendulum's returns are negative


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_one_gradient_step_moves_the_targets_by_exactly_tau(name, tmp_path):
    # learning_starts = total_steps = 200: exactly one gradient step, on the step that reaches
    # 200, which (for TD3 too: gradient step 0 is a policy step) is followed by
    # θ⁻ ← θ⁻ + τ(θ − θ⁻) with θ⁻ = θ₀ at the start
    trainer = TRAINERS[name]
    tau = 0.25
    config = trainer.Config(**{**TINY, "total_steps": 200, "eval_every": 0}, tau=tau)
    trainer.train(config, tmp_path / "run")
    before, after = checkpoint(tmp_path / "run", 0), checkpoint(tmp_path / "run", 200)
    assert after["rows"][-1]["total_gradient_steps"] == 1
    pairs = [("target_critics", "critics")] + ([("target_actor", "actor")] if name == "td3" else [])
    for target, online in pairs:
        start = before["modules"][target]
        for key, moved in after["modules"][target].items():
            if key.startswith("action_") or key == "exploration_noise":
                continue  # buffers, not parameters
            theta_0 = before["modules"]["agent"][f"{online}.{key}"]
            theta_1 = after["modules"]["agent"][f"{online}.{key}"]
            assert torch.equal(start[key], theta_0)  # targets start as copies
            assert not torch.equal(theta_1, theta_0)
            torch.testing.assert_close(moved, theta_0 + tau * (theta_1 - theta_0))


@pytest.mark.parametrize("name", sorted(TRAINERS))
@pytest.mark.parametrize(
    "env_id, expected", [("CountdownBox-v0", 10.0), ("CountdownBoxTerminal-v0", 1.0)]
)
def test_a_time_limit_bootstraps_and_a_termination_does_not(name, env_id, expected, tmp_path):
    # Reward 1 a step, γ = 0.9, actions ignored. With a bootstrapping time limit every state is
    # worth 1/(1 − γ) = 10; when the 5th step terminates, the state before it is worth 1. SAC at
    # a fixed α = 0 has no entropy bonus, so its soft values are these plain ones.
    trainer = TRAINERS[name]
    extra = {"alpha": 0.0} if name == "sac" else {}
    config = trainer.Config(
        env=f"rlgrad-test/{env_id}",
        gamma=0.9,
        lr=3e-3,
        total_steps=1500,
        learning_starts=200,
        batch_size=64,
        hidden_sizes=(32, 32),
        tau=0.05,
        eval_every=0,
        eval_episodes=2,
        checkpoint_every=0,
        **extra,
    )
    trainer.train(config, tmp_path / "run")
    critics = load_agent(tmp_path / "run").network.critics
    observations = torch.tensor([[0.4, 1.0]]).expand(3, 2)
    q_values = critics(observations, torch.tensor([[-1.5], [0.0], [1.5]]))
    assert q_values.min().item() == pytest.approx(expected, abs=0.15 * expected)
    assert q_values.max().item() == pytest.approx(expected, abs=0.15 * expected)


def test_the_batched_critics_equal_k_separate_networks():
    env = VectorEnv("Pendulum-v1", 1, seed=0)
    critics = CriticEnsemble(env.spaces, (16, 8), "relu", num_critics=3).double()
    observations = torch.randn(5, 3, dtype=torch.float64)
    actions = torch.rand(5, 1, dtype=torch.float64) * 4 - 2
    batched = critics(observations, actions)
    assert batched.shape == (5, 3)
    for k in range(3):  # the same numbers from a plain per-critic loop of linear layers
        x = torch.cat([observations, actions / 2.0], dim=-1)
        for i, (weight, bias) in enumerate(zip(critics.weights, critics.biases, strict=True)):
            x = x @ weight[k] + bias[k]
            if i < len(critics.weights) - 1:
                x = torch.relu(x)
        torch.testing.assert_close(batched[:, k], x.squeeze(-1), rtol=0, atol=1e-12)
    # frozen=True: the same values, gradients reach the actions but not the critics
    actions.requires_grad_(True)
    critics(observations, actions, frozen=True).sum().backward()
    assert actions.grad is not None and all(p.grad is None for p in critics.parameters())


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_evaluations_and_checkpoints_come_at_their_own_period_not_only_at_log_rows(name, tmp_path):
    trainer = TRAINERS[name]
    config = trainer.Config(
        **{**TINY, "log_every": 200, "eval_every": 150, "checkpoint_every": 250, "total_steps": 600}
    )
    trainer.train(config, tmp_path / "run")
    rows = read_rows(tmp_path / "run")
    assert [int(r["step"]) for r in rows if r["eval_return_mean"] is not None] == [
        150,
        300,
        450,
        600,
    ]
    assert [int(r["step"]) for r in rows] == [150, 200, 250, 300, 400, 450, 500, 600]
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*.pt"))
    assert saved == [f"step_{s:010d}.pt" for s in (0, 250, 500, 600)]


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_the_same_seed_gives_the_same_metrics(name, tmp_path):
    trainer = TRAINERS[name]
    config = trainer.Config(**{**TINY, "total_steps": 400})
    first = trainer.train(config, tmp_path / "a")
    second = trainer.train(config, tmp_path / "b")
    assert without_timing(first.rows) == without_timing(second.rows)
    other = trainer.train(dataclasses_replace(config, seed=1), tmp_path / "c")
    assert without_timing(other.rows) != without_timing(first.rows)


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_resuming_mid_run_continues_exactly_with_the_replay_buffer(name, tmp_path):
    trainer = TRAINERS[name]
    config = trainer.Config(**{**TINY, "num_envs": 2, "n_step": 2})
    whole = trainer.train(config, tmp_path / "whole")
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    mid = tmp_path / "cut" / "checkpoints" / "step_0000000400.pt"  # after learning started
    assert mid.exists()
    resumed = resume(tmp_path / "cut", checkpoint=mid)
    assert without_timing(resumed.rows) == without_timing(whole.rows)
    a = load_agent(tmp_path / "whole").network.state_dict()
    b = load_agent(tmp_path / "cut").network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_fixed_temperature_has_no_log_alpha_and_logs_its_alpha(tmp_path):
    history = sac.train(sac.Config(**{**TINY, "total_steps": 300}, alpha=0.2), tmp_path / "run")
    assert history.rows[-1]["alpha"] == 0.2 and history.rows[-1]["alpha_loss"] is None
    assert "log_alpha" not in dict(load_agent(tmp_path / "run").network.named_parameters())


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_a_discrete_environment_gets_one_line_naming_what_fits(name, tmp_path):
    trainer = TRAINERS[name]
    with pytest.raises(ValueError, match=rf"^{name} needs a Box \(continuous\) action space.*dqn"):
        trainer.train(trainer.Config(env="CartPole-v1", total_steps=100), tmp_path / "run")


@pytest.mark.parametrize(
    "name, field, value, message",
    [
        ("sac", "alpha", -0.1, "'alpha' must be >= 0 or none"),
        ("sac", "tau", 1.5, "'tau' must be in \\[0, 1\\]"),
        ("sac", "critic_lr", 0.0, "'critic_lr' must be > 0 or none"),
        ("td3", "policy_delay", 0, "'policy_delay' must be > 0"),
        ("td3", "noise_clip", -1.0, "'noise_clip' must be >= 0"),
        ("td3", "buffer_size", 16, "'buffer_size' = 16 must hold a batch"),
        ("sac", "device", "gpu", "'device' must be cpu, cuda, cuda:N or auto; got 'gpu'"),
        ("td3", "device", "mps", "'device' must be cpu, cuda, cuda:N or auto; got 'mps'"),
    ],
)
def test_bad_config_fields_name_the_field(name, field, value, message):
    trainer = TRAINERS[name]
    with pytest.raises(ValueError, match=message):
        trainer.check(dataclasses_replace(trainer.Config(), **{field: value}))


def test_a_cuda_device_without_a_gpu_is_refused_and_auto_falls_back_to_the_cpu(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"'device' = 'cuda', but this PyTorch sees no CUDA GPU"):
        sac.train(sac.Config(**TINY, device="cuda"), tmp_path / "cuda")
    assert not (tmp_path / "cuda").exists()  # refused before the run directory is made
    config = td3.Config(**{**TINY, "total_steps": 300})
    on_cpu = td3.train(config, tmp_path / "cpu")
    automatic = td3.train(dataclasses_replace(config, device="auto"), tmp_path / "auto")
    assert without_timing(automatic.rows) == without_timing(on_cpu.rows)


def test_bfloat16_matmuls_are_refused_on_a_gpu_where_they_would_do_nothing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ValueError, match=r"'bfloat16' sets the CPU's .* on device 'cuda'"):
        sac.check(sac.Config(device="cuda", matmul_precision="bfloat16"))
    td3.check(td3.Config(device="cuda"))  # float32 is fine


def test_a_checkpoint_from_another_device_resumes_repeatably_with_new_draws(tmp_path, capsys):
    # device='auto' saved on a CPU machine and resumed on a GPU one (or back): the generator
    # state of one device type cannot be loaded into the other's
    config = sac.Config(**TINY)
    whole = sac.train(config, tmp_path / "whole")
    resumed = []
    for name in ("a", "b"):
        shutil.copytree(tmp_path / "whole", tmp_path / name)
        mid = tmp_path / name / "checkpoints" / "step_0000000400.pt"
        state = torch.load(mid, weights_only=False)
        assert state["generator_device"] == "cpu"
        torch.save({**state, "generator_device": "cuda"}, mid)
        resumed.append(without_timing(resume(tmp_path / name, checkpoint=mid).rows))
        assert "random draws were made on another device than cpu" in capsys.readouterr().err
    rows = without_timing(whole.rows)
    assert resumed[0] == resumed[1]  # repeatable: seeded by the run's seed and step
    assert resumed[0][:4] == rows[:4] and resumed[0][4:] != rows[4:]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_a_gpu_run_trains_resumes_exactly_and_its_agent_acts_on_the_cpu(name, tmp_path):
    trainer = TRAINERS[name]
    config = trainer.Config(**{**TINY, "num_envs": 2, "n_step": 2, "device": "cuda"})
    whole = trainer.train(config, tmp_path / "whole")
    losses = [float(r["critic_loss"]) for r in whole.rows if r["critic_loss"] is not None]
    assert losses and all(math.isfinite(x) for x in losses)
    state = checkpoint(tmp_path / "whole", 400)
    assert state["modules"]["replay"]["observations"].is_cuda
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    resumed = resume(tmp_path / "cut", checkpoint=tmp_path / "cut/checkpoints/step_0000000400.pt")
    assert without_timing(resumed.rows) == without_timing(whole.rows)
    agent = load_agent(tmp_path / "whole")
    assert all(not p.is_cuda for p in agent.network.parameters())
    assert agent.act(np.zeros(3, np.float32)).shape == (1,)


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_a_non_finite_reward_stops_the_run_and_keeps_a_finite_checkpoint(name, tmp_path):
    trainer = TRAINERS[name]
    config = trainer.Config(
        **{**TINY, "env": "rlgrad-test/CountdownBoxNaN-v0", "total_steps": 1000, "eval_every": 0}
    )
    with pytest.raises(TrainingError, match=r"at step \d+ .*last good checkpoint"):
        trainer.train(config, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)
    assert state["steps"] < 1000
    assert all(torch.isfinite(p).all() for p in state["modules"]["agent"].values())


def test_sac_runs_a_mujoco_task_with_its_17_observations_and_6_actions(tmp_path):
    config = sac.Config(
        **{**TINY, "env": "HalfCheetah-v5", "total_steps": 300, "learning_starts": 100},
    )
    history = sac.train(config, tmp_path / "run")
    assert history.rows[-1]["total_gradient_steps"] == 300 - 100 + 1
    assert math.isfinite(history.summary["final_eval_return_mean"])
    action = load_agent(tmp_path / "run").act(np.zeros(17, np.float32))
    assert action.shape == (6,) and np.all(np.abs(action) <= 1.0)


@pytest.mark.slow
def test_sac_learns_pendulum_within_6000_steps_on_a_held_out_seed(tmp_path):
    # Pendulum-v1 returns lie in about [−1600, 0]: a random or untrained policy scores about
    # −1200 (this run's own evaluations before step 5000 measured −1600 to −540) and the preset's
    # threshold is −200. At seed 101 (the presets were tuned on seeds 0–1, 1000+ and 3000+) this
    # small SAC measured −134 at 5000 steps and −128 at 6000; seed 102 −128 and −75. −400 is
    # out of reach of a policy that has not learned to swing up and hold.
    config = sac.Config(
        env="Pendulum-v1",
        seed=101,
        total_steps=6000,
        learning_starts=1000,
        hidden_sizes=(64, 64),
        lr=1e-3,
        batch_size=64,
        log_every=1000,
        eval_every=6000,
        eval_episodes=5,
        checkpoint_every=0,
    )
    history = sac.train(config, tmp_path / "run")
    evaluations = [r for r in read_rows(tmp_path / "run") if r["eval_return_mean"] is not None]
    assert [int(r["step"]) for r in evaluations] == [6000]
    assert float(evaluations[-1]["eval_return_mean"]) > -400.0
    assert history.summary["final_eval_return_mean"] == float(evaluations[-1]["eval_return_mean"])


def test_a_missing_mujoco_names_the_extra_to_install(monkeypatch, tmp_path):
    import gymnasium as gym

    def missing(*args, **kwargs):
        raise gym.error.DependencyNotInstalled("No module named 'mujoco'")

    monkeypatch.setattr(gym, "make_vec", missing)
    with pytest.raises(
        ValueError, match=r"needs a missing dependency: pip install 'rlgrad\[mujoco\]'$"
    ):
        sac.train(sac.Config(env="Hopper-v5", total_steps=100), tmp_path / "run")


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_mujoco_warnings_show_once_and_leave_no_log_file(tmp_path, vectorization):
    # every evaluation builds its environments anew: a warning from a model file must not be
    # printed (and appended to MUJOCO_LOG.TXT in the working directory) at every evaluation
    pytest.importorskip("mujoco")
    script = (
        "import mujoco\n"
        "from rlgrad.support.envs import VectorEnv, _python_warning\n"
        "for seed in range(3):\n"
        f"    VectorEnv('HalfCheetah-v5', 2, seed, vectorization={vectorization!r}).close()\n"
        "assert mujoco.get_mju_user_warning() is _python_warning\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "MuJoCo:" in line]
    assert len(warned) <= 1 and "WARNING:" not in done.stdout + done.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_bfloat16_matmuls_change_the_numbers_and_never_leak_into_the_next_run(tmp_path):
    config = sac.Config(
        **{**TINY, "total_steps": 260, "hidden_sizes": (256, 256), "eval_every": 0},
    )
    first = sac.train(config, tmp_path / "a")
    fast = sac.train(dataclasses_replace(config, matmul_precision="bfloat16"), tmp_path / "b")
    again = sac.train(config, tmp_path / "c")  # the same process, after a bfloat16 run
    assert without_timing(again.rows) == without_timing(first.rows)
    # the Q-values, not the critic loss: that loss's per-step values differ by an ulp or so, and
    # its float64 mean over a row can round to the same number in both precisions
    q_means = [r["q_mean"] for r in fast.rows if r["q_mean"] is not None]
    assert q_means != [r["q_mean"] for r in first.rows if r["q_mean"] is not None]
    assert q_means and all(math.isfinite(x) for x in q_means)
    with pytest.raises(ValueError, match="'matmul_precision' must be float32 or bfloat16"):
        sac.check(dataclasses_replace(config, matmul_precision="fp8"))


def test_a_mujoco_run_resumes_exactly(tmp_path, capsys):
    # MuJoCo environments pickle only their constructor arguments; the checkpoint adds each
    # one's MjData and random generator, so a resume continues the episodes in progress.
    config = sac.Config(
        **{
            **TINY,
            "env": "Hopper-v5",
            "total_steps": 300,
            "learning_starts": 100,
        },
    )
    whole = sac.train(config, tmp_path / "whole")
    mid = "checkpoints/step_0000000200.pt"
    shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
    capsys.readouterr()
    resumed = resume(tmp_path / "resumed", checkpoint=tmp_path / "resumed" / mid)
    assert "cannot be saved in a checkpoint" not in capsys.readouterr().err
    assert resumed.rows[-1]["step"] == 300
    assert without_timing(resumed.rows) == without_timing(whole.rows)
    assert VectorEnv("Hopper-v5", 1, seed=0).captured_by_checkpoint()
    assert VectorEnv("Pendulum-v1", 1, seed=0).captured_by_checkpoint()
    assert not VectorEnv("Pendulum-v1", 2, seed=0, vectorization="async").captured_by_checkpoint()


def test_mujoco_episodes_continue_exactly_from_a_vector_env_state():
    # two Hopper environments, a state mid-episode, then the same actions: the same
    # observations, rewards, episode ends and reset noise as without the checkpoint
    actions = np.random.default_rng(0).uniform(-1, 1, (120, 2, 3)).astype(np.float32)
    env = VectorEnv("Hopper-v5", 2, seed=0)
    env.reset_seeded(5)
    for action in actions[:30]:
        env.step(action)
    state = env.state()
    assert state["env"] is not None and len(state["physics"]) == 2
    resumed = VectorEnv("Hopper-v5", 2, seed=0)
    assert resumed.load_state(state, seed=99) is True
    ends = 0
    for action in actions[30:]:
        a, b = env.step(action), resumed.step(action)
        for field in ("observations", "rewards", "terminated", "truncated", "valid"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field
        ends += int(a.terminated.sum() + a.truncated.sum())
    assert ends > 0  # episodes ended and restarted from the restored reset noise


def test_an_old_checkpoint_with_a_pickled_mujoco_env_restarts_its_episodes():
    import cloudpickle

    env = VectorEnv("Hopper-v5", 2, seed=0)
    env.reset_seeded(0)
    env.step(np.zeros((2, 3), np.float32))
    state = env.state()
    assert state["_episode_lengths"].tolist() == [1, 1]
    # what checkpoints held before the physics were saved: the pickle alone, an un-reset env
    del state["physics"]
    state["env"] = cloudpickle.dumps(env.env)
    resumed = VectorEnv("Hopper-v5", 2, seed=0)
    assert resumed.load_state(state, seed=7) is False
    assert resumed._episode_lengths.tolist() == [0, 0]
    step = resumed.step(np.zeros((2, 3), np.float32))  # the un-reset env raised or drifted here
    assert np.isfinite(step.observations).all() and resumed._episode_lengths.tolist() == [1, 1]
