"""One :class:`~jaxrl.networks.transformer.PolicyModel` for every ``jaxrl.lm`` family.

``policy(cfg)`` builds the flax module of ``cfg.family`` and wraps its methods: ``apply(params,
tokens) -> logits``, ``decode(params, tokens, cache, start, offset=None)``, ``init_cache(batch,
length, dtype=float32)``, ``features`` and ``unembed``. ``hf_names(cfg)`` is the family's table from
parameter paths to transformers weight names (what loading and export read and write).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.lm import attention, gpt2, llama
from jaxrl.lm.config import LMConfig
from jaxrl.networks.transformer import PolicyModel

FAMILIES = {"llama": (llama.Llama, llama.hf_names), "gpt2": (gpt2.GPT2, gpt2.hf_names)}


def module(cfg: LMConfig):
    """The flax module of ``cfg``'s family."""
    return FAMILIES[cfg.family][0](cfg)


def hf_names(cfg: LMConfig) -> dict[tuple[str, ...], tuple[str, bool]]:
    """flax parameter path -> (transformers weight name, stored transposed?)."""
    return FAMILIES[cfg.family][1](cfg)


def policy(cfg: LMConfig) -> PolicyModel:
    """``cfg``'s model behind jaxrl's policy seam. ``max_len`` is ``max_position_embeddings``; the KV
    cache takes the parameters' dtype unless given one."""
    m = module(cfg)

    def init(key: jax.Array) -> Any:
        return m.init(key, jnp.zeros((1, 1), jnp.int32))

    def init_cache(batch: int, length: int | None = None, dtype: Any = jnp.float32):
        length = cfg.max_position_embeddings if length is None else length
        return attention.init_cache(cfg.num_layers, batch, length, cfg.num_kv_heads, cfg.head_dim, dtype)

    return PolicyModel(
        apply=m.apply,
        init=init,
        vocab_size=cfg.vocab_size,
        max_len=cfg.max_position_embeddings,
        decode=lambda params, tokens, cache, start, offset=None, last_only=False: m.apply(
            params, tokens, cache, start, offset, last_only, method="decode"
        ),
        init_cache=init_cache,
        features=functools.partial(m.apply, method="features"),
        unembed=functools.partial(m.apply, method="unembed"),
        config=cfg,
    )
