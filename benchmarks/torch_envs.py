"""Environment steps per second of rlgrad's torch environments against Gymnasium's vector envs.

    python benchmarks/torch_envs.py [--tasks CartPole-v1,...] [--sizes 1,4,16,64,256,1024,4096]
        [--steps 2000] [--seconds 0.5] [--repeats 5] [--device cpu|cuda] [--threads 1]
        [--out FILE]

For each task of ``rlgrad.envs.ENVIRONMENTS`` (or ``--tasks``) and each number of copies N, the
contenders step N copies of the same task with random actions:

* ``torch float32``, ``torch float64``: ``rlgrad.envs.make(task, N, device, dtype)``;
* ``gym sync``: ``gymnasium.make_vec(task, N, vectorization_mode="sync")`` (N Python copies);
* ``gym vector``: ``vectorization_mode="vector_entry_point"``, Gymnasium's own NumPy-batched
  version, where the task has one (CartPole-v1 does).

Every contender keeps Gymnasium 1.x's time limit and next-step autoreset. The actions of a timed
block are drawn before it starts (a torch tensor ``[steps, N, ...]`` on the environment's device,
a NumPy array for Gymnasium), so drawing them is timed for neither. Steps per second are
N × steps / wall seconds of the block; with ``--device cuda`` the clock is read after
``torch.cuda.synchronize()``, and Gymnasium runs on the CPU as always.

Each contender is built, reset and warmed up once, and its warm-up is timed to choose its block:
as many steps as take about ``--seconds`` (at least 10, at most ``--steps``), so a SyncVectorEnv
of 4,096 copies runs a few dozen steps while one torch copy runs ``--steps``. Then ``--repeats``
rounds time one block of each contender, interleaved (A, B, C, A, B, C, ..., each round starting
one contender later) so that drift of the machine's speed hits all alike; the environments run
on from block to block, through their episodes' ends. Reported: the median steps/s per (task, N,
contender), its interquartile range, and each torch row's median over the best Gymnasium median.
The torch environments draw fresh first states for every copy on every step (no step waits for
the host to ask whether any copy needs one), whereas Gymnasium resets a copy only when its
episode ends, so its cost per step falls as the task's episodes get longer.

One torch thread by default (``--threads``): the torch environments are elementwise ops on
``[N, state]`` tensors, and Gymnasium's copies run on one core.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import gymnasium
import numpy as np
import torch

from rlgrad.envs import ENVIRONMENTS, Discrete, make

SIZES = (1, 4, 16, 64, 256, 1024, 4096)
MIN_STEPS = 10  # a block shorter than this is mostly the clock's own cost
WARMUP_STEPS = 20


class TorchContender:
    """N copies of a task as one rlgrad torch environment, with actions pre-drawn on its device."""

    def __init__(self, task: str, num_envs: int, device: str, dtype: torch.dtype, seed: int):
        self.env = make(task, num_envs, device=device, dtype=dtype, seed=seed)
        self.env.reset()
        self.device = self.env.device
        self.generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.actions = self.draw(WARMUP_STEPS)

    def draw(self, steps: int) -> torch.Tensor:
        space, n = self.env.action_space, self.env.num_envs
        if isinstance(space, Discrete):
            shape = (steps, n)
            return torch.randint(0, space.n, shape, generator=self.generator, device=self.device)
        # float32, what a policy network hands the environment
        low = torch.tensor(space.low, dtype=torch.float32, device=self.device)
        high = torch.tensor(space.high, dtype=torch.float32, device=self.device)
        draws = torch.rand(
            steps, n, *space.shape, generator=self.generator, device=self.device
        )  # (steps, N, action size)
        return low + (high - low) * draws

    def prepare(self, steps: int) -> None:
        if self.actions.shape[0] != steps:
            self.actions = self.draw(steps)
        self.sync()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self) -> float:
        """Seconds to step through the pre-drawn actions."""
        self.sync()
        start = time.perf_counter()
        for actions in self.actions:
            self.env.step(actions)
        self.sync()  # a CUDA step returns before the device has done it
        return time.perf_counter() - start


class GymContender:
    """N copies of a task as a Gymnasium vector environment, with NumPy actions pre-drawn."""

    def __init__(self, task: str, num_envs: int, mode: str, seed: int):
        self.env = gymnasium.make_vec(task, num_envs=num_envs, vectorization_mode=mode)
        self.env.reset(seed=seed)
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed + 1)
        self.actions = self.draw(WARMUP_STEPS)

    def draw(self, steps: int) -> np.ndarray:
        space = self.env.single_action_space
        if isinstance(space, gymnasium.spaces.Discrete):
            return self.rng.integers(0, space.n, size=(steps, self.num_envs))
        draws = self.rng.uniform(space.low, space.high, size=(steps, self.num_envs, *space.shape))
        return draws.astype(space.dtype)

    def prepare(self, steps: int) -> None:
        if self.actions.shape[0] != steps:
            self.actions = self.draw(steps)

    def run(self) -> float:
        start = time.perf_counter()
        for actions in self.actions:
            self.env.step(actions)
        return time.perf_counter() - start

    def close(self) -> None:
        self.env.close()


def contenders(task: str, num_envs: int, device: str, seed: int) -> dict:
    """The contenders for one (task, N), by name, each built and reset."""
    found = {
        "torch float32": TorchContender(task, num_envs, device, torch.float32, seed),
        "torch float64": TorchContender(task, num_envs, device, torch.float64, seed),
        "gym sync": GymContender(task, num_envs, "sync", seed),
    }
    if gymnasium.spec(task).vector_entry_point is not None:
        found["gym vector"] = GymContender(task, num_envs, "vector_entry_point", seed)
    return found


def block_steps(warmup_seconds: float, seconds: float, most: int) -> int:
    """Steps of a timed block: about ``seconds`` at the warm-up's pace, within [10, most]."""
    per_step = warmup_seconds / WARMUP_STEPS
    return max(min(MIN_STEPS, most), min(most, round(seconds / max(per_step, 1e-9))))


