"""Time rlgrad's and TRL's GRPOTrainer to the same greedy accuracy on the demo task, interleaved.

    python benchmarks/vs_trl.py [--seeds 3] [--first-seed 0] [--target 0.85] [--max-steps 1500]
                                [--eval-every 10] [--out results.json]

The task is ``rlgrad grpo-demo``'s (``rlgrad.lm.demo``): a tiny GPT-2 learns single-digit addition
mod 10 from a correctness reward plus a small format reward. For each seed this script

1. builds the model and runs the supervised warm-up once, and saves it with ``save_pretrained``
   (the *same* warm-up checkpoint for both libraries);
2. runs rlgrad, then TRL, each in a fresh subprocess of this script (``--worker LIBRARY SEED
   CHECKPOINT``, which prints one JSON line) with one torch thread, so that both share the time
   window and neither carries the other's imports.

Both get the same hyperparameters: 8 prompts × 16 completions per step, at most 3 new tokens,
temperature 1, ε = 0.2, a k3 KL to the warm-up model with β = 0.2 (the demo's: without it some
seeds stall), one iteration per batch, token-mean loss (TRL's ``dapo``),
per-group reward scaling, gradient clipping at 1, and the very same optimizer object type and
schedule (AdamW, lr 2e-3, no weight decay, 5 warm-up steps then constant), handed to TRL through
``optimizers=``. TRL runs in float32 without gradient checkpointing (its defaults, bf16 autocast
and checkpointing, only slow a model this small on a CPU). One difference stays: rlgrad divides
group advantages by the population σ (the seeds' convention), TRL by the sample σ, so TRL's
advantages are √(15/16) ≈ 0.97 of rlgrad's at G = 16, a difference Adam mostly absorbs.

The clock counts training only: every ``eval_every`` steps a callback measures greedy accuracy on
all 100 prompts with the clock paused, and stops the run at the first accuracy ≥ target. Reported
per library: the median over seeds of training seconds and steps to the target (a seed that
never gets there counts as +inf), and the median seconds per step; the ratio is TRL / rlgrad.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

LIBRARIES = ("rlgrad", "trl")


class Clock:
    """Training seconds and per-step seconds, with the evaluations left out."""

    def __init__(self, target: float, eval_every: int):
        self.target, self.eval_every = target, eval_every
        self.training_s = 0.0
        self.step_s: list[float] = []
        self.solved_step: int | None = None
        self.solved_s: float | None = None
        self.curve: list[tuple[int, float]] = []
        self.last = time.perf_counter()

    def start(self) -> None:
        self.last = time.perf_counter()

    def step_done(self, step: int, model, tokenizer) -> bool:
        """Book the step; evaluate when due; True once the target is reached."""
        from rlgrad.lm.demo import greedy_accuracy

        now = time.perf_counter()
        self.step_s.append(now - self.last)
        self.training_s += now - self.last
        solved = False
        if step % self.eval_every == 0:
            training = model.training
            accuracy = greedy_accuracy(model, tokenizer)
            model.train(training)
            self.curve.append((step, accuracy))
            if accuracy >= self.target and self.solved_step is None:
                self.solved_step, self.solved_s = step, self.training_s
                solved = True
        self.last = time.perf_counter()
        return solved

    def result(self) -> dict:
        # the first steps include one-time work (first generate, optimizer state)
        steady = self.step_s[5:] or self.step_s
        return {
            "solved_step": self.solved_step,
            "solved_s": self.solved_s,
            "training_s": self.training_s,
            "steps": len(self.step_s),
            "step_s_median": statistics.median(steady),
            "curve": self.curve,
        }


def shared_config(seed: int, args):
    """The hyperparameters both libraries run, as rlgrad's GRPOConfig (TRL's is read from it)."""
    from rlgrad.lm import demo

    return demo.demo_config(
        seed=seed,
        max_steps=args.max_steps,
        prompts_per_step=args.prompts,
        num_generations=args.generations,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        beta=args.beta,
    )


def load(checkpoint: str):
    from transformers import GPT2LMHeadModel

    from rlgrad.lm.demo import build_tokenizer

    tokenizer = build_tokenizer()
    model = GPT2LMHeadModel.from_pretrained(checkpoint)
    return model, tokenizer


def run_rlgrad(checkpoint: str, seed: int, args) -> dict:
    from rlgrad.lm import demo
    from rlgrad.lm.grpo import GRPOTrainer

    model, tokenizer = load(checkpoint)
    config = shared_config(seed, args)
    built = time.perf_counter()
    trainer = GRPOTrainer(
        model, tokenizer, [demo.correct, demo.format_reward], demo.dataset(), config
    )
    setup_s = time.perf_counter() - built
    clock = Clock(args.target, args.eval_every)
    clock.start()
    trainer.train(callbacks=[lambda grpo, row: clock.step_done(row["step"], model, tokenizer)])
    return {**clock.result(), "setup_s": setup_s}


def run_trl(checkpoint: str, seed: int, args) -> dict:
    import datasets
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlgrad.lm import demo
    from rlgrad.lm.grpo import make_optimizer

    model, tokenizer = load(checkpoint)
    clock = Clock(args.target, args.eval_every)

    class Timing(TrainerCallback):
        def on_train_begin(self, train_args, state, control, **kwargs):
            clock.start()

        def on_step_end(self, train_args, state, control, **kwargs):
            if clock.step_done(state.global_step, model, tokenizer):
                control.should_training_stop = True

    ours = shared_config(seed, args)
    assert ours.loss_type == "token_mean" and ours.epsilon_high is None
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="vs_trl_"),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        seed=ours.seed,
        max_steps=ours.max_steps,
        per_device_train_batch_size=ours.prompts_per_step * ours.num_generations,
        gradient_accumulation_steps=1,
        num_generations=ours.num_generations,
        max_completion_length=ours.max_completion_length,
        temperature=ours.temperature,
        top_p=ours.top_p,
        learning_rate=ours.learning_rate,
        max_grad_norm=ours.max_grad_norm,
        beta=ours.beta,  # TRL builds its reference from the checkpoint's path (no hub)
        epsilon=ours.epsilon,
        num_iterations=ours.num_iterations,
        loss_type="dapo",  # TRL's name for the token mean over the whole batch
        scale_rewards=ours.scale_rewards,
        mask_truncated_completions=ours.mask_truncated_completions,
        logging_steps=10**9,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    built = time.perf_counter()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[demo.correct, demo.format_reward],
        args=config,
        train_dataset=datasets.Dataset.from_list(demo.dataset()),
        processing_class=tokenizer,
        callbacks=[Timing()],
        optimizers=make_optimizer(model, ours),  # rlgrad's AdamW and warm-up, the same for both
    )
    setup_s = time.perf_counter() - built
    trainer.train()
    return {**clock.result(), "setup_s": setup_s}


def warm_checkpoint(seed: int, directory: Path, steps: int) -> dict:
    """The demo's model after its supervised warm-up, saved with save_pretrained."""
    from rlgrad.lm import demo

    torch.set_num_threads(1)
    model, tokenizer = demo.warmed_up_model(seed, steps)
    model.save_pretrained(directory)
    return {"accuracy": demo.greedy_accuracy(model, tokenizer)}


