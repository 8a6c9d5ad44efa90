"""The training driver: ``jaxrl.run`` executes any algorithm's ``train_step`` in jitted chunks.

``jaxrl.train(cfg, key)`` is one traceable program; ``jaxrl.run(cfg, key, out_dir=...)`` runs the same
iterations from the same key (identical parameters), but in chunks of ~``chunk_seconds`` so that, between
chunks, it streams metrics to disk (memory does not grow with the run), draws a progress bar, runs greedy
evaluations, saves checkpoints, notices Ctrl-C, and stops on a non-finite loss or parameter.

Populations: ``seeds=N`` trains N seeds at once (``jax.vmap``; member i uses ``jax.random.split(key, N)[i]``,
as ``jax.vmap(jaxrl.train, in_axes=(None, 0))(cfg, jax.random.split(key, N))`` does), and
``sweep={"learning_rate": [1e-4, 3e-4]}`` trains every combination of tunable values (x seeds) with the
configs stacked (``jaxrl.stack_configs``). With one seed, every sweep member uses ``key`` itself.

Run directory (``out_dir``)::

    config.json       the resolved run (algo, config, key, seeds, sweep, runtime): re-run with
                      `jaxrl train --config DIR/config.json`, continue with `jaxrl train --resume DIR`
    metrics.csv/.jsonl per logged iteration and member; summary.csv (populations): mean/min/max
    eval.csv          greedy evaluation returns per member
    checkpoints/<it>/ orbax checkpoints of the full training state (newest few)
    final_state.msgpack  the final training state (jaxrl.load_state(DIR) -> (config, state))
    summary.json      final evaluation, wall/compile/training time, env steps/s, status
    curve.png         return vs env steps (seeds as a band)
    tensorboard/      event files (tensorboard=True / --tensorboard); wandb/ (wandb=True / --wandb)
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import cpu, parallel
from jaxrl.algos import env_building, registry
from jaxrl.runtime import checkpoint, chunks, logs, rundir
from jaxrl.runtime.plan import (  # noqa: F401  (prepare, Plan and the specs: re-exported from here)
    Plan,
    config_from_spec,
    default_run_dir,
    prepare,
    prepare_resume,
    run_spec,
    target_name,
)
from jaxrl.runtime.progress import Progress
from jaxrl.runtime.rundir import (
    CHECKPOINTS,
    CURVE_PNG,
    FINAL_STATE,
    SUMMARY_JSON,
    read_spec,
    save_state,
    write_json,
)
from jaxrl.runtime.settings import DEFAULTS, Schedule

#: a fold_in constant that separates evaluation keys from the training key stream
EVAL_STREAM = 0x5EED


class NonFiniteError(FloatingPointError):
    """Training produced a NaN/Inf loss or parameter; ``info`` names the metric, update and member."""

    def __init__(self, message: str, info: dict[str, Any]):
        super().__init__(message)
        self.info = info


@dataclasses.dataclass
class ChunkInfo:
    """What a ``host_callback`` sees after every chunk."""

    iteration: int  # updates done (per member)
    num_iterations: int
    env_steps: float  # per member (mean over the population)
    state: Any  # the training state (members on axis 0 for a population)
    metrics: dict[str, np.ndarray]  # this chunk's metrics, every field [M, n]
    run_dir: str | None


@dataclasses.dataclass
class RunResult:
    state: Any  # final training state; leaves have a leading [M] axis for a population
    config: Any  # the config (stacked over members for a sweep)
    algo: str
    run_dir: str | None
    members: list[dict[str, Any]]  # [{"member", "seed", <swept field>: value}]
    iterations: int
    env_steps: float  # per member
    wall_time: float  # seconds for the whole call
    compile_time: float  # seconds to compile the chunk program
    train_time: float  # seconds spent running chunks (with logging, excluding evaluation/checkpoints)
    eval_time: float  # seconds spent in greedy evaluations (periodic and final)
    eval_returns: np.ndarray | None  # [M, eval_episodes] final greedy returns
    init_time: float = 0.0  # seconds to build (compile) the initial state and restore a checkpoint
    checkpoint_time: float = 0.0  # seconds spent handing checkpoints to orbax (it writes in the background)
    status: str = "finished"  # finished | nonfinite | interrupted
    #: ``{name: [M] values}``: the newest held-out evaluation an algorithm reports in its metrics
    #: (``Presentation.eval_metric``, e.g. GRPO's held-out accuracy); None when it has none
    eval_metric: dict[str, list[float]] | None = None

    @property
    def steps_per_second(self) -> float:
        """Env steps per second of training (all members together, compilation excluded)."""
        return self.env_steps * len(self.members) / self.train_time if self.train_time > 0 else math.nan

    def metrics(self) -> dict[str, np.ndarray]:
        """``metrics.csv`` as columns (needs a run directory)."""
        if self.run_dir is None:
            raise ValueError("this run wrote no files (out_dir=None)")
        return logs.read_csv(os.path.join(self.run_dir, logs.METRICS_CSV))


# --------------------------------------------------------------------------------- SIGINT
class _StopFlag:
    """First Ctrl-C asks the driver to stop after the current chunk; a second one interrupts."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nCtrl-C: stopping after this chunk and saving a checkpoint (press again to abort now)",
            file=sys.stderr,
        )

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


