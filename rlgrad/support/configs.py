"""Frozen config dataclasses: their field docstrings, validation, and overrides from strings.

A trainer's ``Config`` documents each field with a docstring right under it (as attribute
docstrings in PEP 257); :func:`field_docs` reads them back so that ``rlgrad train ALGO --help``
shows the same text as the source.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import itertools
import textwrap
import types
import typing

from rlgrad.errors import BadInputError


def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` for a dataclass and its bases, read from the source."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body
        for statement, following in itertools.pairwise(body):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise BadInputError(f"expected true or false; got {text!r}")


def _parse(text: str, kind: object) -> object:
    """Convert a command-line string to the field type ``kind`` (int, float, bool, str,
    tuple[int, ...], or an optional of those, where 'none' gives None)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() in ("none", "null", ""):
            return None
        return _parse(text, next(a for a in args if a is not type(None)))
    if origin is tuple:
        parts = [p for p in text.replace("(", "").replace(")", "").split(",") if p.strip()]
        return tuple(_parse(p, args[0]) for p in parts)
    if kind is bool:
        return _parse_bool(text)
    if kind is int:
        return int(float(text)) if "e" in text.lower() else int(text)
    if kind is float:
        return float(text)
    return text


def field_types(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def unknown_field(cls: type, name: str, algorithm: str) -> BadInputError:
    names = [f.name for f in dataclasses.fields(cls)]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return BadInputError(
        f"{algorithm} has no config field '{name}'; {hint}"
        f"`rlgrad train {algorithm} --help` lists them all"
    )


def with_overrides(config, overrides: dict[str, object], algorithm: str):
    """A copy of ``config`` with fields replaced; string values are parsed to the field's type."""
    cls, kinds, changes = type(config), field_types(type(config)), {}
    for name, value in overrides.items():
        if name not in kinds:
            raise unknown_field(cls, name, algorithm)
        if isinstance(value, str):
            try:
                value = _parse(value, kinds[name])
            except ValueError as error:
                raise BadInputError(f"config field '{name}': {error}") from None
        elif isinstance(value, list):  # JSON (presets) has no tuples
            value = tuple(value)
        changes[name] = value
    return dataclasses.replace(config, **changes)


def to_dict(config) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def from_dict(cls: type, values: dict):
    kinds = field_types(cls)
    for name in values:
        if name not in kinds:
            raise unknown_field(cls, name, cls.__module__.rsplit(".", 1)[-1])
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**fixed)


# ----- validation helpers: one line that names the field, what it must be and what it got -----


def require(condition: bool, message: str) -> None:
    if not condition:
        raise BadInputError(message)


