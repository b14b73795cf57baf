"""``rlgrad taylor RUN_DIR``: the Taylor diagnostics a run logged, drawn over training.

A PPO or TRPO run trained with ``--config.taylor_every N`` has the columns of
:data:`rlgrad.support.taylor.COLUMNS` in its metrics.csv, filled every N updates: each update's
predicted against actual KL and surrogate change, and how far the probability ratios strayed
from their first- and second-order models (matplotlib, an optional dependency).
"""

from __future__ import annotations

from pathlib import Path

from rlgrad.errors import BadInputError
from rlgrad.support.run_format import read_rows
from rlgrad.support.taylor import COLUMNS


def logged_diagnostics(run_dir: str | Path) -> dict[str, list[float]]:
    """``{"step": [...], column: [...]}`` over the updates that logged Taylor diagnostics.

    Raises ValueError, in one line that says what to do, when ``run_dir`` is not a run directory
    or its run logged no diagnostics.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.csv").exists():
        raise BadInputError(f"{str(run_dir)!r} is not a run directory (no metrics.csv)")
    rows = read_rows(run_dir)
    missing = [name for name in COLUMNS if not rows or name not in rows[0]]
    if missing:
        raise BadInputError(
            f"{str(run_dir)!r} has no Taylor diagnostics in its metrics.csv: train with "
            "--config.taylor_every N (ppo or trpo) to log them every N updates"
        )
    logged = [row for row in rows if all(row[name] is not None for name in COLUMNS)]
    if not logged:
        raise BadInputError(
            f"{str(run_dir)!r} has Taylor columns but no update has filled them yet; train on"
        )
    return {name: [float(row[name]) for row in logged] for name in ("step", *COLUMNS)}


def taylor_figure(run_dir: str | Path, out: str | Path) -> Path:
    """Draw the logged diagnostics against environment steps: predicted and actual KL, predicted
    and actual surrogate change, and the ratios' mean relative model errors; return ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logged = logged_diagnostics(run_dir)
    steps = logged["step"]
    figure, (kl, surrogate, ratios) = plt.subplots(1, 3, figsize=(14, 4.2))
    kl.plot(steps, logged["taylor_kl_actual"], "k-", marker="o", ms=3, label="true mean KL")
    kl.plot(steps, logged["taylor_kl_predicted"], "--", marker="x", ms=4, label="model ½ΔθᵀFΔθ")
    kl.set(title="KL(π_old ‖ π_new) of each update", ylabel="mean KL")
    surrogate.plot(
        steps, logged["taylor_surrogate_actual"], "k-", marker="o", ms=3, label="true change"
    )
    surrogate.plot(
        steps, logged["taylor_surrogate_predicted"], "--", marker="x", ms=4, label="model gᵀΔθ"
    )
    surrogate.axhline(0.0, color="grey", lw=0.6)
    surrogate.set(title="Surrogate change of each update", ylabel="L(θ_new) − L(θ_old)")
    ratios.plot(steps, logged["taylor_ratio_error_first"], "-", marker="o", ms=3, label="first")
    ratios.plot(steps, logged["taylor_ratio_error_second"], "--", marker="x", ms=4, label="second")
    if min(logged["taylor_ratio_error_first"] + logged["taylor_ratio_error_second"]) > 0:
        ratios.set_yscale("log")
    ratios.set(
        title="Probe ratios against their Taylor models", ylabel="mean |model − r| / r (order)"
    )
    for axis in (kl, surrogate, ratios):
        axis.set_xlabel("environment steps")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"Taylor diagnostics of {Path(run_dir).name}")
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out
