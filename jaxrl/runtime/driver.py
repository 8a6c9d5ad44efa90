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
import datetime
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

from jaxrl import cpu, parallel, version
from jaxrl.algos import base, checks, registry
from jaxrl.envs import registry as env_registry
from jaxrl.runtime import checkpoint, chunks, configs, logs, rundir
from jaxrl.runtime.progress import Progress
from jaxrl.runtime.rundir import (
    CHECKPOINTS,
    CONFIG_JSON,
    CURVE_PNG,
    FINAL_STATE,
    SUMMARY_JSON,
    key_from_spec,
    key_spec,
    read_spec,
    save_state,
    write_json,
)
from jaxrl.runtime.settings import DEFAULTS, RuntimeSettings

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


# ---------------------------------------------------------------------------------- SPECS
def run_spec(
    algo: base.Algorithm, cfg: Any, key: Any, seeds: int, sweep: dict[str, list] | None
) -> dict[str, Any]:
    """What determines a run's result; a checkpoint is only resumed into an equal spec."""
    return {
        "algo": algo.name,
        "config": configs.to_dict(cfg),
        "key": key_spec(key),
        "seeds": int(seeds),
        "sweep": {k: list(v) for k, v in (sweep or {}).items()},
    }


def default_run_dir(algo: str, cfg: Any, root: str = "runs") -> str:
    env = target_name(cfg).replace("/", "_").replace(":", "_")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(root, f"{algo}-{env}-{stamp}")
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(root, f"{algo}-{env}-{stamp}-{n}")
    return path


def config_from_spec(spec: dict[str, Any]) -> Any:
    algo = registry.get(spec["algo"])
    return configs.from_dict(algo.config, spec["config"])


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


# ------------------------------------------------------------------------------------ PLAN
@dataclasses.dataclass
class Plan:
    """A checked run, ready to execute: everything a user can get wrong is found while building it."""

    algo: base.Algorithm
    cfg: Any  # the base config
    cfg_arg: Any  # what the chunk program gets: cfg, or the stacked member configs of a sweep
    key: jax.Array
    spec: dict[str, Any]  # what determines the result (config.json without "runtime")
    runtime: dict[str, Any]  # chunking, logging, evaluation and checkpoint cadence
    members: list[dict[str, Any]]
    num_points: int  # swept configurations
    num_iterations: int
    run_dir: str | None
    resume: bool

    @property
    def population(self) -> bool:
        return len(self.members) > 1

    @property
    def batched(self) -> bool:
        return bool(self.spec["sweep"])

    @property
    def description(self) -> str:
        pop = f", {len(self.members)} members" if self.population else ""
        return f"{self.algo.name} on {target_name(self.cfg)}{pop}"


def target_name(cfg: Any) -> str:
    """What a config trains on: its environment's name (or its task, for GRPO-like configs)."""
    if hasattr(cfg, "env"):
        return env_registry.env_name(cfg.env)
    task = getattr(cfg, "task", None)
    if task is None:
        return type(cfg).__name__
    if not isinstance(task, str):
        return str(getattr(task, "name", type(task).__name__))
    if task.startswith("jsonl:"):  # a file: its name
        return os.path.splitext(os.path.basename(task[len("jsonl:") :]))[0]
    return task.rpartition(":")[2]  # "module:attr" -> attr


def _absolute_checkpoint(value: Any) -> Any:
    """``"hf:<dir>"`` with ``<dir>`` absolute (``~`` expanded); any other value unchanged."""
    if isinstance(value, str) and value.startswith("hf:") and len(value) > 3:
        from jaxrl.lm import checkpoint as lm_checkpoint  # lazily: only runs that name a checkpoint

        return lm_checkpoint.HF_PREFIX + str(lm_checkpoint.spec_path(value))
    return value


def _absolute_checkpoints(cfg: Any) -> Any:
    """``cfg`` with every ``"hf:<dir>"`` field (e.g. ``model``) holding an absolute path."""
    if not dataclasses.is_dataclass(cfg):
        return cfg
    changes = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if (a := _absolute_checkpoint(v)) is not v:
            changes[f.name] = a
    return dataclasses.replace(cfg, **changes) if changes else cfg