def positive(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        require(
            isinstance(value, (int, float)) and value > 0,
            f"config field '{name}' must be > 0; got {value!r}",
        )


def in_unit_interval(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        require(
            isinstance(value, (int, float)) and 0 <= value <= 1,
            f"config field '{name}' must be in [0, 1]; got {value!r}",
        )


def non_negative(config, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        require(
            isinstance(value, (int, float)) and value >= 0,
            f"config field '{name}' must be >= 0; got {value!r}",
        )


def widths(config, name: str = "hidden_sizes") -> None:
    """Hidden layer widths: at least one layer, every width a positive integer."""
    value = getattr(config, name)
    require(
        len(value) > 0 and all(isinstance(h, int) and h > 0 for h in value),
        f"config field '{name}' must be positive widths; got {value!r}",
    )


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The fields every trainer has: what to train on, its networks and discount, for how long,
    and how to watch it. Each trainer's Config inherits them (and may change a default)."""

    env: str = "CartPole-v1"
    """Gymnasium environment id, e.g. CartPole-v1, Acrobot-v1, Pendulum-v1, LunarLander-v3."""
    seed: int = 0
    """Seeds the network initialization, action sampling, minibatch order and the environments."""
    total_steps: int = 100_000
    """Environment steps to train for, summed over the vectorized environments."""
    num_envs: int = 8
    """Environments stepped together (gymnasium.make_vec)."""
    vectorization: str = "auto"
    """'auto' (Gymnasium's numpy-vectorized env where one exists, else 'sync'), 'sync' or 'async'.
    Async envs live in other processes, so a resumed run restarts them (not bit-identical)."""
    env_backend: str = "gymnasium"
    """'gymnasium', or 'torch': the env's rlgrad.envs version (CartPole-v1, Acrobot-v1,
    Pendulum-v1, MountainCar-v0, MountainCarContinuous-v0), stepped as tensors on the device with
    no NumPy per step (trainers that train through start_seeds: PPO)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of each network (the policy and value MLPs, the Q-network, the actor
    and every critic)."""
    activation: str = "tanh"
    """Hidden activation: tanh, relu or elu."""
    gamma: float = 0.99
    """Discount factor γ."""
    lr: float = 3e-4
    """Learning rate."""
    max_grad_norm: float | None = 0.5
    """Clip the global gradient norm to this (none: no clipping)."""
    eval_every: int = 10_000
    """Evaluate every this many environment steps (0: only at the end)."""
    eval_episodes: int = 10
    """Episodes per evaluation, with deterministic actions on separately seeded environments."""
    eval_threshold: float | None = None
    """Return that counts as solved (default: the environment's reward_threshold, if any)."""
    stop_when_solved: bool = False
    """End the run once it is solved (three consecutive evaluations at eval_threshold), instead
    of training on to total_steps; `rlgrad tune` sets it, since the rest of a solved run cannot
    change its time to solve."""
    checkpoint_every: int = 50_000
    """Write a checkpoint every this many environment steps (and always at the end)."""
    keep_checkpoints: int = 3
    """How many periodic checkpoints to keep besides the latest one."""
    threads: int = 1
    """torch.set_num_threads; one thread is fastest for small networks and makes runs repeatable."""
    device: str = "cpu"
    """Where the networks, the rollouts (or the replay buffer) and the gradient steps run: cpu,
    cuda, cuda:N or auto (cuda when PyTorch sees a GPU)."""


def check_run_config(config: RunConfig) -> None:
    positive(config, "total_steps", "num_envs", "eval_episodes", "threads", "lr")
    non_negative(config, "eval_every", "checkpoint_every", "keep_checkpoints")
    in_unit_interval(config, "gamma")
    widths(config)
    require(
        isinstance(config.env, str) and bool(config.env),
        f"config field 'env' must be a Gymnasium environment id; got {config.env!r}",
    )
    require(
        config.max_grad_norm is None or config.max_grad_norm > 0,
        f"config field 'max_grad_norm' must be > 0 or none; got {config.max_grad_norm!r}",
    )
    check_env_backend(config)


def check_env_backend(config: RunConfig) -> None:
    """'gymnasium' always; 'torch' where rlgrad.envs has the environment."""
    from rlgrad.envs import ENVIRONMENTS

    require(
        config.env_backend in ("gymnasium", "torch"),
        f"config field 'env_backend' must be gymnasium or torch; got {config.env_backend!r}",
    )
    require(
        config.env_backend == "gymnasium" or config.env in ENVIRONMENTS,
        f"config field 'env_backend' = 'torch' needs an environment with a torch version "
        f"({', '.join(sorted(ENVIRONMENTS))}); got env {config.env!r}",
    )


@dataclasses.dataclass(frozen=True)
class PolicyConfig(RunConfig):
    """The fields of the policy-gradient trainers (REINFORCE, A2C, PPO, TRPO, GRPO)."""

    log_std_init: float = 0.0
    """Initial log σ of the Gaussian policy (continuous actions only)."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over total_steps."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient β in L = L_π + c_v L_V − β H."""
    vf_coef: float = 0.5
    """Value loss coefficient c_v."""
    normalize_obs: bool = False
    """Normalize observations with running mean and std (saved with checkpoints)."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return (saved with checkpoints)."""


def check_policy_config(config: PolicyConfig) -> None:
    check_run_config(config)
    non_negative(config, "ent_coef", "vf_coef")


@dataclasses.dataclass(frozen=True)
class OffPolicyConfig(RunConfig):
    """The fields DQN, SAC and TD3 share: a replay buffer, the schedule of gradient steps, and
    target networks that follow the learner."""

    num_envs: int = 1
    """Environments stepped together; each vector step adds num_envs transitions to the buffer
    and counts num_envs environment steps."""
    activation: str = "relu"
    max_grad_norm: float | None = None
    buffer_size: int = 1_000_000
    """Replay buffer capacity in transitions (over all environments); the oldest go first."""
    batch_size: int = 256
    """Transitions per gradient step, sampled uniformly with replacement."""
    learning_starts: int = 5_000
    """Environment steps of pure collection (SAC and TD3: uniformly random actions) before the
    first gradient step."""
    train_frequency: int = 1
    """Take gradient steps every this many environment steps."""
    gradient_steps: int = 1
    """Gradient steps each time training is due (the update-to-data ratio is
    gradient_steps / train_frequency)."""
    tau: float = 0.005
    """Target update θ⁻ ← τθ + (1 − τ)θ⁻ each time the targets move: 1 copies the online
    network, < 1 is Polyak averaging."""
    n_step: int = 1
    """Bootstrap after n steps, stopped at an episode end (a truncation still bootstraps from
    its true final observation)."""
    checkpoint_replay: bool = True
    """Save the replay buffer in checkpoints, so that a resumed run continues exactly. False keeps
    checkpoints small; a resumed run then refills an empty buffer (and is no longer identical)."""
    log_every: int = 1_000
    """Write a metrics row every this many environment steps (and at each multiple of
    eval_every and checkpoint_every, where an evaluation or checkpoint is written with a row)."""


def check_off_policy_config(config: OffPolicyConfig) -> None:
    check_run_config(config)
    positive(
        config,
        "buffer_size",
        "batch_size",
        "train_frequency",
        "gradient_steps",
        "tau",
        "n_step",
        "log_every",
    )
    non_negative(config, "learning_starts")
    in_unit_interval(config, "tau")


@dataclasses.dataclass(frozen=True)
class ContinuousControlConfig(OffPolicyConfig):
    """The fields SAC and TD3 share: an actor, K critics with Polyak targets, and the device
    they train on."""

    env: str = "Pendulum-v1"
    """Gymnasium environment id with a bounded Box action space, e.g. Pendulum-v1,
    HalfCheetah-v5 (pip install 'rlgrad[mujoco]')."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    lr: float = 3e-4
    """Adam learning rate of the actor (and of SAC's temperature)."""
    critic_lr: float | None = None
    """Adam learning rate of the critics (none: lr)."""
    num_critics: int = 2
    """Critics K; the targets use the smallest of their values."""
    policy_delay: int = 1
    """Update the actor on every policy_delay-th gradient step (the critics on each)."""
    matmul_precision: str = "float32"
    """float32, or bfloat16: matmuls on bfloat16-rounded inputs with float32 sums (weights and
    Adam stay float32), 3-4× faster layers on CPUs with AMX/AVX512-BF16."""
    device: str = "cpu"
    """Where the networks, the replay buffer and the gradient steps run: cpu, cuda, cuda:N or
    auto (cuda when PyTorch sees a GPU). The environments always step on the CPU."""
    eval_every: int = 5_000


def resolve_device(name: str):
    """The ``torch.device`` a config's ``device`` field names ('auto': cuda when available), or a
    ValueError saying why it cannot be used here."""
    import torch

    require(isinstance(name, str), f"config field 'device' must be a string; got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    require(
        device is not None and device.type in ("cpu", "cuda"),
        f"config field 'device' must be cpu, cuda, cuda:N or auto; got {name!r}",
    )
    if device.type == "cuda":
        require(
            torch.cuda.is_available(),
            f"config field 'device' = {name!r}, but this PyTorch sees no CUDA GPU "
            f"(torch {torch.__version__}); use --config.device cpu, or install a CUDA build",
        )
        require(
            device.index is None or device.index < torch.cuda.device_count(),
            f"config field 'device' = {name!r}, but only {torch.cuda.device_count()} CUDA "
            "device(s) are visible",
        )
    return device


def check_continuous_control_config(config: ContinuousControlConfig) -> None:
    check_off_policy_config(config)
    device = resolve_device(config.device)
    require(
        not (device.type == "cuda" and config.matmul_precision == "bfloat16"),
        "config field 'matmul_precision' = 'bfloat16' sets the CPU's (oneDNN) matmuls and does "
        f"nothing on device {config.device!r}; use float32 there",
    )
    positive(config, "num_critics", "policy_delay")
    require(
        config.matmul_precision in ("float32", "bfloat16"),
        f"config field 'matmul_precision' must be float32 or bfloat16; got "
        f"{config.matmul_precision!r}",
    )
    require(
        config.critic_lr is None or config.critic_lr > 0,
        f"config field 'critic_lr' must be > 0 or none; got {config.critic_lr!r}",
    )
    require(
        config.buffer_size // config.num_envs > config.n_step
        and config.buffer_size >= config.batch_size,
        f"config field 'buffer_size' = {config.buffer_size} must hold a batch "
        f"(batch_size = {config.batch_size}) and more than n_step = {config.n_step} steps per "
        f"environment (num_envs = {config.num_envs})",
    )
