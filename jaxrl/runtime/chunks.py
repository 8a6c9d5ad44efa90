"""Jitted chunks of training iterations, with non-finite detection inside the step.

A chunk is ``lax.scan`` over a fixed ``capacity`` of iterations of ``algo.train_step``; only the first
``n`` (a traced argument) run, the rest are a ``lax.cond`` that passes the state through. So one
compiled program serves every chunk length the driver picks (to keep chunks near a target duration,
to stop at an evaluation or checkpoint boundary, or at the end of training), and a run's result does
not depend on where the chunk boundaries fell. Under ``jax.vmap`` (seeds, sweeps) ``n`` stays
unbatched, so the ``cond`` stays a branch rather than becoming a select.

Each iteration also returns ``nonfinite[C]``: which of the checked quantities (every float metric,
then the parameters) went bad. Parameters (``state.params``; for a state without one, any float leaf
that was finite) and metrics named ``*loss*`` must stay finite; other metrics may be NaN by design
(``episode_return`` before the first episode ends, an accuracy on iterations without evaluation), so
only an Inf counts there.

Algorithms registered with ``host_loop=True`` (host code between jitted calls, e.g. GRPO scoring
answers) get the same interface from :func:`make_host_chunk_fn`, a Python loop.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.algos import base

PARAMS_CHECK = "params"


class ChunkOutput(NamedTuple):
    metrics: Any  # the algorithm's Metrics, every leaf [capacity, ...] (or [M, capacity, ...])
    nonfinite: jax.Array  # [capacity, C] bool (or [M, capacity, C])


def _cached(fn: Callable) -> Callable:
    """``functools.lru_cache`` keyed on every argument by name, so ``f(a, 4)`` and ``f(a, capacity=4)``
    share one entry (and one compiled program)."""
    sig = inspect.signature(fn)

    @functools.lru_cache(maxsize=32)
    def cached(items: tuple) -> Callable:
        return fn(**dict(items))

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Callable:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return cached(tuple(bound.arguments.items()))

    return wrapper


def _params_of(state: Any) -> Any:
    return getattr(state, "params", None)


def check_names(metrics: Any, state: Any) -> list[str]:
    """Names of the ``nonfinite`` columns: the float metrics, then ``params`` (or ``state`` when the
    state has no ``params`` field: then any float leaf that was finite and is not any more)."""
    names = [n for n, x in zip(metrics._fields, metrics, strict=True) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return names + [PARAMS_CHECK if _params_of(state) is not None else "state"]


def metrics_shape(algo: base.Algorithm, cfg: Any, state: Any) -> Any:
    """The algorithm's metrics NamedTuple of ``ShapeDtypeStruct`` (one unbatched iteration)."""
    return jax.eval_shape(lambda s: algo.train_step(cfg, s)[1], state)


def _float_leaves(tree: Any) -> list[jax.Array]:
    return [x for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]


def _all_finite(leaves: list[jax.Array]) -> jax.Array:
    """``[L]`` bool: leaf i holds only finite values."""
    return jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]) if leaves else jnp.ones((0,), bool)


def _nonfinite_flags(metrics: Any, before: Any, after: Any) -> jax.Array:
    """``[C]`` bool for one iteration ``before -> after`` (see :func:`check_names`)."""
    flags = []
    for name, x in zip(metrics._fields, metrics, strict=True):
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            continue
        bad = ~jnp.isfinite(x) if "loss" in name else jnp.isinf(x)
        flags.append(jnp.any(bad))
    if _params_of(after) is not None:
        flags.append(~jnp.all(_all_finite(_float_leaves(_params_of(after)))))
    else:  # a leaf that was finite must stay finite (a NaN placeholder may become a number)
        was, now = _all_finite(_float_leaves(before)), _all_finite(_float_leaves(after))
        flags.append(jnp.any(was & ~now))
    return jnp.stack(flags)


