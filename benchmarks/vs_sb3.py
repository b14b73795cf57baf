"""Time rlgrad and Stable-Baselines3 to the same return threshold, interleaved, several seeds.

    python benchmarks/vs_sb3.py [--cases ppo:CartPole-v1,a2c:CartPole-v1,ppo:Acrobot-v1,...]
                                [--seeds 10] [--first-seed 100] [--eval-every N]
                                [--total-steps N] [--out results.json]

Each (case, seed) runs rlgrad, then SB3, then the next seed, each in a fresh subprocess of this
script (``--worker LIBRARY ALGO ENV SEED``, which prints one JSON line), with one torch thread, so
that the two libraries share the machine's time window and never each other's imports or memory.

The protocol is the same for both libraries:

* every ``eval_every`` environment steps (the first update boundary at or past each multiple) and
  once more at the end, 10 (``--eval-episodes``) deterministic episodes run on a separately
  seeded evaluation environment (with the training run's observation statistics frozen, when it
  normalizes);
* the clock counts training only: model construction and evaluations are excluded (rlgrad's
  ``train_s``; for SB3 a callback pauses a ``time.perf_counter`` clock started right before
  ``model.learn``);
* time to threshold: the training seconds and environment steps at the first of three consecutive
  evaluations with a mean return at or above the threshold (one function scores both); a seed
  that never gets there counts as +inf seconds;
* each library trains with its own budget: rlgrad its preset's ``total_steps``, SB3 the zoo's
  ``n_timesteps`` (capped at ``--sb3-max-steps``); SB3 stops once it has solved, since the rest
  of its run could not change its time to threshold (rlgrad likewise, ``stop_when_solved``).

The default seeds, 100-109, are held out: no preset was tuned on them (``rlgrad tune`` uses
1000 and up). The summary gives each library's success rate, the IQM of the seconds to threshold
(unsolved = inf) with a 95% bootstrap interval, the ratio of the two IQMs with its interval (the
seeds of each library resampled independently), and the probability that an rlgrad run solves
sooner than an SB3 run.

SB3 runs the rl-baselines3-zoo hyperparameters (stored below as data); rlgrad runs
``rlgrad.app.presets.preset_config`` for the same (algorithm, environment).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULT_PREFIX = "VS_SB3_RESULT "
EVAL_EPISODES = 10
SOLVED_AFTER = 3  # consecutive evaluations at or above the threshold
DEFAULT_CASES = "ppo:CartPole-v1,a2c:CartPole-v1,ppo:Acrobot-v1,ppo:Pendulum-v1"

THRESHOLDS = {
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "Pendulum-v1": -200.0,
    "LunarLander-v3": 200.0,
    "MountainCar-v0": -110.0,
}
# MuJoCo tasks have no "solved" return: benchmarks/mujoco_return.py compares the return at a
# budget, so their workers run the whole budget (threshold None: never solved).
for _env_id in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"):
    THRESHOLDS[_env_id] = None
EVAL_EVERY = {  # default evaluation period per environment, in environment steps
    "CartPole-v1": 2_000,
    "Acrobot-v1": 5_000,
    "Pendulum-v1": 5_000,
    "LunarLander-v3": 10_000,
    "MountainCar-v0": 5_000,
    "HalfCheetah-v5": 5_000,
    "Hopper-v5": 5_000,
    "Walker2d-v5": 5_000,
}


@dataclasses.dataclass(frozen=True)
class Linear:
    """The zoo's ``lin_<value>``: an SB3 schedule, progress_remaining (1 → 0) ↦ value · it."""

    value: float

    def __call__(self, progress_remaining: float) -> float:
        return self.value * progress_remaining


