"""What a Hessian-vector product costs against one gradient, on a ~100k-parameter MLP.

    python benchmarks/hvp_cost.py [--batch 64,1024] [--repeats 30] [--threads 1]

Times, in the same process and interleaved (gradient, HVP, FVP, gradient, HVP, FVP, ...):
- ``gradient``: the forward pass and ``torch.autograd.grad`` of a policy-gradient-style loss;
- ``hvp``: :func:`rlgrad.hessian_vector_product` of the same loss (forward, backward with a
  graph, the double backward);
- ``fvp``: :func:`rlgrad.fisher_vector_product` of the mean categorical KL, one product alone;
- ``fvp_in_cg``: :func:`rlgrad.fisher_operator` of the same KL, built once and applied to
  ``PRODUCTS`` vectors, as TRPO's conjugate gradient uses it (15 iterations and the step's
  scaling), timed as a whole and divided by ``PRODUCTS``: the cost of one product there.
The network is 128 → 256 → 256 → 16 with tanh (102,928 parameters), float32. Prints the median
time of each and their ratios to the gradient with the interquartile range of the per-repeat
ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from rlgrad import (
    categorical_kl,
    fisher_operator,
    fisher_vector_product,
    hessian_vector_product,
)

OBS, HIDDEN, ACTIONS = 128, 256, 16
PRODUCTS = 16  # TRPO's conjugate gradient: 15 iterations, then F·s for the step's length


def network() -> nn.Module:
    return nn.Sequential(
        nn.Linear(OBS, HIDDEN),
        nn.Tanh(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.Tanh(),
        nn.Linear(HIDDEN, ACTIONS),
    )


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4)
    return q1, median, q3


def measure(batch: int, repeats: int, warmup: int = 5) -> dict[str, list[float]]:
    torch.manual_seed(0)
    model = network()
    params = list(model.parameters())
    states = torch.randn(batch, OBS)
    actions = torch.randint(ACTIONS, (batch,))
    advantages = torch.randn(batch)
    old_logits = model(states).detach()
    vector = torch.randn(sum(p.numel() for p in params))

    def loss() -> torch.Tensor:
        log_probs = torch.log_softmax(model(states), dim=-1)
        return -(log_probs.gather(1, actions[:, None]).squeeze(1) * advantages).mean()

    def mean_kl() -> torch.Tensor:
        return categorical_kl(old_logits, model(states)).mean()

    def products_in_cg() -> None:
        times_fisher = fisher_operator(mean_kl, params)
        for _ in range(PRODUCTS):
            times_fisher(vector)

    work = {  # name: (function, products it computes)
        "gradient": (lambda: torch.autograd.grad(loss(), params), 1),
        "hvp": (lambda: hessian_vector_product(loss, params, vector), 1),
        "fvp": (lambda: fisher_vector_product(mean_kl, params, vector), 1),
        "fvp_in_cg": (products_in_cg, PRODUCTS),
    }
    times: dict[str, list[float]] = {name: [] for name in work}
    for repeat in range(warmup + repeats):
        for name, (fn, products) in work.items():
            start = time.perf_counter()
            fn()
            elapsed = (time.perf_counter() - start) / products
            if repeat >= warmup:
                times[name].append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", default="64,1024", help="batch sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parameters = sum(p.numel() for p in network().parameters())
    print(
        f"MLP {OBS}-{HIDDEN}-{HIDDEN}-{ACTIONS} tanh, {parameters:,} parameters, float32, "
        f"{args.threads} thread(s), {args.repeats} interleaved repeats"
    )
    print(
        "| batch | gradient ms | HVP ms | FVP ms | FVP in CG ms | HVP / gradient [IQR] "
        "| FVP / gradient [IQR] | FVP in CG / gradient [IQR] |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for batch in (int(b) for b in args.batch.split(",")):
        times = measure(batch, args.repeats)
        grad = times["gradient"]
        cells = [f"{statistics.median(times[name]) * 1e3:.2f}" for name in times]
        ratios = []
        for name in ("hvp", "fvp", "fvp_in_cg"):
            per_repeat = [t / g for t, g in zip(times[name], grad, strict=True)]
            q1, median, q3 = quartiles(per_repeat)
            ratios.append(f"{median:.2f} [{q1:.2f}, {q3:.2f}]")
        print(f"| {batch} | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main()
