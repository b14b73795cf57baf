"""Time rlgrad's and TRL's GRPOTrainer on the demo task, interleaved: to an accuracy, and with LoRA.

    python benchmarks/vs_trl.py [--seeds 3] [--first-seed 0] [--target 0.85] [--max-steps 1500]
                                [--eval-every 10] [--out results.json]
    python benchmarks/vs_trl.py --lora [--seeds 3] [--steps 12] [--skip 2] [--out results.json]

The task is ``rlgrad grpo-demo``'s (``rlgrad.lm.demo``): a tiny GPT-2 learns single-digit addition
mod 10 from a correctness reward plus a small format reward. For each seed this script

1. builds the model and runs the supervised warm-up once, and saves it with ``save_pretrained``
   (the *same* warm-up checkpoint for both libraries);
2. runs rlgrad, then TRL, each in a fresh subprocess of this script (``--worker LIBRARY SEED
   CHECKPOINT``, which prints one JSON line) with one torch thread, so that both share the time
   window and neither carries the other's imports.

Both get the same hyperparameters: 8 prompts × 16 completions per step, at most 3 new tokens,
temperature 1, ε = 0.2, a k3 KL to the warm-up model with β = 0.2 (the demo's: without it some
seeds stall; TRL's ``use_bias_correction_kl``, on by default in TRL 1.16, would multiply it by
the ratio, so it is off), one iteration per batch, token-mean loss (TRL's ``dapo``),
per-group reward scaling, gradient clipping at 1, and the very same optimizer object type and
schedule (AdamW, lr 2e-3, no weight decay, 5 warm-up steps then constant), handed to TRL through
``optimizers=``. TRL runs in float32 without gradient checkpointing (its defaults, bf16 autocast
and checkpointing, only slow a model this small on a CPU). One difference stays: rlgrad divides
group advantages by the population σ (the course's convention), TRL by the sample σ, so TRL's
advantages are √(15/16) ≈ 0.97 of rlgrad's at G = 16, a difference Adam mostly absorbs.

The clock counts training only: every ``eval_every`` steps a callback measures greedy accuracy on
all 100 prompts with the clock paused, and stops the run at the first accuracy ≥ target. Reported
per library: the median over seeds of training seconds and steps to the target (a seed that
never gets there counts as +inf), and the median seconds per step; the ratio is TRL / rlgrad.

``--lora`` measures seconds per step and peak memory instead, on ``benchmarks/lm_memory.py``'s
larger GPT-2 (4 layers × 256, 3.2M parameters, fresh weights from the seed, the same in both
workers) with that script's ``peft.LoraConfig`` on both sides (r = 8, α = 16 on c_attn, c_proj
and c_fc): per seed, rlgrad and TRL (the order alternating from seed to seed) each run ``--steps``
GRPO steps in a fresh subprocess with one torch thread, no warm-up checkpoint and no evaluation.
Both: 8 prompts × 8 completions of at most 48 new tokens, β = 0.04 (so each takes its reference
from the same model with the adapters disabled, and neither keeps a copy), the k3 KL, ε = 0.2,
token-mean loss, group scaling by the sample σ (rlgrad's ``std_unbiased``, TRL's only σ),
gradient clipping at 1, learning rate 1e-4 with no warm-up: the updates are real but small, so
that the policy, and with it the completion lengths (the workload), stays near the start's in
both. The optimizer is rlgrad's AdamW and schedule in both, set on TRL's trainer after TRL has
added the adapters (``optimizers=`` would need them before). Reported per run: the median step
time over the steps after the first ``--skip`` (one-time work), the mean completion length of
those steps (the two workloads should agree), the peak RSS (``VmHWM``) and its growth from the
resident set just before ``train()`` ("?" when setting up peaked higher). The peak is not
``ru_maxrss`` (kept in the JSON): a process started by ``subprocess`` (vfork, then exec) inherits
its parent's peak there, and this script's parent has imported torch, transformers and TRL. The
ratio is TRL / rlgrad, per seed and of the medians over seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

LIBRARIES = ("rlgrad", "trl")
# each mode's defaults for the options both modes have
DEFAULTS = {
    "accuracy": dict(lr=2e-3, beta=0.2, generations=16, warmup_steps=5),
    "lora": dict(lr=1e-4, beta=0.04, generations=8, warmup_steps=0),
}
# the options a worker needs, handed down by spawn()
SHARED_OPTIONS = ("lr", "beta", "warmup_steps", "prompts", "generations")
WORKER_OPTIONS = {
    "accuracy": (*SHARED_OPTIONS, "target", "max_steps", "eval_every"),
    "lora": (*SHARED_OPTIONS, "steps", "skip", "completion_length", "layers", "width"),
}


class Clock:
    """Training seconds and per-step seconds, with the evaluations left out."""

    def __init__(self, target: float, eval_every: int, accuracy=None):
        """``eval_every`` = 0: no evaluations. ``accuracy(model, tokenizer)``: the greedy
        accuracy that is held to ``target`` (none: the grpo-demo task's)."""
        self.target, self.eval_every, self.accuracy = target, eval_every, accuracy
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

        accuracy_of = self.accuracy or greedy_accuracy
        now = time.perf_counter()
        self.step_s.append(now - self.last)
        self.training_s += now - self.last
        solved = False
        if self.eval_every and step % self.eval_every == 0:
            training = model.training
            accuracy = accuracy_of(model, tokenizer)
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


def trl_config(ours):
    """TRL's GRPOConfig with the hyperparameters of rlgrad's ``ours``: float32, no gradient
    checkpointing, no vLLM, and no evaluation, saving or logging."""
    from trl import GRPOConfig

    if ours.loss_type != "token_mean" or ours.epsilon_high is not None:
        raise ValueError(
            "trl_config(): rlgrad's config must use loss_type 'token_mean' and no epsilon_high; "
            f"got {ours.loss_type!r} and {ours.epsilon_high}"
        )
    if ours.gradient_accumulation_steps != 1 or ours.weight_decay != 0:
        raise ValueError("trl_config(): only one micro-batch and no weight decay are mapped")
    return GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="vs_trl_"),  # nothing is written there
        use_cpu=True,
        bf16=False,  # TRL's default is bf16 autocast
        gradient_checkpointing=False,  # TRL's default is on
        use_vllm=False,
        seed=ours.seed,
        max_steps=ours.max_steps,
        per_device_train_batch_size=ours.prompts_per_step * ours.num_generations,
        gradient_accumulation_steps=1,
        num_generations=ours.num_generations,
        max_completion_length=ours.max_completion_length,
        temperature=ours.temperature,
        top_p=ours.top_p,
        top_k=0,  # off, as in rlgrad's sampling
        learning_rate=ours.learning_rate,
        max_grad_norm=ours.max_grad_norm,
        beta=ours.beta,
        use_bias_correction_kl=False,  # rlgrad's penalty is the plain k3, not k3 × ratio
        epsilon=ours.epsilon,
        num_iterations=ours.num_iterations,
        loss_type="dapo",  # TRL's name for the token mean over the whole batch
        scale_rewards=ours.scale_rewards,
        mask_truncated_completions=ours.mask_truncated_completions,
        eval_strategy="no",
        logging_steps=10**9,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
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
        model=model,
        reward_funcs=[demo.correct, demo.format_reward],
        args=config,
        train_dataset=demo.dataset(),
        processing_class=tokenizer,
    )
    setup_s = time.perf_counter() - built
    clock = Clock(args.target, args.eval_every)
    clock.start()
    trainer.train(callbacks=[lambda grpo, row: clock.step_done(row["step"], model, tokenizer)])
    return {**clock.result(), "setup_s": setup_s}