# rl-baselines3-zoo hyperparams/ppo.yml, a2c.yml, dqn.yml (github.com/DLR-RM/rl-baselines3-zoo;
# read at commits 208b6fd (ppo.yml), c6c209e (a2c.yml) and ce95481 (dqn.yml)). "n_envs",
# "normalize" and "n_timesteps" configure the run; every other key goes to the SB3 constructor.
# "lin_X" is written Linear(X); the zoo's policy_kwargs strings, e.g. "dict(net_arch=[256, 256])",
# are written as the dicts they evaluate to (none of these cases names a torch.nn class, such as
# activation_fn=nn.ReLU; one would be written as the class itself). LunarLander-v3 takes the zoo's
# LunarLander-v2 entry (Gymnasium 1.x only has v3; the dynamics are unchanged for these settings).
ZOO: dict[str, dict[str, dict]] = {
    "ppo": {
        "CartPole-v1": {
            "n_envs": 8,
            "n_timesteps": 100_000,
            "n_steps": 32,
            "batch_size": 256,
            "gae_lambda": 0.8,
            "gamma": 0.98,
            "n_epochs": 20,
            "ent_coef": 0.0,
            "learning_rate": Linear(0.001),
            "clip_range": Linear(0.2),
        },
        "Acrobot-v1": {
            "normalize": True,
            "n_envs": 16,
            "n_timesteps": 1_000_000,
            "n_steps": 256,
            "gae_lambda": 0.94,
            "gamma": 0.99,
            "n_epochs": 4,
            "ent_coef": 0.0,
        },
        "Pendulum-v1": {
            "n_envs": 4,
            "n_timesteps": 100_000,
            "n_steps": 1024,
            "gae_lambda": 0.95,
            "gamma": 0.9,
            "n_epochs": 10,
            "ent_coef": 0.0,
            "learning_rate": 1e-3,
            "clip_range": 0.2,
            "use_sde": True,
            "sde_sample_freq": 4,
        },
        "LunarLander-v3": {
            "n_envs": 16,
            "n_timesteps": 1_000_000,
            "n_steps": 1024,
            "batch_size": 64,
            "gae_lambda": 0.98,
            "gamma": 0.999,
            "n_epochs": 4,
            "ent_coef": 0.01,
        },
        "MountainCar-v0": {
            "normalize": True,
            "n_envs": 16,
            "n_timesteps": 1_000_000,
            "n_steps": 16,
            "gae_lambda": 0.98,
            "gamma": 0.99,
            "n_epochs": 4,
            "ent_coef": 0.0,
        },
    },
    "a2c": {
        "CartPole-v1": {"n_envs": 8, "n_timesteps": 500_000, "ent_coef": 0.0},
        "Acrobot-v1": {"normalize": True, "n_envs": 16, "n_timesteps": 500_000, "ent_coef": 0.0},
        "Pendulum-v1": {
            "normalize": True,
            "n_envs": 8,
            "n_timesteps": 1_000_000,
            "ent_coef": 0.0,
            "max_grad_norm": 0.5,
            "n_steps": 8,
            "gae_lambda": 0.9,
            "vf_coef": 0.4,
            "gamma": 0.9,
            "use_rms_prop": True,
            "normalize_advantage": False,
            "learning_rate": Linear(7e-4),
            "use_sde": True,
            "policy_kwargs": {"log_std_init": -2, "ortho_init": False},
        },
        "LunarLander-v3": {
            "n_envs": 8,
            "n_timesteps": 200_000,
            "gamma": 0.995,
            "n_steps": 5,
            "learning_rate": Linear(0.00083),
            "ent_coef": 0.00001,
        },
        "MountainCar-v0": {
            "normalize": True,
            "n_envs": 16,
            "n_timesteps": 1_000_000,
            "ent_coef": 0.0,
        },
    },
    "dqn": {
        "CartPole-v1": {
            "n_timesteps": 50_000,
            "learning_rate": 2.3e-3,
            "batch_size": 64,
            "buffer_size": 100_000,
            "learning_starts": 1000,
            "gamma": 0.99,
            "target_update_interval": 10,
            "train_freq": 256,
            "gradient_steps": 128,
            "exploration_fraction": 0.16,
            "exploration_final_eps": 0.04,
            "policy_kwargs": {"net_arch": [256, 256]},
        },
        "Acrobot-v1": {
            "n_timesteps": 100_000,
            "learning_rate": 6.3e-4,
            "batch_size": 128,
            "buffer_size": 50_000,
            "learning_starts": 0,
            "gamma": 0.99,
            "target_update_interval": 250,
            "train_freq": 4,
            "gradient_steps": -1,
            "exploration_fraction": 0.12,
            "exploration_final_eps": 0.1,
            "policy_kwargs": {"net_arch": [256, 256]},
        },
        "MountainCar-v0": {
            "n_timesteps": 120_000,
            "learning_rate": 4e-3,
            "batch_size": 128,
            "buffer_size": 10_000,
            "learning_starts": 1000,
            "gamma": 0.98,
            "target_update_interval": 600,
            "train_freq": 16,
            "gradient_steps": 8,
            "exploration_fraction": 0.2,
            "exploration_final_eps": 0.07,
            "policy_kwargs": {"net_arch": [256, 256]},
        },
    },
}
# The zoo gives DQN on LunarLander the same hyperparameters as on Acrobot.
ZOO["dqn"]["LunarLander-v3"] = dict(ZOO["dqn"]["Acrobot-v1"])
# hyperparams/sac.yml (read at c94924e) and td3.yml (a02f4fb, whose Pendulum-v0 entry the zoo
# keeps for v1): every SAC field not named is SB3's default (256×256, batch 256, 100 random
# steps, τ 0.005, α learned). "noise_type"/"noise_std" become SB3's NormalActionNoise, in the
# actor's [−1, 1] units as rlgrad's exploration_noise; train_freq (1, "episode") with
# gradient_steps −1 trains once per episode, as many steps as it collected.
ZOO["sac"] = {"Pendulum-v1": {"n_timesteps": 20_000, "learning_rate": 1e-3}}
# The zoo's MuJoCo entries (HalfCheetah, Hopper, Walker2d, Ant; written for v3, kept for v5):
# 1M steps with 10,000 random steps first, everything else SB3's default for SAC; TD3 adds
# Gaussian exploration noise 0.1 (train_freq 1, one gradient step, SB3's 400×300 networks).
for _env_id in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"):
    ZOO["sac"][_env_id] = {"n_timesteps": 1_000_000, "learning_starts": 10_000}