def spread(values: list[float]) -> dict:
    """Median and quartiles (Python's 'inclusive' method: the data's own range for 2 values)."""
    if len(values) == 1:
        q1 = q3 = values[0]
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": statistics.median(values), "q1": q1, "q3": q3}


def measure(task: str, num_envs: int, args) -> list[dict]:
    """Rows of one (task, N): each contender's steps/s per repeat, median and quartiles."""
    found = contenders(task, num_envs, args.device, args.seed)
    steps = {}
    for name, contender in found.items():
        contender.run()  # first steps: allocations, caches, lazy initialisation
        steps[name] = block_steps(contender.run(), args.seconds, args.steps)
        contender.prepare(steps[name])
    names = list(found)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:  # interleaved, rotated each round
            seconds = found[name].run()
            samples[name].append(num_envs * steps[name] / seconds)
    for contender in found.values():
        if isinstance(contender, GymContender):
            contender.close()
    rows = [
        {
            "task": task,
            "num_envs": num_envs,
            "contender": name,
            "steps_per_block": steps[name],
            "steps_per_s": values,
            **spread(values),
        }
        for name, values in samples.items()
    ]
    best_gym = max((r for r in rows if r["contender"].startswith("gym")), key=lambda r: r["median"])
    for row in rows:
        if row["contender"].startswith("torch"):
            row["best_gymnasium"] = best_gym["contender"]
            row["vs_best_gymnasium"] = row["median"] / best_gym["median"]
    return rows


def rate(row: dict | None) -> str:
    if row is None:
        return "–"
    return f"{row['median']:,.0f} ({row['q1']:,.0f}–{row['q3']:,.0f})"


def markdown(rows: list[dict]) -> str:
    """One line per (task, N): median steps/s (IQR) of each contender, torch / best Gymnasium."""
    names = ("torch float32", "torch float64", "gym sync", "gym vector")
    lines = [
        "| task | N | " + " | ".join(names) + " | float32 / best gym | float64 / best gym |",
        "|---|---|" + "---|" * (len(names) + 2),
    ]
    cases = dict.fromkeys((r["task"], r["num_envs"]) for r in rows)
    for task, num_envs in cases:
        mine = {r["contender"]: r for r in rows if (r["task"], r["num_envs"]) == (task, num_envs)}
        ratios = [f"{mine[n]['vs_best_gymnasium']:.2f}×" for n in names[:2]]
        cells = [rate(mine.get(n)) for n in names]
        lines.append(f"| {task} | {num_envs:,} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(ENVIRONMENTS), help="comma-separated ids")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="numbers of copies N")
    parser.add_argument("--steps", type=int, default=2000, help="most steps in a timed block")
    parser.add_argument("--seconds", type=float, default=0.5, help="aimed length of a block")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the raw numbers here as JSON")
    args = parser.parse_args(argv)
    args.tasks = args.tasks.split(",")
    unknown = [task for task in args.tasks if task not in ENVIRONMENTS]
    if unknown:
        parser.error(f"--tasks: unknown {unknown}; known: {', '.join(ENVIRONMENTS)}")
    args.sizes = [int(size) for size in args.sizes.split(",")]
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: PyTorch sees no CUDA device here")
    if min(args.sizes) < 1 or args.steps < 1 or args.repeats < 1 or args.seconds <= 0:
        parser.error("--sizes, --steps and --repeats must be ≥ 1, --seconds > 0")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor()
    result = {
        "command": " ".join(["python", "benchmarks/torch_envs.py", *(argv or sys.argv[1:])]),
        "machine": f"{platform.node()} {platform.machine()}, {device_name or 'cpu'}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "seconds_per_block": args.seconds,
        "most_steps_per_block": args.steps,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "rows": [],
    }
    print(
        f"{result['machine']}; torch {torch.__version__} on {args.device}, "
        f"{result['threads']} thread(s); gymnasium {gymnasium.__version__}",
        flush=True,
    )
    for task in args.tasks:
        for num_envs in args.sizes:
            rows = measure(task, num_envs, args)
            result["rows"] += rows
            summary = ", ".join(f"{r['contender']} {r['median']:,.0f}" for r in rows)
            print(f"{task} N={num_envs}: {summary} steps/s", flush=True)
    print("\n" + markdown(result["rows"]))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=1)
    return result


if __name__ == "__main__":
    main()
