"""Stacking configs that differ in tunable fields only, to ``jax.vmap`` over them (sweeps)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp


def stack_configs(cfgs: list[Any]) -> Any:
    """Stack configs that differ only in tunable (leaf) fields, for ``jax.vmap(jaxrl.train)``.

    Static fields (those that set shapes, the env, flags) must be equal across configs.
    """
    if not cfgs:
        raise ValueError("stack_configs needs at least one config")
    treedefs = [jax.tree_util.tree_structure(c) for c in cfgs]
    for i, td in enumerate(treedefs[1:], start=1):
        if td != treedefs[0]:
            diff = _static_diff(cfgs[0], cfgs[i])
            raise ValueError(
                f"configs 0 and {i} differ in static (shape-setting) fields {diff}; only tunable scalar "
                f"fields can be stacked and vmapped. Run them as separate jobs instead."
            )
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *cfgs)


def _static_diff(a: Any, b: Any) -> list[str]:
    out = []
    for f in dataclasses.fields(a):
        if not f.metadata.get("pytree_node", True) and getattr(a, f.name) != getattr(b, f.name):
            out.append(f.name)
    return out