ZOO["td3"] = {
    "Pendulum-v1": {
        "n_timesteps": 20_000,
        "gamma": 0.98,
        "buffer_size": 200_000,
        "learning_starts": 10_000,
        "noise_type": "normal",
        "noise_std": 0.1,
        "gradient_steps": -1,
        "train_freq": (1, "episode"),
        "learning_rate": 1e-3,
        "policy_kwargs": {"net_arch": [400, 300]},
    }
}
for _env_id in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"):
    ZOO["td3"][_env_id] = {
        "n_timesteps": 1_000_000,
        "learning_starts": 10_000,
        "noise_type": "normal",
        "noise_std": 0.1,
    }
# sb3-contrib's TRPO, hyperparams/trpo.yml (read at 13a3fe7); every field not named is
# sb3-contrib's default (64×64 tanh, γ 0.99, λ 0.95, target_kl 0.01, 10 critic updates of batch 128,
# cg_damping 0.1, 15 CG steps). Pendulum's entry explores with gSDE, which rlgrad has not.
ZOO["trpo"] = {
    "CartPole-v1": {
        "n_envs": 2,
        "n_timesteps": 100_000,
        "n_steps": 512,
        "batch_size": 512,
        "cg_damping": 1e-3,
        "gae_lambda": 0.98,
        "gamma": 0.99,
        "learning_rate": 1e-3,
        "n_critic_updates": 20,
    },
    "Acrobot-v1": {"normalize": True, "n_envs": 2, "n_timesteps": 100_000, "n_steps": 1024},
    "Pendulum-v1": {
        "n_envs": 2,
        "n_timesteps": 100_000,
        "n_steps": 1024,
        "gamma": 0.9,
        "n_critic_updates": 15,
        "use_sde": True,
        "sde_sample_freq": 4,
    },
}
# sb3-contrib's CrossQ, hyperparams/crossq.yml (read at 208b6fd): Pendulum-v1 is 20k steps,
# policy delay 2, 256x256 actor and critics, everything else sb3-contrib's default (lr 1e-3,
# Adam betas (0.5, 0.999), batch 256, 100 random steps, batch renorm momentum 0.01, 100k-step
# warm-up). Its MuJoCo entries (v4, kept for v5): 5,000 random steps, policy delay 3, critics
# 2048 wide; benchmarks/mujoco_return.py sets the width it measures at.
ZOO["crossq"] = {
    "Pendulum-v1": {
        "n_timesteps": 20_000,
        "policy_delay": 2,
        "policy_kwargs": {"net_arch": [256, 256]},
    }
}
for _env_id in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"):
    ZOO["crossq"][_env_id] = {
        "n_timesteps": 1_000_000,
        "learning_starts": 5_000,
        "policy_delay": 3,
        # the zoo's critics are 2048 wide; measured here at rlgrad's CPU default, 256
        "policy_kwargs": {"net_arch": {"pi": [256, 256], "qf": [256, 256]}},
    }
