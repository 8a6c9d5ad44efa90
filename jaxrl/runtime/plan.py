"""A run's plan: the checked config, key, population and runtime settings, and its run directory set up.

:func:`prepare` finds everything a user can get wrong before anything is traced, and writes
``config.json``; :func:`prepare_resume` rebuilds the plan of a run directory from it. The driver
(:mod:`jaxrl.runtime.driver`) executes a plan.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from jaxrl import version
from jaxrl.algos import base, checks, prng, registry, stacking
from jaxrl.envs import registry as env_registry
from jaxrl.runtime import checkpoint, configs
from jaxrl.runtime.rundir import CONFIG_JSON, key_from_spec, key_spec, read_spec, write_json
from jaxrl.runtime.settings import DEFAULTS, RuntimeSettings


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
    cfg_arg = stacking.stack_configs([c for c in member_cfgs for _ in range(seeds)]) if sweep else cfg
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
        key=prng.as_key(key),
        spec=spec,
        runtime=runtime,
        members=members,
        num_points=len(points),
        num_iterations=num_iterations,
        run_dir=run_dir,
        resume=resume,
    )


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


def _version() -> str:
    return version.__version__
