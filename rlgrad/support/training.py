"""Small steps every trainer takes the same way: seeding, building, one checked gradient step."""

from __future__ import annotations

import math
import random
from typing import NamedTuple

import numpy as np
import torch

from rlgrad.errors import BadInputError
from rlgrad.support.configs import PolicyConfig, resolve_device
from rlgrad.support.envs import Spaces, VectorEnv
from rlgrad.support.nets import ActorCritic
from rlgrad.support.runs import Run


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


def make_env(config, gamma: float | None = None) -> VectorEnv:
    return VectorEnv(
        config.env,
        config.num_envs,
        config.seed,
        vectorization=config.vectorization,
        normalize_obs=getattr(config, "normalize_obs", False),
        normalize_reward=getattr(config, "normalize_reward", False),
        gamma=config.gamma if gamma is None else gamma,
    )


def make_actor_critic(config: PolicyConfig, spaces: Spaces, critic: bool = True) -> ActorCritic:
    return ActorCritic(spaces, config.hidden_sizes, config.activation, config.log_std_init, critic)


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
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


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
    **run_options,
) -> Setup:
    """Seed, build the environments, the agent and its optimizer, and open (or resume) the run.

    ``build_extras(config, spaces, agent)``, when given, returns a NamedTuple of more objects
    with ``state_dict``/``load_state_dict`` that the checkpoints must hold, such as DQN's target
    network and replay buffer. ``run_options`` are Run's keyword arguments ``resume``,
    ``checkpoint`` and ``progress``.
    """
    # SAC and TD3 can train on a GPU; the other trainers (and the environments) use the CPU
    device = resolve_device(getattr(config, "device", "cpu"))
    generator = seed_everything(config.seed, config.threads, device)
    set_matmul_precision(getattr(config, "matmul_precision", "float32"))
    env = make_env(config)
    try:
        agent = build_agent(config, env.spaces)
    except ValueError:
        env.close()
        raise
    agent = agent.to(device)  # before the optimizer and the target copies are made of it
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