CONTRIB = {"trpo", "crossq"}  # algorithms that live in sb3-contrib, not stable-baselines3
CLASS_NAMES = {"crossq": "CrossQ"}  # where the class is not the algorithm's name upper-cased
EVAL_EVERY_BY_CASE = {  # the off-policy Pendulum runs are 20k steps long: evaluate more often
    ("sac", "Pendulum-v1"): 1_000,
    ("td3", "Pendulum-v1"): 1_000,
    ("crossq", "Pendulum-v1"): 1_000,
}


def default_total_steps(library: str, algorithm: str, env_id: str, sb3_max_steps: int) -> int:
    """rlgrad: its preset's budget; SB3: the zoo's n_timesteps, capped."""
    if library == "sb3":
        return min(ZOO[algorithm][env_id]["n_timesteps"], sb3_max_steps)
    from rlgrad.app.presets import preset_config

    return preset_config(algorithm, env_id).total_steps


def describe(value) -> str:
    """Hyperparameters as text for the JSON output (schedules as the zoo writes them)."""
    if isinstance(value, Linear):
        return f"lin_{value.value}"
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return getattr(value, "__qualname__", repr(value))


# ----- one function scores both libraries -----


def time_to_threshold(evals: list[dict], threshold: float) -> dict | None:
    """The first of SOLVED_AFTER consecutive evaluations (dicts with "step", "train_s" and
    "mean", in step order) whose mean return is ≥ threshold; None when there is none (or no
    threshold)."""
    if threshold is None:
        return None
    for i in range(len(evals) - SOLVED_AFTER + 1):
        if all(e["mean"] >= threshold for e in evals[i : i + SOLVED_AFTER]):
            return evals[i]
    return None


def score(evals: list[dict], threshold: float) -> dict:
    solved = time_to_threshold(evals, threshold)
    return {
        "solved_step": solved["step"] if solved else None,
        "solved_train_s": solved["train_s"] if solved else None,
        "final_eval_mean": evals[-1]["mean"] if evals else None,
    }


# ----- the workers: one training run each, in a fresh process -----


def rlgrad_worker(
    algorithm: str, env_id: str, seed: int, total_steps: int, eval_every: int, eval_episodes: int
):
    from rlgrad.app.registry import module

    trainer = module(algorithm)
    fields = {
        "seed": seed,
        "total_steps": total_steps,
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
        "checkpoint_every": 0,
        "eval_threshold": THRESHOLDS[env_id],
        "threads": 1,
        # as SB3 below: the rest could not change the time to threshold; with no threshold the
        # whole budget runs (rlgrad would otherwise stop at the environment's reward_threshold)
        "stop_when_solved": THRESHOLDS[env_id] is not None,
    }
    known = {f.name for f in dataclasses.fields(trainer.Config)}
    fields = {name: value for name, value in fields.items() if name in known}
    try:
        from rlgrad.app.presets import preset_config
    except ImportError:  # presets not written yet: the trainer's defaults
        config, source = trainer.Config(env=env_id, **fields), "defaults (no presets module)"
    else:
        config, source = preset_config(algorithm, env_id, **fields), "preset_config"
    from rlgrad.support.run_format import evaluations

    with tempfile.TemporaryDirectory(prefix="vs_sb3_") as tmp:
        history = trainer.train(config, run_dir=Path(tmp) / "run")
    evals = [
        {
            "step": int(r["step"]),
            "train_s": float(r["train_s"]),
            "mean": float(r["eval_return_mean"]),
        }
        for r in evaluations(history.rows)
    ]
    last = history.rows[-1]
    return {
        "steps": int(last["step"]),
        "train_s": float(last["train_s"]),
        "evals": evals,
        "config_source": source,
        "config": {k: describe(v) for k, v in dataclasses.asdict(config).items()},
        "rlgrad_summary": {
            k: history.summary.get(k)
            for k in ("solved_step", "solved_train_s", "final_eval_return_mean", "threshold")
        },
    }


