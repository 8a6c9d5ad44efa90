"""Learning curves from run directories (matplotlib, imported only here).

One curve per run and swept configuration: the mean over seeds of ``episode_return`` against env
steps, with the seeds' min-max range as a shaded band, and greedy evaluations as markers.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxrl.runtime import logs


def _spec(run_dir: str) -> dict[str, Any]:
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def curves(run_dir: str, metric: str = "episode_return") -> list[dict[str, Any]]:
    """``[{label, x[T], mean[T], lo[T], hi[T], seeds, eval_x, eval_y}]``, one per swept configuration."""
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
            if ev and metric == "episode_return" and len(ev.get("iteration", [])):
                mask = np.ones(len(ev["iteration"]), bool)
                for k, v in zip(swept, values, strict=True):
                    mask &= ev[k] == v
                e_its = np.unique(ev["iteration"][mask])
                curve["eval_x"] = np.asarray(
                    [np.mean(ev["env_steps"][mask & (ev["iteration"] == t)]) for t in e_its]
                )
                curve["eval_y"] = np.asarray(
                    [np.mean(ev["eval_return_mean"][mask & (ev["iteration"] == t)]) for t in e_its]
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
    from matplotlib.ticker import EngFormatter

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n = 0
    eval_drawn = False
    for run_dir in run_dirs:
        spec = _spec(run_dir)
        name = os.path.basename(os.path.normpath(run_dir))
        for c in curves(run_dir, metric):
            color = colors[n % len(colors)]
            n += 1
            label = name if len(run_dirs) > 1 else (spec.get("algo", "") or name)
            label = f"{label} ({c['label']})" if c["label"] else label
            seeds = c["seeds"]
            what = "training episodes" if metric == "episode_return" else metric.replace("_", " ")
            label += f": {what}, mean of {seeds} seeds (band: min-max)" if seeds > 1 else f": {what}"
            ok = np.isfinite(c["mean"])
            x = c["x"][ok]
            w = max(1, int(ok.sum()) // smooth) if smooth else 1
            if w > 1:  # the raw per-update values faintly, a moving average on top
                ax.plot(x, c["mean"][ok], color=color, lw=0.6, alpha=0.25)
                label += f" (moving average of {w} updates)"
            ax.plot(x, _moving_average(c["mean"][ok], w), color=color, lw=1.8, label=label)
            if seeds > 1:
                lo, hi = _moving_average(c["lo"][ok], w), _moving_average(c["hi"][ok], w)
                ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
            if "eval_x" in c and len(c["eval_x"]):
                ax.plot(
                    c["eval_x"],
                    c["eval_y"],
                    "o",
                    color=color,
                    ms=5,
                    mec="black",
                    mew=0.6,
                    label="greedy evaluation (mean return)" if not eval_drawn else None,
                )
                eval_drawn = True
    if title is None:
        spec = _spec(run_dirs[0]) if run_dirs else {}
        env = (spec.get("config") or {}).get("env", "")
        algo = spec.get("algo", "")
        title = f"{algo.upper()} on {env}" if len(run_dirs) == 1 and algo else "Learning curves"
    ax.set_title(title)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric.replace("_", " "))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8, frameon=True)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