# ------------------------------------------------------------------------------------ RUN
def run(
    cfg: Any,
    key: Any = 0,
    out_dir: str | None = None,
    *,
    seeds: int = 1,
    sweep: dict[str, Sequence[Any]] | None = None,
    resume: bool = False,
    chunk_size: int | None = None,
    chunk_seconds: float = 1.0,
    log_every: int | None = None,
    eval_every: int | None = None,
    eval_episodes: int = DEFAULTS.eval_episodes,
    checkpoint_every: int = DEFAULTS.checkpoint_every,
    keep_checkpoints: int = DEFAULTS.keep_checkpoints,
    progress: bool = True,
    tensorboard: bool = False,
    wandb: bool = False,
    plot: bool = True,
    host_callback: Callable[[ChunkInfo], Any] | None = None,
    stream: Any = None,
) -> RunResult:
    """Train ``cfg`` from ``key`` in jitted chunks; the same result as ``jaxrl.train(cfg, key)``.

    Args:
      cfg: any registered algorithm's config.
      key: ``jax.random.key``, ``PRNGKey`` or an int seed.
      out_dir: run directory (``None``: write nothing, no checkpoints).
      seeds, sweep: train a vmapped population (see the module docstring).
      resume: continue ``out_dir`` from its newest checkpoint (the settings must equal the run's).
      chunk_size: iterations per chunk (default: adaptive, ~``chunk_seconds`` per chunk).
      log_every: write every k-th iteration (default: at most ~2000 rows per member).
      eval_every: greedy evaluation every k iterations (default: 10 over the run; 0: final only);
        ``eval_episodes=0`` turns evaluation off.
      checkpoint_every: checkpoint every k chunks (and at the end, on Ctrl-C); 0: never.
      keep_checkpoints: how many of the newest checkpoints to keep.
      progress: draw a progress bar on ``stream`` (default stderr); ``False``: quiet.
      tensorboard, wandb: also log there (optional extras; W&B offline unless ``WANDB_MODE`` is set).
      plot: write ``curve.png`` at the end (needs matplotlib).
      host_callback: ``fn(ChunkInfo)`` after every chunk; may return a new state (host-side work).
        ``ChunkInfo.state`` is valid until the next chunk (which reuses its buffers).

    Raises ``NonFiniteError`` when a loss or parameter becomes NaN/Inf (after writing the metrics up
    to it; the last good checkpoint is kept) and ``KeyboardInterrupt`` after a Ctrl-C checkpoint.
    """
    cpu.warn_if_default_pool()
    plan = prepare(
        cfg,
        key,
        out_dir,
        seeds=seeds,
        sweep=sweep,
        resume=resume,
        chunk_size=chunk_size,
        log_every=log_every,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
    )
    return execute(
        plan,
        chunk_seconds=chunk_seconds,
        progress=progress,
        tensorboard=tensorboard,
        wandb=wandb,
        plot=plot,
        host_callback=host_callback,
        stream=stream,
    )


