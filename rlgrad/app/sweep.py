"""``rlgrad sweep``: every (environment, config, seed) trial as its own Ray task.

    rlgrad sweep ppo --env CartPole-v1,Acrobot-v1 --seeds 0-9 --set config.lr=1e-3,3e-3

The sweep directory holds ``sweep.json``, the index, and ``runs/``, one ordinary run directory per
trial (``rlgrad eval``, ``plot`` and ``report`` read them). The index says what the sweep is
(algorithm, environments, seeds, the base fields per environment, the grid of configs) and, per
trial, which environment, config and seed, where it writes, and its state: ``pending``,
``running``, ``done``, ``failed`` (with a one-line reason) or ``interrupted``. Results stay in the
run directories; the index repeats none of them.

Faults lose nothing: a trial whose worker process dies is retried by Ray and resumes from its
last checkpoint; Ctrl-C stops the running trials after their current update, with a checkpoint,
and ``rlgrad sweep --resume DIR`` runs only what is not done.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from rlgrad.app import presets
from rlgrad.app.trials import (
    DONE,
    FAILED,
    INTERRUPTED,
    PENDING,
    RUNNING,
    Outcome,
    Trial,
    TrialPool,
)
from rlgrad.errors import BadInputError
from rlgrad.support import configs
from rlgrad.support.run_format import RunFiles, read_run

INDEX = "sweep.json"
FORMAT = "rlgrad-sweep/1"


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,3,7"`` or ``"0-4,10-14"`` as a sorted list of distinct seeds.

    >>> parse_seeds("0-2,7")
    [0, 1, 2, 7]
    """
    seeds: set[int] = set()
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            seeds.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise BadInputError(
            f"--seeds must look like 0-9 or 0,3,7 or 0-4,10-14; got {text!r}"
        ) from None
    if not seeds:
        raise BadInputError(f"--seeds names no seed: {text!r}")
    return sorted(seeds)


def split_values(text: str) -> list[str]:
    """Split ``V1,V2,...`` at commas outside parentheses, so tuples stay whole.

    >>> split_values("(64,64),(128,128)")
    ['(64,64)', '(128,128)']
    """
    values, depth, current = [], 0, ""
    for character in text:
        depth += {"(": 1, ")": -1}.get(character, 0)
        if character == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += character
    values.append(current.strip())
    return [v for v in values if v]


def parse_grid(settings: list[str]) -> dict[str, list[str]]:
    """``["config.lr=1e-3,3e-3", "config.epochs=4"]`` as ``{"lr": ["1e-3", "3e-3"], ...}``."""
    grid: dict[str, list[str]] = {}
    for setting in settings:
        name, equals, values = setting.partition("=")
        name = name.strip().removeprefix("config.")
        if not equals or not name or not split_values(values):
            raise BadInputError(f"--set takes config.FIELD=V1,V2,...; got {setting!r}")
        grid[name] = split_values(values)
    return grid


def grid_configs(grid: dict[str, list[str]]) -> list[dict]:
    """One ``{"id", "label", "overrides"}`` per point of the grid's Cartesian product; the
    label names the fields that vary (a field set to one value is part of every config)."""
    names = list(grid)
    points = list(itertools.product(*(grid[n] for n in names)))
    varying = [n for n in names if len(grid[n]) > 1]
    configs = []
    for i, point in enumerate(points):
        overrides = dict(zip(names, point, strict=True))
        shown = varying or names  # nothing varies: name what was set
        label = ",".join(f"{n}={overrides[n]}" for n in shown)
        configs.append(
            {
                "id": f"c{i}" if len(points) > 1 else "base",
                "label": label or "base",
                "overrides": overrides,
            }
        )
    return configs


