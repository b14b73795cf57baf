"""Figures of :func:`rlgrad.tabular.estimators.study` (matplotlib, the ``plots`` extra).

matplotlib is imported inside each function with the non-interactive Agg backend, so importing
this module costs nothing and works on a machine without a display.
"""

from __future__ import annotations

from pathlib import Path

from rlgrad.tabular.estimators import Study, cosine_curve, gae_key, label


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    fig.clf()
    _pyplot().close(fig)
    return path


def _title(result: Study) -> str:
    return f"{result.mdp.name}, N = {result.num_episodes} episodes"


def plot_lambda(result: Study, path: Path) -> Path:
    """Variance and bias² of GAE(λ) against λ, with the exact critic and with the noisy one."""
    plt = _pyplot()
    lams = list(result.lams)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for noisy, style, name in ((False, "o-", "exact V"), (True, "s--", "noisy V̂")):
        rows = [result.rows[gae_key(lam, noisy)] for lam in lams]
        left.plot(lams, [r.variance for r in rows], style, label=name)
        right.plot(lams, [r.bias2_exact for r in rows], style, label=f"{name}: exact")
        right.plot(lams, [r.bias2 for r in rows], "x", ms=9, label=f"{name}: sampled")
    left.set_yscale("log")
    left.set(
        title="Variance of one episode's gradient", xlabel="λ", ylabel="E‖g − E g‖²  (log scale)"
    )
    right.set(
        title=f"Bias² (critic error RMS {result.critic_noise:g})", xlabel="λ", ylabel="‖E ĝ − ∇J‖²"
    )
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.suptitle(f"GAE trades bias for variance\n{_title(result)}")
    return _save(fig, path)


SAMPLE_KEYS = (
    "reinforce",
    "constant_baseline",
    "value_baseline",
    "advantage",
    "gae(0)",
    "gae(0)+noise",
)


def plot_samples(result: Study, path: Path) -> Path:
    """cos(ĝ, ∇J) of an average over n episodes against n, one curve per estimator."""
    plt = _pyplot()
    sizes = [2**k for k in range(result.num_episodes.bit_length()) if 2**k <= result.num_episodes]
    fig, axis = plt.subplots(figsize=(7, 4.5))
    for key in SAMPLE_KEYS:
        if key in result.samples:
            curve = cosine_curve(result.samples[key], result.true_gradient, sizes)
            axis.plot(sizes, curve.tolist(), "o-", ms=4, label=label(key))
    axis.set_xscale("log", base=2)
    axis.axhline(1.0, color="grey", lw=0.8)
    axis.set(
        title=f"How fast estimates line up with the true gradient\n{_title(result)}",
        xlabel="episodes averaged, n",
        ylabel="mean cos(ĝₙ, ∇J)",
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _save(fig, path)


def plot_critic(result: Study, path: Path) -> Path:
    """Exact bias² of GAE(λ) against the size of the critic error, with the sampled points."""
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(7, 4.5))
    sizes = result.noise_sizes.tolist()
    for lam in result.lams:
        (line,) = axis.plot(sizes, result.noise_bias2[lam].tolist(), "-", label=f"λ = {lam:g}")
        row = result.rows.get(gae_key(lam, noisy=True))
        if row is not None:
            axis.plot([result.critic_noise], [row.bias2], "x", ms=9, color=line.get_color())
    axis.set(
        title=f"Critic error propagates into the actor\n{_title(result)}",
        xlabel="critic error, RMS of V̂ − V",
        ylabel="bias² ‖E ĝ − ∇J‖²  (× = sampled)",
    )
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(fig, path)


def plot_study(result: Study, directory: str | Path) -> list[Path]:
    """Write ``study_lambda.png``, ``study_samples.png`` and ``study_critic.png``; return paths."""
    directory = Path(directory)
    return [
        plot_lambda(result, directory / "study_lambda.png"),
        plot_samples(result, directory / "study_samples.png"),
        plot_critic(result, directory / "study_critic.png"),
    ]


def plot_natural(races: list[tuple[str, float, list]], path: Path) -> Path:
    """J* − J(θ_k) against k for vanilla and natural ascent, one panel per MDP.

    ``races``: (title, J*, runs) with the runs of
    :func:`rlgrad.tabular.natural.compare_ascents`.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(races), figsize=(6 * len(races), 4.5), squeeze=False)
    for axis, (title, optimum, runs) in zip(axes[0], races, strict=True):
        for run in runs:
            gap = (optimum - run.returns).clamp(min=1e-12).tolist()
            steps = range(1, len(gap) + 1)  # k + 1, so that θ_0 sits at 1 on the log axis
            reached = f"{run.iterations} it." if run.iterations is not None else "not reached"
            style = "-" if run.method == "natural" else "--"
            axis.plot(steps, gap, style, label=f"{run.method}, α = {run.lr:g}: {reached}")
        first_gap = float(optimum - runs[0].returns[0])
        axis.axhline(0.01 * first_gap, color="grey", lw=0.8, ls=":")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set(title=title, xlabel="iteration k + 1", ylabel="J* − J(θ_k)  (log scale)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, title="to 99% of the way (dotted line)", title_fontsize=8)
    fig.suptitle("Exact natural against vanilla policy-gradient ascent, from a misled start")
    return _save(fig, path)