def execute(
    plan: Plan,
    *,
    chunk_seconds: float = 1.0,
    progress: bool = True,
    tensorboard: bool = False,
    wandb: bool = False,
    plot: bool = True,
    host_callback: Callable[[ChunkInfo], Any] | None = None,
    stream: Any = None,
) -> RunResult:
    """Run a :func:`prepare`-d plan (see :func:`run`). A run that fails leaves a ``summary.json`` saying
    how (``status``: ``error``/``interrupted``/``nonfinite``, ``error``: the exception), wherever it
    failed: initialisation, compilation, a chunk or the final evaluation."""
    path = os.path.join(plan.run_dir, SUMMARY_JSON) if plan.run_dir else None
    before = _mtime(path)  # a resumed run's previous summary is replaced
    try:
        return _execute(
            plan, chunk_seconds=chunk_seconds, progress=progress, tensorboard=tensorboard, wandb=wandb,
            plot=plot, host_callback=host_callback, stream=stream,
        )  # fmt: skip
    except BaseException as e:
        if path and os.path.isdir(plan.run_dir) and _mtime(path) == before:  # not written on the way out
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "error"
            write_json(path, {"status": status, "iterations": None, "error": _describe(e)})
        raise


def _mtime(path: str | None) -> float | None:
    try:
        return os.stat(path).st_mtime_ns if path else None
    except OSError:
        return None


def _describe(e: BaseException) -> str:
    """``Type: message`` of an exception, at most 4000 characters (the summary of a failed run)."""
    text = f"{type(e).__name__}: {e}"
    return text if len(text) <= 4000 else text[:4000] + "..."


# ------------------------------------------------------------------------------------ EXECUTE
# _execute is a sequence of steps: each is a module-level function that takes what it needs and returns
# what it changed. What is set up once (programs, log, checkpointer) travels in a _Tools; where the run
# stands (state, iteration, env steps, timers) in a frozen _Cursor that every step returns anew.


@dataclasses.dataclass
class _Tools:
    """What a run sets up once and uses chunk after chunk."""

    schedule: Schedule
    cfg_arg: Any  # plan.cfg_arg, sharded over devices for a population
    bar: Progress
    ckpt: checkpoint.Checkpointer | None  # None: no run directory or checkpoint_every=0
    log: logs.MetricsLog | None  # None: no run directory
    chunk_fn: Callable[..., Any]  # (cfg_arg, state, n) -> (state, ChunkOutput)
    eval_fn: Callable[..., Any] | None  # (cfg_arg, state, key) -> returns; None: no evaluation
    eval_warm: concurrent.futures.Future | None  # the evaluation program compiling in the background
    eval_key: jax.Array


@dataclasses.dataclass(frozen=True)
class _Cursor:
    """Where a run stands between chunks."""

    state: Any
    it: int  # iterations done
    env_steps: np.ndarray  # [M] env steps done per member
    n_next: int  # the next chunk's length before it is clipped (adaptive unless chunk_size is set)
    chunks_run: int = 0
    last_eval: np.ndarray | None = None  # the newest values of the algorithm's own eval metric, [M]
    train_time: float = 0.0  # running chunks, with logging
    eval_time: float = 0.0
    checkpoint_time: float = 0.0


def _execute(
    plan: Plan,
    *,
    chunk_seconds: float,
    progress: bool,
    tensorboard: bool,
    wandb: bool,
    plot: bool,
    host_callback: Callable[[ChunkInfo], Any] | None,
    stream: Any,
) -> RunResult:
    wall0 = time.perf_counter()
    schedule = Schedule.of(plan.runtime)
    bar = _progress_bar(plan, progress, stream)
    ckpt = _checkpointer(plan, schedule)
    cfg_arg, state, start, init_time = _initial_state(plan, ckpt, bar)
    log = _open_log(plan, schedule, start, tensorboard, wandb)
    tools, state, compile_time = _compile(plan, schedule, cfg_arg, state, bar, ckpt, log)
    spi = _steps_per_iteration(plan)
    cur = _Cursor(
        state=state,
        it=start,
        env_steps=np.full(len(plan.members), float(start * spi) if spi else 0.0),
        n_next=_first_chunk_length(plan, schedule),
    )
    bar.start(float(start * spi) if spi else 0.0)
    try:
        with _StopFlag() as stop:
            while cur.it < plan.num_iterations:
                cur, rows = _train_chunk(plan, tools, cur, chunk_seconds)
                _show_progress(plan, bar, cur, rows)
                cur = _call_back(plan, host_callback, cur, rows)
                if _evaluation_due(plan, schedule, cur.it):
                    cur, _ = _evaluate(plan, tools, cur)
                if stop.requested:
                    cur = _save(plan, tools, cur)
                    raise KeyboardInterrupt
                if _checkpoint_due(plan, schedule, cur):
                    cur = _save(plan, tools, cur)
    except KeyboardInterrupt:
        last = ckpt.latest() if ckpt else None
        _close(plan, tools, "interrupted", cur.it)
        where = f"; checkpoint of update {last} in {ckpt.directory}" if last else ""
        hint = f". Continue with: jaxrl train --resume {plan.run_dir}" if last else ""
        bar.message(f"Interrupted at update {cur.it}/{plan.num_iterations}{where}{hint}")
        raise
    except NonFiniteError as e:
        _close(plan, tools, "nonfinite", cur.it, **e.info)
        raise
    except BaseException as e:
        _close(plan, tools, "error", cur.it, error=_describe(e))
        raise

    # FINISH: final checkpoint and evaluation, artifacts
    cur = _save(plan, tools, cur)
    eval_returns = None
    if schedule.eval_episodes:
        cur, eval_returns = _evaluate(plan, tools, cur)
    _close(plan, tools, "finished", cur.it)
    result = _result(plan, tools, cur, wall0, init_time, compile_time, eval_returns)
    _write_artifacts(plan, result, plot, wall0)
    return result


