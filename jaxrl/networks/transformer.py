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

from jaxrl.networks import matmul

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
def _attend(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    q_pos: jax.Array,
    k_pos: jax.Array,
    offset: jax.Array | None = None,
) -> jax.Array:
    """Causal attention: q [B, T, H, Dh], k/v [B, S, H, Dh], slots q_pos [T], k_pos [S] -> [B, T, H, Dh];
    ``offset`` [B]: slots ``< offset`` (left padding) are never attended to."""
    scores = jnp.einsum("bthd,bshd->bhts", q, k) / math.sqrt(q.shape[-1])
    visible = (k_pos[None, :] <= q_pos[:, None])[None, None]  # [1, 1, T, S]
    if offset is not None:
        visible = visible & (k_pos[None, None, None, :] >= offset[:, None, None, None])  # [B, 1, T, S]
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
        # bfloat16 weights: bfloat16 products accumulated in float32 (float32 ones unchanged)
        dg = matmul.dot_general
        self.qkv = nn.Dense(3 * c.d_model, kernel_init=init, dot_general=dg)
        self.proj = nn.Dense(c.d_model, kernel_init=out_init, dot_general=dg)
        self.fc = nn.Dense(c.ff_dim, kernel_init=init, dot_general=dg)
        self.fc_out = nn.Dense(c.d_model, kernel_init=out_init, dot_general=dg)

    def __call__(
        self,
        x: jax.Array,
        start: jax.Array | int,
        cache: KVCache | None,
        layer: int,
        offset: jax.Array | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        """x [B, T, D] at positions ``start .. start+T-1``; cache: every layer's cache (this block writes
        and reads slot ``layer``) or None."""
        c = self.cfg
        b, t, _ = x.shape
        q, k, v = jnp.split(self.qkv(self.ln1(x)).reshape(b, t, 3 * c.num_heads, c.head_dim), 3, axis=2)
        q_pos = start + jnp.arange(t)
        if cache is None:  # the whole sequence at once: attend within it
            att = _attend(q, k, v, q_pos, q_pos, offset)
        else:  # write this chunk into the cache in place, attend to everything written so far
            at = (layer, 0, start, 0, 0)
            cache = KVCache(
                jax.lax.dynamic_update_slice(cache.k, k[None].astype(cache.k.dtype), at),
                jax.lax.dynamic_update_slice(cache.v, v[None].astype(cache.v.dtype), at),
            )
            att = _attend(q, cache.k[layer], cache.v[layer], q_pos, jnp.arange(cache.k.shape[2]), offset)
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
        self.head = nn.Dense(
            c.vocab_size,
            use_bias=False,
            kernel_init=nn.initializers.normal(0.02),
            dot_general=matmul.logits_dot_general,  # bfloat16 weights: float32 logits
        )

    def _run(
        self,
        tokens: jax.Array,
        start: jax.Array | int,
        cache: KVCache | None,
        offset: jax.Array | None = None,
    ):
        t = tokens.shape[1]
        if offset is None:
            pos = jax.lax.dynamic_slice_in_dim(self.pos_embed, start, t, axis=0)[None]
        else:  # left-padded rows: slot i holds position i - offset
            idx = jnp.maximum(start + jnp.arange(t)[None, :] - offset[:, None], 0)
            pos = jnp.take(self.pos_embed, idx, axis=0)
        x = self.embed(tokens) + pos
        for i, block in enumerate(self.blocks):
            x, cache = block(x, start, cache, i, offset)
        return self.ln_f(x), cache

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """tokens [B, L] int -> logits [B, L, V] (causal: row t sees tokens 0..t)."""
        return self.head(self._run(tokens, 0, None)[0])

    def features(self, tokens: jax.Array) -> jax.Array:
        """tokens [B, L] int -> final hidden states [B, L, d_model] (after the last LayerNorm)."""
        return self._run(tokens, 0, None)[0]

    def decode(
        self,
        tokens: jax.Array,
        cache: KVCache,
        start: jax.Array | int,
        offset: jax.Array | None = None,
        last_only: bool = False,
    ) -> tuple[jax.Array, KVCache]:
        """tokens [B, T] at cache slots ``start..start+T-1`` (prefill: T > 1; one step: T = 1), with the
        cache of slots ``< start`` -> (logits [B, T, V], cache with these slots written). ``offset`` [B]:
        left-padding slots of each row (never attended to; slot ``i`` is position ``i - offset``).
        ``last_only``: logits of the last slot only, [B, 1, V] (all a prefill needs)."""
        h, cache = self._run(tokens, start, cache, offset)
        return self.head(h[:, -1:] if last_only else h), cache


# ------------------------------------------------------------------------------ POLICY INTERFACE
@dataclasses.dataclass(frozen=True, eq=False)
class PolicyModel:
    """What jaxrl needs from an autoregressive language model.

    ``apply(params, tokens[B, L]) -> logits[B, L, V]`` must be causal. ``init(key) -> params``.
    Optional KV cache: ``init_cache(batch, length) -> cache`` (room for ``length <= max_len`` positions) and
    ``decode(params, tokens[B, T], cache, start, offset=None) -> (logits[B, T, V], cache)`` where
    ``offset[B]`` counts each row's left-padding slots (never attended to; slot ``i`` holds position
    ``i - offset``); without them sampling recomputes the whole prefix every step. A ``decode`` that
    also takes ``last_only=False`` returns only the last slot's logits ``[B, 1, V]`` when it is True
    (the sampler's prefill asks for it when the signature has it). An ``init_cache`` that also takes
    ``dtype`` gets the parameters' dtype from the sampler (bfloat16 weights: a bfloat16 cache).
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
        decode=lambda params, tokens, cache, start, offset=None, last_only=False: model.apply(
            params, tokens, cache, start, offset, last_only, method=Transformer.decode
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

    tokens [B, L] int -> [B, L] float32; column 0 (no context) is 0. With ``features`` and ``unembed``
    (every built-in and ``jaxrl.lm`` model) the logits are made a chunk of positions at a time, each
    reduced to ``logit[token] - logsumexp`` (and recomputed in the backward pass), so no float32
    ``[B, L, V]`` array exists at large vocabularies.
    """
    if policy.features is None or policy.unembed is None:
        # the last token predicts nothing here: leave it out (the model is causal, so the rest is unchanged)
        logits = policy.apply(params, tokens[:, :-1]).astype(jnp.float32) / temperature
        logp = _target_log_probs(logits, tokens[:, 1:])
    else:
        hidden = policy.features(params, tokens[:, :-1])  # [B, L-1, D]
        logp = chunked_log_probs(
            lambda h: policy.unembed(params, h).astype(jnp.float32) / temperature, hidden, tokens[:, 1:]
        )
    return jnp.concatenate([jnp.zeros_like(logp[:, :1]), logp], axis=1)


def _target_log_probs(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """logits [..., V] float32, targets [...] -> log-softmax at the targets (from logsumexp)."""
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return picked - jax.nn.logsumexp(logits, axis=-1)


#: positions per chunk are chosen so one chunk's float32 logits hold at most this many elements
LOGIT_CHUNK_ELEMENTS = 1 << 24


def chunked_log_probs(
    logits_fn: Callable[[jax.Array], jax.Array], hidden: jax.Array, targets: jax.Array
) -> jax.Array:
    """``log softmax(logits_fn(hidden))[targets]`` a chunk of positions at a time.

    hidden [B, T, D], targets [B, T] -> [B, T] float32. ``logits_fn`` maps hidden states [B, C, D] to
    float32 logits [B, C, V]; each chunk is rematerialised in the backward pass (``jax.checkpoint``).
    """
    b, t = targets.shape
    v = jax.eval_shape(logits_fn, hidden[:, :1]).shape[-1]
    chunk = max(1, min(t, LOGIT_CHUNK_ELEMENTS // max(1, b * v)))
    if chunk >= t:
        return _target_log_probs(logits_fn(hidden), targets)
    n = -(-t // chunk)
    pad = n * chunk - t
    h = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0))).reshape(b, n, chunk, -1).swapaxes(0, 1)
    y = jnp.pad(targets, ((0, 0), (0, pad))).reshape(b, n, chunk).swapaxes(0, 1)
    one = jax.checkpoint(lambda hy: _target_log_probs(logits_fn(hy[0]), hy[1]))
    out = jax.lax.map(one, (h, y))  # [n, B, chunk]
    return out.swapaxes(0, 1).reshape(b, n * chunk)[:, :t]


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


_NUCLEUS_ITERS = 26  # bisection steps of the top-p threshold: ~1e-7 of the bracket, float32's resolution
_BLOCK = 256  # tokens per block of the two-level inverse-CDF draw


def nucleus_cutoff(logits: jax.Array, top_k: int, top_p: jax.Array | float) -> jax.Array:
    """The smallest logit kept by top-k then top-p filtering: logits [B, V] float32 -> [B, 1].

    A token is kept when it is among the ``top_k`` largest (0: all) and the probability mass (after
    top-k) of the tokens strictly more likely than it is < ``top_p``; the most likely token is always
    kept. No full sort: with ``top_k`` the nucleus is found among the k values ``lax.top_k`` returns
    sorted; without, the cutoff is found by bisection on the logit value (the mass above a threshold
    is one masked sum over the vocabulary), bracketed by ``[max + log((1 - top_p) / V) - 1, max]``.
    """
    if top_k:
        vals = jax.lax.top_k(logits, top_k)[0]  # [B, k] descending
        probs = jax.nn.softmax(vals, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        keep = (mass_before < top_p) | (jnp.arange(top_k) == 0)[None, :]
        return jnp.min(jnp.where(keep, vals, jnp.inf), axis=-1, keepdims=True)
    v = logits.shape[-1]
    top = jnp.max(logits, axis=-1, keepdims=True)
    probs = jnp.exp(logits - top)
    probs = probs / jnp.sum(probs, axis=-1, keepdims=True)
    # invariant: mass(logits >= lo) >= top_p > mass(logits >= hi)
    lo = top + jnp.log(jnp.maximum(1.0 - top_p, 1e-30) / v) - 1.0
    hi = top + 1e-3 + 1e-6 * jnp.abs(top)

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        enough = jnp.sum(jnp.where(logits >= mid, probs, 0.0), axis=-1, keepdims=True) >= top_p
        return jnp.where(enough, mid, lo), jnp.where(enough, hi, mid)

    lo, _ = jax.lax.fori_loop(0, _NUCLEUS_ITERS, bisect, (lo, hi))
    return jnp.minimum(lo, top)


def filter_logits(logits: jax.Array, top_k: int = 0, top_p: jax.Array | float = 1.0) -> jax.Array:
    """Keep the ``top_k`` largest logits (0: all) and the smallest set with probability >= ``top_p``;
    the rest become the dtype's lowest value. logits [..., V] -> [..., V]. The most likely token is
    always kept (see :func:`nucleus_cutoff`)."""
    flat = logits.reshape(-1, logits.shape[-1]).astype(jnp.float32)
    cutoff = nucleus_cutoff(flat, top_k, top_p).reshape(logits.shape[:-1] + (1,))
    return jnp.where(logits >= cutoff, logits, jnp.finfo(logits.dtype).min)


def _first_argmax(logits: jax.Array, top: jax.Array) -> jax.Array:
    """Index of the first maximum of each row (two plain reductions; XLA's CPU argmax is slower)."""
    idx = jnp.arange(logits.shape[-1], dtype=jnp.int32)[None, :]
    return jnp.min(jnp.where(logits >= top, idx, logits.shape[-1]), axis=-1).astype(jnp.int32)


def _draw(weights: jax.Array, u: jax.Array) -> jax.Array:
    """Inverse-CDF draw from unnormalised weights [B, V] (>= 0) with uniforms u [B, 2]: a block of
    ``_BLOCK`` tokens by its mass, then a token inside it (two short cumulative sums, not one over V)."""
    b, v = weights.shape
    blk = min(_BLOCK, v)
    nb = -(-v // blk)
    w = jnp.pad(weights, ((0, 0), (0, nb * blk - v))).reshape(b, nb, blk)

    def pick(cum: jax.Array, mass: jax.Array, x: jax.Array) -> jax.Array:
        # first index whose cumulative sum exceeds x * total, never one of zero weight
        i = jnp.sum(cum <= x[:, None] * cum[:, -1:], axis=-1)
        last = jnp.max(jnp.where(mass > 0, jnp.arange(mass.shape[-1])[None, :], 0), axis=-1)
        return jnp.minimum(i, last)

    block_mass = jnp.sum(w, axis=-1)  # [B, nb]
    bi = pick(jnp.cumsum(block_mass, axis=-1), block_mass, u[:, 0])
    row = jnp.take_along_axis(w, bi[:, None, None], axis=1)[:, 0]  # [B, blk]
    ti = pick(jnp.cumsum(row, axis=-1), row, u[:, 1])
    return (bi * blk + ti).astype(jnp.int32)


def _pick(logits, u, temperature, top_k, top_p, greedy) -> tuple[jax.Array, jax.Array]:
    """Next tokens [B] and their log-probs [B] under the temperature-scaled, unfiltered policy."""
    logits = logits.astype(jnp.float32) / temperature
    top = jnp.max(logits, axis=-1, keepdims=True)
    lse = top[:, 0] + jnp.log(jnp.sum(jnp.exp(logits - top), axis=-1))

    def sample(_):
        cutoff = jax.lax.cond(
            (top_p < 1.0) | (top_k > 0),
            lambda: nucleus_cutoff(logits, top_k, top_p),
            lambda: jnp.full_like(top, -jnp.inf),
        )
        return _draw(jnp.where(logits >= cutoff, jnp.exp(logits - top), 0.0), u)

    tok = jax.lax.cond(greedy, lambda _: _first_argmax(logits, top), sample, None)
    return tok, jnp.take_along_axis(logits, tok[:, None], axis=-1)[:, 0] - lse


def _takes(fn: Callable | None, name: str) -> bool:
    """``fn`` has a parameter ``name`` (a policy's optional extensions: ``decode``'s ``offset`` and
    ``last_only``, ``init_cache``'s ``dtype``)."""
    import inspect

    try:
        return fn is not None and name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def make_sampler(
    policy: PolicyModel,
    *,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    top_k: int = 0,
    greedy: bool = False,
    use_cache: bool | None = None,
    eos_ids: tuple[int, ...] = (),
) -> Callable[..., Samples]:
    """Build ``sample(params, prompts[B, P], prompt_len[B], key, temperature=1.0, top_p=1.0, greedy=greedy)
    -> Samples``, jitted (``temperature``, ``top_p`` and ``greedy`` are traced: one compiled program
    serves sampling and greedy decoding).

    ``prompts`` are right-padded token ids (every prompt at least 1 token, e.g. a BOS); each row gets up
    to ``max_new_tokens`` after its own end, so ``P + max_new_tokens`` must be ``<= policy.max_len``.
    A completion stops at ``eos_id`` (or any of ``eos_ids``, e.g. Llama 3's several end tokens).

    KV-cache path (a policy whose ``decode`` takes ``offset``): the prompts are left-aligned inside the
    sampler (``offset`` = each row's padding, masked out of attention, positions counted from the
    row's first token) so the whole batch is prefilled in one pass whatever the lengths; the result is
    returned right-padded as always. Decoding stops as soon as every row has ended. Without a cache
    (``use_cache=False``, the reference the cached path is tested against) the prefix is recomputed
    each step. Both paths use the same uniforms for a row's j-th token, so they draw the same tokens.
    Draws: greedy takes the first maximum; sampling filters top-k (static) / top-p (traced) without a
    full sort (:func:`nucleus_cutoff`) and draws by inverse CDF (:func:`_draw`).
    """
    default_greedy = greedy
    if use_cache is None:
        use_cache = policy.has_cache
    if use_cache and not policy.has_cache:
        raise ValueError("use_cache=True needs a PolicyModel with decode and init_cache")
    if max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    stops = tuple(dict.fromkeys((int(eos_id), *(int(e) for e in eos_ids))))
    left_padded = use_cache and _takes(policy.decode, "offset")
    cache_takes_dtype = use_cache and _takes(policy.init_cache, "dtype")
    last_only = use_cache and _takes(policy.decode, "last_only")
    new = max_new_tokens

    def prefill_last(params, tokens, cache, *offset):
        """A prefill needs only its last slot's logits: [B, 1, V] instead of [B, P, V] (the output head is
        the largest matmul of a prefill, and its logits the sampler's largest array)."""
        if last_only:
            try:
                return policy.decode(params, tokens, cache, 0, *offset, last_only=True)
            except (jax.errors.TracerBoolConversionError, jax.errors.ConcretizationTypeError):
                pass  # a wrapper that traces the flag (e.g. jax.jit(policy.decode)): all slots' logits
        return policy.decode(params, tokens, cache, 0, *offset)

    def new_cache(params, b, length):
        """The KV cache in the parameters' dtype when they share one (bfloat16 weights: a bfloat16 cache;
        a float32 cache would convert every key and value written, and costs ~40% more per decode step
        on one CPU core), for a policy whose ``init_cache`` takes a ``dtype``."""
        dtypes = {x.dtype for x in jax.tree.leaves(params) if jnp.issubdtype(x.dtype, jnp.floating)}
        if cache_takes_dtype and len(dtypes) == 1:
            return policy.init_cache(b, length, dtype=dtypes.pop())
        return policy.init_cache(b, length)

    def is_stop(y):
        return functools.reduce(jnp.logical_or, [y == e for e in stops])

    def pick(logits, u, temperature, top_p, greedy):
        return _pick(logits, u, temperature, min(top_k, logits.shape[-1]), top_p, greedy)

    @jax.jit
    def _sample_left(params, prompts, prompt_len, key, temperature, top_p, greedy):
        b, p = prompts.shape
        length = p + new
        offset = (p - prompt_len).astype(jnp.int32)  # [B] left padding per row
        src = jnp.arange(p)[None, :] - offset[:, None]
        left = jnp.where(src >= 0, jnp.take_along_axis(prompts, jnp.maximum(src, 0), axis=1), pad_id)
        buf = jnp.concatenate([left.astype(jnp.int32), jnp.full((b, new), pad_id, jnp.int32)], axis=1)
        cache = new_cache(params, b, length)
        logits, cache = prefill_last(params, buf[:, :p], cache, offset)
        uniforms = jax.random.uniform(key, (new, b, 2))
        logp = jnp.zeros((b, length), jnp.float32)
        gen = jnp.zeros((b, length), bool)

        def cond(carry):
            j, alive = carry[0], carry[5]
            return (j < new) & jnp.any(alive)

        def body(carry):
            j, buf, logp, gen, logits, alive, cache = carry
            y, logp_y = pick(logits[:, -1], uniforms[j], temperature, top_p, greedy)
            tok = jnp.where(alive, y, pad_id)
            t = p + j
            buf = jax.lax.dynamic_update_slice_in_dim(buf, tok[:, None], t, axis=1)
            logp = jax.lax.dynamic_update_slice_in_dim(
                logp, jnp.where(alive, logp_y, 0.0)[:, None], t, axis=1
            )
            gen = jax.lax.dynamic_update_slice_in_dim(gen, alive[:, None], t, axis=1)
            alive = alive & ~is_stop(y)
            # the next step's logits (not needed after the last token or once every row has ended)
            logits, cache = jax.lax.cond(
                (j + 1 < new) & jnp.any(alive),
                lambda: policy.decode(params, tok[:, None], cache, t, offset),
                lambda: (logits, cache),
            )
            return j + 1, buf, logp, gen, logits, alive, cache

        alive0 = jnp.ones((b,), bool)
        carry = (jnp.int32(0), buf, logp, gen, logits[:, -1:], alive0, cache)
        _, buf, logp, gen, _, alive, _ = jax.lax.while_loop(cond, body, carry)
        # back to the right-padded layout: row i shifted left by its offset
        idx = jnp.arange(length)[None, :] + offset[:, None]
        inside = idx < length
        idx = jnp.minimum(idx, length - 1)

        def shift(x, fill):
            return jnp.where(inside, jnp.take_along_axis(x, idx, axis=1), fill)

        gen = shift(gen, False)
        tokens = shift(buf, pad_id)
        return Samples(
            tokens=tokens,
            log_probs=shift(logp, 0.0),
            completion_mask=gen.astype(jnp.float32),
            finished=jnp.any(gen & is_stop(tokens), axis=1),
        )

    @functools.partial(jax.jit, static_argnames=("prefill",))
    def _sample_right(params, prompts, prompt_len, key, temperature, top_p, greedy, prefill):
        b, p = prompts.shape
        length = p + new
        buf = jnp.concatenate([prompts.astype(jnp.int32), jnp.full((b, new), pad_id, jnp.int32)], 1)
        end = prompt_len + new  # [B] first position after each row's budget
        uniforms = jax.random.uniform(key, (new, b, 2))
        rows = jnp.arange(b)

        if use_cache:
            cache = new_cache(params, b, length)
            logits, cache = prefill_last(params, buf[:, :prefill], cache)
            first_logits = logits[:, -1]
        else:
            cache = None
            first_logits = policy.apply(params, buf)[:, prefill - 1]

        def step(carry, t):
            buf, cache, logits, alive = carry
            j = jnp.clip(t - prompt_len, 0, new - 1)  # [B] index of the token this row draws
            y, logp_y = pick(logits, uniforms[j, rows], temperature, top_p, greedy)
            forced = t < prompt_len
            gen = ~forced & alive & (t < end)
            tok = jnp.where(forced, buf[:, t], jnp.where(gen, y, pad_id))
            alive = alive & ~(gen & is_stop(y))
            buf = jax.lax.dynamic_update_slice_in_dim(buf, tok[:, None], t, axis=1)
            if use_cache:
                nxt, cache = policy.decode(params, tok[:, None], cache, t)
                nxt = nxt[:, 0]
            else:
                nxt = jax.lax.dynamic_index_in_dim(policy.apply(params, buf), t, axis=1, keepdims=False)
            return (buf, cache, nxt, alive), (jnp.where(gen, logp_y, 0.0), gen, gen & is_stop(y))

        alive0 = jnp.ones((b,), bool)
        (buf, _, _, _), (logp, gen, ended) = jax.lax.scan(
            step, (buf, cache, first_logits, alive0), jnp.arange(prefill, length)
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
        if p + new > policy.max_len:
            raise ValueError(
                f"prompt width {p} + max_new_tokens {new} exceeds the model's max_len "
                f"{policy.max_len}; shorten prompts or build the model with a larger max_len"
            )
        args = (params, prompts, prompt_len, key, temperature, top_p, jnp.asarray(greedy, bool))
        if left_padded:
            return _sample_left(*args)
        try:  # concrete lengths: prefill the shortest prompt's prefix (bucketed)
            prefill = _prefill_bucket(int(jnp.min(prompt_len)))
        except jax.errors.ConcretizationTypeError:
            prefill = 1
        return _sample_right(*args, prefill=min(prefill, p))

    return sample


def _prefill_bucket(n: int) -> int:
    """Largest power of two <= n (>= 1): few distinct prefill lengths, so few compilations."""
    return 1 << (max(int(n), 1).bit_length() - 1)