@dataclass
class Sweep:
    """The index of a sweep directory, kept on disk after every change of state."""

    directory: Path
    spec: dict
    trials: list[dict] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.directory / INDEX

    def save(self) -> None:
        temporary = self.path.with_name(f".{INDEX}.tmp")
        temporary.write_text(json.dumps({**self.spec, "trials": self.trials}, indent=1) + "\n")
        os.replace(temporary, self.path)

    @classmethod
    def load(cls, directory: str | Path) -> Sweep:
        directory = Path(directory)
        path = directory / INDEX
        if not path.exists():
            raise BadInputError(f"{str(directory)!r} is not a sweep directory (no {INDEX})")
        saved = json.loads(path.read_text())
        if saved.get("format") != FORMAT:
            raise BadInputError(f"{str(path)!r} is not a {FORMAT} index")
        trials = saved.pop("trials")
        return cls(directory, saved, trials)

    def trial(self, entry: dict) -> Trial:
        """The Trial of an index entry: base fields, the config's overrides, the seed."""
        config_spec = next(c for c in self.spec["configs"] if c["id"] == entry["config"])
        base = {**self.spec["base_fields"][entry["env"]]}
        if self.spec.get("total_steps") is not None:
            base["total_steps"] = self.spec["total_steps"]
        config = presets.build_config(
            self.spec["algorithm"],
            entry["env"],
            base,
            {**config_spec["overrides"], "seed": entry["seed"]},
        )
        run_dir = (self.directory / entry["run_dir"]).resolve()
        return Trial(entry["key"], self.spec["algorithm"], configs.to_dict(config), str(run_dir))

    def count(self, state: str) -> int:
        return sum(entry["state"] == state for entry in self.trials)


def create(
    directory: str | Path,
    algorithm: str,
    envs: list[str],
    seeds: list[int],
    grid: dict[str, list[str]],
    base: str = presets.SHIPPED,
    total_steps: int | None = None,
) -> Sweep:
    """A new sweep index in ``directory``; every config is checked for unknown fields and
    unparsable values before anything runs (a value out of range fails its own trials)."""
    import gymnasium

    directory = Path(directory)
    if (directory / INDEX).exists():
        raise BadInputError(
            f"{str(directory)!r} already holds a sweep; continue it with "
            f"`rlgrad sweep --resume {directory}` or choose another --out"
        )
    for env in envs:
        try:
            gymnasium.spec(env)
        except gymnasium.error.Error as error:
            raise BadInputError(f"--env: unknown environment {env!r} ({error})") from None
    config_specs = grid_configs(grid)
    base_fields = {env: presets.base_fields(algorithm, env, base) for env in envs}
    spec = {
        "format": FORMAT,
        "algorithm": algorithm,
        "envs": envs,
        "seeds": seeds,
        "base": base,
        "base_fields": base_fields,
        "total_steps": total_steps,
        "grid": grid,
        "configs": config_specs,
    }
    sweep = Sweep(directory, spec)
    for env, config_spec, seed in itertools.product(envs, config_specs, seeds):
        key = f"{env}/{config_spec['id']}/seed{seed}"
        sweep.trials.append(
            {
                "key": key,
                "env": env,
                "config": config_spec["id"],
                "seed": seed,
                "run_dir": f"runs/{env}-{config_spec['id']}-seed{seed}",
                "state": PENDING,
                "reason": None,
                "resumed_from_step": None,
            }
        )
    for entry in sweep.trials[:: len(seeds)]:  # parse every config once, before anything runs
        sweep.trial(entry)
    directory.mkdir(parents=True, exist_ok=True)
    sweep.save()
    return sweep


