"""Small steps every trainer takes the same way: seeding, building, one checked gradient step."""

from __future__ import annotations

import math
import random
from typing import NamedTuple

import numpy as np
import torch

from rlgrad.errors import BadInputError
from rlgrad.support.configs import PolicyConfig, RunConfig, resolve_device
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


def make_env(config: RunConfig) -> VectorEnv:
    """The training environments of ``config``; a policy-gradient config's ``normalize_obs``
    and ``normalize_reward`` switch on the running normalizations (the off-policy trainers
    store raw observations and rewards in their replay buffer)."""
    normalize = isinstance(config, PolicyConfig)
    return VectorEnv(
        config.env,
        config.num_envs,
        config.seed,
        vectorization=config.vectorization,
        normalize_obs=normalize and config.normalize_obs,
        normalize_reward=normalize and config.normalize_reward,
        gamma=config.gamma,
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
    device: str = "cpu",
    matmul_precision: str = "float32",
    **run_options,
) -> Setup:
    """Seed, build the environments, the agent and its optimizer, and open (or resume) the run.

    ``build_extras(config, spaces, agent)``, when given, returns a NamedTuple of more objects
    with ``state_dict``/``load_state_dict`` that the checkpoints must hold, such as DQN's target
    network and replay buffer. ``device`` (a config's device field: cpu, cuda, cuda:N or auto)
    is where the agent, the extras and the generator live, and ``matmul_precision`` how the
    CPU computes float32 matmuls; SAC and TD3 pass their config's, the other trainers (and the
    environments, always) use the CPU in float32. ``run_options`` are Run's keyword arguments
    ``resume``, ``checkpoint`` and ``progress``.
    """
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
