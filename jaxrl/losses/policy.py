"""Policy-gradient losses on one stream ``[T]``. Scalar losses are (masked) means over ``T``."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def masked_mean(x: jax.Array, mask_t: jax.Array | None) -> jax.Array:
    if mask_t is None:
        return jnp.mean(x)
    mask_t = mask_t.astype(x.dtype)
    return jnp.sum(x * mask_t) / jnp.maximum(jnp.sum(mask_t), 1.0)


def categorical_log_prob(logits: jax.Array, a: jax.Array) -> jax.Array:
    """``log softmax(logits)[a]``; logits [..., A], a [...] int -> [...]."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, a[..., None].astype(jnp.int32), axis=-1)[..., 0]


def entropy(logits: jax.Array) -> jax.Array:
    """Entropy of a categorical distribution: logits [..., A] -> [...].

    Actions masked out with ``-inf`` logits contribute 0 (not ``0 * -inf = nan``), gradients included.
    """
    logp = jax.nn.log_softmax(logits, axis=-1)
    p = jnp.exp(logp)
    return -jnp.sum(p * jnp.where(p > 0, logp, 0.0), axis=-1)


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, a: jax.Array) -> jax.Array:
    """Log density of a diagonal Gaussian: mean, log_std, a [..., D] -> [...]."""
    z = (a - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    """Entropy of a diagonal Gaussian: log_std [..., D] -> [...]."""
    return jnp.sum(log_std + 0.5 * jnp.log(2.0 * jnp.pi * jnp.e), axis=-1)


def reinforce_loss(
    logits_t: jax.Array,
    a_t: jax.Array,
    returns_t: jax.Array,
    *,
    mask_t: jax.Array | None = None,
) -> jax.Array:
    """REINFORCE (Williams 1992): ``-mean_t log pi(a_t|s_t) * G_t`` (``G_t`` is not differentiated).

    Args:
      logits_t: [T, A] policy logits.
      a_t: [T] int actions.
      returns_t: [T] reward-to-go (minus a baseline, if any).
      mask_t: optional [T] weights (0 for steps outside an episode); the mean is over the mask.
    Returns:
      [] loss.
    """
    chex.assert_rank([logits_t, a_t, returns_t], [2, 1, 1])
    chex.assert_type([a_t], [int])
    logp = categorical_log_prob(logits_t, a_t)
    return -masked_mean(logp * jax.lax.stop_gradient(returns_t), mask_t)


def policy_gradient_loss(
    logp_t: jax.Array, adv_t: jax.Array, *, mask_t: jax.Array | None = None
) -> jax.Array:
    """``-mean_t logp_t * A_t`` for any distribution, given log-probabilities [T] and advantages [T]."""
    chex.assert_rank([logp_t, adv_t], 1)
    return -masked_mean(logp_t * jax.lax.stop_gradient(adv_t), mask_t)


def clipped_surrogate_loss(
    ratio_t: jax.Array,
    adv_t: jax.Array,
    epsilon: jax.Array | float,
    *,
    mask_t: jax.Array | None = None,
) -> jax.Array:
    """PPO-clip (Schulman et al. 2017, arXiv:1707.06347): ``-mean_t min(rho A, clip(rho, 1-eps, 1+eps) A)``.

    Args:
      ratio_t: [T] probability ratios pi(a|s) / pi_old(a|s).
      adv_t: [T] advantages (not differentiated).
      epsilon: [] clip range.
      mask_t: optional [T] weights; the mean is over the mask.
    Returns:
      [] loss.
    """
    chex.assert_rank([ratio_t, adv_t], 1)
    chex.assert_equal_shape([ratio_t, adv_t])
    adv_t = jax.lax.stop_gradient(adv_t)
    clipped = jnp.clip(ratio_t, 1.0 - epsilon, 1.0 + epsilon) * adv_t
    return -masked_mean(jnp.minimum(ratio_t * adv_t, clipped), mask_t)


def clipped_value_loss(
    v_t: jax.Array,
    v_old_t: jax.Array,
    target_t: jax.Array,
    epsilon: jax.Array | float,
    *,
    mask_t: jax.Array | None = None,
) -> jax.Array:
    """PPO's clipped value loss: ``mean_t 0.5 max((v - G)^2, (v_old + clip(v - v_old, +-eps) - G)^2)``.

    Args: v_t, v_old_t, target_t: [T]; epsilon: []. Returns: [] loss.
    """
    chex.assert_rank([v_t, v_old_t, target_t], 1)
    target_t = jax.lax.stop_gradient(target_t)
    v_clipped = v_old_t + jnp.clip(v_t - v_old_t, -epsilon, epsilon)
    loss = 0.5 * jnp.maximum(jnp.square(v_t - target_t), jnp.square(v_clipped - target_t))
    return masked_mean(loss, mask_t)
