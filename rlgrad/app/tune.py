"""``rlgrad tune``: Optuna search in which every trial trains on several seeds.

    rlgrad tune ppo --env CartPole-v1 --trials 40 --seeds-per-trial 5

A config that solves on one lucky seed is not a preset. Each Optuna trial samples a config from
the algorithm's search space (``search_spaces.json``, next to the presets) and trains it on K
tuning seeds (1000, 1001, ... by default, kept away from the seeds people evaluate on), through
the same machinery as ``rlgrad sweep``: all K seeds in one Ray task, as one batched computation,
for a trainer that trains many seeds at once (``train_seeds``), else each seed its own task. The
objective, maximized, is

    objective = n_solved + 1 / (1 + T̄ / 60 s),

where n_solved is how many of the K seeds solved within the budget (``SOLVED_AFTER``
consecutive evaluations at the threshold, :func:`rlgrad.support.run_format.solved_at`, the rule of
every tool) and T̄ the mean training seconds to solve over the seeds that solved (the second term
is 0 when none did). The second term lies in [0, 1), so reliability comes first: one more solved
seed beats any speed-up, and among configs that solve equally often the faster wins. Tuning runs
stop once solved (``stop_when_solved``): the rest of their budget could not change this value.
With batched seeds a seed's training seconds are its batch's, which every trial of a study pays
alike, so the speeds still compare configs with each other.

Pruning (Optuna's median rule) works on intermediate evaluations: at each evaluation step that all
K seeds of a trial have reached, the trial reports the same quantity so far, (seeds solved by that
step, by the same rule) + the mean over seeds of the evaluation return normalized to [0, 1)
between the random policy's return and the threshold; a trial below the median of earlier trials
at the same step stops, its runs saving a checkpoint. A trial also stops as soon as it is sure
to lose to the best trial so far: when its unsolved seeds leave it fewer seeds to solve, or
when, solving as many at best, its seeds have already trained twice as long as the best one's
took to solve (:meth:`Tuner.best_possible`).

The study lives in a database (SQLite in the output directory by default; any Optuna RDB URL
works), so ``rlgrad tune`` with the same ``--storage`` and ``--study-name`` continues it, from
anywhere that reaches the database: several drivers can share one study, and a running trial
sends heartbeats, so that only the trials of a driver that died are asked again. The best config
is written as a preset file that ``rlgrad train --preset FILE`` and ``rlgrad sweep --preset
FILE`` load; by default (:meth:`Tuner.validate`) the few best trials are first trained on ten
validation seeds (2000, 2001, ...) as well, since K seeds measure reliability coarsely, and the
one with the best validation objective is chosen.

Validation asks more than tuning: a preset that solves and then collapses is not robust. The
validation runs train for their **whole budget** (no ``stop_when_solved``), and a validation seed
counts as solved only if it solved *and its last evaluation, at the end of the budget, is still at
or above the threshold* (:func:`rlgrad.support.run_format.solved_to_the_end`; no tolerance: 474.6 on
CartPole's 475 is a collapse). Its time is still the training seconds to the solve. The
validation objective is the formula above over the validation seeds with that rule; the tuning
seeds, which stopped once solved and so cannot show a collapse, are reported beside it but not
mixed in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from rlgrad.app import presets
from rlgrad.app.registry import module
from rlgrad.app.report import random_score
from rlgrad.app.trials import DONE, FAILED, Outcome, Trial, TrialPool
from rlgrad.errors import BadInputError
from rlgrad.support import configs
from rlgrad.support.run_format import RunFiles, default_threshold, read_rows, read_run, solved_at

TIME_SCALE_S = 60.0
SLOWER = 2.0  # a trial this many times slower than the best, at equal reliability, stops


HEARTBEAT_S, STALE_AFTER_S = 10, 60


def _heartbeat_storage(optuna, url: str):
    """An RDB storage whose running trials send heartbeats: a trial silent for STALE_AFTER_S
    (its driver was killed) is failed and asked again by the next driver, while the trials of
    other live drivers sharing the study are left alone."""
    storages = optuna.storages
    with _quiet_optuna():
        if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):  # the names of Optuna ≥ 4.9
            retry = {"heartbeat_stale_trial_callback": storages.RetryHeartbeatStaleTrialCallback(3)}
        else:
            retry = {"failed_trial_callback": storages.RetryFailedTrialCallback(3)}
        return storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_S, grace_period=STALE_AFTER_S, **retry
        )


@contextlib.contextmanager
def _quiet_optuna():
    """Heartbeats with ask/tell (instead of study.optimize) are deliberate here: Optuna's
    experimental-feature and "use optimize" warnings would only confuse the user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
        warnings.filterwarnings("ignore", message=".*experimental.*")
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        yield