def sb3_worker(
    algorithm: str, env_id: str, seed: int, total_steps: int, eval_every: int, eval_episodes: int
):
    import gymnasium as gym
    import numpy as np
    import stable_baselines3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rlgrad.support.evaluation import eval_seed

    hyper = copy.deepcopy(ZOO[algorithm][env_id])  # SB3 adds to policy_kwargs in place
    normalize = hyper.pop("normalize", False)
    n_envs = hyper.pop("n_envs", 1)
    hyper.pop("n_timesteps")
    kwargs = copy.deepcopy(hyper)
    if kwargs.pop("noise_type", None) == "normal":
        from stable_baselines3.common.noise import NormalActionNoise

        dims = gym.make(env_id).action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(
            np.zeros(dims), kwargs.pop("noise_std") * np.ones(dims)
        )

    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    eval_env = DummyVecEnv([lambda: gym.make(env_id)] * eval_episodes)
    if normalize:  # the zoo's `normalize: true`: VecNormalize with the algorithm's γ
        env = VecNormalize(env, gamma=kwargs.get("gamma", 0.99))
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
    first_eval_seed = eval_seed(seed)  # rlgrad's evaluation episodes, for both libraries

    def evaluate(model) -> float:
        """One episode on each of the eval_episodes environments, the same seeds every time."""
        if normalize:
            eval_env.obs_rms = env.obs_rms.copy()
        eval_env.seed(first_eval_seed)
        observations = eval_env.reset()
        returns = np.zeros(eval_episodes)
        finished = np.zeros(eval_episodes, bool)
        while not finished.all():
            actions, _ = model.predict(observations, deterministic=True)
            observations, rewards, dones, _ = eval_env.step(actions)
            returns += np.where(finished, 0.0, rewards)
            finished |= dones
        return float(returns.mean())

    class TimedEvaluation(BaseCallback):
        """Evaluates at the first update boundary at or past each multiple of eval_every (and
        at the end) with the training clock paused. A rollout starts right after an update,
        where rlgrad evaluates too, so both score the policy updated on the same steps."""

        def __init__(self):
            super().__init__()
            self.evals: list[dict] = []
            self.started = self.eval_s = 0.0

        def start_clock(self) -> None:
            self.started, self.eval_s = time.perf_counter(), 0.0

        def train_s(self) -> float:
            return time.perf_counter() - self.started - self.eval_s

        def run_evaluation(self) -> None:
            train_s, paused = self.train_s(), time.perf_counter()
            mean = evaluate(self.model)
            self.eval_s += time.perf_counter() - paused
            self.evals.append({"step": self.num_timesteps, "train_s": train_s, "mean": mean})

        def _on_rollout_start(self) -> None:
            previous = self.evals[-1]["step"] if self.evals else 0
            if self.num_timesteps // eval_every > previous // eval_every:
                self.run_evaluation()

        def _on_step(self) -> bool:
            # solved: the rest of the run cannot change the time to threshold
            return time_to_threshold(self.evals, THRESHOLDS[env_id]) is None

        def _on_training_end(self) -> None:
            if not self.evals or self.evals[-1]["step"] != self.num_timesteps:
                self.run_evaluation()

    if algorithm in CONTRIB:
        import sb3_contrib

        algorithm_class = getattr(sb3_contrib, CLASS_NAMES.get(algorithm, algorithm.upper()))
    else:
        algorithm_class = getattr(stable_baselines3, algorithm.upper())
    model = algorithm_class("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))  # else SB3 leaves /tmp/SB3-* folders
    callback = TimedEvaluation()
    callback.start_clock()
    model.learn(total_timesteps=total_steps, callback=callback)
    train_s = callback.train_s()
    env.close()
    eval_env.close()
    return {
        "steps": int(model.num_timesteps),
        "train_s": train_s,
        "evals": callback.evals,
        "config_source": "rl-baselines3-zoo",
        "config": {
            "n_envs": n_envs,
            "normalize": normalize,
            **describe(hyper),
        },
    }


def worker(library: str, algorithm: str, env_id: str, seed: int, args) -> None:
    import torch

    torch.set_num_threads(1)
    total_steps = args.total_steps or default_total_steps(
        library, algorithm, env_id, args.sb3_max_steps
    )
    eval_every = args.eval_every or EVAL_EVERY_BY_CASE.get((algorithm, env_id), EVAL_EVERY[env_id])
    run = rlgrad_worker if library == "rlgrad" else sb3_worker
    result = run(algorithm, env_id, seed, total_steps, eval_every, args.eval_episodes)
    result.update(
        library=library,
        algorithm=algorithm,
        env=env_id,
        seed=seed,
        total_steps=total_steps,
        eval_every=eval_every,
        eval_episodes=args.eval_episodes,
        threshold=THRESHOLDS[env_id],
        torch_threads=torch.get_num_threads(),
        **score(result["evals"], THRESHOLDS[env_id]),
    )
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ----- the orchestrator -----


def parse_cases(text: str) -> list[tuple[str, str]]:
    cases = []
    for item in text.split(","):
        algorithm, _, env_id = item.strip().partition(":")
        if env_id not in ZOO.get(algorithm, {}):
            known = ", ".join(f"{a}:{e}" for a, envs in ZOO.items() for e in envs)
            raise SystemExit(f"vs_sb3: unknown case {item.strip()!r}; known cases: {known}")
        cases.append((algorithm, env_id))
    return cases


def rlgrad_has(algorithm: str) -> str | None:
    """None when rlgrad has a trainer for ``algorithm``, else why not."""
    try:
        importlib.import_module("rlgrad.app.registry").module(algorithm)
    except (ImportError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def env_missing(env_id: str) -> str | None:
    """None when Gymnasium can make ``env_id`` here, else why not (e.g. Box2D not installed)."""
    import gymnasium as gym

    try:
        gym.make(env_id).close()
    except Exception as error:  # any failure to build the environment skips the case
        return f"{type(error).__name__}: {error}"
    return None


def machine() -> dict:
    import gymnasium
    import stable_baselines3
    import torch

    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gymnasium.__version__,
        "rlgrad_git": commit,
    }


def run_worker(library: str, algorithm: str, env_id: str, seed: int, args) -> dict:
    command = [sys.executable, str(Path(__file__).resolve())]
    command += ["--worker", library, algorithm, env_id, str(seed)]
    if args.total_steps:
        command += ["--total-steps", str(args.total_steps)]
    if args.eval_every:
        command += ["--eval-every", str(args.eval_every)]
    command += ["--eval-episodes", str(args.eval_episodes)]
    command += ["--sb3-max-steps", str(args.sb3_max_steps)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode == 0 and lines:
        result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    else:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        result = {
            "library": library,
            "algorithm": algorithm,
            "env": env_id,
            "seed": seed,
            "error": f"exit status {done.returncode}: " + "\n".join(tail),
            "solved_step": None,
            "solved_train_s": None,
            "final_eval_mean": None,
        }
    result["process_wall_s"] = round(wall_s, 2)
    return result


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def progress_line(result: dict, done: int, total: int) -> str:
    head = (
        f"[{done}/{total}] {result['library']:>6} {result['algorithm']}:{result['env']} "
        f"seed {result['seed']}:"
    )
    if "error" in result:
        return f"{head} FAILED ({result['error'].splitlines()[0]})"
    solved = (
        f"threshold at {result['solved_step']} steps, {result['solved_train_s']:.1f} s"
        if result["solved_step"] is not None
        else "threshold not reached"
    )
    return (
        f"{head} {solved}; final eval {fmt(result['final_eval_mean'])}; "
        f"{result['steps']} steps in {result['train_s']:.1f} s training "
        f"({result['process_wall_s']:.0f} s in all)"
    )


def seconds_to_threshold(result: dict) -> float:
    value = result.get("solved_train_s")
    return math.inf if value is None else float(value)


def steps_to_threshold(result: dict) -> float:
    value = result.get("solved_step")
    return math.inf if value is None else float(value)


def summarize(algorithm: str, env_id: str, runs: list[dict]) -> dict:
    """Per library: success, IQM and median seconds/steps to threshold with 95% intervals; the
    ratio of the IQMs (SB3 / rlgrad) with its interval; P(an rlgrad run solves sooner)."""
    import numpy as np

    from rlgrad.app import statistics as stats

    row = {"case": f"{algorithm}:{env_id}", "threshold": THRESHOLDS[env_id]}
    seconds = {}
    for library in ("sb3", "rlgrad"):
        mine = [r for r in runs if r["library"] == library]
        seconds[library] = np.array([seconds_to_threshold(r) for r in mine])
        steps = np.array([steps_to_threshold(r) for r in mine])
        iqm = stats.stratified_bootstrap([seconds[library]], stats.iqm, reps=4000, seed=1)
        row[library] = {
            "seeds": len(mine),
            "failed": sum("error" in r for r in mine),
            "solved": sum(r.get("solved_step") is not None for r in mine),
            "iqm_s": iqm.point,
            "iqm_s_ci": [iqm.low, iqm.high],
            "median_s": float(np.median(seconds[library])),
            "iqm_steps": float(stats.iqm(steps)),
        }
    # the ratio of IQMs, each library's seeds resampled on their own
    rng = np.random.default_rng(2)
    draws = {
        lib: stats.iqm(t[rng.integers(0, len(t), size=(4000, len(t)))], axis=1)
        for lib, t in seconds.items()
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = draws["sb3"] / draws["rlgrad"]
    row["ratio"] = (
        row["sb3"]["iqm_s"] / row["rlgrad"]["iqm_s"] if row["rlgrad"]["iqm_s"] else math.nan
    )
    row["ratio_ci"] = [
        float(np.percentile(ratios, 2.5, method="lower")),
        float(np.percentile(ratios, 97.5, method="higher")),
    ]
    # lower is better: "rlgrad beats SB3" is SB3's time above rlgrad's
    sooner = stats.probability_of_improvement_interval(
        [seconds["sb3"]], [seconds["rlgrad"]], reps=4000, seed=3
    )
    row["p_rlgrad_sooner"] = [sooner.point, sooner.low, sooner.high]
    return row


def print_report(cases, runs: list[dict], summaries: list[dict], info: dict, command: str):
    print(f"command: {command}")
    print(
        f"machine: {info['cpu_count']} CPUs ({info['processor']}), {info['platform']}, "
        f"python {info['python']}, torch {info['torch']}, stable-baselines3 "
        f"{info['stable_baselines3']}, gymnasium {info['gymnasium']}, rlgrad {info['rlgrad_git']}; "
        "1 torch thread per run"
    )
    print(
        f"protocol: {info['eval_episodes']} deterministic evaluation episodes every eval_every "
        f"steps; time to threshold = training seconds (evaluation excluded) at the first of "
        f"{SOLVED_AFTER} consecutive evaluations >= threshold; not reached = inf\n"
    )
    print("per seed (s / steps to threshold, last eval mean, total training s, steps/s):")
    for algorithm, env_id in cases:
        mine = [r for r in runs if (r["algorithm"], r["env"]) == (algorithm, env_id)]
        if not mine:
            continue
        first = next((r for r in mine if "error" not in r), {})
        print(
            f"  {algorithm}:{env_id}  threshold {THRESHOLDS[env_id]:g}, "
            f"{first.get('total_steps', '?')} steps, eval every {first.get('eval_every', '?')}"
        )
        for r in sorted(mine, key=lambda r: (r["seed"], r["library"] != "rlgrad")):
            if "error" in r:
                print(f"    seed {r['seed']:>3} {r['library']:>6}: FAILED {r['error']}")
                continue
            sps = r["steps"] / r["train_s"] if r["train_s"] > 0 else math.nan
            print(
                f"    seed {r['seed']:>3} {r['library']:>6}: "
                f"{fmt(seconds_to_threshold(r)):>7} s {fmt(steps_to_threshold(r), 0):>8} steps"
                f"   final {fmt(r['final_eval_mean']):>7}   train {r['train_s']:7.1f} s"
                f"   {fmt(sps, 0):>6} steps/s"
            )
    header = (
        f"{'case':<20} {'solved SB3':>10} {'solved rlgrad':>13} {'SB3 IQM s [95% CI]':>24} "
        f"{'rlgrad IQM s [95% CI]':>24} {'SB3/rlgrad [95% CI]':>22} {'P(rlgrad sooner)':>22}"
    )
    print("\nIQM over seeds of the training seconds to threshold (unsolved = inf):")
    print(header)
    print("-" * len(header))
    for row in summaries:
        sb3, rl = row["sb3"], row["rlgrad"]

        def ci(point, bounds, digits=1):
            return f"{fmt(point, digits)} [{fmt(bounds[0], digits)}, {fmt(bounds[1], digits)}]"

        p = row["p_rlgrad_sooner"]
        solved = f"{sb3['solved']:>6}/{sb3['seeds']:<3} {rl['solved']:>9}/{rl['seeds']:<3}"
        print(
            f"{row['case']:<20} {solved} "
            f"{ci(sb3['iqm_s'], sb3['iqm_s_ci']):>24} {ci(rl['iqm_s'], rl['iqm_s_ci']):>24} "
            f"{ci(row['ratio'], row['ratio_ci'], 2):>22} {ci(p[0], p[1:], 2):>22}"
        )
    failed = sum("error" in r for r in runs)
    if failed:
        print(f"\n{failed} run(s) failed; see the per-seed lines above")


def jsonable(value):
    """Infinities and NaN become null so that the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def orchestrate(args) -> None:
    command = shlex.join([sys.executable, *sys.argv])
    cases = []
    for algorithm, env_id in parse_cases(args.cases):
        if THRESHOLDS[env_id] is None:
            raise SystemExit(
                f"vs_sb3: {env_id} has no solved return to time; compare the return after a "
                f"budget with benchmarks/mujoco_return.py --cases {algorithm}:{env_id}"
            )
        missing = rlgrad_has(algorithm)
        if missing:
            print(f"note: skipping {algorithm}:{env_id}: rlgrad has no {algorithm} trainer yet")
            print(f"      ({missing})")
            continue
        missing = env_missing(env_id)
        if missing:
            print(f"note: skipping {algorithm}:{env_id}: cannot make {env_id} ({missing})")
            continue
        cases.append((algorithm, env_id))
    info = {**machine(), "eval_episodes": args.eval_episodes}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    runs: list[dict] = []
    total = 2 * len(cases) * len(seeds)
    for algorithm, env_id in cases:
        for seed in seeds:
            for library in ("rlgrad", "sb3"):
                result = run_worker(library, algorithm, env_id, seed, args)
                runs.append(result)
                print(progress_line(result, len(runs), total), file=sys.stderr, flush=True)
                if args.out:  # after every run, so that an interrupted benchmark keeps its data
                    write_out(args.out, command, info, cases, runs)
    summaries = [
        summarize(a, e, [r for r in runs if (r["algorithm"], r["env"]) == (a, e)]) for a, e in cases
    ]
    print_report(cases, runs, summaries, info, command)
    if args.out:
        write_out(args.out, command, info, cases, runs, summaries)
        print(f"\nraw results: {args.out}")


def write_out(path, command, info, cases, runs, summaries=None) -> None:
    data = {
        "command": command,
        "machine": info,
        "cases": [f"{a}:{e}" for a, e in cases],
        "runs": runs,
        "summary": summaries,
    }
    Path(path).write_text(json.dumps(jsonable(data), indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", default=DEFAULT_CASES, help="algorithm:env pairs, comma-separated"
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds per case")
    parser.add_argument(
        "--first-seed", type=int, default=100, help="held-out seeds start here (default: 100)"
    )
    parser.add_argument(
        "--sb3-max-steps", type=int, default=200_000, help="cap on the zoo's n_timesteps"
    )
    parser.add_argument("--eval-every", type=int, default=0, help="default: per environment")
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=EVAL_EPISODES,
        help="episodes per evaluation, on fixed seeds (more: a steadier estimate where returns "
        "depend strongly on the start state, as in Pendulum)",
    )
    parser.add_argument(
        "--total-steps", type=int, default=0, help="one budget for both (default: their own)"
    )
    parser.add_argument("--out", help="write every raw result to this JSON file (inf as null)")
    parser.add_argument(
        "--worker", nargs=4, metavar=("LIBRARY", "ALGO", "ENV", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        library, algorithm, env_id, seed = args.worker
        if library not in ("rlgrad", "sb3"):
            parser.error(f"unknown library {library!r}")
        worker(library, algorithm, env_id, int(seed), args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
