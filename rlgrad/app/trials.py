"""Training runs as Ray tasks: what ``rlgrad sweep`` and ``rlgrad tune`` share.

A *trial* is one training run, (algorithm, complete config, run directory). A Ray task trains a
*block* of trials that differ only in their seed (:func:`run_block`), as one batched computation
where the trainer has ``train_seeds``; :func:`run_trial` trains one trial (a block of one). A
trial trains into an ordinary run directory, resuming from the latest checkpoint when the
directory already holds one, so a task that Ray retries after its worker
process died continues where the dead one last saved instead of starting over. A trial that fails
for a reason of its own (the NaN guard, a bad config value) returns ``failed`` with a one-line
reason rather than raising, so it never stops the others.

:class:`TrialPool` owns the Ray session: a local Ray started in-process (no set-up) unless an
address is given (``--address``, or ``RAY_ADDRESS``), at most ``max_concurrent`` trials in flight,
and cancellation that lets a running trial save a checkpoint first. Why Ray tasks rather than Ray
Tune: a trial is a plain function call that already writes its own run directory, checkpoints and
metrics, and Tune would add a second experiment directory, its own checkpoint protocol and its
own search loop next to Optuna's; tasks give retries on worker death, cluster scheduling and
cancellation, and nothing else is needed.

Why a stop-request file rather than ``ray.cancel``: a cancel that lands while the task is returning
its result trips a check in Ray's core worker ("Tried to complete task that was not pending") that
kills the driver, so a Ctrl-C or a pruned Optuna trial could take the whole sweep down. The driver
instead writes ``<run_dir>.stop``; a watcher thread in the task sees it and interrupts the run as
Ctrl-C would, and the task returns ``interrupted`` like any other result. The file sits on the
output directory, which a cluster already has to share.
"""

from __future__ import annotations

import _thread
import logging
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rlgrad.app.registry import module
from rlgrad.errors import BadInputError
from rlgrad.support import configs, run_format
from rlgrad.support.run_format import checkpoint_path
from rlgrad.support.runs import TrainingError

DONE, FAILED, INTERRUPTED, PENDING, RUNNING = "done", "failed", "interrupted", "pending", "running"


@dataclass(frozen=True)
class Trial:
    """One training run: the algorithm, its complete config and where it writes."""

    key: str
    algorithm: str
    fields: dict
    run_dir: str


@dataclass(frozen=True)
class Outcome:
    """What a finished (or stopped) trial reports back to the driver."""

    state: str  # DONE, FAILED or INTERRUPTED (stopped by a cancel; resumable)
    reason: str | None = None  # the one-line reason of a failure
    resumed_from_step: int | None = None  # set when the trial continued an earlier attempt
    worker_pid: int | None = None
    started: float | None = None  # time.time() when the task began and ended, for benchmarks
    finished: float | None = None


def gpus_needed(fields: dict, cluster_gpus: float) -> bool:
    """Whether a trial needs a GPU reserved: its config's device is cuda, or auto on a cluster
    that has one. Ray reserves one GPU per such trial and shows the task only that one, as
    cuda:0, so trials should name 'cuda' or 'auto' rather than a GPU index."""
    device = str(fields.get("device", "cpu"))
    return device.startswith("cuda") or (device == "auto" and cluster_gpus >= 1)


def run_trial(trial: Trial) -> Outcome:
    """Train ``trial`` into its run directory; resume when a checkpoint is already there."""
    started = time.time()
    run_dir = Path(trial.run_dir)
    checkpoint = checkpoint_path(run_dir, "latest")
    pid = os.getpid()
    if run_format.finished(run_dir):
        # finished before the driver could record it
        return Outcome(DONE, None, None, pid, started, time.time())
    resumed_from = None
    try:
        with StopRequestWatcher(stop_request_path(run_dir)):
            trainer = module(trial.algorithm)
            config = configs.from_dict(trainer.Config, trial.fields)
            if checkpoint.exists():
                resumed_from = _checkpoint_step(checkpoint)
                trainer.train(config, run_dir, resume=True)
            else:
                if run_dir.exists():  # died before its first checkpoint: nothing to keep
                    shutil.rmtree(run_dir)
                run_dir.parent.mkdir(parents=True, exist_ok=True)
                trainer.train(config, run_dir)
    except (TrainingError, ValueError, TypeError) as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        return Outcome(FAILED, reason, resumed_from, pid, started, time.time())
    except KeyboardInterrupt:  # the stop request came before the run could catch it itself
        pass
    state = DONE if run_format.finished(run_dir) else INTERRUPTED
    return Outcome(state, None, resumed_from, pid, started, time.time())


