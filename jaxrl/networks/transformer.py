"""A small decoder-only transformer, the policy interface, and jitted batched sampling.

The policy interface (what GRPO and the reward model need from a language model) is deliberately
small: any autoregressive Flax model whose ``apply(params, tokens[B, L]) -> logits[B, L, V]`` is causal
(position ``t``'s logits see tokens ``0..t`` only) can be wrapped in a :class:`PolicyModel`. Sequences
are RIGHT-padded: prompt, then completion, then ``pad`` tokens, so no attention mask is needed (a
causal model never looks at the padding after a real token). A model that also provides a KV-cache
``decode`` is sampled in ``O(L)`` work per token; without one, sampling recomputes the full prefix each
step (same tokens, same log-probabilities; slower).

The built-in :class:`Transformer` (GPT-2 shaped: learned positions, pre-LayerNorm blocks, GELU MLP,
untied output head, no dropout) exposes three methods on the same parameters::

    model = Transformer(TransformerConfig.of_size("tiny", vocab_size=16, max_len=32))
    params = model.init(key, jnp.zeros((1, 32), jnp.int32))
    logits = model.apply(params, tokens)                             # [B, L, V]
    hidden = model.apply(params, tokens, method=Transformer.features)   # [B, L, D] (after final LN)
    logits, cache = model.apply(params, tok, cache, t, method=Transformer.decode)  # KV-cached step

``features`` is the hook for a scalar head (a reward model reads it at the last non-pad token).
:func:`transformer_policy` wraps it as a :class:`PolicyModel`; :func:`make_sampler` builds the jitted
sampler (temperature, top-k, top-p, greedy) returning per-token log-probabilities.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

# --------------------------------------------------------------------------------------- CONFIG
#: Built-in sizes: (num_layers, num_heads, d_model). "tiny" is the TRL peer's GPT-2 (2 layers, 4 heads, 128).
SIZES: dict[str, tuple[int, int, int]] = {
    "nano": (1, 2, 64),
    "tiny": (2, 4, 128),
    "small": (4, 8, 256),
}


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Shape of a :class:`Transformer` (all fields static)."""

    vocab_size: int  # number of token ids
    max_len: int = 32  # longest sequence (learned positions)
    num_layers: int = 2
    num_heads: int = 4
    d_model: int = 128  # width of the residual stream
    d_ff: int | None = None  # MLP hidden width (None: 4 * d_model)

    def __post_init__(self):
        for name in ("vocab_size", "max_len", "num_layers", "num_heads", "d_model"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(
                    f"TransformerConfig.{name} must be a positive integer, got {getattr(self, name)!r}"
                )
        if self.d_model % self.num_heads:
            raise ValueError(
                f"TransformerConfig.d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )

    @classmethod
    def of_size(cls, size: str, vocab_size: int, max_len: int = 32) -> TransformerConfig:
        """A built-in size (``"nano"``, ``"tiny"``, ``"small"``) for a vocabulary and context length."""
        if size not in SIZES:
            raise ValueError(f"unknown transformer size {size!r}; choose one of {sorted(SIZES)}")
        layers, heads, width = SIZES[size]
        return cls(vocab_size=vocab_size, max_len=max_len, num_layers=layers, num_heads=heads, d_model=width)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def ff_dim(self) -> int:
        return self.d_ff or 4 * self.d_model


class KVCache(NamedTuple):
    """Keys and values of every layer: ``k, v: [num_layers, B, max_len, num_heads, head_dim]``."""

    k: jax.Array
    v: jax.Array


def init_cache(
    cfg: TransformerConfig, batch: int, length: int | None = None, dtype: Any = jnp.float32
) -> KVCache:
    """An empty cache for ``batch`` rows of ``length`` positions (default ``max_len``). Sampling sizes it
    to the sequences it writes: a smaller cache is much cheaper to carry through the decoding loop."""
    length = cfg.max_len if length is None else length
    if not 0 < length <= cfg.max_len:
        raise ValueError(f"cache length must be in [1, max_len={cfg.max_len}], got {length}")
    shape = (cfg.num_layers, batch, length, cfg.num_heads, cfg.head_dim)
    return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


# ---------------------------------------------------------------------------------------- MODEL
def _attend(q: jax.Array, k: jax.Array, v: jax.Array, q_pos: jax.Array, k_pos: jax.Array) -> jax.Array:
    """Causal attention: q [B, T, H, Dh], k/v [B, S, H, Dh], q_pos [T], k_pos [S] -> [B, T, H, Dh]."""
    scores = jnp.einsum("bthd,bshd->bhts", q, k) / math.sqrt(q.shape[-1])
    visible = (k_pos[None, :] <= q_pos[:, None])[None, None]  # [1, 1, T, S]
    scores = jnp.where(visible, scores, jnp.finfo(scores.dtype).min)
    return jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(scores, axis=-1), v)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``."""

    cfg: TransformerConfig

    def setup(self):
        c, init = self.cfg, nn.initializers.normal(0.02)
        # GPT-2 scales the residual output projections by 1/sqrt(2 * num_layers).
        out_init = nn.initializers.normal(0.02 / math.sqrt(2 * c.num_layers))
        self.ln1, self.ln2 = nn.LayerNorm(), nn.LayerNorm()
        self.qkv = nn.Dense(3 * c.d_model, kernel_init=init)
        self.proj = nn.Dense(c.d_model, kernel_init=out_init)
        self.fc = nn.Dense(c.ff_dim, kernel_init=init)
        self.fc_out = nn.Dense(c.d_model, kernel_init=out_init)

    def __call__(
        self, x: jax.Array, start: jax.Array | int, cache: KVCache | None, layer: int
    ) -> tuple[jax.Array, KVCache | None]:
        """x [B, T, D] at positions ``start .. start+T-1``; cache: every layer's cache (this block writes
        and reads slot ``layer``) or None."""
        c = self.cfg
        b, t, _ = x.shape
        q, k, v = jnp.split(self.qkv(self.ln1(x)).reshape(b, t, 3 * c.num_heads, c.head_dim), 3, axis=2)
        q_pos = start + jnp.arange(t)
        if cache is None:  # the whole sequence at once: attend within it
            att = _attend(q, k, v, q_pos, q_pos)
        else:  # write this chunk into the cache in place, attend to everything written so far
            at = (layer, 0, start, 0, 0)
            cache = KVCache(
                jax.lax.dynamic_update_slice(cache.k, k[None].astype(cache.k.dtype), at),
                jax.lax.dynamic_update_slice(cache.v, v[None].astype(cache.v.dtype), at),
            )
            att = _attend(q, cache.k[layer], cache.v[layer], q_pos, jnp.arange(cache.k.shape[2]))
        x = x + self.proj(att.reshape(b, t, c.d_model))
        x = x + self.fc_out(nn.gelu(self.fc(self.ln2(x))))
        return x, cache


class Transformer(nn.Module):
    """Decoder-only transformer: token ids ``[B, L]`` -> next-token logits ``[B, L, V]``."""

    cfg: TransformerConfig

    def setup(self):
        c = self.cfg
        self.embed = nn.Embed(c.vocab_size, c.d_model, embedding_init=nn.initializers.normal(0.02))
        self.pos_embed = self.param("pos_embed", nn.initializers.normal(0.01), (c.max_len, c.d_model))
        self.blocks = [Block(c, name=f"block_{i}") for i in range(c.num_layers)]
        self.ln_f = nn.LayerNorm()
        self.head = nn.Dense(c.vocab_size, use_bias=False, kernel_init=nn.initializers.normal(0.02))

    def _run(self, tokens: jax.Array, start: jax.Array | int, cache: KVCache | None):
        t = tokens.shape[1]
        pos = jax.lax.dynamic_slice_in_dim(self.pos_embed, start, t, axis=0)
        x = self.embed(tokens) + pos[None]
        for i, block in enumerate(self.blocks):
            x, cache = block(x, start, cache, i)
        return self.ln_f(x), cache

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """tokens [B, L] int -> logits [B, L, V] (causal: row t sees tokens 0..t)."""
        return self.head(self._run(tokens, 0, None)[0])

    def features(self, tokens: jax.Array) -> jax.Array:
        """tokens [B, L] int -> final hidden states [B, L, d_model] (after the last LayerNorm)."""
        return self._run(tokens, 0, None)[0]

    def decode(self, tokens: jax.Array, cache: KVCache, start: jax.Array | int) -> tuple[jax.Array, KVCache]:
        """tokens [B, T] at positions ``start..start+T-1`` (prefill: T > 1; one step: T = 1), with the
        cache of positions ``< start`` -> (logits [B, T, V], cache with these positions written)."""
        h, cache = self._run(tokens, start, cache)
        return self.head(h), cache


# ------------------------------------------------------------------------------ POLICY INTERFACE
@dataclasses.dataclass(frozen=True, eq=False)
class PolicyModel:
    """What jaxrl needs from an autoregressive language model.

    ``apply(params, tokens[B, L]) -> logits[B, L, V]`` must be causal. ``init(key) -> params``.
    Optional KV cache: ``init_cache(batch, length) -> cache`` (room for ``length <= max_len`` positions) and
    ``decode(params, tokens[B, T], cache, start) -> (logits[B, T, V], cache)``; without them sampling
    recomputes the whole prefix every step.
    """

    apply: Callable[[Any, jax.Array], jax.Array]
    init: Callable[[jax.Array], Any]
    vocab_size: int
    max_len: int
    decode: Callable[..., tuple[jax.Array, Any]] | None = None
    init_cache: Callable[[int, int], Any] | None = None
    #: ``features(params, tokens[B, L]) -> hidden[B, L, D]`` (final hidden states, for a scalar head)
    features: Callable[[Any, jax.Array], jax.Array] | None = None
    #: ``unembed(params, hidden[..., D]) -> logits[..., V]`` (the output head alone)
    unembed: Callable[[Any, jax.Array], jax.Array] | None = None
    #: what built the model (a ``TransformerConfig``, or a ``jaxrl.lm.LMConfig`` for a pretrained one)
    config: Any = None

    @property
    def has_cache(self) -> bool:
        return self.decode is not None and self.init_cache is not None


def transformer_policy(cfg: TransformerConfig) -> PolicyModel:
    """The built-in :class:`Transformer` as a :class:`PolicyModel` (with KV cache)."""
    model = Transformer(cfg)
    return PolicyModel(
        apply=model.apply,
        init=lambda key: model.init(key, jnp.zeros((1, cfg.max_len), jnp.int32)),
        vocab_size=cfg.vocab_size,
        max_len=cfg.max_len,
        decode=lambda params, tokens, cache, start: model.apply(
            params, tokens, cache, start, method=Transformer.decode
        ),
        init_cache=lambda batch, length=None: init_cache(cfg, batch, length),
        features=lambda params, tokens: model.apply(params, tokens, method=Transformer.features),
        unembed=lambda params, hidden: model.apply(params, hidden, method=lambda m, h: m.head(h)),
        config=cfg,
    )


def token_log_probs(
    policy: PolicyModel, params: Any, tokens: jax.Array, temperature: jax.Array | float = 1.0
) -> jax.Array:
    """``log pi(tokens[:, t] | tokens[:, :t])`` with logits divided by ``temperature``.

    tokens [B, L] int -> [B, L] float32; column 0 (no context) is 0.
    """
    # the last token predicts nothing here: leave it out (the model is causal, so the rest is unchanged)
    logits = policy.apply(params, tokens[:, :-1]).astype(jnp.float32) / temperature
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), tokens[:, 1:, None], axis=-1)[..., 0]
    return jnp.concatenate([jnp.zeros_like(logp[:, :1]), logp], axis=1)


# ------------------------------------------------------------------------------------- SAMPLING
class Samples(NamedTuple):
    """A batch of sampled sequences, right-padded to ``L = prompt width + max_new_tokens``.

    tokens [B, L] int32: prompt, completion (ending in ``eos`` if it finished), then ``pad``.
    log_probs [B, L] float32: log-prob of each generated token under the temperature-scaled policy
      (before top-k/top-p filtering: the distribution the learner differentiates), 0 elsewhere.
    completion_mask [B, L] float32: 1 on generated tokens (``eos`` included), 0 elsewhere.
    finished [B] bool: the completion ended with ``eos`` within ``max_new_tokens``.
    """

    tokens: jax.Array
    log_probs: jax.Array
    completion_mask: jax.Array
    finished: jax.Array


def filter_logits(logits: jax.Array, top_k: int = 0, top_p: jax.Array | float = 1.0) -> jax.Array:
    """Keep the ``top_k`` largest logits (0: all) and the smallest set with probability >= ``top_p``;
    the rest become -inf. logits [..., V] -> [..., V]. The most likely token is always kept."""
    neg = jnp.finfo(logits.dtype).min
    if top_k:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, neg, logits)
    sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    # a token is kept when the probability mass strictly before it is < top_p
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep_sorted = mass_before < top_p
    cutoff = jnp.min(jnp.where(keep_sorted, sorted_logits, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits < cutoff, neg, logits)


def _prefill_bucket(n: int) -> int:
    """Largest power of two <= n (>= 1): few distinct prefill lengths, so few compilations."""
    return 1 << (max(int(n), 1).bit_length() - 1)


def make_sampler(
    policy: PolicyModel,
    *,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    top_k: int = 0,
    greedy: bool = False,
    use_cache: bool | None = None,
) -> Callable[..., Samples]:
    """Build ``sample(params, prompts[B, P], prompt_len[B], key, temperature=1.0, top_p=1.0, greedy=greedy)
    -> Samples``, jitted (``temperature``, ``top_p`` and ``greedy`` are traced: one compiled program
    serves sampling and greedy decoding).

    ``prompts`` are right-padded token ids (every prompt at least 1 token, e.g. a BOS); generation
    writes up to ``max_new_tokens`` after each prompt's own end, so ``P + max_new_tokens`` must be
    ``<= policy.max_len``. All rows advance one position per step; a row still inside its prompt
    copies its prompt token, so prompts of different lengths need no left padding. The shortest
    prompts' common prefix is processed in one parallel prefill pass (KV-cache path).

    ``use_cache=None`` uses the KV cache when the policy has one; ``False`` recomputes the prefix every
    step (the reference the cached path is tested against). ``greedy`` takes the argmax.
    """
    default_greedy = greedy
    if use_cache is None:
        use_cache = policy.has_cache
    if use_cache and not policy.has_cache:
        raise ValueError("use_cache=True needs a PolicyModel with decode and init_cache")
    if max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")

    def pick(logits: jax.Array, key: jax.Array, temperature, top_p, greedy) -> tuple[jax.Array, jax.Array]:
        logits = logits.astype(jnp.float32) / temperature
        logp_all = jax.nn.log_softmax(logits, axis=-1)
        sampled = jax.random.categorical(key, filter_logits(logits, top_k, top_p), axis=-1)
        tok = jnp.where(greedy, jnp.argmax(logits, axis=-1), sampled).astype(jnp.int32)
        return tok, jnp.take_along_axis(logp_all, tok[:, None], axis=-1)[:, 0]

    @functools.partial(jax.jit, static_argnames=("prefill",))
    def _sample(params, prompts, prompt_len, key, temperature, top_p, greedy, prefill):
        b, p = prompts.shape
        length = p + max_new_tokens
        buf = jnp.concatenate(
            [prompts.astype(jnp.int32), jnp.full((b, max_new_tokens), pad_id, jnp.int32)], 1
        )
        end = prompt_len + max_new_tokens  # [B] first position after each row's budget

        if use_cache:
            cache = policy.init_cache(b, length)
            logits, cache = policy.decode(params, buf[:, :prefill], cache, 0)
            first_logits = logits[:, -1]
        else:
            cache = None
            first_logits = policy.apply(params, buf)[:, prefill - 1]

        def step(carry, inp):
            buf, cache, logits, alive = carry
            t, k = inp
            y, logp_y = pick(logits, k, temperature, top_p, greedy)
            forced = t < prompt_len
            gen = ~forced & alive & (t < end)
            tok = jnp.where(forced, buf[:, t], jnp.where(gen, y, pad_id))
            alive = alive & ~(gen & (y == eos_id))
            buf = jax.lax.dynamic_update_slice_in_dim(buf, tok[:, None], t, axis=1)
            if use_cache:
                nxt, cache = policy.decode(params, tok[:, None], cache, t)
                nxt = nxt[:, 0]
            else:
                nxt = jax.lax.dynamic_index_in_dim(policy.apply(params, buf), t, axis=1, keepdims=False)
            return (buf, cache, nxt, alive), (jnp.where(gen, logp_y, 0.0), gen, gen & (y == eos_id))

        steps = jnp.arange(prefill, length)
        keys = jax.random.split(key, length - prefill)
        alive0 = jnp.ones((b,), bool)
        (buf, _, _, _), (logp, gen, ended) = jax.lax.scan(
            step, (buf, cache, first_logits, alive0), (steps, keys)
        )
        head = jnp.zeros((b, prefill), jnp.float32)
        return Samples(
            tokens=buf,
            log_probs=jnp.concatenate([head, logp.T], axis=1),
            completion_mask=jnp.concatenate([head, gen.T.astype(jnp.float32)], axis=1),
            finished=ended.any(axis=0),
        )

    def sample(
        params, prompts, prompt_len, key, temperature=1.0, top_p=1.0, greedy=default_greedy
    ) -> Samples:
        p = prompts.shape[1]
        if p + max_new_tokens > policy.max_len:
            raise ValueError(
                f"prompt width {p} + max_new_tokens {max_new_tokens} exceeds the model's max_len "
                f"{policy.max_len}; shorten prompts or build the model with a larger max_len"
            )
        try:  # concrete lengths: prefill the shortest prompt's prefix (bucketed)
            prefill = _prefill_bucket(int(jnp.min(prompt_len)))
        except jax.errors.ConcretizationTypeError:
            prefill = 1
        return _sample(
            params,
            prompts,
            prompt_len,
            key,
            temperature,
            top_p,
            jnp.asarray(greedy, bool),
            prefill=min(prefill, p),
        )

    return sample