def run_trl(checkpoint: str, seed: int, args) -> dict:
    import datasets
    from transformers import TrainerCallback
    from trl import GRPOTrainer

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
    built = time.perf_counter()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[demo.correct, demo.format_reward],
        args=trl_config(ours),  # without adapters, TRL loads its reference from the checkpoint
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


# ----- --lora: seconds per step and peak memory with the same LoRA config -----


def memory_mib() -> dict[str, float]:
    """This process's resident set now (VmRSS) and at its peak since exec (VmHWM), in MiB."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) / 1024  # kB
    return found


def lora_setup(seed: int, args):
    """The tokenizer, lm_memory.py's GPT-2, the shared hyperparameters (rlgrad's GRPOConfig, TRL's
    is read from it) and lm_memory.py's LoRA config, a fresh instance for each trainer."""
    from lm_memory import LORA, build_model  # benchmarks/, this script's folder, is on sys.path
    from peft import LoraConfig

    from rlgrad.lm import demo
    from rlgrad.lm.grpo import GRPOConfig

    tokenizer = demo.build_tokenizer()
    model = build_model(tokenizer, args.layers, args.width, args.completion_length, seed)
    config = GRPOConfig(
        seed=seed,
        max_steps=args.steps,
        prompts_per_step=args.prompts,
        num_generations=args.generations,
        max_completion_length=args.completion_length,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        beta=args.beta,
        std_unbiased=True,  # TRL's sample σ
        logging_steps=0,
    )
    return tokenizer, model, config, LoraConfig(**LORA, task_type="CAUSAL_LM")