def run_block(trials: list[Trial]) -> list[Outcome]:
    """Train trials that differ only in their seed as one batched computation
    (``train_seeds``), each into its own run directory; one outcome per trial, in order.

    A block trains together when every trial starts fresh or every one resumes from a
    checkpoint at the same step (the seeds of a block advance together, so a block stopped as a
    whole always does); otherwise, and for a trainer without ``train_seeds``, its trials run one
    after another, each as :func:`run_trial`.
    """
    started, pid = time.time(), os.getpid()
    trainer = module(trials[0].algorithm)
    waiting = [t for t in trials if not run_format.finished(t.run_dir)]
    outcomes = {t.key: Outcome(DONE, None, None, pid, started, time.time()) for t in trials}
    checkpoints = [checkpoint_path(Path(t.run_dir), "latest") for t in waiting]
    steps = {_checkpoint_step(c) if c.exists() else None for c in checkpoints}
    if len(waiting) < 2 or not hasattr(trainer, "train_seeds") or len(steps) > 1:
        for trial in waiting:
            outcomes[trial.key] = run_trial(trial)
        return [outcomes[t.key] for t in trials]
    (resumed_from,) = steps
    seeds = [t.fields["seed"] for t in waiting]
    try:
        with StopRequestWatcher([stop_request_path(t.run_dir) for t in waiting]):
            config = configs.from_dict(trainer.Config, waiting[0].fields)
            if resumed_from is None:
                for trial in waiting:  # died before its first checkpoint: nothing to keep
                    shutil.rmtree(trial.run_dir, ignore_errors=True)
            Path(waiting[0].run_dir).parent.mkdir(parents=True, exist_ok=True)
            histories = trainer.train_seeds(
                config, seeds, [t.run_dir for t in waiting], resume=resumed_from is not None
            )
    except (TrainingError, ValueError, TypeError) as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        for trial in waiting:
            outcomes[trial.key] = Outcome(FAILED, reason, resumed_from, pid, started, time.time())
        return [outcomes[t.key] for t in trials]
    except KeyboardInterrupt:  # the stop request came before the runs could catch it
        histories = None
    for i, trial in enumerate(waiting):
        failed = histories[i].summary.get("failed") if histories is not None else None
        if failed is not None:
            state, reason = FAILED, " ".join(f"TrainingError: {failed}".split())
        else:
            state, reason = (DONE if run_format.finished(trial.run_dir) else INTERRUPTED), None
        outcomes[trial.key] = Outcome(state, reason, resumed_from, pid, started, time.time())
    return [outcomes[t.key] for t in trials]


def stop_request_path(run_dir: str | Path) -> Path:
    """The file whose existence asks the trial of ``run_dir`` to stop: ``<run_dir>.stop``.

    Next to the run directory rather than inside it: a trial that died before its first checkpoint
    deletes its directory when it starts again, and a request written there would go with it.
    """
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + ".stop")


class StopRequestWatcher:
    """While active, interrupts the main thread as Ctrl-C would once ``path`` (or any of a list
    of paths: the trials of a block) appears.

    The run's own Ctrl-C handler then finishes the current update and saves a checkpoint. Leaving
    the ``with`` block stops the watching, so a reused Ray worker never interrupts the next task.
    """

    def __init__(self, path: Path | list[Path], poll_s: float = 0.2):
        self.paths = [Path(p) for p in path] if isinstance(path, list) else [Path(path)]
        self.poll_s = poll_s
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._done.wait(self.poll_s):
            if any(path.exists() for path in self.paths):
                with self._lock:
                    if not self._done.is_set():
                        _thread.interrupt_main(signal.SIGINT)
                return

    def __enter__(self) -> StopRequestWatcher:
        if any(path.exists() for path in self.paths):  # stopped while it waited: nothing to run
            raise KeyboardInterrupt
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:  # once this returns, no interrupt can come from this watcher
            self._done.set()
        self._thread.join()


def _checkpoint_step(path: Path) -> int:
    import torch

    return int(torch.load(path, weights_only=False, map_location="cpu")["steps"])


def require_ray():
    """The ray module, or a one-line ValueError that says what to install."""
    try:
        import ray
    except ImportError:
        raise BadInputError("this command runs on Ray: pip install 'rlgrad[ray]'") from None
    return ray