# --------------------------------------------------------------------------- EXECUTE: SETUP
def _steps_per_iteration(plan: Plan) -> int | None:
    algo = plan.algo
    return algo.steps_per_iteration(plan.cfg) if algo.steps_per_iteration else None


def _progress_bar(plan: Plan, progress: bool, stream: Any) -> Progress:
    spi = _steps_per_iteration(plan)
    total = plan.num_iterations
    return Progress(
        total,
        total * spi if spi else None,
        enabled=progress,
        stream=stream,
        value_name=plan.algo.presentation.curve_short,
    )


def _checkpointer(plan: Plan, schedule: Schedule) -> checkpoint.Checkpointer | None:
    if not (plan.run_dir and schedule.checkpoint_every):
        return None
    return checkpoint.Checkpointer(os.path.join(plan.run_dir, CHECKPOINTS), keep=schedule.keep_checkpoints)


def _member_keys(plan: Plan) -> tuple[Any, jax.Array]:
    """``(cfg_arg, keys)`` for init: one key per member of a population (sharded over devices)."""
    if not plan.population:
        return plan.cfg_arg, plan.key
    seeds = plan.spec["seeds"]
    seed_keys = jax.random.split(plan.key, seeds) if seeds > 1 else plan.key[None]
    keys = jnp.concatenate([seed_keys] * plan.num_points) if plan.num_points > 1 else seed_keys
    cfg_arg = plan.cfg_arg
    if not plan.algo.host_loop:  # several devices: each runs its share of the members
        keys = parallel.shard_population(keys)
        if plan.batched:
            cfg_arg = parallel.shard_population(cfg_arg)
    return cfg_arg, keys


def _initial_state(
    plan: Plan, ckpt: checkpoint.Checkpointer | None, bar: Progress
) -> tuple[Any, Any, int, float]:
    """INIT (and RESTORE): ``(cfg_arg, state, iterations done, seconds taken)``."""
    t0 = time.perf_counter()
    algo = plan.algo
    if algo.host_loop:  # its init may run long host-side work (GRPO: a supervised warm-up)
        bar.message(f"Initialising {plan.description}...")
    cfg_arg, keys = _member_keys(plan)
    state = chunks.make_init_fn(algo, population=plan.population, configs_batched=plan.batched)(cfg_arg, keys)
    start = 0
    if plan.resume:
        state, start = _restore(plan, ckpt, state, bar)
    if plan.population and not algo.host_loop:
        # Every leaf split over the devices as the chunk program's outputs are: the members' initial
        # parameters come out of init replicated (the orthogonal initialiser's per-member loop cannot be
        # partitioned), and a chunk called with another sharding than its previous output compiles a
        # second program (and so would evaluation), inside the timed training.
        state = parallel.shard_population(state)
    jax.block_until_ready(state)
    return cfg_arg, state, start, time.perf_counter() - t0


