"""A training run on disk: config, metrics, TensorBoard, checkpoints, evaluation, progress, Ctrl-C.

A trainer creates one :class:`Run` after building its environment, networks and optimizer, calls
:meth:`Run.end_iteration` after each update, and :meth:`Run.finish` at the end. The run directory:

    config.json         the algorithm and every config field
    metrics.csv         one row per update (step, wall_s, train_s, sps, returns, losses, ...)
    events.out.tfevents.*   the same scalars for TensorBoard, when TensorBoard is installed
    checkpoints/latest.pt   everything needed to resume exactly; step_*.pt periodic copies
    summary.json        final and best evaluation, time to the threshold
    learning_curve.png  evaluation and training returns against environment steps
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rlgrad import NonFiniteError
from rlgrad.errors import BadInputError
from rlgrad.support import checkpoints, configs
from rlgrad.support.envs import VectorEnv
from rlgrad.support.evaluation import evaluate

TIMING_COLUMNS = ("wall_s", "train_s", "sps")
BASE_COLUMNS = (
    "step",
    "update",
    "wall_s",
    "train_s",
    "sps",
    "episode_return_mean",
    "episode_length_mean",
    "eval_return_mean",
    "eval_return_std",
)
SOLVED_AFTER = 3  # consecutive evaluations at or above the threshold


class TrainingError(RuntimeError):
    """A run stopped because a loss, gradient or parameter stopped being finite."""


@dataclass
class History:
    """What ``train`` returns: the metric rows (as in metrics.csv) and the summary."""

    run_dir: Path
    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def column(self, name: str) -> list[float]:
        return [row[name] for row in self.rows if row.get(name) not in (None, "")]


def solved_at(rows: list[dict], threshold: float | None) -> dict | None:
    """The first of SOLVED_AFTER consecutive evaluation rows with a return ≥ threshold."""
    if threshold is None:
        return None
    evals = [row for row in rows if row.get("eval_return_mean") not in (None, "")]
    for i in range(len(evals) - SOLVED_AFTER + 1):
        if all(float(r["eval_return_mean"]) >= threshold for r in evals[i : i + SOLVED_AFTER]):
            return evals[i]
    return None


def default_threshold(env_id: str) -> float | None:
    import gymnasium as gym

    return gym.spec(env_id).reward_threshold


def default_run_dir(algorithm: str, config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{algorithm}-{config.env}-seed{config.seed}-{stamp}"


class Run:
    """Owns the run directory, the clocks and the schedule of evaluations and checkpoints."""

    def __init__(
        self,
        algorithm: str,
        config,
        run_dir: str | Path | None,
        *,
        env: VectorEnv,
        modules: dict,
        generator: torch.Generator,
        resume: bool = False,
        checkpoint: str | Path | None = None,
        progress: bool = False,
    ):
        self.algorithm, self.config = algorithm, config
        self.env, self.modules, self.generator = env, modules, generator
        self.agent = modules["agent"]
        self.dir = Path(run_dir) if run_dir is not None else default_run_dir(algorithm, config)
        self.threshold = (
            config.eval_threshold
            if config.eval_threshold is not None
            else default_threshold(config.env)
        )
        self.steps = self.updates = 0
        self.train_s = self.wall_offset = 0.0
        self.rows: list[dict] = []
        self.columns: list[str] | None = None
        self.stop_requested = False
        self.interrupted = False
        self.checkpoint_dir = self.dir / "checkpoints"
        if resume:
            self._restore(Path(checkpoint) if checkpoint else self.checkpoint_dir / "latest.pt")
        else:
            if (self.dir / "metrics.csv").exists():
                raise BadInputError(
                    f"run directory {str(self.dir)!r} already holds a run; resume it with "
                    f"`rlgrad train --resume {self.dir}` or choose another --run-dir"
                )
            self.dir.mkdir(parents=True, exist_ok=True)
            configs.save(config, algorithm, self.dir / "config.json")
        self.started = time.perf_counter()
        self._rewrite_metrics()
        self.tensorboard = self._open_tensorboard()
        self.bar = self._open_progress_bar() if progress else None
        self._previous_handler = self._catch_ctrl_c()
        if not resume:
            self.save_checkpoint()  # so that there is always a last good checkpoint

    # ----- the clocks -----

    @property
    def wall_s(self) -> float:
        return self.wall_offset + time.perf_counter() - self.started

    @contextlib.contextmanager
    def training(self):
        """Time the enclosed collection and update as training time (evaluation excluded)."""
        start = time.perf_counter()
        try:
            yield
        except NonFiniteError as error:
            # The formula layer refuses NaN and inf; during training that means the run diverged.
            # Any other error is a bug or a bad argument, and surfaces as itself.
            self.fail("an input of a formula", f"non-finite ({error})")
        finally:
            self.train_s += time.perf_counter() - start

    @property
    def done(self) -> bool:
        if self.config.stop_when_solved and solved_at(self.rows, self.threshold) is not None:
            return True
        return self.steps >= self.config.total_steps or self.stop_requested

    def progress_fraction(self) -> float:
        """The fraction of total_steps already taken, for schedules such as LR annealing."""
        return min(self.steps / self.config.total_steps, 1.0)

    # ----- one row per update -----

    def end_iteration(self, steps: int, metrics: dict[str, float | None]) -> None:
        """Count ``steps``, check ``metrics`` are finite, evaluate and checkpoint when due."""
        previous = self.steps
        self.steps += steps
        self.updates += 1
        for name, value in metrics.items():
            if value is not None and not math.isfinite(value):
                self.fail(name, value)
        self.check_parameters()
        recent = list(self.env.finished)
        row = {
            "step": self.steps,
            "update": self.updates,
            "wall_s": round(self.wall_s, 4),
            "train_s": round(self.train_s, 4),
            "sps": round(self.steps / max(self.train_s, 1e-9), 1),
            "episode_return_mean": float(np.mean([r for r, _ in recent])) if recent else "",
            "episode_length_mean": float(np.mean([n for _, n in recent])) if recent else "",
            "eval_return_mean": "",
            "eval_return_std": "",
            # None: not measured in this update (e.g. no gradient step yet); an empty cell
            **{name: "" if value is None else float(value) for name, value in metrics.items()},
        }
        every = self.config.eval_every
        if (
            every and self.steps // every > previous // every
        ) or self.steps >= self.config.total_steps:
            returns = self.evaluate(self.config.eval_episodes)
            row["eval_return_mean"] = float(returns.mean())
            row["eval_return_std"] = float(returns.std())
        self._append(row)
        every = self.config.checkpoint_every
        if (every and self.steps // every > previous // every) or self.stop_requested:
            self.save_checkpoint()

    def evaluate(self, episodes: int) -> np.ndarray:
        return evaluate(
            self.agent,
            self.config.env,
            episodes,
            self.config.seed,
            obs_stats=self.env.obs_stats.state_dict(),
            normalize_obs=self.env.normalize_obs,
        )

    def _append(self, row: dict) -> None:
        self.rows.append(row)
        if self.columns is None:
            self.columns = list(BASE_COLUMNS) + [k for k in row if k not in BASE_COLUMNS]
            self._rewrite_metrics()
        else:
            with open(self.dir / "metrics.csv", "a", newline="") as handle:
                csv.DictWriter(handle, self.columns).writerow(row)
        if self.tensorboard is not None:
            for name, value in row.items():
                if name not in ("step", "update") and value != "":
                    self.tensorboard.add_scalar(name, value, self.steps)
        if self.bar is not None:
            self.bar.update(self.steps - self.bar.n)
            shown = {"sps": f"{row['sps']:.0f}"}
            if row["episode_return_mean"] != "":
                shown["return"] = f"{row['episode_return_mean']:.1f}"
            evals = [r["eval_return_mean"] for r in self.rows if r["eval_return_mean"] != ""]
            if evals:
                shown["eval"] = f"{evals[-1]:.1f}"
            self.bar.set_postfix(shown, refresh=False)

    def _rewrite_metrics(self) -> None:
        if self.columns is None and self.rows:
            self.columns = list(BASE_COLUMNS) + [k for k in self.rows[0] if k not in BASE_COLUMNS]
        if self.columns is None:
            return
        with open(self.dir / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, self.columns)
            writer.writeheader()
            writer.writerows(self.rows)

    # ----- failures -----

    def fail(self, quantity: str, value: object) -> None:
        """Stop the run: a non-finite quantity must not reach a checkpoint."""
        self.close()
        self.env.close()
        raise TrainingError(
            f"{quantity} became {value} at step {self.steps} (update {self.updates}); the run "
            f"stopped and kept its last good checkpoint, {self.checkpoint_dir / 'latest.pt'} "
            "(try a lower lr, max_grad_norm, or normalize_obs)"
        )

    def check_parameters(self) -> None:
        for name, parameter in self.agent.named_parameters():
            if not bool(torch.isfinite(parameter).all()):
                self.fail(f"parameter '{name}'", "non-finite")

    # ----- checkpoints -----

    def save_checkpoint(self) -> Path:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "algorithm": self.algorithm,
            "config": configs.to_dict(self.config),
            "steps": self.steps,
            "updates": self.updates,
            "train_s": self.train_s,
            "wall_s": self.wall_s,
            "rows": self.rows,
            "columns": self.columns,
            "modules": {name: module.state_dict() for name, module in self.modules.items()},
            "env": self.env.state(),
            "env_stats": self.env.stats_state(),
            **checkpoints.random_states(self.generator),
        }
        latest = self.checkpoint_dir / "latest.pt"
        checkpoints.save(state, latest)
        periodic = self.checkpoint_dir / f"step_{self.steps:010d}.pt"
        checkpoints.save(state, periodic)
        kept = sorted(self.checkpoint_dir.glob("step_*.pt"))
        for old in kept[: max(len(kept) - max(self.config.keep_checkpoints, 1), 0)]:
            old.unlink()
        return latest

    def _restore(self, path: Path) -> None:
        if not path.exists():
            raise BadInputError(f"no checkpoint to resume from at {str(path)!r}")
        # via the CPU: load_state_dict then copies every tensor to wherever its module lives
        state = torch.load(path, weights_only=False, map_location="cpu")
        for name, module in self.modules.items():
            module.load_state_dict(state["modules"][name])
        # in place: trainers hold env. Environments a checkpoint could not hold restart with
        # new episodes, seeded by the run's seed and step, so that a resume is still repeatable
        if not self.env.load_state(state["env"], self.config.seed + state["steps"]):
            print(
                f"rlgrad: {self.config.env} cannot be saved in a checkpoint (asynchronous or "
                "Box2D environments): the run continues with new episodes, not bit-identically",
                file=sys.stderr,
            )
        reseed = self.config.seed + state["steps"]
        if not checkpoints.restore_random_states(state, self.generator, reseed):
            print(
                f"rlgrad: this checkpoint's random draws were made on another device than "
                f"{self.generator.device.type}: the run continues with new ones, not "
                "bit-identically",
                file=sys.stderr,
            )
        self.steps, self.updates = state["steps"], state["updates"]
        self.train_s, self.wall_offset = state["train_s"], state["wall_s"]
        self.rows, self.columns = list(state["rows"]), state["columns"]

    # ----- Ctrl-C -----

    def _catch_ctrl_c(self):
        if threading.current_thread() is not threading.main_thread():
            return None

        def request_stop(signum, frame):
            if self.stop_requested:  # a second Ctrl-C: stop now, the last checkpoint is kept
                raise KeyboardInterrupt
            self.stop_requested = self.interrupted = True
            print(
                "\nrlgrad: stopping after this update and saving a checkpoint "
                "(Ctrl-C again to abort at once)",
                file=sys.stderr,
            )

        return signal.signal(signal.SIGINT, request_stop)

    # ----- the end -----

    def _open_tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # TensorBoard is optional
            return None
        return SummaryWriter(str(self.dir), purge_step=self.steps if self.steps else None)

    def _open_progress_bar(self):
        from tqdm.auto import tqdm

        return tqdm(
            total=self.config.total_steps,
            initial=self.steps,
            unit="step",
            unit_scale=True,
            desc=f"{self.algorithm} {self.config.env}",
            dynamic_ncols=True,
        )

    def summary(self) -> dict:
        evals = [r for r in self.rows if r["eval_return_mean"] != ""]
        solved = solved_at(self.rows, self.threshold)
        best = max(evals, key=lambda r: r["eval_return_mean"]) if evals else None
        return {
            "algorithm": self.algorithm,
            "env": self.config.env,
            "seed": self.config.seed,
            "steps": self.steps,
            "train_s": round(self.train_s, 3),
            "wall_s": round(self.wall_s, 3),
            "final_eval_return_mean": evals[-1]["eval_return_mean"] if evals else None,
            "best_eval_return_mean": best["eval_return_mean"] if best else None,
            "best_eval_step": best["step"] if best else None,
            "threshold": self.threshold,
            "solved_step": solved["step"] if solved else None,
            "solved_train_s": solved["train_s"] if solved else None,
            "solved_wall_s": solved["wall_s"] if solved else None,
            "interrupted": self.interrupted,
        }

    def close(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None

    def finish(self) -> History:
        if not self.interrupted:
            self.save_checkpoint()
        self.close()
        summary = self.summary()
        (self.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        try:
            from rlgrad.support.plots import learning_curve

            learning_curve([self.dir], self.dir / "learning_curve.png")
        except ImportError:  # matplotlib is optional
            pass
        self.env.close()
        return History(self.dir, self.rows, summary)
