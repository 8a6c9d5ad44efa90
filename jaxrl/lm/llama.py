"""Llama-family decoder (Llama 2/3, Mistral, SmolLM, Qwen2, Qwen3) in flax.

Pre-RMSNorm blocks, rotary embeddings (with Llama-3 / linear rope scaling), grouped-query attention,
SwiGLU MLP, tied or untied output head; Qwen2's q/k/v bias and Qwen3's per-head q/k RMSNorm are
:class:`~jaxrl.lm.config.LMConfig` flags. The math follows transformers' ``modeling_llama.py``;
parameters are named after its weights (``HF_NAMES`` maps one to the other), with ``nn.Dense``
kernels stored ``[in, out]`` (transformers' ``Linear.weight`` transposed).
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


class RMSNorm(nn.Module):
    """``x / rms(x) * scale``, normalised in float32 and cast back (transformers' LlamaRMSNorm)."""

    eps: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        xf = x.astype(jnp.float32)
        xf = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return scale[(None,) * (x.ndim - 1)] * xf.astype(x.dtype)


def _dense(features: int, bias: bool, name: str) -> nn.Dense:
    # bfloat16 weights: bfloat16 products accumulated in float32 (the CPU's fast path, also backward)
    return nn.Dense(features, use_bias=bias, kernel_init=_init, name=name, dot_general=matmul.dot_general)


class Attention(nn.Module):
    cfg: LMConfig

    @nn.compact
    def __call__(self, x, start, cache, layer, offset, inv_freq):
        c = self.cfg
        b, t, _ = x.shape
        q = _dense(c.num_heads * c.head_dim, c.qkv_bias, "q_proj")(x).reshape(b, t, c.num_heads, c.head_dim)
        k = _dense(c.num_kv_heads * c.head_dim, c.qkv_bias, "k_proj")(x).reshape(
            b, t, c.num_kv_heads, c.head_dim
        )
        v = _dense(c.num_kv_heads * c.head_dim, c.qkv_bias, "v_proj")(x).reshape(
            b, t, c.num_kv_heads, c.head_dim
        )
        if c.qk_norm:
            q, k = RMSNorm(c.norm_eps, name="q_norm")(q), RMSNorm(c.norm_eps, name="k_norm")(k)
        pos = attention.positions(start, t, b, offset)
        q, k = attention.rotary(q, pos, inv_freq), attention.rotary(k, pos, inv_freq)
        out, cache = attention.write_and_attend(q, k, v, start, cache, layer, offset, c.sliding_window)
        return _dense(c.hidden_size, c.o_bias, "o_proj")(out), cache


class MLP(nn.Module):
    cfg: LMConfig

    @nn.compact
    def __call__(self, x):
        c = self.cfg
        gate = _dense(c.intermediate_size, c.mlp_bias, "gate_proj")(x)
        up = _dense(c.intermediate_size, c.mlp_bias, "up_proj")(x)
        return _dense(c.hidden_size, c.mlp_bias, "down_proj")(nn.silu(gate) * up)


class Layer(nn.Module):
    cfg: LMConfig

    @nn.compact
    def __call__(self, x, start, cache, layer, offset, inv_freq):
        c = self.cfg
        h, cache = Attention(c, name="self_attn")(
            RMSNorm(c.norm_eps, name="input_layernorm")(x), start, cache, layer, offset, inv_freq
        )
        x = x + h
        x = x + MLP(c, name="mlp")(RMSNorm(c.norm_eps, name="post_attention_layernorm")(x))
        return x, cache


class Llama(nn.Module):
    """tokens ``[B, L]`` -> logits ``[B, L, vocab_size]``; also ``features`` and KV-cached ``decode``."""

    cfg: LMConfig

    def setup(self):
        c = self.cfg
        self.embed_tokens = nn.Embed(c.vocab_size, c.hidden_size, embedding_init=_init)
        self.layers = [Layer(c, name=f"layers_{i}") for i in range(c.num_layers)]
        self.norm = RMSNorm(c.norm_eps)
        if not c.tie_word_embeddings:
            self.lm_head = nn.Dense(
                c.vocab_size, use_bias=False, kernel_init=_init, dot_general=matmul.logits_dot_general
            )
        self.inv_freq = jnp.asarray(c.inv_freq())

    def _run(self, tokens, start, cache, offset):
        x = jnp.take(self.embed_tokens.embedding, tokens, axis=0, mode="clip")
        for i, layer in enumerate(self.layers):
            x, cache = layer(x, start, cache, i, offset, self.inv_freq)
        return self.norm(x), cache

    def unembed(self, hidden: jax.Array) -> jax.Array:
        """Final hidden states [..., D] -> logits [..., V] (float32 for bfloat16 weights: the product is
        accumulated in float32 and the log-softmax after it wants that precision)."""
        if self.cfg.tie_word_embeddings:
            return matmul.tied_logits(self.embed_tokens, hidden)
        return self.lm_head(hidden)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """tokens [B, L] int -> logits [B, L, V] (causal)."""
        return self.unembed(self._run(tokens, 0, None, None)[0])

    def features(self, tokens: jax.Array) -> jax.Array:
        """tokens [B, L] int -> final hidden states [B, L, D] (after the last RMSNorm)."""
        return self._run(tokens, 0, None, None)[0]

    def decode(
        self,
        tokens: jax.Array,
        cache: KVCache,
        start: jax.Array | int,
        offset: jax.Array | None = None,
        last_only: bool = False,
    ) -> tuple[jax.Array, KVCache]:
        """tokens [B, T] into cache slots ``start..start+T-1`` -> (logits [B, T, V], cache); ``offset``
        [B]: left-padding slots per row (see :mod:`jaxrl.lm.attention`). ``last_only``: logits of the
        last slot only ([B, 1, V]; a prefill needs no more, and the output head is most of its cost)."""
        h, cache = self._run(tokens, start, cache, offset)
        return self.unembed(h[:, -1:] if last_only else h), cache


def hf_names(cfg: LMConfig) -> dict[tuple[str, ...], tuple[str, bool]]:
    """flax parameter path -> (transformers weight name, transposed?) for every parameter."""
    names: dict[tuple[str, ...], tuple[str, bool]] = {
        ("embed_tokens", "embedding"): ("model.embed_tokens.weight", False),
        ("norm", "scale"): ("model.norm.weight", False),
    }
    if not cfg.tie_word_embeddings:
        names[("lm_head", "kernel")] = ("lm_head.weight", True)
    for i in range(cfg.num_layers):
        p, n = f"layers_{i}", f"model.layers.{i}"
        names[(p, "input_layernorm", "scale")] = (f"{n}.input_layernorm.weight", False)
        names[(p, "post_attention_layernorm", "scale")] = (f"{n}.post_attention_layernorm.weight", False)
        for proj, bias in (("q", cfg.qkv_bias), ("k", cfg.qkv_bias), ("v", cfg.qkv_bias), ("o", cfg.o_bias)):
            names[(p, "self_attn", f"{proj}_proj", "kernel")] = (f"{n}.self_attn.{proj}_proj.weight", True)
            if bias:
                names[(p, "self_attn", f"{proj}_proj", "bias")] = (f"{n}.self_attn.{proj}_proj.bias", False)
        if cfg.qk_norm:
            for norm in ("q_norm", "k_norm"):
                names[(p, "self_attn", norm, "scale")] = (f"{n}.self_attn.{norm}.weight", False)
        for proj in ("gate_proj", "up_proj", "down_proj"):
            names[(p, "mlp", proj, "kernel")] = (f"{n}.mlp.{proj}.weight", True)
            if cfg.mlp_bias:
                names[(p, "mlp", proj, "bias")] = (f"{n}.mlp.{proj}.bias", False)
    return names
