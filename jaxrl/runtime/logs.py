"""Metric sinks: CSV and JSONL always; TensorBoard (tensorboardX) and Weights & Biases as extras.

Files in the run directory, one row per logged iteration and population member:

* ``metrics.csv`` / ``metrics.jsonl``: ``iteration, member, seed, <swept fields>, <metric fields>``
* ``summary.csv`` (populations only): ``iteration, env_steps, <field>_mean, <field>_min, <field>_max``
  over all members (NaN-aware: members with no finished episode yet are left out)
* ``eval.csv``: greedy evaluation returns per member at each evaluation

Rows are appended and flushed as chunks arrive, so nothing grows in memory with the run's length.
On resume, rows after the checkpoint's iteration are dropped first (they will be written again).
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

METRICS_CSV = "metrics.csv"
METRICS_JSONL = "metrics.jsonl"
SUMMARY_CSV = "summary.csv"
EVAL_CSV = "eval.csv"
EVAL_FIELDS = ["eval_return_mean", "eval_return_std", "eval_return_min", "eval_return_max", "eval_episodes"]


def _per_member(x: Any) -> np.ndarray:
    """``[M, n, ...]`` -> ``[M, n]`` (a vector metric is logged as its mean)."""
    x = np.asarray(x)
    if x.ndim > 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            x = np.nanmean(x.reshape(*x.shape[:2], -1), axis=2)
    return x


def _num(x: Any) -> Any:
    """A python scalar for CSV/JSON (ints stay ints)."""
    x = np.asarray(x)
    if x.ndim:  # a vector metric: log its mean
        x = np.asarray(np.nanmean(x) if x.size else np.nan)
    v = x.item()
    return v


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.8g}"
    return str(v)


def _json_safe(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def truncate(path: str, last_iteration: int, *, jsonl: bool = False) -> None:
    """Drop rows with ``iteration > last_iteration`` (streamed; atomic replace)."""
    if not os.path.exists(path):
        return
    tmp = path + ".tmp"
    with open(path, newline="") as src, open(tmp, "w", newline="") as dst:
        if jsonl:
            for line in src:
                try:
                    if json.loads(line)["iteration"] <= last_iteration:
                        dst.write(line)
                except (ValueError, KeyError):
                    break  # a torn last line from a crash
        else:
            reader = csv.reader(src)
            header = next(reader, None)
            if header is None:
                return
            w = csv.writer(dst)
            w.writerow(header)
            col = header.index("iteration")
            for row in reader:
                if len(row) == len(header) and int(row[col]) <= last_iteration:
                    w.writerow(row)
    os.replace(tmp, path)


class MetricsLog:
    """Writes per-member rows (and population summaries) to every configured sink."""

    def __init__(
        self,
        run_dir: str,
        members: Sequence[dict[str, Any]],
        *,
        resume_iteration: int | None = None,
        tensorboard: bool = False,
        wandb: bool = False,
        wandb_config: dict[str, Any] | None = None,
        run_name: str | None = None,
        eval_metric: str | None = None,
    ):
        """``eval_metric``: eval.csv holds this metric (one value per member and evaluation, see
        :meth:`write_eval_metric`) instead of greedy episode returns."""
        self.run_dir = run_dir
        self.fields: list[str] = []  # set by the first write (the algorithm's metrics fields)
        self.members = list(members)  # [{"member": i, "seed": s, **swept}]
        self.swept = [k for k in self.members[0] if k not in ("member", "seed")]
        if resume_iteration is not None:
            for name, jl in (
                (METRICS_CSV, False),
                (METRICS_JSONL, True),
                (SUMMARY_CSV, False),
                (EVAL_CSV, False),
            ):
                truncate(os.path.join(run_dir, name), resume_iteration, jsonl=jl)
        self._csv: _CsvFile | None = None
        self._jsonl: Any = None
        self._summary: _CsvFile | None = None
        self._stat_fields: list[str] = []
        self.eval_metric = eval_metric
        self._eval = _CsvFile(
            os.path.join(run_dir, EVAL_CSV),
            [
                "iteration",
                "member",
                "seed",
                *self.swept,
                "env_steps",
                *([eval_metric] if eval_metric else EVAL_FIELDS),
            ],
        )
        self._tb = _tensorboard(run_dir) if tensorboard else None
        self._wandb = _wandb(run_dir, wandb_config or {}, run_name) if wandb else None

    # ------------------------------------------------------------------------------ training rows
    def _open(self, fields: list[str]) -> None:
        self.fields = fields
        header = ["iteration", "member", "seed", *self.swept, *fields]
        self._csv = _CsvFile(os.path.join(self.run_dir, METRICS_CSV), header)
        self._jsonl = open(os.path.join(self.run_dir, METRICS_JSONL), "a")
        self._stat_fields = [f for f in fields if f != "env_steps"]
        if len(self.members) > 1:
            stats = [f"{f}_{s}" for f in self._stat_fields for s in ("mean", "min", "max")]
            self._summary = _CsvFile(
                os.path.join(self.run_dir, SUMMARY_CSV), ["iteration", "env_steps", *stats]
            )

    def write(self, iterations: np.ndarray, metrics: dict[str, np.ndarray]) -> None:
        """``iterations [n]``; ``metrics[field] [M, n, ...]`` for the logged iterations only."""
        if self._csv is None:
            self._open(list(metrics))
        arrays = {f: _per_member(metrics[f]) for f in self.fields}  # [M, n]
        cols = {f: a.tolist() for f, a in arrays.items()}  # python scalars, converted once
        external = self._tb is not None or self._wandb is not None
        stats = self._stats(arrays) if self._summary is not None or external else None
        keys = ["iteration", "member", "seed", *self.swept]
        for j, it in enumerate(iterations.tolist()):
            for m, member in enumerate(self.members):
                values = [cols[f][m][j] for f in self.fields]
                head = [it, member["member"], member["seed"], *(member[k] for k in self.swept)]
                self._csv.write(head + values)
                row = dict(zip(keys, head, strict=True))
                row.update({f: _json_safe(v) for f, v in zip(self.fields, values, strict=True)})
                self._jsonl.write(json.dumps(row) + "\n")
            if stats is None:
                continue
            if self._summary is not None:
                row = [it, stats["env_steps"][j]]
                for f in self._stat_fields:
                    row += [stats[f"{f}_mean"][j], stats[f"{f}_min"][j], stats[f"{f}_max"][j]]
                self._summary.write(row)
            if external:
                self._external(it, cols, j, stats)

    def _stats(self, arrays: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        """Mean/min/max over members of every field, ``[n]`` each (NaN-aware)."""
        out: dict[str, list[Any]] = {}
        steps = arrays.get("env_steps")
        n = next(iter(arrays.values())).shape[1]
        if steps is None:
            out["env_steps"] = [0] * n
        elif steps.dtype.kind == "f":
            out["env_steps"] = steps.mean(axis=0).tolist()
        else:
            out["env_steps"] = [int(v) for v in steps.mean(axis=0)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no episode finished yet
            for f in self._stat_fields:
                x = arrays[f].astype(np.float64)
                out[f"{f}_mean"] = np.nanmean(x, axis=0).tolist()
                out[f"{f}_min"] = np.nanmin(x, axis=0).tolist()
                out[f"{f}_max"] = np.nanmax(x, axis=0).tolist()
        return out

    def _external(self, it: int, cols: dict[str, list], j: int, stats: dict[str, list[Any]]) -> None:
        scalars: dict[str, float] = {}
        if len(self.members) == 1:
            scalars = {f: float(cols[f][0][j]) for f in self._stat_fields}
        else:
            for f in self._stat_fields:
                scalars[f] = stats[f"{f}_mean"][j]
                scalars[f"{f}_min"] = stats[f"{f}_min"][j]
                scalars[f"{f}_max"] = stats[f"{f}_max"][j]
                for m in range(len(self.members)):
                    scalars[f"member_{m}/{f}"] = float(cols[f][m][j])
        step = int(stats["env_steps"][j])
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log({**scalars, "env_steps": step, "iteration": it}, step=it)

    # -------------------------------------------------------------------------------- evaluation
    def write_eval(self, iteration: int, env_steps: np.ndarray, returns: np.ndarray) -> None:
        """``env_steps [M]``, ``returns [M, episodes]`` greedy returns."""
        for m, member in enumerate(self.members):
            r = np.asarray(returns[m], np.float64)
            self._eval.write(
                [
                    iteration,
                    member["member"],
                    member["seed"],
                    *(member[k] for k in self.swept),
                    _num(env_steps[m]),
                ]
                + [float(r.mean()), float(r.std()), float(r.min()), float(r.max()), int(r.size)]
            )
        step = int(np.mean(env_steps))
        mean = float(np.mean(returns))
        if self._tb is not None:
            self._tb.add_scalar("eval_return", mean, step)
        if self._wandb is not None:
            self._wandb.log({"eval_return": mean, "env_steps": step, "iteration": iteration}, step=iteration)

    def write_eval_metric(self, iteration: int, env_steps: np.ndarray, values: np.ndarray) -> None:
        """``env_steps [M]``, ``values [M]`` of ``eval_metric`` at ``iteration``."""
        for m, member in enumerate(self.members):
            head = [iteration, member["member"], member["seed"], *(member[k] for k in self.swept)]
            self._eval.write(head + [_num(env_steps[m]), float(values[m])])
        step, mean = int(np.mean(env_steps)), float(np.mean(values))
        if self._tb is not None:
            self._tb.add_scalar(f"eval/{self.eval_metric}", mean, step)
        if self._wandb is not None:
            self._wandb.log(
                {f"eval/{self.eval_metric}": mean, "env_steps": step, "iteration": iteration}, step=iteration
            )

    def flush(self) -> None:
        for f in (self._csv, self._summary, self._eval, self._jsonl):
            if f is not None:
                f.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self.flush()
        for f in (self._csv, self._summary, self._eval, self._jsonl):
            if f is not None:
                f.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


class _CsvFile:
    """Append-mode CSV with a header written once (kept if the file already has one)."""

    def __init__(self, path: str, header: list[str]):
        exists = os.path.exists(path) and os.path.getsize(path) > 0
        self._f = open(path, "a", newline="")
        self._w = csv.writer(self._f)
        if not exists:
            self._w.writerow(header)

    def write(self, row: list[Any]) -> None:
        self._w.writerow([_fmt(v) for v in row])

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _tensorboard(run_dir: str) -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError("TensorBoard logging needs tensorboardX: pip install 'jaxrl[tensorboard]'") from e
    return SummaryWriter(logdir=os.path.join(run_dir, "tensorboard"))


def _wandb(run_dir: str, config: dict[str, Any], name: str | None) -> Any:
    """W&B in offline mode unless ``WANDB_MODE`` says otherwise: never needs a network or a login."""
    try:
        import wandb
    except ImportError as e:
        raise ImportError("Weights & Biases logging needs wandb: pip install 'jaxrl[wandb]'") from e
    mode = os.environ.get("WANDB_MODE", "offline")
    try:
        return wandb.init(
            project=os.environ.get("WANDB_PROJECT", "jaxrl"),
            dir=run_dir,
            name=name,
            config=config,
            mode=mode,
            reinit=True,
        )
    except Exception as e:  # a network or login problem must not stop training
        warnings.warn(
            f"wandb.init failed ({e}); continuing without W&B (files are still written)", stacklevel=2
        )
        return None


# ------------------------------------------------------------------------------------ READING
def read_csv(path: str) -> dict[str, np.ndarray]:
    """A CSV written here as ``{column: array}`` (numbers parsed; ``nan`` kept)."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [r for r in reader if len(r) == len(header)]
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(header):
        col = [r[i] for r in rows]
        try:
            out[name] = np.asarray([float(v) for v in col])
        except ValueError:
            out[name] = np.asarray(col)
    return out
