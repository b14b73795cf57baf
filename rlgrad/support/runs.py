"""A training run on disk: config, metrics, TensorBoard, checkpoints, evaluation, progress, Ctrl-C.

A trainer creates one :class:`Run` after building its environment, networks and optimizer, calls
:meth:`Run.end_iteration` after each update, and :meth:`Run.finish` at the end. The run directory:

    config.json         the algorithm and every config field
    metrics.csv         one row per update (step, wall_s, train_s, sps, returns, losses, ...)
    events.out.tfevents.*   the same scalars for TensorBoard, when TensorBoard is installed
    checkpoints/latest.pt   everything needed to resume exactly; step_*.pt periodic copies
    checkpoints/best.pt     the agent (and observation statistics) of the best evaluation so far
    summary.json        final and best evaluation, time to the threshold
    learning_curve.png  evaluation and training returns against environment steps

:class:`Run` writes these files through :mod:`rlgrad.support.run_format`, where the one reader
of them (:func:`~rlgrad.support.run_format.read_run`) stands beside the writer.
"""

from __future__ import annotations

import contextlib
import copy
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
from rlgrad.support.evaluation import evaluate, evaluate_seeds
from rlgrad.support.run_format import (
    METRICS_FILE,
    MetricsFile,
    default_threshold,
    evaluations,
    solved_at,
    summarize,
    write_config,
    write_summary,
)
from rlgrad.support.seeded import non_finite_seeds, zero_seed


class TrainingError(RuntimeError):
    """A run stopped because a loss, gradient or parameter stopped being finite."""


@dataclass
class History:
    """What ``train`` returns: the metric rows (as ``run_format.read_rows`` reads metrics.csv
    back, ``None`` for a value not measured in that update) and the summary."""

    run_dir: Path
    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def column(self, name: str) -> list[float]:
        return [row[name] for row in self.rows if row.get(name) is not None]


def single_history(histories: list[History]) -> History:
    """The one history of a ``train_seeds`` call on a single seed, as ``train`` returns it:
    TrainingError if that seed diverged."""
    (history,) = histories
    if "failed" in history.summary:
        raise TrainingError(history.summary["failed"])
    return history


