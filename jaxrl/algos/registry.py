"""The registry of algorithms by name and by config type, and the generic ``train``.

Above every algorithm module: importing this imports them all (``jaxrl.algos``), so a lookup sees every
built-in algorithm. Algorithms register themselves with ``base.register`` and never import this module.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

import jaxrl.algos  # noqa: F401  (importing the algorithms registers them)
from jaxrl.algos import base, checks, prng


def algorithms() -> dict[str, base.Algorithm]:
    """Every registered algorithm by CLI name."""
    return dict(base._REGISTRY)


def get(name: str) -> base.Algorithm:
    algos = algorithms()
    if name not in algos:
        raise ValueError(f"Unknown algorithm {name!r}; choose one of: {', '.join(sorted(algos))}")
    return algos[name]


def algorithm_for(cfg: Any) -> base.Algorithm:
    for algo in algorithms().values():
        if isinstance(cfg, algo.config):
            return algo
    raise TypeError(f"{type(cfg).__name__} is not the Config of a registered jaxrl algorithm")


# ---------------------------------------------------------------------------------------- train
def train(cfg: Any, key: Any) -> tuple[Any, Any]:
    """Train any algorithm: ``init`` then ``lax.scan`` of ``train_step``. Traceable end to end (except
    ``host_loop`` algorithms, which loop in Python)."""
    algo = algorithm_for(cfg)
    checks.validate_config(cfg, algo.validate)
    state = algo.init(cfg, prng.as_key(key))
    return run_iterations(algo, cfg, state, algo.num_iterations(cfg))


def run_iterations(algo: base.Algorithm, cfg: Any, state: Any, n: int) -> tuple[Any, Any]:
    """``n`` iterations of ``algo.train_step`` as one ``lax.scan``; metrics stacked on axis 0."""
    if algo.host_loop:
        rows = []
        for _ in range(n):
            state, m = algo.train_step(cfg, state)
            rows.append(m)
        if not rows:
            raise ValueError(f"{algo.name}: run_iterations needs n >= 1, got {n}")
        return state, jax.tree_util.tree_map(lambda *xs: np.stack(xs), *rows)

    def body(s, _):
        return algo.train_step(cfg, s)

    return jax.lax.scan(body, state, None, length=n)
