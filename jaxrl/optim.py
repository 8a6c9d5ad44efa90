"""Optimiser construction shared by all gradient-based algorithms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax


def make_optimizer(
    learning_rate: jax.Array | float,
    max_grad_norm: jax.Array | float | None,
    *,
    anneal_steps: int | None = None,
    anneal_every: int = 1,
    eps: float = 1e-5,
) -> optax.GradientTransformation:
    """Adam with optional global-norm clipping and optional linear annealing of the step size to 0
    over ``anneal_steps`` optimiser steps, lowered once every ``anneal_every`` steps (PPO lowers it once
    per update, as PureJaxRL does). ``learning_rate``/``max_grad_norm`` may be traced (vmapped)."""
    if anneal_steps is not None:
        lr0 = learning_rate

        def lr(count):
            phases = anneal_steps // anneal_every
            frac = 1.0 - jnp.minimum(count // anneal_every, phases) / phases
            return lr0 * frac

    else:
        lr = learning_rate
    adam = optax.adam(lr, eps=eps)
    if max_grad_norm is None:
        return adam
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), adam)


def step(
    optimizer: optax.GradientTransformation,
    loss_fn: Callable[..., tuple[jax.Array, Any]],
    params: Any,
    opt_state: Any,
    *args: Any,
) -> tuple[Any, Any, Any]:
    """One gradient step: ``loss_fn(params, *args) -> (total, terms)`` differentiated in ``params``;
    returns ``(params, opt_state, terms)`` (``terms``: the loss's typed NamedTuple of its parts)."""
    (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, *args)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, terms
