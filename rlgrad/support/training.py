"""Small steps every trainer takes the same way: seeding, building, one checked gradient step."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from rlgrad.errors import BadInputError
from rlgrad.support.configs import PolicyConfig, RunConfig, require, resolve_device
from rlgrad.support.envs import SeedEnvs, Spaces, VectorEnv
from rlgrad.support.nets import ActorCritic
from rlgrad.support.runs import Run, SeedRuns, default_run_dir
from rlgrad.support.seed_adam import SeedAdam, SeedOptimizer, clip_grad_norms
from rlgrad.support.seeded import SeedGenerators, SeedSlice, build_seeded
from rlgrad.support.torch_envs import TorchSeedEnvs


def seed_everything(seed: int, threads: int, device: torch.device | None = None) -> torch.Generator:
    """Seed torch, NumPy and Python; return the generator that samples actions and minibatches
    (on ``device``, where those samples are drawn; the CPU by default)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    return torch.Generator(device or "cpu").manual_seed(seed)


MATMUL_PRECISIONS = ("float32", "bfloat16")


def set_matmul_precision(precision: str) -> None:
    """How oneDNN computes float32 matmuls on the CPU for this run: 'float32' (PyTorch's
    default) or 'bfloat16' (inputs rounded to bfloat16, products summed in float32; weights,
    gradients and Adam stay float32). On CPUs with AMX or AVX512-BF16 the latter makes the
    256-wide layers of SAC and TD3 3-4× faster; every run sets it, so one run's choice never
    leaks into the next one in the same process."""
    if precision not in MATMUL_PRECISIONS:
        raise BadInputError(
            f"config field 'matmul_precision' must be one of {', '.join(MATMUL_PRECISIONS)}; "
            f"got {precision!r}"
        )
    backend = getattr(torch.backends.mkldnn, "matmul", None)
    if backend is None or not hasattr(backend, "fp32_precision"):
        if precision == "bfloat16":
            raise BadInputError(
                "config field 'matmul_precision' = 'bfloat16' needs a PyTorch with "
                "torch.backends.mkldnn.matmul.fp32_precision (2.9 or later)"
            )
        return
    backend.fp32_precision = "bf16" if precision == "bfloat16" else "none"


def normalizations(config: RunConfig) -> dict:
    """``normalize_obs`` and ``normalize_reward`` of the training environments: a
    policy-gradient config's (the off-policy trainers store raw observations and rewards in
    their replay buffer)."""
    normalize = isinstance(config, PolicyConfig)
    return {
        "normalize_obs": normalize and config.normalize_obs,
        "normalize_reward": normalize and config.normalize_reward,
    }


def make_env(config: RunConfig) -> VectorEnv:
    """The (Gymnasium) training environments of ``config``, normalized as
    :func:`normalizations` says."""
    return VectorEnv(
        config.env,
        config.num_envs,
        config.seed,
        vectorization=config.vectorization,
        gamma=config.gamma,
        **normalizations(config),
    )


def make_seed_envs(config: RunConfig, seeds: list[int], device) -> SeedEnvs | TorchSeedEnvs:
    """The training environments of S seeds: ``config.env_backend`` 'gymnasium' gives each
    seed the :func:`make_env` a single-seed run gets; 'torch' gives all of them one
    :class:`~rlgrad.support.torch_envs.TorchSeedEnvs` on ``device``."""
    if getattr(config, "env_backend", "gymnasium") == "torch":
        return TorchSeedEnvs(
            config.env,
            config.num_envs,
            seeds,
            device=device,
            gamma=config.gamma,
            **normalizations(config),
        )
    return SeedEnvs([make_env(dataclasses.replace(config, seed=seed)) for seed in seeds])


def make_actor_critic(
    config: PolicyConfig, spaces: Spaces, critic: bool = True, seeds: int | None = None
) -> ActorCritic:
    return ActorCritic(
        spaces, config.hidden_sizes, config.activation, config.log_std_init, critic, seeds
    )


