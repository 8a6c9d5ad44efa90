"""What every algorithm module provides: an :class:`Algorithm` it ``register``-s.

An algorithm module defines, in this order: ``Config`` (frozen ``flax.struct.dataclass``; fields that
set shapes are static, ``pytree_node=False``; tunable scalars are leaves so ``jax.vmap`` sweeps them),
``State`` (explicit pytree), ``init(cfg, key)``, ``update`` (one gradient step), ``train_step(cfg, state)``
(collect + update, one iteration), ``num_iterations(cfg)``, and registers an :class:`Algorithm`.

``jaxrl.algos.registry.train(cfg, key)`` is then the same for everyone: ``lax.scan`` of ``train_step`` over
``num_iterations(cfg)`` steps, starting from ``init(cfg, key)``. The runtime driver runs the same
``train_step`` in chunks (``jaxrl.run``), which gives the same result as one ``train`` call.

The helpers algorithms share live by job: :mod:`~jaxrl.algos.prng` (``as_key``),
:mod:`~jaxrl.algos.env_building` (``make_env``, ``init_env_and_params``, ``restart_envs``),
:mod:`~jaxrl.algos.checks` (config checks), :mod:`~jaxrl.algos.named_metrics` (``metrics_type``),
:mod:`~jaxrl.algos.stacking` (``stack_configs``); :mod:`~jaxrl.algos.registry` looks algorithms up and
trains them. Their names are re-exported here, where they used to live, for code that imports them so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

# Re-exported from their modules (see the module docstring), where the old import path reaches them.
from jaxrl.algos.checks import (  # noqa: F401
    check_divides,
    check_one_iteration,
    check_positive,
    check_positive_ints,
    check_range,
    is_concrete,
)
from jaxrl.algos.env_building import env_is_stateful, init_env_and_params, make_env, restart_envs  # noqa: F401
from jaxrl.algos.named_metrics import metrics_type  # noqa: F401
from jaxrl.algos.prng import as_key  # noqa: F401
from jaxrl.algos.stacking import stack_configs  # noqa: F401


@dataclasses.dataclass(frozen=True)
class Presentation:
    """How a run of the algorithm reads in plots, progress bars and summaries."""

    steps: str = "environment steps"  # what ``env_steps`` counts (the x axis)
    steps_short: str = "env steps"  # the same in summaries
    curve_label: str = "episode return"  # the y axis: ``episode_return``'s meaning
    curve_short: str = "return"  # its name on the progress bar
    #: a metrics field holding held-out evaluations (finite on evaluated iterations, NaN between),
    #: written to eval.csv and summary.json by the driver; None: the driver's greedy env evaluation
    eval_metric: str | None = None
    eval_label: str = "greedy evaluation (mean return)"


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """The functions of one algorithm, looked up by config type (``algorithm_for(cfg)``)."""

    name: str
    config: type
    init: Callable[[Any, jax.Array], Any]
    train_step: Callable[[Any, Any], tuple[Any, Any]]
    num_iterations: Callable[[Any], int]
    #: ``make_policy(cfg, state, deterministic=True) -> act(obs, key) -> action``
    make_policy: Callable[..., Callable]
    #: host-side checks, run before anything is traced; raise ``ValueError`` with what to change.
    validate: Callable[[Any], None]
    description: str = ""
    #: ``make_value_fn(cfg, state) -> value(obs) -> V(obs)``, for algorithms with a critic.
    make_value_fn: Callable[..., Callable] | None = None
    #: env steps consumed by one ``train_step`` (for progress and steps/s), if meaningful.
    steps_per_iteration: Callable[[Any], int] | None = None
    #: ``train_step`` runs host code between jitted calls (e.g. GRPO scoring answers with a Python
    #: verifier) and cannot be traced: ``train``/``run_iterations`` then loop in Python instead of
    #: ``lax.scan``, with the same result layout (metrics stacked on axis 0, as NumPy arrays).
    host_loop: bool = False
    #: ``report(cfg, state) -> str``: lines for the end of ``jaxrl train`` (e.g. GRPO's held-out
    #: accuracy before and after training), for algorithms whose result is not an env return.
    report: Callable[[Any, Any], str] | None = None
    #: ``restart_envs(cfg, restored, fresh) -> state``: a resumed state whose environments were
    #: restarted, for backends whose state lives outside JAX (envpool) and so is not in a checkpoint.
    #: Default :func:`~jaxrl.algos.env_building.restart_envs` (the fresh environment carry); DQN also drops the transition whose
    #: successor row the restart breaks.
    restart_envs: Callable[[Any, Any, Any], Any] | None = None
    #: ``state_template(cfg, key) -> state`` of ``jax.ShapeDtypeStruct`` leaves, for loading a saved state
    #: when ``init`` cannot be traced with ``jax.eval_shape`` (host-loop algorithms). Default: eval_shape(init).
    state_template: Callable[[Any, Any], Any] | None = None
    #: axis labels and the evaluation metric of its runs (see :class:`Presentation`)
    presentation: Presentation = Presentation()


_REGISTRY: dict[str, Algorithm] = {}


def register(algo: Algorithm) -> Algorithm:
    """Add ``algo`` to the registry (each algorithm module does, on import); looked up through
    :mod:`jaxrl.algos.registry`, which imports every built-in algorithm first."""
    _REGISTRY[algo.name] = algo
    return algo


def registered(name: str) -> Algorithm:
    """The algorithm registered as ``name``, for an algorithm module reading its own runs after its
    package has registered it; everything else looks algorithms up through :mod:`jaxrl.algos.registry`."""
    return _REGISTRY[name]