def lora_result(clock: Clock, lengths: list[float], before: dict, model, args) -> dict:
    """Step times, the workload and the memory of one run, ``before`` read just before train()."""
    timed = clock.step_s[args.skip :] or clock.step_s
    peak = memory_mib()["VmHWM"]
    return {
        "steps": len(clock.step_s),
        "step_s": clock.step_s,
        "step_s_median": statistics.median(timed),
        "completion_length": statistics.mean(lengths[args.skip :] or lengths),
        "trained_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "rss_before_mib": before["VmRSS"],
        "peak_rss_mib": peak,
        # when setting up peaked higher than training, training's own peak is unknown
        "growth_mib": peak - before["VmRSS"] if peak > before["VmHWM"] else None,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_rlgrad_lora(seed: int, args) -> dict:
    from rlgrad.lm import demo
    from rlgrad.lm.grpo import GRPOTrainer

    tokenizer, model, config, peft_config = lora_setup(seed, args)
    rewards = [demo.correct, demo.format_reward]
    built = time.perf_counter()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=config,
        train_dataset=demo.dataset(),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    setup_s = time.perf_counter() - built
    clock, lengths = Clock(math.inf, eval_every=0), []

    def step_done(grpo, row) -> None:
        lengths.append(row["completions/mean_length"])
        clock.step_done(row["step"], model, tokenizer)

    before = memory_mib()
    clock.start()
    trainer.train(callbacks=[step_done])
    return {**lora_result(clock, lengths, before, trainer.model, args), "setup_s": setup_s}


def run_trl_lora(seed: int, args) -> dict:
    import datasets
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from rlgrad.lm import demo
    from rlgrad.lm.grpo import make_optimizer

    tokenizer, model, ours, peft_config = lora_setup(seed, args)
    clock, lengths = Clock(math.inf, eval_every=0), []

    class Timing(TrainerCallback):
        def on_train_begin(self, train_args, state, control, **kwargs):
            clock.start()

        def on_step_end(self, train_args, state, control, **kwargs):
            # TRL keeps each step's metrics until it logs, which it never does here
            lengths.append(trainer._metrics["train"]["completions/mean_length"][-1])
            clock.step_done(state.global_step, model, tokenizer)

    built = time.perf_counter()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[demo.correct, demo.format_reward],
        args=trl_config(ours),
        train_dataset=datasets.Dataset.from_list(demo.dataset()),
        processing_class=tokenizer,
        callbacks=[Timing()],
        peft_config=peft_config,  # TRL wraps the model; with β > 0 the reference is no copy
    )
    # the adapters exist only now: rlgrad's AdamW and schedule over them, which train() keeps as
    # it keeps those handed in through optimizers=
    trainer.optimizer, trainer.lr_scheduler = make_optimizer(trainer.model, ours)
    setup_s = time.perf_counter() - built
    before = memory_mib()
    trainer.train()
    return {**lora_result(clock, lengths, before, trainer.model, args), "setup_s": setup_s}


def compare_lora(args) -> dict:
    """Both libraries, seed by seed, alternating which goes first; the per-run results."""
    results = []
    for index, seed in enumerate(range(args.first_seed, args.first_seed + args.seeds)):
        for library in LIBRARIES if index % 2 == 0 else LIBRARIES[::-1]:
            result = spawn(library, seed, "-", args)
            results.append(result)
            if "error" in result:
                print(f"seed {seed} {library:>6}: FAILED {result['error']}", flush=True)
                continue
            growth = result["growth_mib"]
            print(
                f"seed {seed} {library:>6}: {result['step_s_median']:.3f} s/step "
                f"(median of steps {args.skip + 1}-{result['steps']}), "
                f"peak RSS {result['peak_rss_mib']:.0f} MiB "
                f"(+{'?' if growth is None else f'{growth:.0f}'} in training), "
                f"{result['completion_length']:.1f} completion tokens, "
                f"{result['trained_parameters']:,} trained parameters, "
                f"setup {result['setup_s']:.1f} s",
                flush=True,
            )
    return {"results": results, "summary": summarize_lora(results, args)}