def seed_blocks(entries: list[dict], batched: bool, slots: int, per_task: int | None) -> list:
    """The trials to run, in blocks that one task trains together: the seeds of one
    (environment, config), ``per_task`` at a time, or, without ``per_task``, split evenly so
    that the blocks fill ``slots`` tasks; one trial a block when the trainer has no
    ``train_seeds`` (``batched`` False).

    >>> entries = [{"env": "E", "config": "c0", "seed": s} for s in range(5)]
    >>> [[e["seed"] for e in block] for block in seed_blocks(entries, True, 2, None)]
    [[0, 1, 2], [3, 4]]
    """
    if not batched:
        return [[entry] for entry in entries]
    groups: dict[tuple, list[dict]] = {}
    for entry in entries:
        groups.setdefault((entry["env"], entry["config"]), []).append(entry)
    blocks = []
    for group in groups.values():
        size = per_task or max(-(-len(group) // max(slots, 1)), 1)
        blocks += [group[i : i + size] for i in range(0, len(group), size)]
    return blocks


def run(
    sweep: Sweep,
    pool: TrialPool,
    *,
    retry_failed: bool = False,
    progress=True,
    seeds_per_task: int | None = None,
) -> int:
    """Run every trial that is not done; return 0, 1 if any failed, or 130 after Ctrl-C.

    The seeds of one (environment, config) train together in a task, as one batched
    computation, when the trainer can (``train_seeds``): ``seeds_per_task`` of them, or by
    default as many as fill the pool's slots evenly."""
    from rlgrad.app.registry import module

    wanted = {PENDING, RUNNING, INTERRUPTED} | ({FAILED} if retry_failed else set())
    entries = [entry for entry in sweep.trials if entry["state"] in wanted]
    batched = hasattr(module(sweep.spec["algorithm"]), "train_seeds")
    queue = deque(seed_blocks(entries, batched, pool.limit, seeds_per_task))
    by_key = {entry["key"]: entry for entry in sweep.trials}
    bar = _progress_bar(sweep, len(entries)) if progress else None

    def record(trial: Trial, outcome: Outcome) -> None:
        entry = by_key[trial.key]
        entry["state"] = outcome.state
        entry["reason"] = outcome.reason
        if outcome.resumed_from_step is not None:
            entry["resumed_from_step"] = outcome.resumed_from_step
        if bar is not None and outcome.state in (DONE, FAILED):
            bar.update(1)

    try:
        while queue or pool.in_flight:
            while queue and pool.has_room:
                block = queue.popleft()
                for entry in block:
                    entry["state"] = RUNNING
                pool.submit([sweep.trial(entry) for entry in block])
            sweep.save()
            for trial, outcome in pool.wait(timeout=1.0):
                record(trial, outcome)
            if bar is not None and bar.postfix != _postfix(sweep):  # redraw on a change only
                bar.set_postfix_str(_postfix(sweep), refresh=True)
    except KeyboardInterrupt:
        print(
            "\nrlgrad sweep: stopping; running trials save a checkpoint first "
            "(Ctrl-C again to stop at once)",
            file=sys.stderr,
        )
        try:
            for trial, outcome in pool.cancel():
                record(trial, outcome)
        except KeyboardInterrupt:
            for trial, outcome in pool.abandon():
                record(trial, outcome)
        for entry in sweep.trials:
            if entry["state"] == RUNNING:
                entry["state"] = INTERRUPTED
        return 130
    finally:
        sweep.save()
        if bar is not None:
            bar.close()
    return 1 if sweep.count(FAILED) else 0


def _counts(sweep: Sweep) -> dict[str, int]:
    return {
        "done": sweep.count(DONE),
        "running": sweep.count(RUNNING),
        "failed": sweep.count(FAILED),
    }


def _postfix(sweep: Sweep) -> str:
    return ", ".join(f"{name}={count}" for name, count in _counts(sweep).items())


def _progress_bar(sweep: Sweep, to_run: int):
    from tqdm.auto import tqdm

    total = len(sweep.trials)
    return tqdm(
        total=total,
        initial=total - to_run,
        unit="trial",
        desc=f"sweep {sweep.spec['algorithm']}",
        dynamic_ncols=True,
    )


def summary_text(sweep: Sweep) -> str:
    """What the sweep did, with the reason of each failed trial and what to run next."""
    counts = _counts(sweep)
    lines = [
        f"sweep {sweep.directory}: {counts['done']} done, {counts['failed']} failed, "
        f"{len(sweep.trials) - counts['done'] - counts['failed']} not finished "
        f"(of {len(sweep.trials)} trials)"
    ]
    labels = {c["id"]: c["label"] for c in sweep.spec["configs"]}
    done: dict[tuple, list[RunFiles]] = {}
    for entry in sweep.trials:
        if entry["state"] == DONE:
            key = (entry["env"], labels[entry["config"]])
            done.setdefault(key, []).append(read_run(sweep.directory / entry["run_dir"]))
    for (env, label), runs in done.items():
        solved = sum(run.solved is not None for run in runs)
        # a run that solved and then fell below the threshold: its best.pt holds the solved agent
        fell = sum(run.solved is not None and not run.solved_to_the_end for run in runs)
        finals = [run.final_return for run in runs if run.final_return is not None]
        bests = [run.best_return for run in runs if run.best_return is not None]
        text = f"  {env} {label}: solved {solved} of {len(runs)} done"
        if fell:
            text += f" ({fell} below the threshold again at the end)"
        if finals:
            text += (
                f"; final return mean {sum(finals) / len(finals):.1f}, "
                f"best {sum(bests) / len(bests):.1f} (checkpoints/best.pt)"
            )
        lines.append(text)
    for entry in sweep.trials:
        if entry["state"] == FAILED:
            lines.append(f"  failed {entry['key']}: {entry['reason']}")
    if counts["done"] + counts["failed"] < len(sweep.trials):
        lines.append(f"  continue with `rlgrad sweep --resume {sweep.directory}`")
    lines.append(f"  statistics: `rlgrad report {sweep.directory}`")
    return "\n".join(lines)
