"""Probe: what ``rlgrad.gae`` costs beyond its kernel, with warm caches and from memory.

    python benchmarks/probes/gae_overhead.py [--repeats 60] [--size 1024]

On a tiny rollout (``[4, 4]``) the arithmetic is nothing, so each contender's time is its
Python, torch and numba code. Warm, that code costs a few microseconds; run right after the cache
eviction of ``benchmarks/gae.py`` it comes from memory as well, and costs tens of microseconds
per distinct torch call. That is the part of ``gae`` from memory that no kernel can remove. The
same contenders on ``[size, size]`` show it against the kernel's memory traffic.

* gae: ``rlgrad.gae``;
* kernel: the float32 kernel alone on preallocated memory (no checks, no allocation);
* empty_like + kernel: the kernel into a fresh output, as ``gae`` does after its checks;
* takes: the one-pass test of the usual call (``rlgrad._kernels.takes``);
* empty_like: the output's allocation alone, as ``gae`` makes it, and with the
  ``memory_format=torch.contiguous_format`` argument it used to pass;
* torch op: ``torch.addcmul`` on the same arrays, the floor of ``benchmarks/gae.py``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from gae import GAMMA, LAM, PREPARE, make_case, rotated_medians

import rlgrad
from rlgrad import _kernels


def contenders(case) -> dict:
    rewards = case[0]
    steps, batch = rewards.shape
    kernel, like = _kernels._compiled()[0], _kernels._LIKE[torch.float32]
    stream = rewards.numel() * 4 >= _kernels.STREAM_BYTES
    out = torch.empty_like(rewards)
    addresses = [x.data_ptr() for x in (*case, out)]

    def empty_like_and_kernel() -> torch.Tensor:
        fresh = torch.empty_like(rewards)  # held until the kernel returns: it writes there
        kernel(*[x.data_ptr() for x in (*case, fresh)], steps, batch, GAMMA, LAM, stream, like)
        return fresh

    return {
        "gae": lambda: rlgrad.gae(*case, GAMMA, LAM),
        # `out` is bound as a default so that it lives as long as the contender writing into it.
        "kernel": lambda out=out: kernel(*addresses, steps, batch, GAMMA, LAM, stream, like),
        "empty_like + kernel": empty_like_and_kernel,
        "takes": lambda: _kernels.takes(case[:3], case[3:]),
        "empty_like": lambda: torch.empty_like(rewards),
        "empty_like(contiguous)": lambda: torch.empty_like(
            rewards, memory_format=torch.contiguous_format
        ),
        "torch op": lambda: torch.addcmul(case[0], case[1], case[2]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--size", type=int, default=1024, help="the large case is [size, size]")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rlgrad.gae(*make_case(4, 4), GAMMA, LAM)  # compile or load the kernel outside the timing
    print(f"{'case':>14} {'contender':>22} " + " ".join(f"{state + ' ms':>9}" for state in PREPARE))
    for steps, batch in [(4, 4), (args.size, args.size)]:
        timed = contenders(make_case(steps, batch))
        for fn in timed.values():
            fn()
        medians = rotated_medians(timed, args.repeats)
        for name in timed:
            row = " ".join(f"{medians[state, name] * 1e3:9.3f}" for state in PREPARE)
            print(f"{f'[{steps}, {batch}]':>14} {name:>22} {row}")


if __name__ == "__main__":
    main()