def summarize_lora(results: list[dict], args) -> dict:
    """Medians over seeds per library, the TRL / rlgrad ratios, and the issue's two goals."""
    ok = [r for r in results if "error" not in r]
    summary: dict = {}
    for library in LIBRARIES:
        done = [r for r in ok if r["library"] == library]
        if not done:
            summary[library] = None
            continue
        growths = [r["growth_mib"] for r in done if r["growth_mib"] is not None]
        summary[library] = {
            "seeds": len(done),
            "step_s": statistics.median(r["step_s_median"] for r in done),
            "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in done),
            "growth_mib": statistics.median(growths) if growths else None,
            "completion_length": statistics.median(r["completion_length"] for r in done),
        }
    by_seed = {(r["library"], r["seed"]): r for r in ok}
    summary["per_seed_ratio"] = {
        seed: by_seed["trl", seed]["step_s_median"] / by_seed["rlgrad", seed]["step_s_median"]
        for library, seed in by_seed
        if library == "rlgrad" and ("trl", seed) in by_seed
    }
    rl, tr = summary["rlgrad"], summary["trl"]
    print(f"\nmedians over seeds (each run: the median of steps {args.skip + 1}-{args.steps}):")
    print(f"{'':>8} {'s/step':>8} {'peak RSS MiB':>13} {'growth MiB':>11} {'tokens':>7}")
    for library in LIBRARIES:
        s = summary[library]
        if s is None:
            print(f"{library:>8} failed on every seed")
            continue
        growth = "?" if s["growth_mib"] is None else f"{s['growth_mib']:.0f}"
        print(
            f"{library:>8} {s['step_s']:>8.3f} {s['peak_rss_mib']:>13.0f} {growth:>11} "
            f"{s['completion_length']:>7.1f}"
        )
    if rl is None or tr is None:
        return summary
    summary["ratio"] = tr["step_s"] / rl["step_s"]
    summary["peak_difference_mib"] = rl["peak_rss_mib"] - tr["peak_rss_mib"]
    per_seed = ", ".join(f"{ratio:.2f}" for ratio in summary["per_seed_ratio"].values())
    print(
        f"TRL / rlgrad: {summary['ratio']:.2f}× time per step (per seed: {per_seed}); "
        f"peak RSS rlgrad − TRL: {summary['peak_difference_mib']:+.0f} MiB"
    )
    faster = "met" if summary["ratio"] >= 1.3 else "not met"
    leaner = "met" if summary["peak_difference_mib"] <= 0 else "not met"
    print(f"goals: rlgrad ≥ 1.3× faster per step: {faster}; no more peak RSS than TRL: {leaner}")
    return summary


# ----- workers and the command line -----


def worker(library: str, seed: int, checkpoint: str, args) -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    try:  # reported in the table, never a silent gap
        if args.lora:
            result = (run_rlgrad_lora if library == "rlgrad" else run_trl_lora)(seed, args)
        else:
            runner = run_rlgrad if library == "rlgrad" else run_trl
            result = runner(checkpoint, seed, args)
    except Exception as error:
        result = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps({"library": library, "seed": seed, **result}))


def spawn(library: str, seed: int, checkpoint: Path | str, args) -> dict:
    command = [sys.executable, __file__, "--worker", library, str(seed), str(checkpoint)]
    mode = "lora" if args.lora else "accuracy"
    command += ["--lora"] if args.lora else []
    for name in WORKER_OPTIONS[mode]:
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


def compare_accuracy(args) -> dict:
    """Per seed, one warm-up checkpoint, then rlgrad and TRL from it to the target accuracy."""
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
    return {"results": results, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--lr", type=float, help="default 2e-3, with --lora 1e-4")
    parser.add_argument("--beta", type=float, help="default 0.2, with --lora 0.04")
    parser.add_argument("--warmup-steps", type=int, help="default 5, with --lora 0")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, help="default 16, with --lora 8")
    parser.add_argument("--warm-up-steps", type=int, default=50)
    parser.add_argument("--lora", action="store_true", help="time steps with LoRA instead")
    parser.add_argument("--steps", type=int, default=12, help="--lora: GRPO steps per run")
    parser.add_argument("--skip", type=int, default=2, help="--lora: first steps left untimed")
    parser.add_argument("--completion-length", type=int, default=48, help="--lora: new tokens")
    parser.add_argument("--layers", type=int, default=4, help="--lora: the GPT-2's layers")
    parser.add_argument("--width", type=int, default=256, help="--lora: the GPT-2's width")
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", nargs=3, metavar=("LIBRARY", "SEED", "CHECKPOINT"))
    args = parser.parse_args()
    mode = "lora" if args.lora else "accuracy"
    for name, value in DEFAULTS[mode].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
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
    if args.lora:
        print(
            f"LoRA on a GPT-2 of {args.layers} layers × {args.width}, {args.prompts} prompts × "
            f"{args.generations} completions of ≤ {args.completion_length} tokens, "
            f"β = {args.beta}, lr {args.lr}, {args.steps} steps a run ({args.skip} untimed)"
        )
    report = compare_lora(args) if args.lora else compare_accuracy(args)
    if args.out:
        report = {"mode": mode, "settings": vars(args), **report}
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
