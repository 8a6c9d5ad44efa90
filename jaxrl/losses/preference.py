"""Preference (reward-model) losses on one comparison pair; batch with ``jax.vmap``."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def preference_loss(
    r_chosen: jax.Array,
    r_rejected: jax.Array,
    *,
    margin: jax.Array | float = 0.0,
) -> jax.Array:
    """Bradley-Terry loss for one preference pair: ``-log sigmoid(r_chosen - r_rejected - margin)``.

    The reward model is trained so that ``P(chosen > rejected) = sigmoid(r_c - r_r)``
    (Bradley & Terry 1952; Ouyang et al. 2022, arXiv:2203.02155, eq. 1). A positive ``margin``
    asks for a gap of at least about ``margin`` (Llama 2, arXiv:2307.09288, eq. 2).
    Computed as ``softplus(-(r_c - r_r - m))``, which is finite for any finite gap (no ``log(0)``).

    Args:
      r_chosen: [] scalar reward of the preferred answer.
      r_rejected: [] scalar reward of the rejected answer.
      margin: [] (keyword-only) required gap; 0 gives plain Bradley-Terry.
    Returns:
      [] loss (>= 0). ``d loss / d r_chosen = -sigmoid(-(gap))`` <= 0, ``d / d r_rejected`` its negative.
    """
    chex.assert_rank([r_chosen, r_rejected], [0, 0])
    chex.assert_type([r_chosen, r_rejected], [float, float])
    gap = r_chosen - r_rejected - margin
    return jax.nn.softplus(-gap)


def preference_accuracy(r_chosen: jax.Array, r_rejected: jax.Array) -> jax.Array:
    """1.0 if the chosen answer scores strictly higher, else 0.0 (ties count as wrong).

    Args:
      r_chosen: [] scalar reward of the preferred answer.
      r_rejected: [] scalar reward of the rejected answer.
    Returns:
      [] float32 in {0, 1}.
    """
    chex.assert_rank([r_chosen, r_rejected], [0, 0])
    return (r_chosen > r_rejected).astype(jnp.float32)