def _restore(plan: Plan, ckpt: checkpoint.Checkpointer | None, fresh: Any, bar: Progress) -> tuple[Any, int]:
    """The newest checkpoint's state and iteration, or ``(fresh, 0)`` when there is none."""
    step = ckpt.latest() if ckpt else None
    if step is None:
        bar.message(f"No checkpoint in {plan.run_dir}; starting {plan.description} from the beginning")
        return fresh, 0
    state, _ = ckpt.restore(step, fresh, plan.spec)
    if not plan.population and env_building.env_is_stateful(plan.cfg):
        # the environments (envpool) were not in the checkpoint: go on from this process's freshly
        # reset ones, not from the last time step of episodes that no longer exist
        state = (plan.algo.restart_envs or env_building.restart_envs)(plan.cfg, state, fresh)
    bar.message(
        f"Resuming {plan.description} from update {int(step)}/{plan.num_iterations} ({ckpt.path(step)})"
    )
    return state, int(step)


def _open_log(
    plan: Plan, schedule: Schedule, start: int, tensorboard: bool, wandb: bool
) -> logs.MetricsLog | None:
    if not plan.run_dir:
        return None
    return logs.MetricsLog(
        plan.run_dir,
        plan.members,
        resume_iteration=start if plan.resume else None,
        tensorboard=tensorboard,
        wandb=wandb,
        wandb_config={**plan.spec, "runtime": plan.runtime},
        run_name=os.path.basename(plan.run_dir),
        eval_metric=plan.algo.presentation.eval_metric,
    )


def _compile(
    plan: Plan,
    schedule: Schedule,
    cfg_arg: Any,
    state: Any,
    bar: Progress,
    ckpt: checkpoint.Checkpointer | None,
    log: logs.MetricsLog | None,
) -> tuple[_Tools, Any, float]:
    """COMPILE: the evaluation program in a background thread (a copy of the state: chunks may donate
    theirs), while this thread compiles one chunk program for every chunk length (n=0 runs nothing).
    Returns the tools, the state (as the chunk program gave it back) and the chunk's compile time."""
    algo = plan.algo
    eval_key = jax.random.fold_in(plan.key, EVAL_STREAM)
    eval_fn = eval_warm = None
    if schedule.eval_episodes:
        eval_fn = chunks.make_eval_fn(
            schedule.eval_episodes, population=plan.population, configs_batched=plan.batched
        )
        state_copy = jax.tree_util.tree_map(jnp.copy, state)
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxrl-eval-compile")
        eval_warm = pool.submit(lambda: jax.block_until_ready(eval_fn(cfg_arg, state_copy, eval_key)))
        pool.shutdown(wait=False)
    compile_time = 0.0
    if algo.host_loop:
        chunk_fn = chunks.make_host_chunk_fn(algo)
    else:
        chunk_fn = chunks.make_chunk_fn(
            algo, schedule.chunk_capacity, population=plan.population, configs_batched=plan.batched
        )
        bar.message(f"Compiling {plan.description} ({plan.num_iterations} updates)...")
        t0 = time.perf_counter()
        state, _ = chunk_fn(cfg_arg, state, jnp.int32(0))
        jax.block_until_ready(state)
        compile_time = time.perf_counter() - t0
        bar.message(f"Compiled in {compile_time:.1f} s")
    tools = _Tools(schedule, cfg_arg, bar, ckpt, log, chunk_fn, eval_fn, eval_warm, eval_key)
    return tools, state, compile_time


def _first_chunk_length(plan: Plan, schedule: Schedule) -> int:
    if schedule.chunk_size:
        return int(schedule.chunk_size)
    return max(1, min(schedule.chunk_capacity, math.ceil(plan.num_iterations / 200)))


# ---------------------------------------------------------------------------- EXECUTE: CHUNKS
def _chunk_length(plan: Plan, schedule: Schedule, cur: _Cursor) -> int:
    """The next chunk's length: ``n_next`` clipped to the capacity, the next evaluation and the end."""
    n = min(cur.n_next, schedule.chunk_capacity, plan.num_iterations - cur.it)
    if schedule.eval_episodes and schedule.eval_every:
        n = min(n, schedule.eval_every - cur.it % schedule.eval_every)
    return n