@cache
def search_spaces() -> dict[str, dict]:
    """``{algorithm: {field: distribution}}`` from ``search_spaces.json``."""
    text = resources.files("rlgrad.app").joinpath("search_spaces.json").read_text()
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def search_space(algorithm: str) -> dict:
    spaces = search_spaces()
    if algorithm not in spaces:
        raise BadInputError(f"no search space for {algorithm}; known: {', '.join(spaces)}")
    return spaces[algorithm]


def suggest(trial, space: dict, base: dict) -> dict:
    """Sample the fields of ``space`` with the Optuna ``trial``; ``base`` fills the fields a
    ``fraction_of`` distribution refers to when they are not searched."""
    fields: dict = {}
    for name, spec in space.items():
        if "fraction_of" in spec:
            continue
        if "float" in spec:
            low, high = spec["float"]
            fields[name] = trial.suggest_float(name, low, high, log=spec.get("log", False))
        elif "int" in spec:
            low, high = spec["int"]
            fields[name] = trial.suggest_int(name, low, high, log=spec.get("log", False))
        elif "choices" in spec:
            # Optuna stores plain values: a list choice (hidden sizes) travels as its string
            choices = [str(tuple(c)) if isinstance(c, list) else c for c in spec["choices"]]
            fields[name] = trial.suggest_categorical(name, choices)
        else:
            raise BadInputError(f"search space field '{name}': unknown distribution {spec}")
    for name, spec in space.items():
        if "fraction_of" in spec:
            fraction = trial.suggest_categorical(f"{name}_fraction", spec["choices"])
            product = math.prod(int(fields.get(f, base.get(f, 1))) for f in spec["fraction_of"])
            fields[name] = max(int(product * fraction), 1)
    return fields


def objective(outcomes: list[tuple[bool, float | None]]) -> float:
    """``n_solved + 1 / (1 + T̄ / 60 s)``; ``outcomes`` holds (solved, training s to solve).

    >>> objective([(True, 60.0), (True, 60.0), (False, None)])  # 2 solved, T̄ = 60 s
    2.5
    """
    times = [t for solved, t in outcomes if solved]
    speed = 1.0 / (1.0 + (sum(times) / len(times)) / TIME_SCALE_S) if times else 0.0
    return len(times) + speed


@dataclass
class ActiveTrial:
    """An Optuna trial whose seeds are running."""

    optuna_trial: object
    fields: dict
    runs: dict[int, Trial]  # seed -> its run
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    reported_steps: set = field(default_factory=set)

    def complete(self) -> bool:
        return len(self.outcomes) == len(self.runs)


def _run_dir_name(fields: dict) -> str:
    digest = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
    return f"config-{digest}"


def _outcome(files: RunFiles, to_the_end: bool = False) -> tuple[bool, float | None]:
    """(solved, training s to solve) of a finished run, as :func:`objective` takes them; with
    ``to_the_end``, solved also needs the last evaluation at the threshold (validation)."""
    solved = files.solved is not None
    if to_the_end:
        solved = files.solved_to_the_end
    return solved, files.solved_train_s if solved else None


