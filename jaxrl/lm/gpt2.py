"""GPT-2 (transformers' ``GPT2LMHeadModel``) in flax: learned positions, pre-LayerNorm blocks, GELU
(tanh) MLP, output head tied to the token embedding.

transformers stores GPT-2's projections as ``Conv1D`` with weights ``[in, out]`` (already flax's
``Dense`` layout), so no weight is transposed; ``HF_NAMES`` maps parameter paths to weight names.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrl.lm import attention
from jaxrl.lm.attention import KVCache
from jaxrl.lm.config import LMConfig
from jaxrl.networks import matmul

_init = nn.initializers.normal(0.02)
_ACTIVATIONS = {
    "gelu_new": lambda x: nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: nn.gelu(x, approximate=True),
    "gelu": lambda x: nn.gelu(x, approximate=False),
    "relu": nn.relu,
}


def _dense(features: int, name: str) -> nn.Dense:
    # bfloat16 weights: bfloat16 products accumulated in float32 (the CPU's fast path, also backward)
    return nn.Dense(features, kernel_init=_init, name=name, dot_general=matmul.dot_general)


class Block(nn.Module):
    cfg: LMConfig

    @nn.compact
    def __call__(self, x, start, cache, layer, offset):
        c = self.cfg
        b, t, d = x.shape
        h = nn.LayerNorm(epsilon=c.norm_eps, name="ln_1")(x)
        qkv = _dense(3 * d, "c_attn")(h).reshape(b, t, 3 * c.num_heads, c.head_dim)
        q, k, v = jnp.split(qkv, 3, axis=2)
        out, cache = attention.write_and_attend(q, k, v, start, cache, layer, offset)
        x = x + _dense(d, "attn_c_proj")(out)
        h = nn.LayerNorm(epsilon=c.norm_eps, name="ln_2")(x)
        h = _ACTIVATIONS[c.hidden_act](_dense(c.intermediate_size, "c_fc")(h))
        return x + _dense(d, "mlp_c_proj")(h), cache


class GPT2(nn.Module):
    """tokens ``[B, L]`` -> logits ``[B, L, vocab_size]``; also ``features`` and KV-cached ``decode``."""

    cfg: LMConfig

    def setup(self):
        c = self.cfg
        if c.hidden_act not in _ACTIVATIONS:
            raise ValueError(
                f"GPT-2 activation {c.hidden_act!r} is not supported; use one of {list(_ACTIVATIONS)}"
            )
        self.wte = nn.Embed(c.vocab_size, c.hidden_size, embedding_init=_init)
        self.wpe = self.param("wpe", nn.initializers.normal(0.01), (c.max_position_embeddings, c.hidden_size))
        self.h = [Block(c, name=f"h_{i}") for i in range(c.num_layers)]
        self.ln_f = nn.LayerNorm(epsilon=c.norm_eps)

    def _run(self, tokens, start, cache, offset):
        b, t = tokens.shape
        pos = attention.positions(start, t, b, offset)
        x = jnp.take(self.wte.embedding, tokens, axis=0, mode="clip")
        x = x + jnp.take(self.wpe, pos, axis=0, mode="clip").astype(x.dtype)
        for i, block in enumerate(self.h):
            x, cache = block(x, start, cache, i, offset)
        return self.ln_f(x), cache

    def unembed(self, hidden: jax.Array) -> jax.Array:
        """Final hidden states [..., D] -> logits [..., V] (tied to the token embedding)."""
        return matmul.tied_logits(self.wte, hidden)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        return self.unembed(self._run(tokens, 0, None, None)[0])

    def features(self, tokens: jax.Array) -> jax.Array:
        return self._run(tokens, 0, None, None)[0]

    def decode(
        self,
        tokens: jax.Array,
        cache: KVCache,
        start: jax.Array | int,
        offset: jax.Array | None = None,
        last_only: bool = False,
    ) -> tuple[jax.Array, KVCache]:
        """As :meth:`jaxrl.lm.llama.Llama.decode`."""
        h, cache = self._run(tokens, start, cache, offset)
        return self.unembed(h[:, -1:] if last_only else h), cache


def hf_names(cfg: LMConfig) -> dict[tuple[str, ...], tuple[str, bool]]:
    """flax parameter path -> (transformers weight name, transposed?) for every parameter."""
    names: dict[tuple[str, ...], tuple[str, bool]] = {
        ("wte", "embedding"): ("transformer.wte.weight", False),
        ("wpe",): ("transformer.wpe.weight", False),
        ("ln_f", "scale"): ("transformer.ln_f.weight", False),
        ("ln_f", "bias"): ("transformer.ln_f.bias", False),
    }
    for i in range(cfg.num_layers):
        p, n = f"h_{i}", f"transformer.h.{i}"
        for ours, theirs in (
            ("ln_1", "ln_1"),
            ("ln_2", "ln_2"),
            ("c_attn", "attn.c_attn"),
            ("attn_c_proj", "attn.c_proj"),
            ("c_fc", "mlp.c_fc"),
            ("mlp_c_proj", "mlp.c_proj"),
        ):
            is_norm = ours.startswith("ln")
            names[(p, ours, "scale" if is_norm else "kernel")] = (f"{n}.{theirs}.weight", False)
            names[(p, ours, "bias")] = (f"{n}.{theirs}.bias", False)
    return names