def _train_chunk(
    plan: Plan, tools: _Tools, cur: _Cursor, chunk_seconds: float
) -> tuple[_Cursor, dict[str, np.ndarray]]:
    """Run one chunk, log its metrics and check them; the new cursor and the chunk's metric rows
    (every field ``[M, n]``). Raises :class:`NonFiniteError` (after logging up to the bad update)."""
    schedule, population = tools.schedule, plan.population
    n = _chunk_length(plan, schedule, cur)
    t = time.perf_counter()
    state, out = tools.chunk_fn(tools.cfg_arg, cur.state, jnp.int32(n))
    metrics, flags = jax.device_get((out.metrics, out.nonfinite))
    rows = {f: _rows(v, n, population) for f, v in zip(metrics._fields, metrics, strict=True)}
    flags = _rows(flags, n, population)  # [M, n, C]
    its = np.arange(cur.it + 1, cur.it + n + 1)
    bad = np.argwhere(flags.any(axis=2))  # (member, j)
    _log_rows(plan, tools.log, schedule, rows, its, bad)
    env_steps = rows["env_steps"][:, -1].astype(np.float64) if "env_steps" in rows else cur.env_steps
    last_eval = _log_own_evaluations(plan, tools.log, rows, its, cur.last_eval)
    elapsed = time.perf_counter() - t
    if len(bad):
        names = chunks.check_names(metrics, _member(state, population))
        raise _nonfinite(bad, flags, names, rows, its, plan, tools.ckpt, cur.it + n)
    n_next = cur.n_next
    if not schedule.chunk_size:  # aim at chunk_seconds per chunk, growing at most 4x at a time
        n_next = int(max(1, min(schedule.chunk_capacity, 4 * n, chunk_seconds * n / max(elapsed, 1e-9))))
    new = dataclasses.replace(
        cur,
        state=state,
        it=cur.it + n,
        env_steps=env_steps,
        n_next=n_next,
        chunks_run=cur.chunks_run + 1,
        last_eval=last_eval,
        train_time=cur.train_time + elapsed,
    )
    return new, rows


def _log_rows(
    plan: Plan,
    log: logs.MetricsLog | None,
    schedule: Schedule,
    rows: dict[str, np.ndarray],
    its: np.ndarray,
    bad: np.ndarray,
) -> None:
    """Write every ``log_every``-th iteration (and the last); when a value went non-finite, the rows up to
    the first bad update, that one included."""
    logged = (its % schedule.log_every == 0) | (its == plan.num_iterations)
    if len(bad):
        first = int(bad[:, 1].min())
        logged &= its <= its[first]
        logged[first] = True
    if log is not None and logged.any():
        log.write(its[logged], {f: v[:, logged] for f, v in rows.items()})
        log.flush()


def _log_own_evaluations(
    plan: Plan,
    log: logs.MetricsLog | None,
    rows: dict[str, np.ndarray],
    its: np.ndarray,
    last_eval: np.ndarray | None,
) -> np.ndarray | None:
    """The algorithm's own held-out evaluations in this chunk (the finite values of its eval metric):
    logged; the newest returned (``last_eval`` if the chunk has none)."""
    name = plan.algo.presentation.eval_metric
    if name not in rows:
        return last_eval
    values = rows[name].astype(np.float64)
    steps = rows.get("env_steps", np.zeros_like(values)).astype(np.float64)
    for j in np.flatnonzero(np.isfinite(values).all(axis=0)):
        last_eval = values[:, j]
        if log is not None:
            log.write_eval_metric(int(its[j]), steps[:, j], last_eval)
    return last_eval


def _show_progress(plan: Plan, bar: Progress, cur: _Cursor, rows: dict[str, np.ndarray]) -> None:
    if plan.algo.host_loop and cur.chunks_run == 1 and cur.it < plan.num_iterations:
        # the first host-loop chunk compiled its programs: time the rest for the ETA
        bar.start(float(cur.env_steps.mean()), iteration=cur.it)
    bar.update(cur.it, float(cur.env_steps.mean()), _recent_return(rows))


def _call_back(
    plan: Plan, host_callback: Callable[[ChunkInfo], Any] | None, cur: _Cursor, rows: dict[str, np.ndarray]
) -> _Cursor:
    """Run the user's ``host_callback``; it may hand back a new state."""
    if host_callback is None:
        return cur
    info = ChunkInfo(cur.it, plan.num_iterations, float(cur.env_steps.mean()), cur.state, rows, plan.run_dir)
    new = host_callback(info)
    return cur if new is None else dataclasses.replace(cur, state=new)


def _evaluation_due(plan: Plan, schedule: Schedule, it: int) -> bool:
    """A periodic greedy evaluation after this chunk (the final one is run after the loop)."""
    return (
        bool(schedule.eval_episodes and schedule.eval_every)
        and it % schedule.eval_every == 0
        and (it < plan.num_iterations)
    )


