"""The reward model: a transformer (built-in, or a Hugging Face checkpoint's) with a scalar reward per
sequence."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl.algos.reward_model.config import Config, is_hf, resolved_readout
from jaxrl.algos.reward_model.data import make_task
from jaxrl.networks import transformer


class RewardModel(nn.Module):
    """Transformer trunk with a scalar reward per right-padded ``<bos> prompt answer <eos>`` row.

    ``apply(params, tokens [B, L] int, lengths [B] int, prompt_len [B] int) -> rewards [B] float32``;
    ``lengths`` counts each row's real tokens and ``prompt_len`` its ``<bos> prompt`` tokens.
    ``readout="head"``: a linear head on the features of the last real token (position ``lengths - 1``,
    the ``<eos>``). ``readout="loglik"``: ``log p(answer <eos> | <bos> prompt)`` under the trunk's
    next-token head. The trunk is causal, so padding after a row's end never changes its reward. With
    ``with_logits=True`` it also returns the next-token logits ``[B, L, V]``, with
    ``with_answer_logp=True`` the answer tokens' log-probabilities and mask (:func:`answer_log_probs`,
    the auxiliary language-model loss); the parameters always include both heads.
    """

    cfg: transformer.TransformerConfig
    readout: str = "head"

    def setup(self):
        self.trunk = transformer.Transformer(self.cfg)
        self.head = nn.Dense(1, kernel_init=nn.initializers.normal(0.02))

    def __call__(
        self,
        tokens: jax.Array,
        lengths: jax.Array,
        prompt_len: jax.Array,
        *,
        with_logits: bool = False,
        with_answer_logp: bool = False,
    ):
        h = self.trunk.features(tokens)  # [B, L, D]
        need_logits = with_logits or with_answer_logp or self.readout == "loglik"
        logits = self.trunk.head(h) if need_logits else None  # [B, L, V]
        logp = mask = None
        if with_answer_logp or self.readout == "loglik":
            logp, mask = answer_log_probs(logits, tokens, prompt_len, lengths)
        if self.readout == "loglik":
            r = jnp.sum(logp * mask, axis=1)
        else:
            r = self.head(last_token(h, lengths))[:, 0].astype(jnp.float32)
        if with_answer_logp:
            return r, (logp, mask)
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
    return logp, answer_mask(tokens, prompt_len, lengths)


def answer_mask(tokens: jax.Array, prompt_len: jax.Array, lengths: jax.Array) -> jax.Array:
    """[B, L-1] float32: 1 where token ``t + 1`` of a row is part of its answer (``<eos>`` included)."""
    pos = jnp.arange(1, tokens.shape[1])[None, :]
    return ((pos >= prompt_len[:, None]) & (pos < lengths[:, None])).astype(jnp.float32)


def make_network(cfg: Config) -> RewardModel | HFRewardModel:
    """The reward model of ``cfg``: the built-in transformer, or ``HFRewardModel`` for ``"hf:<dir>"``."""
    if is_hf(cfg):
        return _hf_network(cfg.model, resolved_readout(cfg))
    return RewardModel(
        cfg.transformer_config(make_task(cfg).tokenizer.vocab_size), readout=resolved_readout(cfg)
    )


@functools.lru_cache(maxsize=8)
def _hf_network(spec: str, readout: str) -> HFRewardModel:
    return HFRewardModel(spec, readout)  # one object per checkpoint: one set of compiled programs


def last_token(h: jax.Array, lengths: jax.Array) -> jax.Array:
    """h [B, L, D], lengths [B] -> the features of each row's last real token [B, D] (the head's input)."""
    return jnp.take_along_axis(h, (lengths - 1)[:, None, None].astype(jnp.int32), axis=1)[:, 0]


class HFRewardModel:
    """A pretrained causal LM (``"hf:<dir>"``, :mod:`jaxrl.lm`) as the trunk, with the same interface as
    :class:`RewardModel`: ``apply(params, tokens [B, L], lengths [B], prompt_len [B]) -> rewards [B]``.

    Parameters: ``{"params": {"trunk": <the checkpoint's parameters>, "head": {"kernel" [D, 1], "bias"
    [1]}}}``; ``init`` starts the trunk from the checkpoint and the head from N(0, 0.02) weights and a zero
    bias. Only the trunk's final hidden states ``[B, L, D]`` are made: ``readout="head"`` reads the last
    real token's, and the answer log-probabilities (``readout="loglik"``, the auxiliary next-token loss) go
    through the output head a chunk of positions at a time
    (:func:`jaxrl.networks.transformer.chunked_log_probs`), so no ``[B, L, V]`` logits exist at a
    32k-150k vocabulary. ``with_logits=True`` is refused for that reason; the loss asks for
    ``with_answer_logp=True`` instead.
    """

    def __init__(self, spec: str, readout: str):
        from jaxrl import lm

        self.spec, self.readout = spec, readout
        self.policy = lm.resolve(spec)[0]
        self.hidden_size = self.policy.config.hidden_size

    def init(self, key: jax.Array, tokens=None, lengths=None, prompt_len=None, *, with_logits: bool = False):
        from jaxrl import lm

        del tokens, lengths, prompt_len, with_logits
        kernel = 0.02 * jax.random.normal(key, (self.hidden_size, 1), jnp.float32)
        head = {"kernel": kernel, "bias": jnp.zeros((1,), jnp.float32)}
        return {"params": {"trunk": lm.resolve(self.spec)[1], "head": head}}

    def apply(
        self,
        params,
        tokens: jax.Array,
        lengths: jax.Array,
        prompt_len: jax.Array,
        *,
        with_logits: bool = False,
        with_answer_logp: bool = False,
    ):
        if with_logits:
            raise ValueError(
                "a Hugging Face reward model does not build [B, L, V] logits; ask for with_answer_logp=True"
            )
        p = params["params"]
        h = self.policy.features(p["trunk"], tokens)  # [B, L, D]
        logp = mask = None
        if with_answer_logp or self.readout == "loglik":
            logp = transformer.chunked_log_probs(
                lambda x: self.policy.unembed(p["trunk"], x).astype(jnp.float32), h[:, :-1], tokens[:, 1:]
            )  # [B, L-1]: token t+1 given tokens ..t
            mask = answer_mask(tokens, prompt_len, lengths)
        if self.readout == "loglik":
            r = jnp.sum(logp * mask, axis=1)
        else:
            last = last_token(h, lengths)
            r = (last.astype(jnp.float32) @ p["head"]["kernel"])[:, 0] + p["head"]["bias"][0]
        return (r, (logp, mask)) if with_answer_logp else r

    def features(self, params, tokens: jax.Array) -> jax.Array:
        """The trunk's final hidden states ``[B, L, D]`` (what the head reads)."""
        return self.policy.features(params["params"]["trunk"], tokens)
