"""What a GRPO run writes (step 4): the metric rows, TensorBoard events, the completion log, a
progress bar, and checkpoints, all under ``GRPOConfig.output_dir`` and on rank 0 only.

    output_dir/config.json, metrics.csv, summary.json
                                       the run directory every rlgrad trainer writes
                                       (:mod:`rlgrad.lm.run_files`)
    output_dir/metrics.jsonl           one JSON row per step, as ``train()`` returns them (the
                                       format of earlier releases; metrics.csv holds the same)
    output_dir/completions.jsonl       with log_completions: prompts, completions, rewards
    output_dir/events.out.tfevents.*   with report_to='tensorboard': the rows' scalars and the
                                       completions as Markdown tables
    output_dir/checkpoint-STEP/        save_pretrained's files and trainer_state.pt
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import torch

from rlgrad.lm import data
from rlgrad.support import checkpoints


def progress_bar(max_steps: int, step: int):
    """A tqdm bar over the steps (none when tqdm is not installed)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=max_steps, initial=step, desc="grpo", unit="step")


def open_tensorboard(output_dir: str, step: int):
    """A TensorBoard writer on ``output_dir``; events after ``step``, left by a run that stopped
    later, are dropped."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError(
            "GRPOConfig.report_to='tensorboard' needs TensorBoard: "
            "pip install 'rlgrad[tensorboard]'"
        ) from None
    return SummaryWriter(output_dir, purge_step=step or None)


def start_rows(output_dir: str, history: list[dict]) -> None:
    """output_dir/metrics.jsonl as the run's rows so far: a resumed run's history, which ends at
    its checkpoint, replaces the file, so that rows a run wrote after that checkpoint before it
    stopped are not there twice (what metrics.csv's writer does too)."""
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "metrics.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in history)


def start_completions(output_dir: str, step: int) -> None:
    """output_dir/completions.jsonl without the records past ``step``: a resumed run starts at
    its checkpoint's step, so the records an interrupted run wrote after that checkpoint go, and
    the resumed run's own records for those steps are not there twice."""
    path = Path(output_dir) / "completions.jsonl"
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if _record_step(line) <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _record_step(line: str) -> float:
    """A completion record's step; +inf for a line cut short when a run was killed mid-write,
    so that it is dropped with the records past the checkpoint."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


def write_row(row: dict, output_dir: str | None, tensorboard, progress) -> None:
    """One step's metrics: a line of output_dir/metrics.jsonl, TensorBoard scalars, and the
    progress bar's reward and KL."""
    if output_dir is not None:
        directory = Path(output_dir)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")
    if tensorboard is not None:
        for name, value in row.items():
            if name != "step" and isinstance(value, (int, float)):
                tensorboard.add_scalar(name, value, row["step"])
    if progress is not None:
        progress.update(1)
        progress.set_postfix(
            reward=f"{row['reward']:.3f}", kl=f"{row.get('kl', 0):.3f}", refresh=False
        )


def write_completions(records: list[dict], output_dir: str, tensorboard) -> None:
    """Append the completion records to output_dir/completions.jsonl and, with a TensorBoard
    writer, add them as a text table (tagged completions/train or /eval)."""
    if not records:
        return
    data.append_records(Path(output_dir) / "completions.jsonl", records)
    if tensorboard is not None:
        split, step = records[0]["split"], records[0]["step"]
        tensorboard.add_text(f"completions/{split}", data.markdown_table(records), step)


# ----- checkpoints -----


@contextlib.contextmanager
def transformers_progress_bars(shown: bool):
    """transformers' progress bars (``save_pretrained``'s "Writing model shards") off inside the
    block unless ``shown``; after it, on again if they were on before."""
    from transformers.utils import logging

    if shown or not logging.is_progress_bar_enabled():
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

    hub_bars_off = are_progress_bars_disabled()
    logging.disable_progress_bar()  # huggingface_hub's too
    try:
        yield
    finally:
        logging.enable_progress_bar()  # huggingface_hub's too: off again if they were off
        if hub_bars_off:
            disable_progress_bars()


def write_checkpoint(
    output_dir: str, step: int, model, tokenizer, state: dict, progress_bars: bool = True
) -> Path:
    """``output_dir/checkpoint-STEP``: the model and tokenizer (:func:`write_model`), and
    ``state`` (everything needed to resume exactly) in trainer_state.pt."""
    path = write_model(Path(output_dir) / f"checkpoint-{step}", model, tokenizer, progress_bars)
    checkpoints.save(state, path / "trainer_state.pt")
    return path


def write_model(path: str | Path, model, tokenizer, progress_bars: bool = True) -> Path:
    """The model (``save_pretrained``; with adapters, the adapters only) and the tokenizer in the
    folder ``path``. ``progress_bars=False``: without transformers' progress bars."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with transformers_progress_bars(progress_bars):
        model.save_pretrained(path)
        if hasattr(tokenizer, "save_pretrained"):
            tokenizer.save_pretrained(path)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The state :func:`write_checkpoint` saved in ``path``."""
    return torch.load(Path(path) / "trainer_state.pt", weights_only=False)
