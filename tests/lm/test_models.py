"""jaxrl.lm's models against transformers: the committed tiny checkpoints' logits and greedy
continuations (computed by transformers, see scripts/make_tiny_lm_checkpoints.py; no torch needed)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrl.lm
from jaxrl.networks import transformer

from .conftest import FAMILIES, FIXTURES


def _ref(family):
    return np.load(FIXTURES / family / "reference.npz")


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_match_transformers(family, loaded):
    model, params, _ = loaded(family)
    ref = _ref(family)
    logits = np.asarray(jax.jit(model.apply)(params, jnp.asarray(ref["tokens"])))
    assert logits.shape == ref["logits"].shape
    np.testing.assert_allclose(logits, ref["logits"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_kv_cache_decoding_matches_transformers(family, loaded):
    """Both prompts (different lengths) in one right-padded batch, 32 new tokens, KV cache on."""
    model, params, tok = loaded(family)
    ref = _ref(family)
    prompts, lengths = jaxrl.lm.tokenizer.pad_batch([ref["prompt_0"], ref["prompt_1"]], tok.pad_id)
    sample = transformer.make_sampler(model, max_new_tokens=32, eos_id=-1, pad_id=tok.pad_id, greedy=True)
    out = sample(params, jnp.asarray(prompts), jnp.asarray(lengths), jax.random.key(0))
    toks = np.asarray(out.tokens)
    for row, n in enumerate(lengths):
        np.testing.assert_array_equal(toks[row, n : n + 32], ref["greedy"][row])


def test_features_are_the_hidden_states_the_head_reads(loaded):
    model, params, _ = loaded("qwen2")
    tokens = jnp.asarray(_ref("qwen2")["tokens"])
    h = jax.jit(model.features)(params, tokens)
    assert h.shape == (*tokens.shape, model.config.hidden_size)
    np.testing.assert_allclose(jax.jit(model.unembed)(params, h), _ref("qwen2")["logits"], atol=1e-4)


def test_left_padding_offset_gives_the_unpadded_logits(loaded):
    """decode with offset: a row shifted right by k pad slots gets the logits of the unpadded row."""
    for family in ("llama", "gpt2"):
        model, params, _ = loaded(family)
        tokens = jnp.asarray(_ref(family)["tokens"][:1, :8])
        want = _ref(family)["logits"][:1, :8]
        padded = jnp.concatenate([jnp.full((1, 3), 7, jnp.int32), tokens], axis=1)
        cache = model.init_cache(1, 11)
        decode = jax.jit(model.decode, static_argnames="last_only")
        got, full_cache = decode(params, padded, cache, 0, jnp.asarray([3]))
        np.testing.assert_allclose(got[:, 3:], want, atol=1e-4)
        # the sampler's prefill: the last slot's logits alone, the same cache written
        last, last_cache = decode(params, padded, cache, 0, jnp.asarray([3]), last_only=True)
        assert last.shape == (1, 1, got.shape[-1])
        np.testing.assert_allclose(last, got[:, -1:], atol=1e-5)
        jax.tree.map(np.testing.assert_array_equal, last_cache, full_cache)


def test_bfloat16_loading(loaded):
    model, params, _ = jaxrl.lm.from_pretrained(FIXTURES / "llama", dtype="bfloat16")
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(params))
    ref = _ref("llama")
    logits = np.asarray(jax.jit(model.apply)(params, jnp.asarray(ref["tokens"])), np.float32)
    assert np.abs(logits - ref["logits"]).max() < 0.1 * np.abs(ref["logits"]).max()
    # the checkpoint is stored in bfloat16: upcast to float32 it holds exactly the same values
    _, p32, _ = loaded("llama")
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a, np.float32), b), params, p32)


def test_sizes_and_configs(loaded):
    model, params, tok = loaded("qwen2")
    cfg = model.config
    assert cfg.family == "llama" and cfg.qkv_bias and not cfg.o_bias and cfg.tie_word_embeddings
    # padded embedding: more rows than the tokenizer has ids (as Qwen2.5)
    assert cfg.vocab_size == tok.vocab_size + 64
    n = sum(x.size for x in jax.tree.leaves(params))
    assert n == cfg.num_params() == 86304  # transformers' count (scripts/make_tiny_lm_checkpoints.py)
    assert jaxrl.lm.read_config(FIXTURES / "qwen3").qk_norm
    assert jaxrl.lm.read_config(FIXTURES / "mistral").sliding_window == 6
    assert jaxrl.lm.read_config(FIXTURES / "llama").rope_type == "llama3"


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_bfloat16_gradients_near_float32_with_every_weight_product_in_bf16(family, loaded):
    """bfloat16 weights (what GRPO's ``compute_dtype="bfloat16"`` casts to): the loss and its gradient
    stay close to float32's, every dense / output-head product of the forward and backward pass takes
    bfloat16 operands with float32 accumulation (``jaxrl.networks.matmul``: the CPU's fast bf16 path),
    and the logits come out in float32."""
    model, p32, _ = loaded(family)
    tokens = jnp.asarray(_ref(family)["tokens"])
    p16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), p32)

    def loss(p):
        logp = transformer.token_log_probs(model, jax.tree.map(lambda x: x.astype(jnp.bfloat16), p), tokens)
        return -jnp.mean(logp[:, 1:])

    def loss32(p):
        return -jnp.mean(transformer.token_log_probs(model, p, tokens)[:, 1:])

    assert jax.jit(model.apply)(p16, tokens).dtype == jnp.float32
    l16, g16 = jax.jit(jax.value_and_grad(loss))(p32)
    l32, g32 = jax.jit(jax.value_and_grad(loss32))(p32)
    assert abs(float(l16) - float(l32)) < 0.02 * abs(float(l32))
    a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(g16)])
    b = np.concatenate([np.ravel(x) for x in jax.tree.leaves(g32)])
    assert a.dtype == np.float32  # the master weights' gradient
    cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert cos > 0.995, cos
    assert 0 < np.linalg.norm(a - b) / np.linalg.norm(b) < 0.1
    hlo = jax.jit(jax.value_and_grad(loss)).lower(p32).as_text().splitlines()
    dots = [ln for ln in hlo if "dot_general" in ln]
    weights = {x.shape for x in jax.tree.leaves(p32) if x.ndim == 2}
    # products with a weight matrix operand (not attention's q.k / p.v): bf16 in, f32 out
    mm = [d for d in dots if any("x".join(map(str, s)) + "x" in d for s in weights)]
    assert len(mm) >= 3 * len(weights)
    for d in mm:
        ins, out = d.split(":")[-1].split("->")
        assert "f32" not in ins and "xf32>" in out, d


def test_bfloat16_sampling_uses_a_bfloat16_cache_and_float32_log_probs(loaded):
    """Sampling with bfloat16 weights keeps its KV cache in bfloat16 (a float32 one converts every key
    and value written) and returns float32 log-probs close to the float32 model's for the same tokens."""
    import dataclasses

    model, p32, tok = loaded("llama")
    dtypes = []

    def spy(batch, length=None, dtype=jnp.float32):
        dtypes.append(jnp.dtype(dtype))
        return model.init_cache(batch, length, dtype)

    spied = dataclasses.replace(model, init_cache=spy)
    p16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), p32)
    prompts, lengths = jaxrl.lm.tokenizer.pad_batch(
        [_ref("llama")["prompt_0"], _ref("llama")["prompt_1"]], tok.pad_id
    )
    sample = transformer.make_sampler(spied, max_new_tokens=12, eos_id=-1, pad_id=tok.pad_id)
    out = sample(p16, jnp.asarray(prompts), jnp.asarray(lengths), jax.random.key(3))
    assert dtypes == [jnp.dtype(jnp.bfloat16)]
    sample(p32, jnp.asarray(prompts), jnp.asarray(lengths), jax.random.key(3))
    assert dtypes[-1] == jnp.dtype(jnp.float32)  # float32 weights: the float32 cache, as before
    assert out.log_probs.dtype == jnp.float32
    want = transformer.token_log_probs(model, p32, out.tokens) * out.completion_mask
    err = np.abs(np.asarray(out.log_probs - want))
    assert 0 < err.max() < 0.02 and err.mean() < 0.005, (err.max(), err.mean())  # measured 1.6e-3, 2.6e-4
