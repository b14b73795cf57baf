"""Figures of ``rlgrad tour --plots DIR``: one function per tour step, each drawing the results
that step computed (never recomputing a formula itself). They read the results' data keys, the
ones starting with ``_``, never the printed labels, so rewording a label cannot break a figure.

matplotlib (the ``plots`` extra) is imported lazily with the Agg backend.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rlgrad.tabular import plots as tabular_plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def ascent(results: dict, path: Path) -> Path:
    """θ_k of gradient ascent on J(θ) = −(θ − 0.8)² + 1 for each learning rate."""
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(7, 4.5))
    for lr, trajectory in results["_paths"].items():
        verdict = results["_verdicts"][lr]
        axis.plot(trajectory.tolist(), "o-", ms=3, label=f"α = {lr:g} ({verdict})")
    axis.axhline(0.8, color="grey", ls=":", label="maximum θ = 0.8")
    axis.set_ylim(-1.5, 3.0)
    axis.set(title="Gradient ascent on J(θ) = −(θ − 0.8)² + 1", xlabel="step k", ylabel="θ_k")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _save(fig, path)


def chain_rule(results: dict, path: Path) -> Path:
    """L(θ) = (3θ − 6)² with its tangent at θ, whose slope is dL/dy · dy/dθ."""
    plt = _pyplot()
    theta = results["_theta"].item()
    loss, slope = results["_loss"].item(), results["_slope"].item()
    dl_dy, dy_dtheta = (factor.item() for factor in results["_factors"])
    grid = torch.linspace(theta - 1.5, theta + 2.5, 200, dtype=torch.float64)
    fig, axis = plt.subplots(figsize=(7, 4.5))
    # The loss curve itself is the definition being differentiated, drawn for orientation.
    axis.plot(grid.tolist(), ((3 * grid - 6) ** 2).tolist(), label="L(θ) = (3θ − 6)²")
    axis.plot(
        grid.tolist(),
        (loss + slope * (grid - theta)).tolist(),
        "--",
        label=f"tangent at θ = {theta:g}, slope dL/dy·dy/dθ = {dl_dy:g}·{dy_dtheta:g} = {slope:g}",
    )
    axis.plot([theta], [loss], "ko")
    axis.set_ylim(-5, max(40.0, loss + 5))
    axis.set(title="The chain rule: y = 3θ, L = (y − 6)²", xlabel="θ", ylabel="L")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _save(fig, path)


def taylor(results: dict, path: Path) -> Path:
    """x² against its first- and second-order Taylor approximations around x."""
    plt = _pyplot()
    x, h = results["_x"].item(), results["_h"].item()
    points = (x + results["_steps"]).tolist()
    fig, axis = plt.subplots(figsize=(7, 4.5))
    for (name, curve), style in zip(results["_curves"].items(), ("-", "--", ":"), strict=True):
        axis.plot(points, curve.tolist(), style, lw=3 if style == "-" else 2, label=name)
    axis.plot(
        [x + h],
        [results["_first_order"].item()],
        "rx",
        ms=10,
        label=f"h = {h:g}: order 1 gives {results['_first_order'].item():.4g}, "
        f"true {results['_exact'].item():.4g}",
    )
    axis.set(title=f"Taylor approximations of x² around x = {x:g}", xlabel="x + h", ylabel="value")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _save(fig, path)


def policy_gradient(results: dict, path: Path) -> Path:
    """J(θ_k) of exact gradient ascent on two_state for each learning rate, against J*."""
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(7, 4.5))
    for lr, curve in results["_returns"].items():
        axis.plot(curve.tolist(), label=f"α = {lr:g}")
    axis.axhline(float(results["_optimum"]), color="grey", ls=":", label="J* (optimal policy)")
    axis.set(
        title="Exact policy-gradient ascent on the two-state MDP",
        xlabel="step k",
        ylabel="J(θ_k) = μ₀ᵀV",
    )
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(fig, path)


def td(results: dict, path: Path) -> Path:
    """TD(0) value estimates per state over updates, with the exact V."""
    plt = _pyplot()
    history, exact_values = results["_history"], results["_true_values"]
    fig, axis = plt.subplots(figsize=(7, 4.5))
    for state, name in enumerate(("left", "right")):
        (line,) = axis.plot(history[:, state].tolist(), label=f"TD(0) V({name})")
        axis.axhline(
            exact_values[state].item(),
            color=line.get_color(),
            ls=":",
            label=f"exact V({name}) = {exact_values[state].item():.3f}",
        )
    axis.set(
        title="Semi-gradient TD(0) on two_state (uniform policy)",
        xlabel="update",
        ylabel="V estimate",
    )
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(fig, path)


def gae(results: dict, path: Path) -> Path:
    """Bias² and variance of GAE(λ) against λ, from the study the step ran."""
    return tabular_plots.plot_lambda(results["_study"], Path(path))


def ppo(results: dict, path: Path) -> Path:
    """PPO's clipped objective against the ratio, for Â = +1 and Â = −1."""
    plt = _pyplot()
    ratios, clip_eps = results["_ratios"].tolist(), results["_clip_eps"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, sign in zip(axes, (1.0, -1.0), strict=True):
        axis.plot(ratios, [sign * r for r in ratios], ":", color="grey", label="unclipped r·Â")
        axis.plot(ratios, results["_curves"][sign].tolist(), lw=2.5, label="min(rÂ, clip(r)Â)")
        low, high = results["_flat"][sign]
        axis.axvspan(low, high, color="orange", alpha=0.2, label="flat: gradient 0")
        for edge in (1 - clip_eps, 1 + clip_eps):
            axis.axvline(edge, color="k", lw=0.6, ls="--")
        axis.set(
            title=f"Â = {sign:+g}, ε = {clip_eps:g}", xlabel="ratio r = π/π_old", ylabel="objective"
        )
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("PPO's clipped objective")
    return _save(fig, path)


def trust_region(results: dict, path: Path) -> Path:
    """The last PPO update's slice θ_old + tΔθ: surrogate and KL against their Taylor models,
    and the fraction of ratios outside the clip range, with t = 1 and the clip's onset marked."""
    plt = _pyplot()
    line, clip_eps, clip_from = results["_slice"], results["_clip_eps"], results["_clip_from"]
    scales = line.scales.tolist()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    surrogate, kl, clipped = axes
    surrogate.plot(
        scales, line.surrogate.tolist(), "k-", lw=2.5, label="true L(θ_old + tΔθ) − L(θ_old)"
    )
    surrogate.plot(scales, line.surrogate_first.tolist(), "--", label="first order t·gᵀΔθ")
    surrogate.plot(scales, line.surrogate_second.tolist(), ":", label="second order + ½t²ΔθᵀHΔθ")
    surrogate.set(title="Surrogate change", ylabel="L(θ) − L(θ_old)")
    kl.plot(scales, line.kl.tolist(), "k-", lw=2.5, label="true mean KL(π_old ‖ π)")
    kl.plot(scales, line.kl_second.tolist(), "--", label="second order ½t²ΔθᵀFΔθ")
    kl.set(title="KL from the old policy", ylabel="mean KL")
    clipped.plot(
        scales,
        line.clip_fraction.tolist(),
        "-",
        color="tab:red",
        label=f"|r − 1| > ε = {clip_eps:g}",
    )
    clipped.plot(
        scales, line.ratio_error_first.tolist(), "--", label="ratio model error, first order"
    )
    clipped.plot(
        scales, line.ratio_error_second.tolist(), ":", label="ratio model error, second order"
    )
    clipped.set(title="Ratios leaving the clip range", ylabel="fraction / mean relative error")
    for axis in axes:
        axis.axvline(1.0, color="grey", lw=0.8, ls="-", label="t = 1: the update")
        if isinstance(clip_from, float):
            axis.axvline(
                clip_from,
                color="tab:red",
                lw=0.8,
                ls="--",
                label=f"clip engages, t = {clip_from:g}",
            )
        axis.set_xlabel("scale t along the update Δθ")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.suptitle("Taylor models along the last PPO update: where the step leaves its trust region")
    return _save(fig, path)


def grpo(results: dict, path: Path) -> Path:
    """GRPO advantages of each answer in the course's reward groups."""
    plt = _pyplot()
    groups = results["_advantages"]
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for axis, (rewards, advantages) in zip(axes[0], groups.items(), strict=True):
        labels = [f"r={r:g}" for r in rewards]
        colors = ["tab:green" if a > 0 else "tab:red" for a in advantages.tolist()]
        axis.bar(labels, advantages.tolist(), color=colors)
        axis.axhline(0, color="k", lw=0.8)
        axis.set(title=f"group {list(rewards)}", xlabel="answer reward", ylabel="Â = (r − μ)/σ")
        axis.grid(alpha=0.3, axis="y")
    fig.suptitle("GRPO: advantages relative to the group mean")
    return _save(fig, path)


def entropy(results: dict, path: Path) -> Path:
    """The soft-optimal policy on two_state against α: its return, its entropy, π*(right|s)."""
    plt = _pyplot()
    grid, chosen = results["_grid"], results["_alphas"]
    table = results["_table"]  # α → (π*(right|·), entropy per step, return) at the printed α
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    returns, entropies, rights = axes
    returns.plot(grid, results["_return"].tolist(), label="return J(π*_α)")
    returns.plot(chosen, [float(table[a][2]) for a in chosen], "ko", ms=4, label="printed α")
    returns.axhline(float(results["_optimum"]), color="grey", ls=":", label="J* (α → 0)")
    returns.set(title="Return of the soft-optimal policy", ylabel="μ₀ᵀV^π* (no entropy)")
    entropies.plot(grid, results["_entropy"].tolist(), color="tab:orange", label="entropy")
    entropies.plot(chosen, [float(table[a][1]) for a in chosen], "ko", ms=4, label="printed α")
    entropies.axhline(
        float(results["_max_entropy"]), color="grey", ls=":", label="log A (uniform policy)"
    )
    entropies.set(title="Its entropy per step", ylabel="(1 − γ) Σ_s d(s) H(π*(·|s))")
    for state, name in enumerate(("left", "right")):
        rights.plot(grid, results["_right"][:, state].tolist(), label=f"π*(right | {name})")
    rights.axhline(0.5, color="grey", ls=":", label="uniform")
    rights.set(title="Where it goes", ylabel="probability of right", ylim=(0, 1.05))
    for axis in axes:
        axis.set_xscale("log")
        axis.set_xlabel("temperature α")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("Max-entropy RL on two_state: α trades return for entropy")
    return _save(fig, path)