def _checkpoint_due(plan: Plan, schedule: Schedule, cur: _Cursor) -> bool:
    return (
        bool(plan.run_dir and schedule.checkpoint_every)
        and cur.chunks_run % schedule.checkpoint_every == 0
        and cur.it < plan.num_iterations
    )


def _evaluate(plan: Plan, tools: _Tools, cur: _Cursor) -> tuple[_Cursor, np.ndarray]:
    """Greedy evaluation of the current state: returns ``[M, eval_episodes]``, written to eval.csv."""
    t = time.perf_counter()
    tools.eval_warm.result()  # compiled (re-raises its error, if any)
    r = np.asarray(tools.eval_fn(tools.cfg_arg, cur.state, jax.random.fold_in(tools.eval_key, cur.it)))
    r = r if plan.population else r[None]
    if tools.log is not None:
        tools.log.write_eval(cur.it, cur.env_steps, r)
    return dataclasses.replace(cur, eval_time=cur.eval_time + time.perf_counter() - t), r


def _save(plan: Plan, tools: _Tools, cur: _Cursor) -> _Cursor:
    """A checkpoint of the current state, unless there is one of this iteration already."""
    ckpt = tools.ckpt
    if ckpt is None or (ckpt.latest() or 0) >= cur.it:
        return cur
    t = time.perf_counter()
    ckpt.save(cur.it, cur.state, {"spec": plan.spec, "iteration": cur.it})
    return dataclasses.replace(cur, checkpoint_time=cur.checkpoint_time + time.perf_counter() - t)


# ---------------------------------------------------------------------------- EXECUTE: FINISH
def _close(plan: Plan, tools: _Tools, status: str, it: int, **info: Any) -> None:
    """Close the bar, checkpointer and log; a run that did not finish writes its summary.json here."""
    tools.bar.close()
    if tools.ckpt is not None:
        tools.ckpt.close()
    if tools.log is not None:
        tools.log.close()
    if plan.run_dir and status != "finished":
        write_json(os.path.join(plan.run_dir, SUMMARY_JSON), {"status": status, "iterations": it, **info})


def _result(
    plan: Plan,
    tools: _Tools,
    cur: _Cursor,
    wall0: float,
    init_time: float,
    compile_time: float,
    eval_returns: np.ndarray | None,
) -> RunResult:
    name = plan.algo.presentation.eval_metric
    return RunResult(
        state=cur.state,
        config=tools.cfg_arg,
        algo=plan.algo.name,
        run_dir=plan.run_dir,
        members=plan.members,
        iterations=cur.it,
        env_steps=float(cur.env_steps.mean()),
        wall_time=time.perf_counter() - wall0,
        compile_time=compile_time,
        train_time=cur.train_time,
        eval_time=cur.eval_time,
        init_time=init_time,
        checkpoint_time=cur.checkpoint_time,
        eval_returns=eval_returns,
        eval_metric={name: cur.last_eval.tolist()} if cur.last_eval is not None else None,
    )


def _write_artifacts(plan: Plan, result: RunResult, plot: bool, wall0: float) -> None:
    """final_state.msgpack, curve.png and summary.json in the run directory (none without one)."""
    if not plan.run_dir:
        return
    save_state(os.path.join(plan.run_dir, FINAL_STATE), result.state)
    if plot:
        _plot(plan.run_dir)
    result.wall_time = time.perf_counter() - wall0
    write_json(os.path.join(plan.run_dir, SUMMARY_JSON), _summary(result))


def _rows(x: Any, n: int, population: bool) -> np.ndarray:
    """A chunk output ``[capacity, ...]`` (``[M, capacity, ...]``) -> its ``n`` valid rows, ``[M, n, ...]``."""
    x = np.asarray(x)
    return x[:, :n] if population else x[None, :n]


def _recent_return(rows: dict[str, np.ndarray]) -> float | None:
    ret = rows.get("episode_return")
    if ret is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no member has finished an episode yet
        return float(np.nanmean(ret[:, -1].astype(np.float64)))


def _member(state: Any, population: bool) -> Any:
    return jax.tree_util.tree_map(lambda x: x[0], state) if population else state