def catch_ctrl_c(requested, request_stop, doing: str):
    """Install the handler of a run's Ctrl-C (in the main thread only): the first calls
    ``request_stop()`` and says ``doing``, so that the run stops after this update with a
    checkpoint; a second (``requested()`` already true) aborts at once, keeping the last
    checkpoint. Returns the previous handler, or None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        if requested():
            raise KeyboardInterrupt
        request_stop()
        print(f"\nrlgrad: {doing} (Ctrl-C again to abort at once)", file=sys.stderr)

    return signal.signal(signal.SIGINT, handler)


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
        catch_ctrl_c: bool = True,
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
        self.evaluation_due = self._checkpoint_due = False  # of the update being recorded
        self.train_s = self.wall_offset = 0.0
        rows: list[dict] = []
        # the agent of the best evaluation so far, as checkpoints/best.pt holds it; latest.pt
        # carries it too, so that a resume writes best.pt from the same trajectory
        self.best: dict | None = None
        self.best_return: float | None = None  # the highest evaluation in rows
        self.stop_requested = False
        self.interrupted = False
        self.checkpoint_dir = self.dir / "checkpoints"
        if resume:
            rows = self._restore(
                Path(checkpoint) if checkpoint else self.checkpoint_dir / "latest.pt"
            )
        else:
            if (self.dir / METRICS_FILE).exists():
                raise BadInputError(
                    f"run directory {str(self.dir)!r} already holds a run; resume it with "
                    f"`rlgrad train --resume {self.dir}` or choose another --run-dir"
                )
            self.dir.mkdir(parents=True, exist_ok=True)
            write_config(self.dir, algorithm, configs.to_dict(config))
        self.started = time.perf_counter()
        self.metrics = MetricsFile(self.dir, rows)  # a resume drops the rows past its checkpoint
        self.tensorboard = self._open_tensorboard()
        self.bar = self._open_progress_bar() if progress else None
        self._previous_handler = self._catch_ctrl_c() if catch_ctrl_c else None
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
        return self.trained or self.stop_requested

    @property
    def trained(self) -> bool:
        """Whether the run has trained all it will: total_steps, or solved with
        ``stop_when_solved`` (a stop request, which ends a run early, is not counted)."""
        if self.config.stop_when_solved and solved_at(self.rows, self.threshold) is not None:
            return True
        return self.steps >= self.config.total_steps

    def progress_fraction(self) -> float:
        """The fraction of total_steps already taken, for schedules such as LR annealing."""
        return min(self.steps / self.config.total_steps, 1.0)

    # ----- one row per update -----

    def end_iteration(
        self,
        steps: int,
        metrics: dict[str, float | None],
        eval_returns: np.ndarray | None = None,
    ) -> None:
        """Count ``steps``, check ``metrics`` are finite, evaluate and checkpoint when due."""
        self.advance(steps)
        self.record(metrics, eval_returns)

    def advance(self, steps: int) -> None:
        """Count the ``steps`` of an update (the first half of :meth:`end_iteration`); after
        it, ``evaluation_due`` says whether this update ends with an evaluation."""
        every = self.config.eval_every
        previous, self.steps = self.steps, self.steps + steps
        self.updates += 1
        crossed = every and self.steps // every > previous // every
        self.evaluation_due = bool(crossed) or self.steps >= self.config.total_steps
        self._checkpoint_due = bool(
            self.config.checkpoint_every
            and self.steps // self.config.checkpoint_every
            > previous // self.config.checkpoint_every
        )

    def record(self, metrics: dict[str, float | None], eval_returns=None) -> None:
        """Write the update's row (the second half of :meth:`end_iteration`): check ``metrics``,
        evaluate when due (or take ``eval_returns``, when the caller evaluated many seeds at
        once) and checkpoint when due."""
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
            "episode_return_mean": float(np.mean([r for r, _ in recent])) if recent else None,
            "episode_length_mean": float(np.mean([n for _, n in recent])) if recent else None,
            "eval_return_mean": None,
            "eval_return_std": None,
            # None: not measured in this update (e.g. no gradient step yet); an empty cell
            **{name: None if value is None else float(value) for name, value in metrics.items()},
        }
        if self.evaluation_due:
            returns = (
                eval_returns
                if eval_returns is not None
                else self.evaluate(self.config.eval_episodes)
            )
            row["eval_return_mean"] = float(returns.mean())
            row["eval_return_std"] = float(returns.std())
            # strictly greater: of equal evaluations the first is the best, as in the summary
            if self.best_return is None or row["eval_return_mean"] > self.best_return:
                self.save_best(row["eval_return_mean"])
        self._append(row)
        if self._checkpoint_due or self.stop_requested:
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
        self.metrics.append(row)
        if self.tensorboard is not None:
            for name, value in row.items():
                if name not in ("step", "update") and value is not None:
                    self.tensorboard.add_scalar(name, value, self.steps)
        if self.bar is not None:
            self.bar.update(self.steps - self.bar.n)
            shown = {"sps": f"{row['sps']:.0f}"}
            if row["episode_return_mean"] is not None:
                shown["return"] = f"{row['episode_return_mean']:.1f}"
            evals = evaluations(self.rows)
            if evals:
                shown["eval"] = f"{evals[-1]['eval_return_mean']:.1f}"
            self.bar.set_postfix(shown, refresh=False)

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
        if not isinstance(self.agent, torch.nn.Module):
            return  # one seed of many: SeedRuns checks every seed's parameters at once
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
            "modules": {name: module.state_dict() for name, module in self.modules.items()},
            "env": self.env.state(),
            "env_stats": self.env.stats_state(),
            "best": self.best,
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

    def save_best(self, eval_return_mean: float) -> Path:
        """Write checkpoints/best.pt: the agent just evaluated at ``eval_return_mean``, with the
        observation statistics it acts with (what :func:`rlgrad.app.agents.load_agent` reads;
        the keys of latest.pt, without what only a resume needs)."""
        self.best_return = eval_return_mean
        self.best = {
            "algorithm": self.algorithm,
            "config": configs.to_dict(self.config),
            "steps": self.steps,
            "eval_return_mean": eval_return_mean,
            # copies: the agent trains on, and best.pt must keep this evaluation's weights
            "modules": {"agent": copy.deepcopy(self.agent.state_dict())},
            "env_stats": copy.deepcopy(self.env.stats_state()),
        }
        return self._write_best()

    def _write_best(self) -> Path:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_dir / "best.pt"
        checkpoints.save(self.best, path)
        return path

    @property
    def rows(self) -> list[dict]:
        """The metric rows so far, as metrics.csv holds them."""
        return self.metrics.rows

    def _restore(self, path: Path) -> list[dict]:
        """Load the checkpoint at ``path`` into the modules, environments and clocks; return
        its metric rows."""
        if not path.exists():
            raise BadInputError(f"no checkpoint to resume from at {str(path)!r}")
        # via the CPU: load_state_dict then copies every tensor to wherever its module lives
        state = torch.load(path, weights_only=False, map_location="cpu")
        saved = state["modules"]
        if "counters" in self.modules and "counters" not in saved:
            # written before the off-policy learners checkpointed their counters: their metric
            # rows carried the count, and that is where such a checkpoint still keeps it
            last = state["rows"][-1].get("total_gradient_steps") if state["rows"] else None
            saved = {**saved, "counters": {"gradient_steps": int(last or 0)}}
        missing = [name for name in self.modules if name not in saved]
        if missing:
            raise BadInputError(
                f"checkpoint {str(path)!r} holds no {', '.join(map(repr, missing))}: it was "
                f"written by another trainer than {self.algorithm!r}"
            )
        for name, module in self.modules.items():
            module.load_state_dict(saved[name])
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
        # checkpoints written before missing values were None held "" for them
        rows = [{k: None if v == "" else v for k, v in row.items()} for row in state["rows"]]
        self.best = state.get("best")
        evals = [row["eval_return_mean"] for row in evaluations(rows)]
        self.best_return = max(evals) if evals else None
        if self.best is not None:
            # a best.pt written after this checkpoint belongs to a trajectory that is undone now
            self._write_best()
        elif (self.checkpoint_dir / "best.pt").exists() and not evals:
            (self.checkpoint_dir / "best.pt").unlink()
        return rows

    # ----- Ctrl-C -----

    def _catch_ctrl_c(self):
        def request_stop():
            self.stop_requested = self.interrupted = True

        return catch_ctrl_c(
            lambda: self.stop_requested,
            request_stop,
            "stopping after this update and saving a checkpoint",
        )

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
        return summarize(
            self.rows,
            algorithm=self.algorithm,
            env=self.config.env,
            seed=self.config.seed,
            threshold=self.threshold,
            train_s=self.train_s,
            wall_s=self.wall_s,
            interrupted=self.interrupted,
        )

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
        write_summary(self.dir, summary)
        try:
            from rlgrad.support.plots import learning_curve

            learning_curve([self.dir], self.dir / "learning_curve.png")
        except ImportError:  # matplotlib is optional
            pass
        self.env.close()
        return History(self.dir, self.rows, summary)


class SeedRuns:
    """The runs of S seeds trained together: one ordinary :class:`Run` (and run directory) per
    seed, driven as one.

    A seed stops on its own: when its run is done (total_steps, or solved with
    ``stop_when_solved``) or when it fails (a non-finite loss, gradient or parameter: it is
    recorded as failed, keeps its last good checkpoint, and the other seeds go on). ``active``
    says which seeds still train; the batch is done when none does. Evaluations of all seeds
    happen at once (:func:`~rlgrad.support.evaluation.evaluate_seeds`), as do the clocks, the
    progress bar and Ctrl-C.
    """

    def __init__(self, runs: list[Run], agents, envs, *, progress: bool = False):
        self.runs, self.agents, self.envs = runs, agents, envs
        self.config = runs[0].config
        self.failed = np.zeros(len(runs), bool)
        self.failures: dict[int, str] = {}
        self.stop_requested = False
        self.bar = self._open_progress_bar() if progress else None
        self._previous_handler = self._catch_ctrl_c()

    @property
    def active(self) -> np.ndarray:
        """``[S]`` bool: the seeds that still train. A stop request ends the loop
        (:attr:`done`) but leaves the seeds active, so that the update it lands in is still
        recorded and checkpointed."""
        return np.array(
            [
                not (failed or run.trained)
                for run, failed in zip(self.runs, self.failed, strict=True)
            ]
        )

    @property
    def done(self) -> bool:
        return self.stop_requested or not self.active.any()

    @property
    def steps(self) -> int:
        """The most steps any seed that still trains has taken (they advance together, unless
        they collect whole episodes)."""
        active = self.active
        return (
            max(run.steps for run, on in zip(self.runs, active, strict=True) if on)
            if active.any()
            else 0
        )

    def progress_fraction(self) -> float:
        return min(self.steps / self.config.total_steps, 1.0)

    def progress_fractions(self) -> list[float]:
        """Each seed's own fraction of total_steps already taken (seeds that collect whole
        episodes advance at their own pace), for per-seed schedules."""
        return [run.progress_fraction() for run in self.runs]

    @contextlib.contextmanager
    def training(self):
        """Time the enclosed collection and update as every active seed's training time.

        A formula that refuses a NaN or inf here cannot say whose it was (under ``per_seed`` the
        formulas do not check; the trainer checks per seed): every seed still training fails,
        keeping its last good checkpoint, and TrainingError stops the batch."""
        active = self.active
        start = time.perf_counter()
        try:
            yield
        except NonFiniteError as error:
            for s in np.flatnonzero(active):
                self.fail(s, "an input of a formula", f"non-finite ({error})")
            self.finish()
            raise TrainingError(f"every seed stopped: non-finite ({error})") from None
        finally:
            elapsed = time.perf_counter() - start
            for run, on in zip(self.runs, active, strict=True):
                if on:
                    run.train_s += elapsed

    def fail(self, seed_index: int, quantity: str, value: object) -> None:
        """Record that seed ``seed_index`` diverged: its run stops with its last good
        checkpoint, the others go on."""
        try:
            self.runs[seed_index].fail(quantity, value)
        except TrainingError as error:
            self._failed(seed_index, error)

    def _failed(self, seed_index: int, error: TrainingError) -> None:
        self.failed[seed_index] = True
        self.failures[seed_index] = str(error)
        zero_seed(self.agents, seed_index)  # its NaN must not reach the batched formulas
        print(f"rlgrad: seed {self.runs[seed_index].config.seed}: {error}", file=sys.stderr)

    def fail_non_finite(self, quantity: str, values: torch.Tensor, seed_axis: int = 0) -> None:
        """Fail every active seed whose slice of ``values`` holds a NaN or an infinity (one host
        sync), so that the batched formulas after this see finite numbers from every seed that
        still trains."""
        finite = torch.isfinite(values.movedim(seed_axis, 0).flatten(1)).all(dim=1).cpu().numpy()
        for s in np.flatnonzero(self.active & ~finite):
            bad = values.movedim(seed_axis, 0)[s]
            self.fail(s, quantity, bad[~torch.isfinite(bad)][0].item())

    def end_iteration(self, steps: int | list[int], metrics: list[dict[str, float | None]]) -> None:
        """Each active seed's :meth:`Run.end_iteration`, with ``metrics[s]`` its row's metrics
        and ``steps`` its environment steps (one number for every seed, or ``steps[s]``: seeds
        that collect whole episodes take as many steps as their episodes last); the
        evaluations that are due are made together."""
        seed_steps = [steps] * len(self.runs) if isinstance(steps, int) else steps
        active = self.active
        for s in np.flatnonzero(active & non_finite_seeds(self.agents).cpu().numpy()):
            self.fail(s, "a parameter", "non-finite")
        active = np.flatnonzero(self.active)
        for s in active:
            self.runs[s].advance(seed_steps[s])
        due = [s for s in active if self.runs[s].evaluation_due]
        returns = self.evaluate(due) if due else {}
        for s in active:
            try:
                self.runs[s].record(metrics[s], returns.get(s))
            except TrainingError as error:
                self._failed(s, error)
        if self.bar is not None:
            self._update_bar()

    def evaluate(self, seed_indices: list[int]) -> dict[int, np.ndarray]:
        """The evaluation returns of the given seeds, ``{seed index: [episodes]}``."""
        device = next(self.agents.parameters()).device

        every = len(seed_indices) == len(self.runs)  # as usual: the seeds advance together

        def act(observations: torch.Tensor) -> np.ndarray:  # [len(seed_indices), E, *obs]
            if every:
                return self.agents.env_actions(self.agents.mode(observations.to(device)))
            every_seed = torch.zeros(len(self.runs), *observations.shape[1:], device=device)
            every_seed[seed_indices] = observations.to(device)
            return self.agents.env_actions(self.agents.mode(every_seed)[seed_indices])

        envs = [self.runs[s].env for s in seed_indices]
        normalize = envs[0].normalize_obs
        returns = evaluate_seeds(
            act,
            self.config.env,
            self.config.eval_episodes,
            [self.runs[s].config.seed for s in seed_indices],
            obs_stats=[env.obs_stats.state_dict() for env in envs] if normalize else None,
            backend=getattr(self.config, "env_backend", "gymnasium"),
            device=getattr(self.envs, "device", "cpu"),
        )
        return dict(zip(seed_indices, returns, strict=True))

    # ----- progress and Ctrl-C -----

    def _open_progress_bar(self):
        from tqdm.auto import tqdm

        return tqdm(
            total=self.config.total_steps,
            unit="step",
            unit_scale=True,
            desc=f"{self.runs[0].algorithm} {self.config.env} × {len(self.runs)} seeds",
            dynamic_ncols=True,
        )

    def _update_bar(self) -> None:
        self.bar.update(self.steps - self.bar.n if self.active.any() else 0)
        solved = sum(solved_at(run.rows, run.threshold) is not None for run in self.runs)
        self.bar.set_postfix(
            {
                "training": int(self.active.sum()),
                "solved": solved,
                "failed": int(self.failed.sum()),
            },
            refresh=False,
        )

    def _catch_ctrl_c(self):
        def request_stop():
            self.stop_requested = True
            for run in self.runs:
                run.stop_requested = run.interrupted = True

        return catch_ctrl_c(
            lambda: self.stop_requested,
            request_stop,
            "stopping every seed after this update and saving their checkpoints",
        )

    def finish(self) -> list[History]:
        """Finish every seed's run (checkpoint, summary, learning curve). One :class:`History`
        per seed, in order; a failed seed's summary holds ``failed``, the reason it stopped."""
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None
        if self.bar is not None:
            self.bar.close()
        if self.stop_requested:  # Ctrl-C: every seed saves where it is
            for s in np.flatnonzero(~self.failed):
                self.runs[s].save_checkpoint()
        histories = []
        for s, run in enumerate(self.runs):
            if self.failed[s]:
                # summary.json says why it stopped: a report counts it as a failed run
                summary = {**run.summary(), "failed": self.failures[s]}
                write_summary(run.dir, summary)
                histories.append(History(run.dir, run.rows, summary))
            else:
                histories.append(run.finish())
        return histories