def prepare(
    cfg: Any,
    key: Any = 0,
    out_dir: str | None = None,
    *,
    seeds: int = 1,
    sweep: dict[str, Sequence[Any]] | None = None,
    resume: bool = False,
    chunk_size: int | None = None,
    log_every: int | None = None,
    eval_every: int | None = None,
    eval_episodes: int = DEFAULTS.eval_episodes,
    checkpoint_every: int = DEFAULTS.checkpoint_every,
    keep_checkpoints: int = DEFAULTS.keep_checkpoints,
) -> Plan:
    """Validate everything and set up the run directory (writes ``config.json``); compiles nothing."""
    algo = registry.algorithm_for(cfg)
    key = int(key) if isinstance(key, int | np.integer) else key
    # "hf:<dir>" checkpoint paths made absolute, so config.json reloads from any working directory
    cfg = _absolute_checkpoints(cfg)
    sweep = {k: [_absolute_checkpoint(x) for x in v] for k, v in (sweep or {}).items()}
    seeds = int(seeds)
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    for name, v in (("eval_episodes", eval_episodes), ("checkpoint_every", checkpoint_every)):
        if int(v) < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    for name, v in (("chunk_size", chunk_size), ("log_every", log_every), ("eval_every", eval_every)):
        if v is not None and int(v) < (0 if name == "eval_every" else 1):
            raise ValueError(f"{name} must be a positive integer, got {v}")
    if int(keep_checkpoints) < 1:
        raise ValueError(f"keep_checkpoints must be >= 1, got {keep_checkpoints}")

    # CONFIGS: every member validated before anything is traced
    member_cfgs, points = configs.sweep_configs(cfg, sweep)
    for c in member_cfgs:
        checks.validate_config(c, algo.validate)
    num_iterations = int(algo.num_iterations(cfg))
    if num_iterations < 1:
        raise ValueError(
            f"{algo.name}: the config gives {num_iterations} training iterations; raise total_timesteps"
        )
    members = [{"member": c * seeds + s, "seed": s, **p} for c, p in enumerate(points) for s in range(seeds)]
    if algo.host_loop and len(members) > 1:
        raise ValueError(
            f"{algo.name} runs host code between its jitted steps, so it cannot train a vmapped population "
            f"(seeds={seeds}, sweep={sweep or None}); start one run per seed/value instead"
        )
    if not hasattr(cfg, "env"):
        eval_episodes = 0  # no environment to evaluate greedily on (the algorithm reports its own)
    cfg_arg = base.stack_configs([c for c in member_cfgs for _ in range(seeds)]) if sweep else cfg
    spec = run_spec(algo, cfg, key, seeds, sweep)

    runtime = RuntimeSettings(
        chunk_size, log_every, eval_every, eval_episodes, checkpoint_every, keep_checkpoints
    ).resolve(num_iterations)

    # RUN DIRECTORY
    run_dir = None
    if out_dir is not None:
        run_dir = os.path.abspath(out_dir)
        cfg_path = os.path.join(run_dir, CONFIG_JSON)
        if resume:
            stored = read_spec(run_dir)
            changes = configs.diff({k: stored.get(k) for k in spec}, spec)
            if changes:
                raise checkpoint.CheckpointError(
                    f"{cfg_path} describes another run; refusing to resume it with different settings:\n  "
                    + "\n  ".join(changes)
                    + "\nResume with `jaxrl train --resume <run_dir>` (it reads config.json), or start a new run."
                )
            runtime = {**runtime, **stored.get("runtime", {})}
        else:
            if os.path.exists(cfg_path):
                raise FileExistsError(
                    f"{run_dir} already holds a run; continue it with `jaxrl train --resume {out_dir}` "
                    f"(resume=True), or choose another output directory"
                )
            if not configs.is_rerunnable(spec["config"]):
                warnings.warn(
                    "the config holds Python objects (e.g. an env instance): config.json records them "
                    "but cannot re-create them",
                    stacklevel=3,
                )
            os.makedirs(run_dir, exist_ok=True)
            write_json(
                cfg_path,
                {**spec, "runtime": runtime, "target": target_name(cfg), "jaxrl_version": _version()},
            )
    elif resume:
        raise ValueError("resume=True needs the run's out_dir")
    return Plan(
        algo=algo,
        cfg=cfg,
        cfg_arg=cfg_arg,
        key=base.as_key(key),
        spec=spec,
        runtime=runtime,
        members=members,
        num_points=len(points),
        num_iterations=num_iterations,
        run_dir=run_dir,
        resume=resume,
    )


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
    algo, cfg, cfg_arg, rt = plan.algo, plan.cfg, plan.cfg_arg, plan.runtime
    population, total, run_dir = plan.population, plan.num_iterations, plan.run_dir
    capacity, log_every = rt["chunk_capacity"], rt["log_every"]
    eval_every, eval_episodes = rt["eval_every"], rt["eval_episodes"]
    checkpoint_every = rt["checkpoint_every"] if run_dir else 0
    chunk_size = rt["chunk_size"]
    spi = algo.steps_per_iteration(cfg) if algo.steps_per_iteration else None
    shown = algo.presentation
    bar = Progress(
        total, total * spi if spi else None, enabled=progress, stream=stream, value_name=shown.curve_short
    )

    # INIT (and RESTORE)
    t_init = time.perf_counter()
    if algo.host_loop:  # its init may run long host-side work (GRPO: a supervised warm-up)
        bar.message(f"Initialising {plan.description}...")
    key = plan.key
    if population:
        seeds = plan.spec["seeds"]
        seed_keys = jax.random.split(key, seeds) if seeds > 1 else key[None]
        keys = jnp.concatenate([seed_keys] * plan.num_points) if plan.num_points > 1 else seed_keys
        if not algo.host_loop:  # several devices: each runs its share of the members
            keys = parallel.shard_population(keys)
            if plan.batched:
                cfg_arg = parallel.shard_population(cfg_arg)
    else:
        keys = key
    state = chunks.make_init_fn(algo, population=population, configs_batched=plan.batched)(cfg_arg, keys)
    start = 0
    ckpt = None
    if checkpoint_every:
        ckpt = checkpoint.Checkpointer(os.path.join(run_dir, CHECKPOINTS), keep=rt["keep_checkpoints"])
    if plan.resume:
        step = ckpt.latest() if ckpt else None
        if step is not None:
            fresh = state
            state, _ = ckpt.restore(step, state, plan.spec)
            start = int(step)
            if not population and base.env_is_stateful(cfg):
                # the environments (envpool) were not in the checkpoint: go on from this process's
                # freshly reset ones, not from the last time step of episodes that no longer exist
                state = (algo.restart_envs or base.restart_envs)(cfg, state, fresh)
            bar.message(f"Resuming {plan.description} from update {start}/{total} ({ckpt.path(step)})")
        else:
            bar.message(f"No checkpoint in {run_dir}; starting {plan.description} from the beginning")
    if population and not algo.host_loop:
        # Every leaf split over the devices as the chunk program's outputs are: the members' initial
        # parameters come out of init replicated (the orthogonal initialiser's per-member loop cannot be
        # partitioned), and a chunk called with another sharding than its previous output compiles a
        # second program (and so would evaluation), inside the timed training.
        state = parallel.shard_population(state)
    jax.block_until_ready(state)
    init_time = time.perf_counter() - t_init
    log = None
    if run_dir:
        log = logs.MetricsLog(
            run_dir,
            plan.members,
            resume_iteration=start if plan.resume else None,
            tensorboard=tensorboard,
            wandb=wandb,
            wandb_config={**plan.spec, "runtime": rt},
            run_name=os.path.basename(run_dir),
            eval_metric=shown.eval_metric,
        )

    # COMPILE: the evaluation program in a background thread (a copy of the state: chunks may donate
    # theirs), while this thread compiles one chunk program for every chunk length (n=0 runs nothing)
    eval_key = jax.random.fold_in(key, EVAL_STREAM)
    eval_fn = eval_warm = None
    if eval_episodes:
        eval_fn = chunks.make_eval_fn(eval_episodes, population=population, configs_batched=plan.batched)
        state_copy = jax.tree_util.tree_map(jnp.copy, state)
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxrl-eval-compile")
        eval_warm = pool.submit(lambda: jax.block_until_ready(eval_fn(cfg_arg, state_copy, eval_key)))
        pool.shutdown(wait=False)
    if algo.host_loop:
        chunk_fn = chunks.make_host_chunk_fn(algo)
        compile_time = 0.0
    else:
        chunk_fn = chunks.make_chunk_fn(algo, capacity, population=population, configs_batched=plan.batched)
        bar.message(f"Compiling {plan.description} ({total} updates)...")
        t0 = time.perf_counter()
        state, _ = chunk_fn(cfg_arg, state, jnp.int32(0))
        jax.block_until_ready(state)
        compile_time = time.perf_counter() - t0
        bar.message(f"Compiled in {compile_time:.1f} s")

    timers = {"train": 0.0, "eval": 0.0, "checkpoint": 0.0}
    last_eval: np.ndarray | None = None  # the newest values of shown.eval_metric, [M]
    it = start
    env_steps = np.full(len(plan.members), float(start * spi) if spi else 0.0)
    stop = _StopFlag()

    def evaluate() -> np.ndarray:
        t = time.perf_counter()
        eval_warm.result()  # compiled (re-raises its error, if any)
        r = np.asarray(eval_fn(cfg_arg, state, jax.random.fold_in(eval_key, it)))
        r = r if population else r[None]
        if log is not None:
            log.write_eval(it, env_steps, r)
        timers["eval"] += time.perf_counter() - t
        return r

    def save() -> None:
        if ckpt is not None and (ckpt.latest() or 0) < it:
            t = time.perf_counter()
            ckpt.save(it, state, {"spec": plan.spec, "iteration": it})
            timers["checkpoint"] += time.perf_counter() - t

    def close(status: str, **info: Any) -> None:
        bar.close()
        if ckpt is not None:
            ckpt.close()
        if log is not None:
            log.close()
        if run_dir and status != "finished":
            write_json(os.path.join(run_dir, SUMMARY_JSON), {"status": status, "iterations": it, **info})

    n_next = int(chunk_size) if chunk_size else max(1, min(capacity, math.ceil(total / 200)))
    chunk_index = 0
    bar.start(float(start * spi) if spi else 0.0)
    try:
        with stop:
            while it < total:
                # CHUNK: adaptive length, clipped to the next evaluation and to the end
                n = min(n_next, capacity, total - it)
                if eval_episodes and eval_every:
                    n = min(n, eval_every - it % eval_every)
                t = time.perf_counter()
                state, out = chunk_fn(cfg_arg, state, jnp.int32(n))
                metrics, flags = jax.device_get((out.metrics, out.nonfinite))
                rows = {f: _rows(v, n, population) for f, v in zip(metrics._fields, metrics, strict=True)}
                flags = _rows(flags, n, population)  # [M, n, C]
                its = np.arange(it + 1, it + n + 1)
                bad = np.argwhere(flags.any(axis=2))  # (member, j)
                logged = (its % log_every == 0) | (its == total)
                if len(bad):
                    first = int(bad[:, 1].min())
                    logged &= its <= its[first]
                    logged[first] = True
                if log is not None and logged.any():
                    log.write(its[logged], {f: v[:, logged] for f, v in rows.items()})
                    log.flush()
                if "env_steps" in rows:
                    env_steps = rows["env_steps"][:, -1].astype(np.float64)
                if shown.eval_metric in rows:  # the algorithm's own held-out evaluations
                    values = rows[shown.eval_metric].astype(np.float64)
                    steps = rows.get("env_steps", np.zeros_like(values)).astype(np.float64)
                    for j in np.flatnonzero(np.isfinite(values).all(axis=0)):
                        last_eval = values[:, j]
                        if log is not None:
                            log.write_eval_metric(int(its[j]), steps[:, j], last_eval)
                elapsed = time.perf_counter() - t
                timers["train"] += elapsed
                if len(bad):
                    names = chunks.check_names(metrics, _member(state, population))
                    raise _nonfinite(bad, flags, names, rows, its, plan, ckpt, it + n)
                it += n
                chunk_index += 1
                if not chunk_size:  # aim at chunk_seconds per chunk, growing at most 4x at a time
                    n_next = int(max(1, min(capacity, 4 * n, chunk_seconds * n / max(elapsed, 1e-9))))
                if algo.host_loop and chunk_index == 1 and it < total:
                    # the first host-loop chunk compiled its programs: time the rest for the ETA
                    bar.start(float(env_steps.mean()), iteration=it)
                bar.update(it, float(env_steps.mean()), _recent_return(rows))
                if host_callback is not None:
                    new = host_callback(ChunkInfo(it, total, float(env_steps.mean()), state, rows, run_dir))
                    state = state if new is None else new
                if eval_episodes and eval_every and it % eval_every == 0 and it < total:
                    evaluate()
                if stop.requested:
                    save()
                    raise KeyboardInterrupt
                if checkpoint_every and chunk_index % checkpoint_every == 0 and it < total:
                    save()
    except KeyboardInterrupt:
        last = ckpt.latest() if ckpt else None
        close("interrupted")
        where = f"; checkpoint of update {last} in {ckpt.directory}" if last else ""
        hint = f". Continue with: jaxrl train --resume {run_dir}" if last else ""
        bar.message(f"Interrupted at update {it}/{total}{where}{hint}")
        raise
    except NonFiniteError as e:
        close("nonfinite", **e.info)
        raise
    except BaseException as e:
        close("error", error=_describe(e))
        raise

    # FINISH: final checkpoint and evaluation, artifacts
    save()
    eval_returns = evaluate() if eval_episodes else None
    close("finished")
    result = RunResult(
        state=state,
        config=cfg_arg,
        algo=algo.name,
        run_dir=run_dir,
        members=plan.members,
        iterations=it,
        env_steps=float(env_steps.mean()),
        wall_time=time.perf_counter() - wall0,
        compile_time=compile_time,
        train_time=timers["train"],
        eval_time=timers["eval"],
        init_time=init_time,
        checkpoint_time=timers["checkpoint"],
        eval_returns=eval_returns,
        eval_metric={shown.eval_metric: last_eval.tolist()} if last_eval is not None else None,
    )
    if run_dir:
        save_state(os.path.join(run_dir, FINAL_STATE), state)
        if plot:
            _plot(run_dir)
        result.wall_time = time.perf_counter() - wall0
        write_json(os.path.join(run_dir, SUMMARY_JSON), _summary(result))
    return result


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


def _version() -> str:
    return version.__version__


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


def prepare_resume(run_dir: str) -> Plan:
    """The :class:`Plan` that continues ``run_dir`` with the settings stored in its config.json."""
    spec = read_spec(run_dir)
    cfg = config_from_spec(spec)
    key = spec["key"]["seed"] if "seed" in spec["key"] else key_from_spec(spec["key"])
    rt = spec.get("runtime", {})
    names = ("chunk_size", "log_every", "eval_every", "eval_episodes", "checkpoint_every", "keep_checkpoints")
    return prepare(
        cfg,
        key,
        run_dir,
        seeds=spec.get("seeds", 1),
        sweep=spec.get("sweep") or None,
        resume=True,
        **{k: rt[k] for k in names if k in rt},
    )


def resume(run_dir: str, **options: Any) -> RunResult:
    """Continue the run in ``run_dir`` from its newest checkpoint (``options``: see :func:`execute`)."""
    return execute(prepare_resume(run_dir), **options)