class Tuner:
    """Drives one study: asks Optuna for configs, runs their seeds, prunes, tells results."""

    def __init__(
        self,
        algorithm: str,
        env: str,
        out: Path,
        seeds: list[int],
        base: str,
        total_steps: int | None,
        storage: str | None,
        study_name: str | None,
        prune: bool,
        sampler_seed: int,
    ):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.algorithm, self.env, self.out, self.seeds = algorithm, env, Path(out), seeds
        self.space = search_space(algorithm)
        self.base = presets.base_fields(algorithm, env, base)
        if total_steps is not None:
            self.base["total_steps"] = total_steps
        probe = presets.build_config(algorithm, env, self.base, {})
        self.total_steps = probe.total_steps
        self.eval_every = probe.eval_every or probe.total_steps
        self.threshold = probe.eval_threshold
        if self.threshold is None:
            self.threshold = default_threshold(env)
        if self.threshold is None:
            raise BadInputError(f"{env} has no reward threshold; set --set config.eval_threshold")
        self.low = random_score(env)
        self.out.mkdir(parents=True, exist_ok=True)
        self.storage = storage or f"sqlite:///{(self.out / 'study.db').resolve()}"
        self.rdb = _heartbeat_storage(optuna, self.storage)
        self.study = optuna.create_study(
            study_name=study_name or f"{algorithm}-{env}",
            storage=self.rdb,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=sampler_seed, multivariate=True),
            pruner=(
                optuna.pruners.MedianPruner(
                    n_startup_trials=5, n_warmup_steps=self.total_steps // 4
                )
                if prune
                else optuna.pruners.NopPruner()
            ),
            load_if_exists=True,
        )
        self.active: dict[int, ActiveTrial] = {}
        self.pool: TrialPool | None = None
        # the trainer trains many seeds in one process: a trial's seeds are one task
        self.batched = hasattr(module(self.algorithm), "train_seeds")
        self.prune_trials = prune

    # ----- the study -----

    def recover(self) -> None:
        """Trials whose driver stopped sending heartbeats (it was killed) are marked failed and
        asked again; trials another live driver is running on the same study are left alone."""
        with _quiet_optuna():
            self.optuna.storages.fail_stale_trials(self.study)

    def heartbeat(self) -> None:
        for active in self.active.values():
            # Optuna's own optimize loop beats this way; ask/tell must do it itself
            self.rdb.record_heartbeat(active.optuna_trial._trial_id)

    def enqueue_base(self) -> None:
        """Start a new study from the base preset's values, when they lie in the space."""
        if self.study.trials:
            return
        params = {}
        base = configs.to_dict(presets.build_config(self.algorithm, self.env, self.base, {}))
        for name, spec in self.space.items():
            value = base[name]
            if isinstance(value, list | tuple):
                value = str(tuple(value))
            if "fraction_of" in spec:  # the base's share of the product it is a fraction of
                fraction = value / math.prod(base[f] for f in spec["fraction_of"])
                if fraction in spec["choices"]:
                    params[f"{name}_fraction"] = fraction
                continue
            if "choices" in spec:
                choices = [str(tuple(c)) if isinstance(c, list) else c for c in spec["choices"]]
                if value in choices:
                    params[name] = value
            elif (
                min(spec.get("float", spec.get("int")))
                <= value
                <= max(spec.get("float", spec.get("int")))
            ):
                params[name] = value
        if params:
            self.study.enqueue_trial(params, skip_if_exists=True)

    def finished_count(self) -> int:
        states = self.optuna.trial.TrialState
        done = (states.COMPLETE, states.PRUNED, states.FAIL)
        return len(self.study.get_trials(deepcopy=False, states=done))

    def start_trial(self, pool: TrialPool) -> None:
        with _quiet_optuna():
            optuna_trial = self.study.ask()
        sampled = suggest(optuna_trial, self.space, self.base)
        fields = {**self.base, **sampled}
        directory = self.out / "trials" / f"{optuna_trial.number:04d}-{_run_dir_name(fields)}"
        runs = {}
        try:
            for seed in self.seeds:
                # a tuning run ends once solved: the rest could not change its objective
                config = presets.build_config(
                    self.algorithm, self.env, fields, {"seed": seed, "stop_when_solved": True}
                )
                runs[seed] = Trial(
                    f"{optuna_trial.number}/seed{seed}",
                    self.algorithm,
                    configs.to_dict(config),
                    str((directory / f"seed{seed}").resolve()),
                )
        except ValueError as error:  # a sample the trainer's fields cannot hold
            print(f"rlgrad tune: trial {optuna_trial.number} skipped: {error}", file=sys.stderr)
            self.study.tell(optuna_trial, state=self.optuna.trial.TrialState.FAIL)
            return
        parsed = next(iter(runs.values())).fields  # as the Config holds them (tuples, not text)
        optuna_trial.set_user_attr("fields", {k: parsed[k] for k in fields})
        optuna_trial.set_user_attr("run_dir", str(directory))
        self.active[optuna_trial.number] = ActiveTrial(optuna_trial, fields, runs)
        if self.batched:  # the trial's seeds as one batched computation, in one task
            pool.submit(list(runs.values()))
        else:
            for run in runs.values():
                pool.submit(run)

    def record(self, run: Trial, outcome: Outcome) -> None:
        number = int(run.key.split("/", 1)[0])
        active = self.active.get(number)
        if active is None:
            return
        seed = int(run.key.rsplit("seed", 1)[1])
        active.outcomes[seed] = outcome
        if active.complete() and all(o.state in (DONE, FAILED) for o in active.outcomes.values()):
            self._tell(active)
        elif self.prune_trials and self.pool is not None and self._cannot_win(active):
            self._stop(active, self.pool)

    def best_possible(self, active: ActiveTrial) -> tuple[int, float]:
        """At most how many seeds the trial can still solve, and at least their mean time.

        A seed that ended unsolved stays unsolved; every other one solves, at the earliest after
        the training time it has already spent (its time to solve, if it did; 0 if it has not
        started).
        """
        times = []
        for seed, run in active.runs.items():
            outcome = active.outcomes.get(seed)
            if outcome is None:  # queued or running
                times.append(read_run(run.run_dir).train_s)
            elif outcome.state == DONE:
                solved, seconds = _outcome(read_run(run.run_dir))
                if solved:
                    times.append(seconds)
        return len(times), (sum(times) / len(times) if times else 0.0)

    def _cannot_win(self, active: ActiveTrial) -> bool:
        """True once the trial is sure to lose to the best one, so its remaining seeds would be
        spent for nothing: it can no longer solve as many seeds, or, solving as many at best, it
        has already spent more than SLOWER × the best one's mean time to solve. (A trial only a
        little slower runs on: its K seeds measure its reliability, which matters more.)"""
        try:
            best = self.study.best_trial
        except ValueError:  # no trial has finished yet
            return False
        solvable, time_so_far = self.best_possible(active)
        best_solved = best.user_attrs["solved"]
        best_time = best.user_attrs["mean_train_s_to_solve"] or 0.0
        if solvable > best_solved or (
            solvable == best_solved and time_so_far <= SLOWER * best_time
        ):
            return False
        bound = objective([(True, time_so_far)] * solvable)  # its objective at the very most
        active.optuna_trial.report(bound, self.total_steps)
        return True

    def _tell(self, active: ActiveTrial) -> None:
        outcomes = [_outcome(read_run(run.run_dir)) for run in active.runs.values()]
        trial = active.optuna_trial
        value = objective(outcomes)
        trial.set_user_attr("solved", sum(s for s, _ in outcomes))
        times = [t for s, t in outcomes if s]
        trial.set_user_attr("mean_train_s_to_solve", sum(times) / len(times) if times else None)
        failures = [o.reason for o in active.outcomes.values() if o.state == FAILED]
        if failures:
            trial.set_user_attr("failures", failures)
        self.study.tell(trial, value)
        del self.active[trial.number]

    def intermediate(self, active: ActiveTrial) -> list[tuple[int, float]]:
        """(step, value) at each evaluation step all seeds reached and not reported yet."""
        runs = [
            [row for row in read_rows(run.run_dir) if row["eval_return_mean"] is not None]
            for run in active.runs.values()
        ]
        if not all(runs):
            return []
        common = set.intersection(*({row["step"] for row in rows} for rows in runs))
        values = []
        for step in sorted(common - active.reported_steps):
            solved, progress = 0, 0.0
            for rows in runs:
                so_far = [row for row in rows if row["step"] <= step]
                solved += solved_at(so_far, self.threshold) is not None
                scaled = (so_far[-1]["eval_return_mean"] - self.low) / (self.threshold - self.low)
                progress += min(max(scaled, 0.0), 0.999) / len(runs)
            values.append((step, solved + progress))
        return values

    def prune(self, pool: TrialPool) -> None:
        for active in list(self.active.values()):
            if active.complete() or active.optuna_trial.number not in self.active:
                continue
            if self.prune_trials and self._cannot_win(active):
                self._stop(active, pool)
                continue
            for step, value in self.intermediate(active):
                active.reported_steps.add(step)
                # configs with other rollout sizes evaluate at other steps past each multiple
                # of eval_every: report at the multiple, so the pruner compares like with like
                active.optuna_trial.report(value, step // self.eval_every * self.eval_every)
                if active.optuna_trial.should_prune():
                    self._stop(active, pool)
                    break

    def _stop(self, active: ActiveTrial, pool: TrialPool) -> None:
        mine = list(active.runs.values())
        for run, outcome in pool.cancel(mine):
            if run not in mine:
                self.record(run, outcome)
        self.study.tell(active.optuna_trial, state=self.optuna.trial.TrialState.PRUNED)
        del self.active[active.optuna_trial.number]

    # ----- the loop -----

    def run(self, pool: TrialPool, n_trials: int, progress: bool = True) -> int:
        self.pool = pool
        self.recover()
        self.enqueue_base()
        # a trial is one task (batched seeds) or one task per seed; one more trial is ready
        tasks_per_trial = 1 if self.batched else len(self.seeds)
        in_flight_trials = max(math.ceil(pool.limit / tasks_per_trial), 1) + 1
        bar = self._bar(n_trials) if progress else None
        try:
            while self.finished_count() < n_trials or self.active:
                while (
                    len(self.active) < in_flight_trials
                    and self.finished_count() + len(self.active) < n_trials
                ):
                    self.start_trial(pool)
                for run, outcome in pool.wait(timeout=2.0):
                    self.record(run, outcome)
                self.prune(pool)
                self.heartbeat()
                if bar is not None:
                    bar.update(self.finished_count() - bar.n)
                    bar.set_postfix(self._best_postfix(), refresh=False)
        except KeyboardInterrupt:
            print("\nrlgrad tune: stopping (the study keeps what finished)", file=sys.stderr)
            pool.cancel(grace_s=30)
            for active in list(self.active.values()):
                self.study.tell(active.optuna_trial, state=self.optuna.trial.TrialState.FAIL)
                self.study.enqueue_trial(active.optuna_trial.params, skip_if_exists=False)
            return 130
        finally:
            if bar is not None:
                bar.close()
        return 0

    def _bar(self, n_trials: int):
        from tqdm.auto import tqdm

        return tqdm(
            total=n_trials,
            initial=min(self.finished_count(), n_trials),
            unit="trial",
            desc=f"tune {self.algorithm} {self.env}",
            dynamic_ncols=True,
        )

    def _best_postfix(self) -> dict:
        try:
            best = self.study.best_trial
        except ValueError:
            return {}
        return {
            "best": f"{best.value:.3f}",
            "solved": f"{best.user_attrs['solved']}/{len(self.seeds)}",
        }

    def validate(self, pool: TrialPool, seeds: list[int], top: int) -> list[dict]:
        """Train the ``top`` trials again on the validation ``seeds`` for their whole budget and
        rank them by the validation objective: a seed counts as solved only when it solved and
        its final evaluation is still at the threshold (the module's docstring).

        K tuning seeds tell a config that solves 95% of seeds poorly from one that solves 75%
        (which still solves all K about a quarter of the time), and runs that stop once solved
        never show a collapse: the few best configs get more seeds, run to the end, before one
        is chosen. Their runs live in ``OUT/validation/``, so a stopped validation continues
        where it was. Returns one row per config, best first.
        """
        finished = self.study.get_trials(
            deepcopy=False, states=(self.optuna.trial.TrialState.COMPLETE,)
        )
        chosen = sorted(finished, key=lambda t: t.value, reverse=True)[:top]
        runs = {}
        for trial in chosen:
            for seed in seeds:
                config = presets.build_config(
                    self.algorithm,
                    self.env,
                    trial.user_attrs["fields"],
                    {"seed": seed, "stop_when_solved": False},  # the return at the end counts
                )
                run_dir = self.out / "validation" / f"{trial.number:04d}" / f"seed{seed}"
                key = f"{trial.number}/seed{seed}"
                runs[key] = Trial(key, self.algorithm, configs.to_dict(config), str(run_dir))
        # each config's seeds together when the trainer trains many seeds at once
        per_config = {
            trial.number: [runs[f"{trial.number}/seed{s}"] for s in seeds] for trial in chosen
        }
        queue = list(per_config.values()) if self.batched else [[r] for r in runs.values()]
        while queue or pool.in_flight:
            while queue and pool.has_room:
                pool.submit(queue.pop(0))
            pool.wait(timeout=2.0)
        rows = []
        for trial in chosen:
            files = [read_run(runs[f"{trial.number}/seed{seed}"].run_dir) for seed in seeds]
            outcomes = [_outcome(f, to_the_end=True) for f in files]
            finals = [f.final_return for f in files if f.final_return is not None]
            rows.append(
                {
                    "trial": trial.number,
                    "objective": objective(outcomes),
                    "validation_solved": f"{sum(s for s, _ in outcomes)}/{len(seeds)}",
                    # solved at some point, whatever the end: the difference is the collapses
                    "validation_solved_once": f"{sum(f.solved is not None for f in files)}"
                    f"/{len(seeds)}",
                    "validation_final_return_min": min(finals) if finals else None,
                    "tuning_solved": f"{trial.user_attrs['solved']}/{len(self.seeds)}",
                    "tuning_objective": trial.value,
                }
            )
        rows.sort(key=lambda row: row["objective"], reverse=True)
        path = self.out / "validation.json"
        path.write_text(json.dumps({"seeds": seeds, "ranking": rows}, indent=1) + "\n")
        return rows

    def write_best(
        self, path: Path | None = None, validation: list[dict] | None = None
    ) -> Path | None:
        """The preset file of the best trial: the validation ranking's first, else the best
        objective on the tuning seeds."""
        try:
            best = self.study.best_trial
        except ValueError:
            return None
        notes = {}
        if validation:
            best = self.study.trials[validation[0]["trial"]]
            notes = {"validation": validation[0], "validation_ranking": validation}
        states = self.optuna.trial.TrialState
        return presets.write_preset_file(
            path or self.out / "best_preset.json",
            self.algorithm,
            self.env,
            best.user_attrs["fields"],
            study=self.study.study_name,
            storage=self.storage,
            trial=best.number,
            objective=best.value,
            objective_formula="n_solved + 1 / (1 + mean training s to solve / 60 s)",
            solved=f"{best.user_attrs['solved']}/{len(self.seeds)}",
            mean_train_s_to_solve=best.user_attrs["mean_train_s_to_solve"],
            tuning_seeds=self.seeds,
            trials_complete=len(self.study.get_trials(deepcopy=False, states=(states.COMPLETE,))),
            trials_pruned=len(self.study.get_trials(deepcopy=False, states=(states.PRUNED,))),
            written=time.strftime("%Y-%m-%d %H:%M:%S"),
            **notes,
        )


def best_text(tuner: Tuner, path: Path | None) -> str:
    if path is None:
        return f"rlgrad tune: no trial of {tuner.study.study_name} has finished yet"
    chosen = json.loads(path.read_text())["tuning"]
    validation = chosen.get("validation")
    seeds = f"{chosen['solved']} tuning seeds solved"
    if validation:
        seeds += (
            f", {validation['validation_solved']} validation seeds solved and still at the "
            "threshold at the end of the budget"
        )
    return (
        f"best of {tuner.study.study_name}: trial {chosen['trial']} ({seeds})\n"
        f"  preset file     {path}\n"
        f"  evaluate it on other seeds: rlgrad sweep {tuner.algorithm} --env {tuner.env} "
        f"--preset {path} --seeds 0-19"
    )
