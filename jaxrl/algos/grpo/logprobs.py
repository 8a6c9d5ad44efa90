"""Log-probabilities of the completion tokens alone, for GRPO's update, reference and warm-up passes.

A GRPO batch is right-padded: ``<bos> prompt | completion (<= width tokens) | pad``. Only completion
tokens carry a loss, and on a large vocabulary the output head (``D x V``) is most of a forward pass, so
:func:`completion_log_probs` runs the transformer body on every position (the completion attends to
the prompt) but the head and the log-softmax only on the ``width`` positions that predict the completion
tokens of each row, a chunk of positions at a time (:func:`jaxrl.networks.transformer.chunked_log_probs`:
no float32 ``[B, L, V]`` logits). Same values, on the masked positions, as
:func:`jaxrl.networks.transformer.token_log_probs` (``tests/grpo/test_logprobs.py``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.networks import transformer


def completion_log_probs(
    policy: transformer.PolicyModel,
    params: Any,
    tokens: jax.Array,
    mask: jax.Array,
    width: int,
    temperature: jax.Array | float = 1.0,
) -> jax.Array:
    """``log pi(tokens[:, t] | tokens[:, :t])`` on each row's window of ``width`` positions starting at
    its first ``mask > 0`` position; 0 elsewhere.

    tokens [B, L] int, mask [B, L] -> [B, L] float32. Every ``mask > 0`` position of a row must lie in
    that window (true of sampled completions of at most ``width`` tokens and of the warm-up's answers);
    then the values at them equal :func:`~jaxrl.networks.transformer.token_log_probs`'s. Models without
    ``features``/``unembed``, or windows as long as the sequence, take ``token_log_probs`` itself.
    """
    b, length = tokens.shape
    if policy.features is None or policy.unembed is None or width >= length - 1:
        return transformer.token_log_probs(policy, params, tokens, temperature)
    first = jnp.argmax(mask > 0, axis=1)  # 0 for a row without completion tokens (its window is unused)
    start = jnp.clip(first, 1, length - width)  # position 0 has no context; the window fits in L
    pos = start[:, None] + jnp.arange(width)[None, :]  # [B, width] positions of the predicted tokens
    hidden = policy.features(params, tokens)  # [B, L, D] (causal: position p - 1 predicts token p)
    h = jnp.take_along_axis(hidden, (pos - 1)[..., None], axis=1)  # [B, width, D]
    targets = jnp.take_along_axis(tokens, pos, axis=1)
    logp = transformer.chunked_log_probs(
        lambda x: policy.unembed(params, x).astype(jnp.float32) / temperature, h, targets
    )
    return jnp.zeros((b, length), jnp.float32).at[jnp.arange(b)[:, None], pos].set(logp)
