"""The reward model: the built-in transformer with a scalar reward per sequence."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl.algos.reward_model.config import Config
from jaxrl.algos.reward_model.data import make_task
from jaxrl.networks import transformer


class RewardModel(nn.Module):
    """Transformer trunk with a scalar reward per right-padded ``<bos> prompt answer <eos>`` row.

    ``apply(params, tokens [B, L] int, lengths [B] int, prompt_len [B] int) -> rewards [B] float32``;
    ``lengths`` counts each row's real tokens and ``prompt_len`` its ``<bos> prompt`` tokens.
    ``readout="head"``: a linear head on the features of the last real token (position ``lengths - 1``,
    the ``<eos>``). ``readout="loglik"``: ``log p(answer <eos> | <bos> prompt)`` under the trunk's
    next-token head. The trunk is causal, so padding after a row's end never changes its reward. With
    ``with_logits=True`` it also returns the next-token logits ``[B, L, V]`` (the auxiliary
    language-model loss); the parameters always include both heads.
    """

    cfg: transformer.TransformerConfig
    readout: str = "head"

    def setup(self):
        self.trunk = transformer.Transformer(self.cfg)
        self.head = nn.Dense(1, kernel_init=nn.initializers.normal(0.02))

    def __call__(
        self, tokens: jax.Array, lengths: jax.Array, prompt_len: jax.Array, *, with_logits: bool = False
    ):
        h = self.trunk.features(tokens)  # [B, L, D]
        logits = self.trunk.head(h) if (with_logits or self.readout == "loglik") else None  # [B, L, V]
        if self.readout == "loglik":
            logp, mask = answer_log_probs(logits, tokens, prompt_len, lengths)
            r = jnp.sum(logp * mask, axis=1)
        else:
            last = jnp.take_along_axis(h, (lengths - 1)[:, None, None].astype(jnp.int32), axis=1)[
                :, 0
            ]  # [B, D]
            r = self.head(last)[:, 0].astype(jnp.float32)
        return (r, logits) if with_logits else r


def answer_log_probs(
    logits: jax.Array, tokens: jax.Array, prompt_len: jax.Array, lengths: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Log-probabilities of the answer tokens (``<eos>`` included) of right-padded rows.

    logits [B, L, V] (row t predicts token t+1), tokens [B, L], prompt_len [B], lengths [B] ->
    (logp [B, L-1] of tokens 1..L-1, mask [B, L-1] float32: 1 where that token is part of the answer).
    """
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
    logp = jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]
    pos = jnp.arange(1, tokens.shape[1])[None, :]
    mask = ((pos >= prompt_len[:, None]) & (pos < lengths[:, None])).astype(jnp.float32)
    return logp, mask


def make_network(cfg: Config) -> RewardModel:
    return RewardModel(cfg.transformer_config(make_task(cfg).tokenizer.vocab_size), readout=cfg.readout)
