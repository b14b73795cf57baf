"""GRPO (critic-free, group-relative) against PPO on Gymnasium tasks, interleaved, several seeds.

    python benchmarks/grpo_vs_ppo.py [--envs CartPole-v1,Acrobot-v1] [--seeds 5]

For each (env, seed) the two trainers run back to back in this process (PPO, GRPO, next seed),
each from its preset (``rlgrad.app.presets.preset_config``) with the same evaluation
protocol: every ``eval_every`` steps, 10 deterministic episodes on separately seeded envs. Per
algorithm it prints the median training seconds and environment steps to the first of three
consecutive evaluations at the threshold (a seed that never gets there counts as +inf), the final
evaluations, and the ratio GRPO / PPO of the medians. The point is an honest comparison, not a
race: GRPO spends whole episodes per group to estimate what PPO's critic predicts.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from rlgrad.app.presets import preset_config
from rlgrad.app.registry import module

ALGORITHMS = ("ppo", "grpo")


def run_once(algorithm: str, env_id: str, seed: int) -> dict:
    config = preset_config(algorithm, env_id, seed=seed, checkpoint_every=0)
    with tempfile.TemporaryDirectory(prefix="grpo_vs_ppo_") as tmp:
        history = module(algorithm).train(config, run_dir=Path(tmp) / "run")
    summary = history.summary
    return {
        "solved_s": summary["solved_train_s"]
        if summary["solved_train_s"] is not None
        else math.inf,
        "solved_step": summary["solved_step"] if summary["solved_step"] is not None else math.inf,
        "final": summary["final_eval_return_mean"],
        "train_s": summary["train_s"],
        "steps": summary["steps"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="CartPole-v1,Acrobot-v1")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}")
    for env_id in args.envs.split(","):
        results: dict[str, list[dict]] = {a: [] for a in ALGORITHMS}
        for seed in range(args.seeds):
            for algorithm in ALGORITHMS:
                result = run_once(algorithm, env_id, seed)
                results[algorithm].append(result)
                print(
                    f"  {env_id} seed {seed} {algorithm:>4}: solved at {result['solved_s']:.2f} s"
                    f" / {result['solved_step']} steps, final {result['final']:.1f} "
                    f"({result['steps']} steps, {result['train_s']:.1f} s)",
                    flush=True,
                )
        medians = {}
        for algorithm, runs in results.items():
            medians[algorithm] = (
                statistics.median(r["solved_s"] for r in runs),
                statistics.median(r["solved_step"] for r in runs),
            )
            finals = ", ".join(f"{r['final']:.0f}" for r in runs)
            solved = sum(math.isfinite(r["solved_s"]) for r in runs)
            print(
                f"{env_id} {algorithm:>4}: median {medians[algorithm][0]:.2f} s, "
                f"{medians[algorithm][1]} steps to threshold; {solved}/{len(runs)} solved; "
                f"finals [{finals}]"
            )
        ratio_s = medians["grpo"][0] / medians["ppo"][0]
        ratio_steps = medians["grpo"][1] / medians["ppo"][1]
        print(f"{env_id} GRPO / PPO: {ratio_s:.2f}× the seconds, {ratio_steps:.2f}× the steps\n")


if __name__ == "__main__":
    main()