@_cached
def make_chunk_fn(
    algo: base.Algorithm,
    capacity: int,
    *,
    population: bool = False,
    configs_batched: bool = False,
) -> Callable[[Any, Any, jax.Array], tuple[Any, ChunkOutput]]:
    """``chunk(cfg, state, n) -> (state, ChunkOutput)``, jitted; the state is donated on accelerators.

    With ``population=True`` the state has a leading member axis and so do the outputs;
    ``configs_batched`` says the config is stacked too (a sweep). Cached, so runs with the same
    algorithm, capacity and config structure share one compiled program.
    """

    def one(cfg: Any, state: Any, n: jax.Array) -> tuple[Any, ChunkOutput]:
        out_shape = metrics_shape(algo, cfg, state)
        num_checks = len(check_names(out_shape, state))

        def step(s):
            s_new, m = algo.train_step(cfg, s)
            return s_new, ChunkOutput(m, _nonfinite_flags(m, s, s_new))

        def skip(s):
            zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), out_shape)
            return s, ChunkOutput(zeros, jnp.zeros((num_checks,), bool))

        def body(s, i):
            return jax.lax.cond(i < n, step, skip, s)

        return jax.lax.scan(body, state, jnp.arange(capacity, dtype=jnp.int32))

    fn = jax.vmap(one, in_axes=(0 if configs_batched else None, 0, None)) if population else one
    # Donating the state lets an accelerator update it in place (a replay buffer is not copied). On
    # the CPU backend donation made PPO chunks take ~1.6x the CPU time of the same scan without it
    # (measured: benchmarks/RESULTS.md, Runtime), so there the state is not donated.
    donate = (1,) if jax.default_backend() != "cpu" else ()
    return jax.jit(fn, donate_argnums=donate)


def make_host_chunk_fn(algo: base.Algorithm) -> Callable[[Any, Any, Any], tuple[Any, ChunkOutput]]:
    """The chunk interface for ``host_loop`` algorithms: ``n`` calls of ``train_step`` in Python.

    Outputs have exactly ``n`` rows (``n = 0``: nothing to compile, nothing runs)."""

    def chunk(cfg: Any, state: Any, n: Any) -> tuple[Any, ChunkOutput]:
        ms, flags = [], []
        for _ in range(int(n)):
            new, m = algo.train_step(cfg, state)
            flags.append(np.asarray(_nonfinite_flags(m, state, new)))
            ms.append(m)
            state = new
        if not ms:
            return state, ChunkOutput(None, np.zeros((0, 0), bool))
        stacked = jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *ms)
        return state, ChunkOutput(stacked, np.stack(flags))

    return chunk


@_cached
def make_init_fn(
    algo: base.Algorithm, *, population: bool = False, configs_batched: bool = False
) -> Callable:
    """``init(cfg, key_or_keys)``, jitted; vmapped over keys (and configs) for a population.

    Weakly typed leaves (e.g. a counter started from a Python int) come out strongly typed, as
    restored checkpoints do: one argument signature, so a resumed run reuses the compiled chunk
    program instead of compiling a second one."""

    def fn(cfg: Any, key: Any) -> Any:
        return jax.tree_util.tree_map(
            lambda x: jnp.asarray(x, dtype=x.dtype) if getattr(x, "weak_type", False) else x,
            algo.init(cfg, key),
        )

    if algo.host_loop:
        if population:
            raise ValueError(
                f"{algo.name} runs host code between steps, so it cannot train a vmapped population"
            )
        return fn
    if population:
        fn = jax.vmap(fn, in_axes=(0 if configs_batched else None, 0))
    return jax.jit(fn)


@_cached
def make_eval_fn(num_episodes: int, *, population: bool = False, configs_batched: bool = False) -> Callable:
    """``evaluate(cfg, state, key) -> [num_episodes]`` greedy returns (``[M, num_episodes]``), jitted."""
    from jaxrl.evaluation import evaluate

    def fn(cfg, state, key):
        return evaluate(cfg, state, key, num_episodes=num_episodes)

    if population:
        fn = jax.vmap(fn, in_axes=(0 if configs_batched else None, 0, None))
    return jax.jit(fn)
