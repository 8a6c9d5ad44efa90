"""The public entry points, dispatched on the config's type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxrl import cpu
from jaxrl.algos import registry


def train(cfg: Any, key: Any) -> tuple[Any, Any]:
    """Train the algorithm ``cfg`` configures; returns ``(final_state, metrics)``.

    Traceable end to end: ``jax.jit(jax.vmap(train, in_axes=(None, 0)))(cfg, keys)`` runs seeds in
    parallel and ``jax.vmap(train)(stack_configs(cfgs), keys)`` sweeps tunable hyperparameters.
    Metrics are a typed NamedTuple of ``[num_iterations]`` arrays, also readable as
    ``metrics["episode_return"]``.
    """
    cpu.warn_if_default_pool()
    return registry.train(cfg, key)


def make_policy(cfg: Any, state: Any, *, deterministic: bool = True) -> Callable:
    """``act(obs, key) -> action`` from a trained state (greedy unless ``deterministic=False``)."""
    return registry.algorithm_for(cfg).make_policy(cfg, state, deterministic=deterministic)


def make_value_fn(cfg: Any, state: Any) -> Callable:
    """``value(obs) -> V(obs)`` for algorithms with a critic (PPO, A2C, ...)."""
    algo = registry.algorithm_for(cfg)
    if algo.make_value_fn is None:
        raise ValueError(f"{algo.name} has no state-value function")
    return algo.make_value_fn(cfg, state)