def worker(library: str, seed: int, checkpoint: str, args) -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    runner = run_rlgrad if library == "rlgrad" else run_trl
    try:
        result = runner(checkpoint, seed, args)
    except Exception as error:  # reported in the table, never a silent gap
        result = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps({"library": library, "seed": seed, **result}))


def spawn(library: str, seed: int, checkpoint: Path, args) -> dict:
    command = [sys.executable, __file__, "--worker", library, str(seed), str(checkpoint)]
    shared = ("target", "max_steps", "eval_every", "lr", "beta", "warmup_steps", "prompts")
    for name in (*shared, "generations"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"library"')]
    if done.returncode != 0 or not lines:
        return {"library": library, "seed": seed, "error": done.stderr.strip()[-2000:]}
    return json.loads(lines[-1])


def median_or_inf(values: list[float | None]) -> float:
    return statistics.median([math.inf if v is None else v for v in values])


def fmt(value: float, digits: int = 1) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--beta", type=float, default=0.2)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, default=16)
    parser.add_argument("--warm-up-steps", type=int, default=50)
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", nargs=3, metavar=("LIBRARY", "SEED", "CHECKPOINT"))
    args = parser.parse_args()
    if args.worker:
        library, seed, checkpoint = args.worker
        worker(library, int(seed), checkpoint, args)
        return

    import transformers
    import trl

    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, trl {trl.__version__}, 1 torch thread"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="vs_trl_") as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            checkpoint = Path(tmp) / f"warm-{seed}"
            warm = warm_checkpoint(seed, checkpoint, args.warm_up_steps)
            for library in LIBRARIES:
                result = spawn(library, seed, checkpoint, args)
                result["warm_accuracy"] = warm["accuracy"]
                results.append(result)
                if "error" in result:
                    print(f"seed {seed} {library:>6}: FAILED {result['error']}", flush=True)
                    continue
                final = result["curve"][-1][1] if result["curve"] else float("nan")
                print(
                    f"seed {seed} {library:>6}: warm-up acc {warm['accuracy']:.2f}, "
                    f"{fmt(result['solved_s'] or math.inf)} s / "
                    f"{result['solved_step'] or 'never'} steps to acc ≥ {args.target} "
                    f"(last eval {final:.2f}), {1000 * result['step_s_median']:.1f} ms/step, "
                    f"setup {result['setup_s']:.1f} s",
                    flush=True,
                )
    summary = {}
    for library in LIBRARIES:
        done = [r for r in results if r["library"] == library and "error" not in r]
        summary[library] = {
            "median_s": median_or_inf([r["solved_s"] for r in done]) if done else math.inf,
            "median_steps": median_or_inf([r["solved_step"] for r in done]) if done else math.inf,
            "step_ms": 1000 * statistics.median(r["step_s_median"] for r in done)
            if done
            else math.nan,
        }
    rl, tr = summary["rlgrad"], summary["trl"]
    print(f"\nmedians over {args.seeds} seeds:")
    print(f"{'':>8} {'s to target':>12} {'steps':>7} {'ms/step':>8}")
    for library in LIBRARIES:
        s = summary[library]
        print(
            f"{library:>8} {fmt(s['median_s']):>12} {fmt(s['median_steps'], 0):>7} "
            f"{s['step_ms']:>8.1f}"
        )
    if math.isinf(rl["median_s"]) and math.isinf(tr["median_s"]):
        to_target = "no ratio to target (neither median reached it)"
    else:
        ratio = tr["median_s"] / rl["median_s"] if rl["median_s"] > 0 else math.nan
        to_target = f"{fmt(ratio, 2)}× seconds to target"
    print(f"TRL / rlgrad: {to_target}, {tr['step_ms'] / rl['step_ms']:.2f}× time per step")
    if args.out:
        Path(args.out).write_text(json.dumps({"results": results, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
