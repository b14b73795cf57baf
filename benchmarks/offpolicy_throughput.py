"""Environment steps per second of SAC/TD3/CrossQ training, rlgrad against SB3, interleaved.

    python benchmarks/offpolicy_throughput.py [--cases sac:HalfCheetah-v5,sac:Hopper-v5]
        [--repeats 3] [--learning-starts 1000] [--warmup 500] [--measure 2000]
        [--critic-width 256] [--out FILE]

Both libraries run SB3's defaults for the network, batch and update-to-data ratio (256×256
actor and critics for SAC, 400×300 for TD3, batch 256, one gradient step per environment step,
one environment); CrossQ is sb3-contrib's, with a 256×256 actor and critics ``--critic-width``
wide (sb3-contrib's default is 1,024), policy delay 3 and Adam β₁ 0.5 in both libraries; one
torch thread each, in fresh subprocesses, in the order rlgrad, rlgrad bfloat16, SB3, rlgrad, ...
The clock covers ``--measure`` environment steps that start ``--warmup`` steps after learning
starts (so every measured step includes its gradient step); evaluation never runs inside it.
Prints each repeat and the median steps/s of each variant with the ratio to SB3's median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

RESULT = "THROUGHPUT "
VARIANTS = ("rlgrad", "rlgrad-bf16", "sb3")


def rlgrad_worker(algorithm: str, env_id: str, args) -> float:
    from rlgrad.app.registry import module

    trainer = module(algorithm)
    start = args.learning_starts + args.warmup
    config = trainer.Config(
        env=env_id,
        seed=0,
        total_steps=start + args.measure,
        learning_starts=args.learning_starts,
        eval_every=0,
        eval_episodes=1,
        checkpoint_every=0,
        log_every=args.warmup,  # a row at the start of the window and one per warmup after it
        matmul_precision="bfloat16" if args.variant == "rlgrad-bf16" else "float32",
        # SB3's default networks: 256×256 for SAC, 400×300 for TD3 (policy delay 2 in both)
        hidden_sizes=(400, 300) if algorithm == "td3" else (256, 256),
        **({"critic_hidden_sizes": (args.critic_width,) * 2} if algorithm == "crossq" else {}),
    )
    with tempfile.TemporaryDirectory() as tmp:
        history = trainer.train(config, run_dir=f"{tmp}/run")
    first = next(r for r in history.rows if r["step"] == start)
    last = history.rows[-1]
    return (last["step"] - first["step"]) / (last["train_s"] - first["train_s"])


def sb3_worker(algorithm: str, env_id: str, args) -> float:
    import gymnasium as gym
    import stable_baselines3
    from stable_baselines3.common.callbacks import BaseCallback

    start = args.learning_starts + args.warmup
    end = start + args.measure

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == start:
                self.started = time.perf_counter()
            if self.num_timesteps == end:
                self.elapsed = time.perf_counter() - self.started
            return True

    options = {}
    if algorithm == "crossq":
        import sb3_contrib

        model_class = sb3_contrib.CrossQ
        width = [args.critic_width] * 2
        options["policy_kwargs"] = {"net_arch": {"pi": [256, 256], "qf": width}}
    else:
        model_class = getattr(stable_baselines3, algorithm.upper())
    model = model_class(
        "MlpPolicy",
        gym.make(env_id),
        learning_starts=args.learning_starts,
        seed=0,
        device="cpu",
        verbose=0,
        **options,
    )
    clock = Clock()
    model.learn(end, callback=clock)
    return args.measure / clock.elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="sac:HalfCheetah-v5,sac:Hopper-v5")
    parser.add_argument("--critic-width", type=int, default=256, help="CrossQ's critics")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--measure", type=int, default=2000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out")
    parser.add_argument(
        "--worker", nargs=2, metavar=("ALGO:ENV", "VARIANT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(1)
        case, args.variant = args.worker
        algorithm, env_id = case.split(":")
        run = sb3_worker if args.variant == "sb3" else rlgrad_worker
        print(RESULT + json.dumps(run(algorithm, env_id, args)), flush=True)
        return
    variants = args.variants.split(",")
    results: dict[str, dict[str, list[float]]] = {}
    for case in args.cases.split(","):
        results[case] = {v: [] for v in variants}
        for repeat in range(args.repeats):
            for variant in variants:  # interleaved: A, B, C, A, B, C, ...
                command = [sys.executable, __file__, "--worker", case, variant]
                for name in ("learning_starts", "warmup", "measure", "critic_width"):
                    command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
                output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                value = json.loads(output.split(RESULT, 1)[1])
                results[case][variant].append(value)
                print(f"{case} repeat {repeat} {variant}: {value:.1f} steps/s", flush=True)
    print(f"\ncommand: {' '.join(sys.argv)}")
    print("| case | variant | steps/s per repeat | median | vs SB3 |\n|---|---|---|---|---|")
    for case, by_variant in results.items():
        base = statistics.median(by_variant["sb3"]) if by_variant.get("sb3") else None
        for variant, values in by_variant.items():
            median = statistics.median(values)
            ratio = f"{median / base:.2f}×" if base else "–"
            runs = ", ".join(f"{v:.1f}" for v in values)
            print(f"| {case} | {variant} | {runs} | {median:.1f} | {ratio} |")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
