"""Time rlgrad.gae against a per-step torch loop and against the memory floor, in one process.

    python benchmarks/gae.py [--repeats 30] [--threads 1]

Cases are float32 ``[T, B]`` rollouts with ~1 % terminations and truncations. For each case the
three contenders run interleaved so that machine-speed drift hits them alike, and each repeat
starts the rotation one contender later (floor, gae, loop; gae, loop, floor; ...). Arrays that
were just used several times partly survive an eviction, so the first cold slots after the warm
block run faster (a probe that measured this lives in git history), and a fixed order would favour
whoever goes first. The medians and the ratios between them are printed.

Memory-bound code runs twice as fast from cache as from memory on these machines, so every
contender is timed in two named cache states, also interleaved:

* warm: right after an untimed call of the same contender on the same arrays, as when GAE runs
  right after the critic pass that wrote the values;
* cold: right after writing a 256 MiB buffer, so the inputs come from memory. (Left alone for
  a few milliseconds, arrays used only once are evicted as well: this machine shares its L3.)

The per-step loop is bound by Python dispatch, not memory, so its time barely depends on the state.

* floor: ``torch.addcmul(rewards, values, next_values)``, one fused elementwise op that reads
  three float32 arrays and writes one (16 bytes an element). GAE moves 18 (it also reads the two
  bool flag arrays), so the floor is slightly optimistic and the ratio slightly pessimistic.
* loop: the straightforward per-step loop found in most PPO code (CleanRL's shape), in torch.
* gae: ``rlgrad.gae`` (compiled numba scan on CPU).
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import time

import torch

import rlgrad

GAMMA, LAM = 0.99, 0.95


def make_case(steps: int, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(steps, batch, generator=g)
    values = torch.randn(steps, batch, generator=g)
    next_values = torch.randn(steps, batch, generator=g)
    terminated = torch.rand(steps, batch, generator=g) < 0.01
    truncated = torch.rand(steps, batch, generator=g) < 0.01
    return rewards, values, next_values, terminated, truncated


def per_step_loop(rewards, values, next_values, terminated, truncated):
    advantages = torch.zeros_like(rewards)
    alive = 1.0 - terminated.float()
    continues = alive * (1.0 - truncated.float())
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + GAMMA * next_values[t] * alive[t] - values[t]
        last = delta + GAMMA * LAM * continues[t] * last
        advantages[t] = last
    return advantages


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


@functools.cache
def eviction_buffer() -> torch.Tensor:
    return torch.zeros(64 * 2**20)  # 256 MiB, past any cache this machine has


def evict_caches() -> None:
    eviction_buffer().add_(1.0)


PREPARE = {"warm": lambda fn: fn(), "cold": lambda fn: evict_caches()}


def rotated_medians(contenders: dict, repeats: int) -> dict:
    """Median seconds per (cache state, contender name): every contender in every state of
    ``PREPARE``, interleaved, each repeat starting the rotation one contender later."""
    names = list(contenders)
    samples = {(state, name): [] for state in PREPARE for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for state, prepare in PREPARE.items():
            for name in names[shift:] + names[:shift]:
                prepare(contenders[name])
                samples[state, name].append(timed(contenders[name]))
    return {key: statistics.median(times) for key, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )

    first = make_case(16, 4)
    compile_s = timed(rlgrad.gae, *first, GAMMA, LAM)
    print(f"first gae call (numba compile or cache load): {compile_s * 1e3:.0f} ms\n")

    header = (
        f"{'case [T, B]':>14} {'caches':>7} {'floor ms':>9} {'gae ms':>8} {'loop ms':>9} "
        f"{'gae/floor':>10} {'loop/gae':>9} {'loop/floor':>11}"
    )
    print(header)
    print("-" * len(header))
    for steps, batch in [(2048, 64), (1024, 1024)]:
        case = make_case(steps, batch)
        torch.testing.assert_close(
            rlgrad.gae(*case, GAMMA, LAM), per_step_loop(*case), rtol=1e-4, atol=1e-4
        )
        contenders = {
            "floor": lambda c=case: torch.addcmul(c[0], c[1], c[2]),
            "gae": lambda c=case: rlgrad.gae(*c, GAMMA, LAM),
            "loop": lambda c=case: per_step_loop(*c),
        }
        for fn in contenders.values():  # warm-up
            fn()
        medians = rotated_medians(contenders, args.repeats)
        for state in PREPARE:
            floor, gae, loop = (medians[state, name] for name in ("floor", "gae", "loop"))
            print(
                f"{f'[{steps}, {batch}]':>14} {state:>7} {floor * 1e3:9.3f} {gae * 1e3:8.3f} "
                f"{loop * 1e3:9.2f} {gae / floor:10.2f} {loop / gae:9.1f} {loop / floor:11.1f}"
            )


if __name__ == "__main__":
    main()