class TrialPool:
    """Runs :class:`Trial` objects as Ray tasks, a bounded number at a time.

    ``address=None`` (and no ``RAY_ADDRESS``) starts a local Ray in this process that uses this
    machine's CPUs; an address joins an existing cluster, where every node needs rlgrad installed
    and the output directory must be on storage that all nodes share (NFS, for instance).
    """

    def __init__(
        self,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        max_concurrent: int | None = None,
        max_retries: int = 3,
        num_cpus: int | None = None,
    ):
        if cpus_per_trial <= 0:
            raise BadInputError(f"--cpus-per-trial must be > 0; got {cpus_per_trial}")
        if max_concurrent is not None and max_concurrent < 1:
            raise BadInputError(f"--max-concurrent must be >= 1; got {max_concurrent}")
        self.ray = require_ray()
        address = address or os.environ.get("RAY_ADDRESS")
        options = {"logging_level": logging.ERROR, "log_to_driver": False}
        if address:
            self.ray.init(address=address, **options)
        else:
            self.ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
        resources = self.ray.cluster_resources()
        cpus, self.gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
        self.limit = max_concurrent or max(int(cpus // cpus_per_trial), 1)
        self.cpus_per_trial = cpus_per_trial
        self.task = self.ray.remote(run_block).options(
            num_cpus=cpus_per_trial, max_retries=max_retries, name="rlgrad-trial"
        )
        self.max_retries = max_retries
        self.in_flight: dict = {}  # ObjectRef -> the trials of its block
        # a batch scheduler's SIGTERM (preemption, a time limit) stops the driver as Ctrl-C does
        self._previous_sigterm = None
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)

    @property
    def has_room(self) -> bool:
        return len(self.in_flight) < self.limit

    def submit(self, trials: Trial | list[Trial]) -> None:
        """Run a trial, or a block of trials that differ only in their seed (trained together
        by the trainer's ``train_seeds``, in one task: :func:`run_block`)."""
        block = [trials] if isinstance(trials, Trial) else list(trials)
        for trial in block:  # requests left by an earlier driver
            stop_request_path(trial.run_dir).unlink(missing_ok=True)
        task = self.task
        if gpus_needed(block[0].fields, self.gpus):
            # Ray shows a task only the GPUs it reserved: without this, CUDA is invisible to it
            task = task.options(num_gpus=1)
        self.in_flight[task.remote(block)] = block

    @property
    def trials_in_flight(self) -> list[Trial]:
        return [trial for block in self.in_flight.values() for trial in block]

    def wait(self, timeout: float = 1.0) -> list[tuple[Trial, Outcome]]:
        """The trials that finished within ``timeout`` seconds, with their outcomes."""
        if not self.in_flight:
            return []
        ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=timeout)
        ready += self.ray.wait(list(set(self.in_flight) - set(ready)), timeout=0)[0]
        finished = []
        for ref in ready:
            block = self.in_flight.pop(ref)
            finished += zip(block, self._outcomes(ref, len(block)), strict=True)
        for trial, _ in finished:
            stop_request_path(trial.run_dir).unlink(missing_ok=True)
        return finished

    def _outcomes(self, ref, count: int) -> list[Outcome]:
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.TaskCancelledError:
            return [Outcome(INTERRUPTED)] * count
        except (exceptions.WorkerCrashedError, exceptions.NodeDiedError):
            reason = f"its worker process died {self.max_retries + 1} times"
            return [Outcome(FAILED, reason)] * count
        except exceptions.RayTaskError as error:  # an exception run_block does not expect
            cause = error.cause if error.cause is not None else error
            return [Outcome(FAILED, " ".join(f"{type(cause).__name__}: {cause}".split()))] * count

    def cancel(self, trials: list[Trial] | None = None, grace_s: float = 60.0) -> list:
        """Stop ``trials`` (default: all in flight) and wait up to ``grace_s`` for them.

        Each gets a stop request, which its run treats as Ctrl-C: it finishes the current update,
        saves a checkpoint and returns ``interrupted``; a queued one returns without starting.
        Only a trial still running after ``grace_s`` is killed by Ray (``ray.cancel(force=True)``).
        """
        chosen = [
            ref
            for ref, block in self.in_flight.items()
            if trials is None or any(t in trials for t in block)
        ]
        for ref in chosen:
            for trial in self.in_flight[ref]:
                request = stop_request_path(trial.run_dir)
                request.parent.mkdir(parents=True, exist_ok=True)
                request.touch()
        results, deadline = [], time.monotonic() + grace_s
        while any(ref in self.in_flight for ref in chosen) and time.monotonic() < deadline:
            results += self.wait(timeout=1.0)
        for ref in [r for r in chosen if r in self.in_flight]:  # still busy: stop it hard
            self.ray.cancel(ref, force=True)
            results += [(trial, Outcome(INTERRUPTED)) for trial in self.in_flight.pop(ref)]
        return results

    def abandon(self) -> list:
        """Forget every trial in flight, as ``interrupted``, without waiting for it.

        For a driver about to exit: :meth:`shutdown` ends the Ray session, and with it the tasks;
        each keeps its last checkpoint and its stop request, which the next submit clears.
        """
        abandoned = [(trial, Outcome(INTERRUPTED)) for trial in self.trials_in_flight]
        self.in_flight.clear()
        return abandoned

    def shutdown(self) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        self.ray.shutdown()


def _interrupt(signum, frame):
    raise KeyboardInterrupt