def _nonfinite(
    bad: np.ndarray,
    flags: np.ndarray,
    names: list[str],
    rows: dict[str, np.ndarray],
    its: np.ndarray,
    plan: Plan,
    ckpt: checkpoint.Checkpointer | None,
    chunk_end: int,
) -> NonFiniteError:
    """The error for the earliest non-finite value: which metric, update, seed (and swept values)."""
    j = int(bad[:, 1].min())
    m = int(bad[bad[:, 1] == j][0, 0])
    c = int(np.argmax(flags[m, j]))
    what = names[c]
    member = plan.members[m]
    total = plan.num_iterations
    cfg = plan.cfg.replace(**{k: v for k, v in member.items() if k not in ("member", "seed")})
    update = int(its[j])
    steps = rows["env_steps"][m, j] if "env_steps" in rows else None
    value = rows[what][m, j] if what in rows else None
    swept = ", ".join(f"{k}={v}" for k, v in member.items() if k not in ("member", "seed"))
    who = f"seed {member['seed']}" + (f" (member {m}: {swept})" if swept else "")
    subject = (
        "the parameters became non-finite"
        if what in (chunks.PARAMS_CHECK, "state")
        else f"{what} = {float(np.mean(value)):g}"
    )
    at = f"update {update} of {total}" + (f" (env steps {int(steps):,})" if steps is not None else "")
    last = ckpt.latest() if ckpt is not None else None
    kept = (
        f"The last good checkpoint is {ckpt.path(last)} (update {last})."
        if last is not None
        else "No checkpoint was written before it."
    )
    fields = {f.name for f in dataclasses.fields(cfg)}
    fixes = [
        s
        for f, s in (
            ("learning_rate", f"lower learning_rate (now {getattr(cfg, 'learning_rate', None)})"),
            ("max_grad_norm", "clip gradients (max_grad_norm)"),
        )
        if f in fields
    ]
    fix = " To fix: " + (
        ", or ".join(fixes) + ", or check the environment's rewards." if fixes else "check the config."
    )
    msg = (
        f"Non-finite value: {subject} at {at}, {who}. Training stopped at the end of the chunk "
        f"(update {chunk_end}). {kept}{fix}"
    )
    info = {
        "metric": what,
        "update": update,
        "member": m,
        "seed": member["seed"],
        "env_steps": None if steps is None else int(steps),
    }
    return NonFiniteError(msg, info)


def _summary(r: RunResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": r.status,
        "algo": r.algo,
        "iterations": r.iterations,
        "env_steps_per_member": r.env_steps,
        "members": len(r.members),
        "wall_time_s": round(r.wall_time, 3),
        "compile_time_s": round(r.compile_time, 3),
        "train_time_s": round(r.train_time, 3),
        "eval_time_s": round(r.eval_time, 3),
        "init_time_s": round(r.init_time, 3),
        "checkpoint_time_s": round(r.checkpoint_time, 3),
        "env_steps_per_second": round(r.steps_per_second, 1),
    }
    if r.eval_metric:
        ((name, per_member),) = r.eval_metric.items()
        out["final_eval"] = {name: float(np.mean(per_member)), "per_member": per_member}
    if r.eval_returns is not None:
        e = np.asarray(r.eval_returns, np.float64)
        out["final_eval"] = {
            "mean": float(e.mean()),
            "std": float(e.std()),
            "episodes_per_member": int(e.shape[-1]),
            "per_member_mean": e.mean(axis=-1).tolist(),
        }
    return out


def _plot(run_dir: str) -> None:
    try:
        from jaxrl.runtime import plots

        plots.plot_runs([run_dir], os.path.join(run_dir, CURVE_PNG))
    except ImportError:
        warnings.warn("matplotlib is not installed: no curve.png (pip install 'jaxrl[plot]')", stacklevel=2)


# ------------------------------------------------------------------------------ FINAL STATE
def load_state(run_dir: str) -> tuple[Any, Any]:
    """``(config, final_state)`` of a finished run, e.g. for ``jaxrl.evaluate(cfg, state, key)``.

    For a population the config is stacked (sweeps) and state leaves have a leading member axis.
    """
    return rundir.load_state(run_dir, registry.get(read_spec(run_dir)["algo"]))


def resume(run_dir: str, **options: Any) -> RunResult:
    """Continue the run in ``run_dir`` from its newest checkpoint (``options``: see :func:`execute`)."""
    return execute(prepare_resume(run_dir), **options)
