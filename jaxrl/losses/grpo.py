"""GRPO losses (Shao et al. 2024, DeepSeekMath, arXiv:2402.03300): group-relative advantages and the
per-token clipped objective over completion tokens.

For G answers ``a_1..a_G`` sampled for one prompt: ``A_i = (R_i - mean_j R_j) / (std_j R_j + eps)``;
every token of answer ``i`` gets ``A_i``. The loss is ``-min(rho A, clip(rho, 1-eps_low, 1+eps_high) A)
+ beta * KL_k3(pi || pi_ref)`` per token, aggregated as a per-sequence mean (DeepSeekMath), a token
mean over the batch (DAPO, arXiv:2503.14476) or a sum over a constant divisor (Dr. GRPO,
arXiv:2503.20783).
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

ADVANTAGE_SCALES = ("group", "batch", "none")
AGGREGATIONS = ("sequence", "token", "constant")

#: (advantage scale, aggregation) of the published variants. Dr. GRPO (arXiv:2503.20783) removes both
#: of GRPO's biases: no division by the group's std (which up-weights near-solved and near-failed
#: prompts) and a constant divisor instead of each answer's length (which makes long wrong answers
#: cheaper per token and short right ones more rewarded).
VARIANTS = {"grpo": ("group", "sequence"), "dapo": ("group", "token"), "dr_grpo": ("none", "constant")}


def group_advantages(rewards: jax.Array, *, scale: str = "group", eps: float = 1e-4) -> jax.Array:
    """Group-relative advantages: rewards minus their group's mean, optionally divided by a std.

    Args:
      rewards: [G] rewards of one group, or [B, G] (B groups of G answers to one prompt each).
      scale: ``"group"`` divides by each group's std (GRPO); ``"batch"`` by the std of all rewards
        given (TRL ``scale_rewards="batch"``; pass [B, G] for it to mean the batch); ``"none"`` only
        centres (Dr. GRPO).
      eps: added to the std; a group of identical rewards gets advantage exactly 0.
    Returns:
      advantages with the shape of ``rewards``.
    """
    chex.assert_rank(rewards, {1, 2})
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"unknown advantage scale {scale!r}; choose one of {ADVANTAGE_SCALES}")
    g = rewards.shape[-1]
    if g < 2:
        raise ValueError(
            f"group_advantages needs at least 2 answers per prompt (got a group of {g}): with one answer "
            f"the group-mean baseline equals its reward and every advantage is 0; raise the group size"
        )
    rewards = rewards.astype(jnp.float32)
    # a group of identical rewards gets exactly 0 (its float mean can differ from them by rounding)
    same = jnp.all(rewards == rewards[..., :1], axis=-1, keepdims=True)
    centred = jnp.where(same, 0.0, rewards - jnp.mean(rewards, axis=-1, keepdims=True))
    if scale == "group":
        return centred / (jnp.std(rewards, axis=-1, keepdims=True) + eps)
    if scale == "batch":
        return centred / (jnp.std(rewards) + eps)
    return centred


class GRPODiagnostics(NamedTuple):
    """Means over completion tokens (mask > 0) of one loss evaluation."""

    policy_loss: jax.Array  # [] the clipped-surrogate part of the loss
    kl: jax.Array  # [] k3 estimate of KL(pi || pi_ref) per token (0 without a reference)
    clip_fraction: jax.Array  # [] tokens whose gradient the clip removed
    ratio_mean: jax.Array  # [] mean pi / pi_old
    ratio_max: jax.Array  # [] largest pi / pi_old


def k3_kl(logp: jax.Array, logp_ref: jax.Array) -> jax.Array:
    """Unbiased, non-negative per-token estimate of KL(pi || pi_ref) (Schulman's k3), samples from pi:
    ``exp(logp_ref - logp) - (logp_ref - logp) - 1``. Any shape -> the same shape."""
    d = logp_ref - logp
    return jnp.exp(d) - d - 1.0


def aggregate(
    x: jax.Array, mask: jax.Array, mode: str = "sequence", max_tokens: int | None = None
) -> jax.Array:
    """Reduce per-token values ``x [N, T]`` over ``mask [N, T]`` to a scalar.

    ``"sequence"``: mean over each sequence's tokens, then over sequences (DeepSeekMath GRPO);
    ``"token"``: sum over all tokens / number of tokens (DAPO); ``"constant"``: sum / (N * max_tokens)
    (Dr. GRPO: no length normalisation; ``max_tokens`` defaults to ``T``).
    """
    chex.assert_rank([x, mask], 2)
    chex.assert_equal_shape([x, mask])
    mask = mask.astype(x.dtype)
    if mode == "sequence":
        per_seq = jnp.sum(x * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)
        return jnp.mean(per_seq)
    if mode == "token":
        return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)
    if mode == "constant":
        return jnp.sum(x * mask) / (x.shape[0] * (max_tokens or x.shape[1]))
    raise ValueError(f"unknown loss aggregation {mode!r}; choose one of {AGGREGATIONS}")


def grpo_loss(
    logp: jax.Array,
    logp_old: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    *,
    logp_ref: jax.Array | None = None,
    beta: jax.Array | float = 0.0,
    clip_eps_low: jax.Array | float = 0.2,
    clip_eps_high: jax.Array | float | None = None,
    aggregation: str = "sequence",
    max_tokens: int | None = None,
) -> tuple[jax.Array, GRPODiagnostics]:
    """GRPO loss on N completions of T token slots.

    Per token: ``-min(rho A, clip(rho, 1-eps_low, 1+eps_high) A) + beta * k3(pi, pi_ref)`` with
    ``rho = exp(logp - logp_old)``, then :func:`aggregate` over the completion mask.

    Args:
      logp: [N, T] log pi_theta of the sampled tokens (differentiated).
      logp_old: [N, T] log-probs at sampling time (not differentiated).
      advantages: [N] one advantage per completion (not differentiated).
      mask: [N, T] 1 on completion tokens, 0 on prompt and padding.
      logp_ref: optional [N, T] reference-policy log-probs for the KL penalty (not differentiated).
      beta: KL weight (ignored without ``logp_ref``).
      clip_eps_low / clip_eps_high: ratio clip range ``[1 - low, 1 + high]`` (high defaults to low;
        DAPO's clip-higher uses e.g. 0.2 / 0.28).
      aggregation: ``"sequence"`` | ``"token"`` | ``"constant"``; max_tokens: divisor for "constant".
    Returns:
      ([] loss, :class:`GRPODiagnostics`).
    """
    chex.assert_rank([logp, logp_old, advantages, mask], [2, 2, 1, 2])
    chex.assert_equal_shape([logp, logp_old, mask])
    chex.assert_equal_shape_prefix([logp, advantages], 1)
    eps_high = clip_eps_low if clip_eps_high is None else clip_eps_high
    adv = jax.lax.stop_gradient(advantages)[:, None]
    log_ratio = logp - jax.lax.stop_gradient(logp_old)
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * adv
    clipped = jnp.clip(ratio, 1.0 - clip_eps_low, 1.0 + eps_high) * adv
    per_token = -jnp.minimum(unclipped, clipped)
    policy_loss = aggregate(per_token, mask, aggregation, max_tokens)
    if logp_ref is None:
        kl_t = jnp.zeros_like(logp)
        total = policy_loss
    else:
        chex.assert_equal_shape([logp, logp_ref])
        kl_t = k3_kl(logp, jax.lax.stop_gradient(logp_ref))
        total = policy_loss + beta * aggregate(kl_t, mask, aggregation, max_tokens)
    # the clip is active (no gradient) where the clipped term is the strictly smaller one
    active = (clipped < unclipped).astype(jnp.float32)
    m = mask.astype(jnp.float32)
    n = jnp.maximum(jnp.sum(m), 1.0)
    stop = jax.lax.stop_gradient
    diagnostics = GRPODiagnostics(
        policy_loss=stop(policy_loss),
        kl=stop(jnp.sum(kl_t * m) / n),
        clip_fraction=jnp.sum(active * m) / n,
        ratio_mean=stop(jnp.sum(ratio * m) / n),
        ratio_max=stop(jnp.max(jnp.where(m > 0, ratio, 0.0))),
    )
    return total, diagnostics
