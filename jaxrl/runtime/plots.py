"""Learning curves from run directories (matplotlib, imported only here).

One curve per run and swept configuration: the mean over seeds of ``episode_return`` against env
steps, with a 95% confidence interval of that mean (Student t over the seeds) as a shaded band, and
evaluations as dots of their curve's colour. Axis labels, title and the evaluation come from the
algorithm's :class:`~jaxrl.algos.base.Presentation` (GRPO: reward and held-out accuracy against
completions sampled). The legend sits outside the axes, so it never covers the curves.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxrl.algos import base, registry
from jaxrl.runtime import logs


def _spec(run_dir: str) -> dict[str, Any]:
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def presentation(spec: dict[str, Any]) -> base.Presentation:
    """The :class:`~jaxrl.algos.base.Presentation` of the run's algorithm (default for unknown ones)."""
    algo = registry.algorithms().get(spec.get("algo", ""))
    return algo.presentation if algo is not None else base.Presentation()


def t_interval(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% confidence interval of the mean over axis 0 (Student t, NaNs ignored): ``(lo, hi)``; the mean
    itself where fewer than two values are finite."""
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        n = np.sum(np.isfinite(y), axis=0)
        mean = np.nanmean(y, axis=0)
        sem = np.nanstd(y, axis=0, ddof=1) / np.sqrt(np.maximum(n, 1))
        half = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sem, 0.0)
    return mean - half, mean + half


def curves(run_dir: str, metric: str = "episode_return") -> list[dict[str, Any]]:
    """``[{label, x[T], mean[T], lo[T], hi[T] (min, max over seeds), ci_lo[T], ci_hi[T] (95% interval of
    the mean), seeds, eval_x, eval_y}]``, one per swept configuration."""
    path = os.path.join(run_dir, logs.METRICS_CSV)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} has no {logs.METRICS_CSV}; is it a jaxrl run directory?")
    data = logs.read_csv(path)
    if metric not in data:
        raise ValueError(f"{path} has no column {metric!r}; columns: {', '.join(data)}")
    spec = _spec(run_dir)
    swept = list(spec.get("sweep") or {})
    ev_path = os.path.join(run_dir, logs.EVAL_CSV)
    ev = logs.read_csv(ev_path) if os.path.exists(ev_path) else {}
    shown = presentation(spec)
    ev_column = "eval_return_mean" if "eval_return_mean" in ev else shown.eval_metric
    groups: dict[tuple, list[int]] = {}
    for i in range(len(data["iteration"])):
        groups.setdefault(tuple(data[k][i] for k in swept), []).append(i)
    out = []
    for values, rows in groups.items():
        rows = np.asarray(rows)
        seeds = np.unique(data["seed"][rows])
        its = np.unique(data["iteration"][rows])
        y = np.full((len(seeds), len(its)), np.nan)
        x = np.full((len(seeds), len(its)), np.nan)
        si = np.searchsorted(seeds, data["seed"][rows])
        ti = np.searchsorted(its, data["iteration"][rows])
        y[si, ti] = data[metric][rows]
        x[si, ti] = data["env_steps"][rows] if "env_steps" in data else data["iteration"][rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            curve = {
                "label": ", ".join(f"{k}={_short(v)}" for k, v in zip(swept, values, strict=True)),
                "x": np.nanmean(x, axis=0),
                "mean": np.nanmean(y, axis=0),
                "lo": np.nanmin(y, axis=0),
                "hi": np.nanmax(y, axis=0),
                "seeds": len(seeds),
            }
            curve["ci_lo"], curve["ci_hi"] = t_interval(y)
            if ev and ev_column in ev and metric == "episode_return" and len(ev.get("iteration", [])):
                mask = np.ones(len(ev["iteration"]), bool)
                for k, v in zip(swept, values, strict=True):
                    mask &= ev[k] == v
                e_its = np.unique(ev["iteration"][mask])
                curve["eval_x"] = np.asarray(
                    [np.mean(ev["env_steps"][mask & (ev["iteration"] == t)]) for t in e_its]
                )
                curve["eval_y"] = np.asarray(
                    [np.mean(ev[ev_column][mask & (ev["iteration"] == t)]) for t in e_its]
                )
        out.append(curve)
    return out


def _short(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float | np.floating) else str(v)


def _moving_average(y: np.ndarray, w: int) -> np.ndarray:
    """Trailing mean over ``w`` points (fewer at the start), so a curve never looks ahead."""
    if w <= 1 or len(y) == 0:
        return y
    c = np.cumsum(np.insert(np.asarray(y, np.float64), 0, 0.0))
    n = np.minimum(np.arange(1, len(y) + 1), w)
    return (c[1:] - c[np.arange(1, len(y) + 1) - n]) / n


def plot_runs(
    run_dirs: Sequence[str],
    out: str,
    *,
    metric: str = "episode_return",
    title: str | None = None,
    smooth: int = 50,
) -> str:
    """Overlay the curves of ``run_dirs`` in one PNG at ``out``; returns ``out``.

    Curves with many points are shown as a trailing moving average over ~1/``smooth`` of the run
    (the raw values faintly behind it); ``smooth=0`` plots the raw values only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import EngFormatter

    spec0 = _spec(run_dirs[0]) if run_dirs else {}
    shown = presentation(spec0)
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n = 0
    eval_drawn = False
    bands = set()
    smoothed = False
    for run_dir in run_dirs:
        spec = _spec(run_dir)
        name = os.path.basename(os.path.normpath(run_dir))
        for c in curves(run_dir, metric):
            color = colors[n % len(colors)]
            n += 1
            label = name if len(run_dirs) > 1 else (spec.get("algo", "") or name)
            label = f"{label} ({c['label']})" if c["label"] else label
            if c["seeds"] > 1:
                label += f", mean of {c['seeds']} seeds"
                bands.add(c["seeds"])
            ok = np.isfinite(c["mean"])
            x = c["x"][ok]
            w = max(1, int(ok.sum()) // smooth) if smooth else 1
            if w > 1:  # the raw per-update values faintly, a moving average on top
                ax.plot(x, c["mean"][ok], color=color, lw=0.6, alpha=0.25)
                smoothed = True
            ax.plot(x, _moving_average(c["mean"][ok], w), color=color, lw=1.8, label=label)
            if c["seeds"] > 1:
                lo, hi = _moving_average(c["ci_lo"][ok], w), _moving_average(c["ci_hi"][ok], w)
                ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
            if "eval_x" in c and len(c["eval_x"]):
                ax.plot(c["eval_x"], c["eval_y"], "o", color=color, ms=5, mec="black", mew=0.6)
                eval_drawn = True
    handles, labels = ax.get_legend_handles_labels()
    if eval_drawn:  # one entry for every curve's dots, drawn neutral: each dot has its curve's colour
        handles.append(Line2D([], [], ls="", marker="o", mfc="white", mec="black", mew=0.6, ms=5))
        labels.append(f"dots: {shown.eval_label}, in the colour of their curve")
    if bands:
        handles.append(plt.Rectangle((0, 0), 1, 1, fc="grey", alpha=0.3))
        labels.append("band: 95% confidence interval of the mean over seeds (Student t)")
    if smoothed:
        handles.append(Line2D([], [], color="grey", lw=0.6, alpha=0.5))
        labels.append(f"faint: per-update values; solid: trailing mean over ~1/{smooth} of the run")
    if title is None:
        target = spec0.get("target") or (spec0.get("config") or {}).get("env", "")
        algo = spec0.get("algo", "")
        title = f"{algo.upper()} on {target}" if len(run_dirs) == 1 and algo and target else "Learning curves"
    ax.set_title(title)
    ax.set_xlabel(shown.steps)
    ylabel = shown.curve_label if metric == "episode_return" else metric.replace("_", " ")
    if eval_drawn and shown.eval_metric:  # the dots share the axis
        ylabel += f"; dots: {shown.eval_label}"
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(True, alpha=0.3)
    # below the axes: a legend inside would cover the early part of the curves
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=7.5, frameon=False)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out