def adam(parameters, **options) -> torch.optim.Adam:
    """Adam with the fused single-kernel update where this PyTorch offers it (2.4+ on CPU): the
    same arithmetic in one call per parameter instead of about ten (a 15% shorter step here)."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, fused=True, **options)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(parameters, **options)


def annealed_lr(optimizer: torch.optim.Optimizer, config, fraction_done: float) -> float:
    """Set and return the learning rate: lr, or lr·(1 − fraction done) with ``anneal_lr``."""
    lr = config.lr * (1.0 - fraction_done) if config.anneal_lr else config.lr
    if isinstance(optimizer, SeedOptimizer):  # SeedAdam, SeedRMSprop
        optimizer.lr = lr
    else:
        for group in optimizer.param_groups:
            group["lr"] = lr
    return lr


def annealed_seed_lrs(optimizer: SeedAdam, config, fractions_done: list[float]) -> list[float]:
    """:func:`annealed_lr` for seeds that progress at their own pace: seed s's lr from its own
    fraction done; set and returned, one per seed."""
    lrs = [config.lr * (1.0 - f) if config.anneal_lr else config.lr for f in fractions_done]
    optimizer.lr = lrs
    return lrs


def gradient_step(run, optimizer, loss: torch.Tensor, max_grad_norm: float | None) -> float:
    """Backpropagate ``loss``, clip the global gradient norm, step; return the norm before
    clipping. A non-finite loss or gradient stops the run *before* the parameters change."""
    if not bool(torch.isfinite(loss)):
        run.fail("the loss", loss.item())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    if max_grad_norm is None and hasattr(torch.nn.utils, "get_total_norm"):  # torch ≥ 2.6
        # measure only: clipping at an infinite limit would still rescale every gradient by 1
        gradients = [p.grad for p in parameters if p.grad is not None]
        norm = float(torch.nn.utils.get_total_norm(gradients, foreach=True))
    else:
        limit = max_grad_norm if max_grad_norm is not None else math.inf
        norm = float(torch.nn.utils.clip_grad_norm_(parameters, limit, foreach=True))
    if not math.isfinite(norm):
        run.fail("the gradient norm", norm)
    optimizer.step()
    return norm


class Means:
    """The metrics of one iteration's gradient steps, averaged for its metrics row: the one way
    every trainer averages a metric over an iteration.

    ``add(name=value, ...)`` adds a 0-dim tensor (on any device, detached by the caller) or a
    float to the metric's running sum, with no host sync; ``means()`` returns
    ``{name: Σ values / count}`` in the order the names were declared, None for a metric no
    step measured (an empty cell). Sums are kept in float64, so a long iteration of float32
    values loses no digits to the order of the additions.

        >>> means = Means("loss", "actor_loss")
        >>> means.add(loss=torch.tensor(1.0))
        >>> means.add(loss=2.5)
        >>> means.means()
        {'loss': 1.75, 'actor_loss': None}
    """

    def __init__(self, *names: str):
        self.sums: dict[str, torch.Tensor | None] = dict.fromkeys(names)
        self.counts = dict.fromkeys(names, 0)

    def add(self, **values: torch.Tensor | float) -> None:
        for name, value in values.items():
            if name not in self.counts:
                raise BadInputError(
                    f"Means.add(): unknown metric {name!r}; declared: {', '.join(self.counts)}"
                )
            value = torch.as_tensor(value, dtype=torch.float64)
            total = self.sums[name]
            self.sums[name] = value if total is None else total + value
            self.counts[name] += 1

    def means(self) -> dict[str, float | None]:
        return {
            name: None if total is None else float(total) / self.counts[name]
            for name, total in self.sums.items()
        }


def warm_up_kernels() -> None:
    """Compile (or load from the cache) the numba scans now, so the first update's clock
    measures training rather than a one-off compilation."""
    from rlgrad.returns import discounted_returns, gae

    zeros, flags = torch.zeros(2, 1), torch.zeros(2, 1, dtype=torch.bool)
    gae(zeros, zeros, zeros, flags, flags, 0.9, 0.9)
    discounted_returns(zeros, flags, flags, 0.9, zeros)


class Setup(NamedTuple):
    """What :func:`start` builds: the run and everything a trainer trains with."""

    run: Run
    env: VectorEnv
    agent: torch.nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # samples actions and minibatches
    extras: tuple | None  # build_extras' named objects (DQN's target network and replay buffer)


def start(
    algorithm: str,
    config,
    run_dir,
    build_agent,
    make_optimizer,
    build_extras=None,
    *,
    device: str | None = None,
    matmul_precision: str = "float32",
    **run_options,
) -> Setup:
    """Seed, build the environments, the agent and its optimizer, and open (or resume) the run.

    ``build_extras(config, spaces, agent)``, when given, returns a NamedTuple of more objects
    with ``state_dict``/``load_state_dict`` that the checkpoints must hold, such as DQN's target
    network and replay buffer. ``device`` (a config's device field: cpu, cuda, cuda:N or auto)
    is where the agent, the extras and the generator live, and ``matmul_precision`` how the
    CPU computes float32 matmuls; SAC and TD3 pass their config's. A trainer that passes no
    device runs on the CPU, and refuses a config whose ``device`` names a GPU. ``run_options``
    are Run's keyword arguments ``resume``, ``checkpoint`` and ``progress``.
    """
    if getattr(config, "env_backend", "gymnasium") != "gymnasium":
        raise BadInputError(
            f"config field 'env_backend' = {config.env_backend!r}: {algorithm} steps Gymnasium "
            "environments (the torch backend is for trainers that train through start_seeds)"
        )
    if device is None:  # a trainer whose loop runs on the CPU only
        on = resolve_device(config.device)
        require(
            on.type == "cpu",
            f"{algorithm} trains on the CPU only; config field 'device' = {config.device!r} "
            "(the other trainers train on a GPU)",
        )
    else:
        on = resolve_device(device)
    generator = seed_everything(config.seed, config.threads, on)
    set_matmul_precision(matmul_precision)
    env = make_env(config)
    try:
        agent = build_agent(config, env.spaces)
    except ValueError:
        env.close()
        raise
    agent = agent.to(on)  # before the optimizer and the target copies are made of it
    optimizer = make_optimizer(config, agent)
    warm_up_kernels()
    modules = {"agent": agent, "optimizer": optimizer}
    extras = build_extras(config, env.spaces, agent) if build_extras is not None else None
    if extras is not None:
        modules.update(extras._asdict())
    run = Run(
        algorithm, config, run_dir, env=env, modules=modules, generator=generator, **run_options
    )
    return Setup(run, env, agent, optimizer, generator, extras)


# ----- many seeds in one process -----


class SeedSetup(NamedTuple):
    """What :func:`start_seeds` builds: S seeds' runs and what they train with, batched."""

    runs: SeedRuns
    envs: SeedEnvs | TorchSeedEnvs
    agents: torch.nn.Module  # seed-batched: every parameter [S, ...]
    optimizer: SeedAdam
    generators: SeedGenerators  # seed s's actions and minibatches come from generators[s]
    extras: tuple | None = None  # build_extras' seed-batched objects (DQN's target, replay)


def seed_run_dirs(algorithm: str, config, seeds: list[int], run_dir) -> list[Path]:
    """Where each seed writes: ``run_dir`` itself for one seed, ``run_dir/seed{s}`` for many,
    the usual ``runs/ALGO-ENV-seedS-TIME`` without ``run_dir``, or, when ``run_dir`` is a list
    (a sweep's trials), its directories, one per seed."""
    if isinstance(run_dir, (list, tuple)):
        if len(run_dir) != len(seeds):
            raise BadInputError(
                f"one run directory per seed: got {len(run_dir)} for {len(seeds)} seeds"
            )
        return [Path(d) for d in run_dir]
    if run_dir is None:
        return [default_run_dir(algorithm, dataclasses.replace(config, seed=s)) for s in seeds]
    if len(seeds) == 1:
        return [Path(run_dir)]
    return [Path(run_dir) / f"seed{s}" for s in seeds]


def start_seeds(
    algorithm: str,
    config,
    seeds: list[int],
    run_dir,
    build_agent,
    make_optimizer,
    build_extras=None,
    *,
    device: str | None = None,
    matmul_precision: str = "float32",
    resume: bool = False,
    checkpoint=None,
    progress: bool = False,
) -> SeedSetup:
    """:func:`start` for S seeds at once: seed s gets the environments, initial parameters and
    random streams a single-seed run of ``config`` with ``seed = s`` gets, and its own ordinary
    run directory (:func:`seed_run_dirs`); its agent and optimizer are slice s of stacked ones.
    With ``config.env_backend`` 'torch' the environments are the torch task's on ``device``
    (:func:`make_seed_envs`). ``build_extras(config, spaces, agents, num_seeds)``, when given,
    returns a NamedTuple of more seed-batched objects that the checkpoints must hold (DQN's
    target networks, replay buffers and counters): modules, or objects with ``seed_state`` and
    ``load_seed_state``; each seed's run saves its slice of each (:class:`SeedSlice`).
    ``matmul_precision``: as for :func:`start`."""
    if not seeds:
        raise BadInputError("start_seeds(): 'seeds' must hold at least one seed; got none")
    if checkpoint is not None and len(seeds) > 1:
        raise BadInputError("--checkpoint resumes one run; with many seeds, resume their latest")
    on = resolve_device(config.device if device is None else device)
    seed_everything(seeds[0], config.threads)
    set_matmul_precision(matmul_precision)
    seed_configs = [dataclasses.replace(config, seed=seed) for seed in seeds]
    envs = make_seed_envs(config, seeds, on)
    try:
        agents = build_seeded(lambda n: build_agent(config, envs.spaces, n), seeds).to(on)
    except ValueError:
        envs.close()
        raise
    optimizer = make_optimizer(config, agents)
    generators = SeedGenerators(seeds, on)
    warm_up_kernels()
    extras = (
        build_extras(config, envs.spaces, agents, len(seeds)) if build_extras is not None else None
    )
    stacked = {"agent": agents, "optimizer": optimizer, **(extras._asdict() if extras else {})}
    runs = [
        Run(
            algorithm,
            seed_config,
            directory,
            env=env,
            modules={name: SeedSlice(module, i) for name, module in stacked.items()},
            generator=generators[i],
            resume=resume,
            checkpoint=checkpoint,
            catch_ctrl_c=False,
        )
        for i, (seed_config, directory, env) in enumerate(
            zip(
                seed_configs,
                seed_run_dirs(algorithm, config, seeds, run_dir),
                envs.envs,
                strict=True,
            )
        )
    ]
    return SeedSetup(
        SeedRuns(runs, agents, envs, progress=progress),
        envs,
        agents,
        optimizer,
        generators,
        extras,
    )


def seed_gradient_step(
    runs: SeedRuns,
    optimizer: SeedAdam,
    losses: Tensor,
    max_grad_norm: float | None,
    updating: Tensor,
) -> Tensor:
    """:func:`gradient_step` for S seeds: backpropagate the per-seed ``losses [S]``, clip each
    seed's global gradient norm, and step the seeds that are ``updating`` ([S] bool). A seed
    whose loss or gradient norm is not finite fails (its run stops, its parameters unchanged);
    the others step. Returns the norms before clipping, ``[S]``. One host sync."""
    optimizer.zero_grad()
    torch.where(updating, losses, 0.0).sum().backward()
    norms = clip_grad_norms(optimizer.params, max_grad_norm)
    healthy = torch.isfinite(losses) & torch.isfinite(norms)
    stepping = updating & healthy
    # the one host sync: does any seed fail, and do all of them step (Adam's unmasked path)?
    broken, everyone = torch.stack([(updating & ~healthy).any(), stepping.all()]).tolist()
    if broken:
        for s in (updating & ~healthy).nonzero().flatten().tolist():
            quantity, value = (
                ("the loss", losses[s].item())
                if not math.isfinite(losses[s].item())
                else ("the gradient norm", norms[s].item())
            )
            runs.fail(s, quantity, value)
    optimizer.step(None if everyone else stepping)
    return norms


def seed_minibatches(generators, usable: list[Tensor], size: int):
    """One epoch of minibatches for S seeds: seed s's usable sample indices ``usable[s]`` in its
    own random order (``torch.randperm`` from generator s, the draw a single-seed run makes),
    padded to the longest; yields ``(batch, in_batch)``, each ``[S, ≤ size]``: the indices and
    False where a seed's row is padding. The order is drawn when the first minibatch is asked
    for."""
    orders, filled = generators.permutations([len(u) for u in usable])
    order = torch.stack([u[o] if len(u) else o for u, o in zip(usable, orders, strict=True)])
    yield from zip(order.split(size, dim=1), filled.split(size, dim=1), strict=True)


class SeedMeans:
    """:class:`Means` for S seeds: each metric is added as a ``[S]`` tensor where ``where``
    ([S] bool) is True, and averaged per seed; ``means()`` is one dict per seed."""

    def __init__(self, num_seeds: int, *names: str, device="cpu"):
        self.num_seeds, self.device = num_seeds, device
        zeros = {"size": (num_seeds,), "device": device}
        self.sums = {name: torch.zeros(**zeros, dtype=torch.float64) for name in names}
        self.counts = {name: torch.zeros(**zeros, dtype=torch.int64) for name in names}

    def add(self, where: Tensor, **values: Tensor | float) -> None:
        """Add ``values`` (``[S]`` tensors or numbers) where ``where`` [S] is True; no host
        sync."""
        for name, value in values.items():
            if name not in self.sums:
                raise BadInputError(
                    f"SeedMeans.add(): unknown metric {name!r}; declared: {', '.join(self.sums)}"
                )
            # a number goes straight to float64 (as_tensor alone would round it to float32)
            value = torch.as_tensor(value, dtype=torch.float64, device=self.device).detach()
            value = value.expand(self.num_seeds)
            self.sums[name] += torch.where(where, value, 0.0)
            self.counts[name] += where

    def means(self) -> list[dict[str, float | None]]:
        sums = {name: total.tolist() for name, total in self.sums.items()}
        counts = {name: count.tolist() for name, count in self.counts.items()}
        return [
            {
                name: sums[name][s] / counts[name][s] if counts[name][s] else None
                for name in self.sums
            }
            for s in range(self.num_seeds)
        ]
