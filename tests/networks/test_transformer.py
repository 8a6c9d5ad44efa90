"""jaxrl.networks.transformer: shapes, causality, KV cache == full recompute, sampling semantics."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.networks import transformer as T

CFG = T.TransformerConfig(vocab_size=11, max_len=12, num_layers=2, num_heads=2, d_model=16)
EOS, PAD = 2, 0


@pytest.fixture(scope="module")
def model_and_params():
    policy = T.transformer_policy(CFG)
    # sharpen the random model a little so that samples end with <eos> at various positions
    params = jax.jit(lambda k: jax.tree_util.tree_map(lambda x: 4.0 * x, policy.init(k)))(jax.random.key(0))
    # the model functions jitted once (eager op-by-op dispatch is slow on a busy CPU)
    fast = T.PolicyModel(
        apply=jax.jit(policy.apply),
        init=policy.init,
        vocab_size=policy.vocab_size,
        max_len=policy.max_len,
        decode=jax.jit(policy.decode),
        init_cache=policy.init_cache,
    )
    return fast, params


def _prompts():
    # right-padded prompts of lengths 3, 5, 1 (token 1 = <bos>)
    prompts = jnp.asarray([[1, 5, 6, 0, 0], [1, 7, 8, 9, 3], [1, 0, 0, 0, 0]], jnp.int32)
    return prompts, jnp.asarray([3, 5, 1], jnp.int32)


class TestModel:
    def test_shapes_and_features(self, model_and_params):
        policy, params = model_and_params
        tokens = jax.random.randint(jax.random.key(1), (3, 7), 0, CFG.vocab_size)
        logits = policy.apply(params, tokens)
        assert logits.shape == (3, 7, CFG.vocab_size) and logits.dtype == jnp.float32
        h = jax.jit(lambda p, x: T.Transformer(CFG).apply(p, x, method=T.Transformer.features))(
            params, tokens
        )
        assert h.shape == (3, 7, CFG.d_model)
        assert np.all(np.isfinite(logits))

    def test_causal(self, model_and_params):
        policy, params = model_and_params
        a = jax.random.randint(jax.random.key(2), (2, 9), 0, CFG.vocab_size)
        b = a.at[:, 5:].set((a[:, 5:] + 1) % CFG.vocab_size)  # change the future from position 5 on
        la, lb = policy.apply(params, a), policy.apply(params, b)
        np.testing.assert_allclose(la[:, :5], lb[:, :5], atol=1e-5)
        assert not np.allclose(la[:, 5:], lb[:, 5:])

    def test_cached_decode_equals_full_forward(self, model_and_params):
        policy, params = model_and_params
        tokens = jax.random.randint(jax.random.key(3), (2, 8), 0, CFG.vocab_size)
        full = policy.apply(params, tokens)
        cache = policy.init_cache(2)
        logits, cache = policy.decode(params, tokens[:, :3], cache, 0)  # prefill 3
        pieces = [logits]
        for t in range(3, 8):  # then one token at a time
            step, cache = policy.decode(params, tokens[:, t : t + 1], cache, t)
            pieces.append(step)
        np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), full, atol=1e-4)

    def test_config_checks_and_sizes(self):
        with pytest.raises(ValueError, match="divisible"):
            T.TransformerConfig(vocab_size=5, d_model=10, num_heads=3)
        with pytest.raises(ValueError, match="unknown transformer size"):
            T.TransformerConfig.of_size("huge", 5)
        tiny = T.TransformerConfig.of_size("tiny", 15)
        assert (tiny.num_layers, tiny.num_heads, tiny.d_model) == (2, 4, 128)  # the TRL peer's GPT-2


@pytest.fixture(scope="module")
def samplers(model_and_params):
    """One cached and one full-recompute sampler (top_k=4); greedy, temperature and top_p are traced,
    so every test below reuses these two compiled programs."""
    policy, _ = model_and_params
    kw = dict(max_new_tokens=6, eos_id=EOS, pad_id=PAD, top_k=4)
    return T.make_sampler(policy, **kw), T.make_sampler(policy, use_cache=False, **kw)


class TestSampling:
    @pytest.mark.parametrize("greedy,top_p", [(False, 0.8), (True, 1.0)])
    def test_kv_cache_equals_full_recompute(self, model_and_params, samplers, greedy, top_p):
        _, params = model_and_params
        prompts, plen = _prompts()
        cached = samplers[0](params, prompts, plen, jax.random.key(5), 1.0, top_p, greedy)
        full = samplers[1](params, prompts, plen, jax.random.key(5), 1.0, top_p, greedy)
        np.testing.assert_array_equal(cached.tokens, full.tokens)
        np.testing.assert_array_equal(cached.completion_mask, full.completion_mask)
        np.testing.assert_array_equal(cached.finished, full.finished)
        np.testing.assert_allclose(cached.log_probs, full.log_probs, atol=1e-4)

    def test_layout_and_log_probs(self, model_and_params, samplers):
        policy, params = model_and_params
        prompts, plen = _prompts()
        out = jax.device_get(samplers[0](params, prompts, plen, jax.random.key(6), 0.7))
        assert out.tokens.shape == (3, 11)
        for i in range(3):
            n = int(plen[i])
            np.testing.assert_array_equal(out.tokens[i, :n], prompts[i, :n])  # prompt kept
            gen = np.flatnonzero(out.completion_mask[i])
            assert gen[0] == n and np.all(np.diff(gen) == 1) and len(gen) <= 6  # contiguous, budget
            ended = out.tokens[i, gen[-1]] == EOS
            assert ended == out.finished[i]
            assert np.all(out.tokens[i, gen[-1] + 1 :] == PAD)  # padding after the completion
            assert EOS not in out.tokens[i, gen[:-1]]  # stops at the first <eos>
        # the sampler's log-probs are the policy's (temperature-scaled) log-probs of the tokens
        lp = jax.jit(T.token_log_probs, static_argnums=0)(policy, params, jnp.asarray(out.tokens), 0.7)
        np.testing.assert_allclose(lp * out.completion_mask, out.log_probs, atol=1e-4)

    def test_draws_from_the_softmax_and_filters(self):
        # a model whose next-token logits are fixed: p = (0.6, 0.3, 0.1) over tokens 3, 4, 5
        logits = jnp.full((8,), -1e9).at[3:6].set(jnp.log(jnp.asarray([0.6, 0.3, 0.1])))
        fixed = T.PolicyModel(
            apply=lambda params, tokens: jnp.broadcast_to(logits, tokens.shape + (8,)),
            init=lambda key: {},
            vocab_size=8,
            max_len=4,
        )
        prompts, plen = jnp.ones((4000, 1), jnp.int32), jnp.ones((4000,), jnp.int32)
        draw = T.make_sampler(fixed, max_new_tokens=1, eos_id=2, pad_id=0)
        counts = np.bincount(np.asarray(draw({}, prompts, plen, jax.random.key(7)).tokens[:, 1]), minlength=8)
        # binomial std at n = 4000 is <= 0.008: allow 0.03
        np.testing.assert_allclose(counts[3:6] / 4000, [0.6, 0.3, 0.1], atol=0.03)
        top1 = T.make_sampler(fixed, max_new_tokens=1, eos_id=2, pad_id=0, top_k=1)
        assert np.all(top1({}, prompts, plen, jax.random.key(8)).tokens[:, 1] == 3)
        nucleus = draw({}, prompts, plen, jax.random.key(9), 1.0, 0.8)  # keeps 0.6 + 0.3
        frac = np.bincount(np.asarray(nucleus.tokens[:, 1]), minlength=8)[3:6] / 4000
        np.testing.assert_allclose(frac, [2 / 3, 1 / 3, 0.0], atol=0.03)
        # the log-prob reported is the unfiltered policy's
        np.testing.assert_allclose(nucleus.log_probs[nucleus.tokens[:, 1] == 3, 1], math.log(0.6), rtol=1e-5)

    def test_filter_logits_hand_computed(self):
        # probabilities (0.5, 0.3, 0.2): top_p 0.5 keeps only the first (mass before the second = 0.5);
        # top_p 0.6 keeps two; top_k 2 keeps two
        lg = jnp.log(jnp.asarray([0.5, 0.3, 0.2]))
        neg = jnp.finfo(jnp.float32).min
        assert np.asarray(T.filter_logits(lg, 0, 0.5) > neg).tolist() == [True, False, False]
        assert np.asarray(T.filter_logits(lg, 0, 0.6) > neg).tolist() == [True, True, False]
        assert np.asarray(T.filter_logits(lg, 2, 1.0) > neg).tolist() == [True, True, False]

    def test_model_without_cache_and_errors(self):
        # any causal model meets the interface: a bigram model (no cache) samples by recompute
        emb = jax.random.normal(jax.random.key(10), (6, 6))
        bigram = T.PolicyModel(apply=lambda p, t: p[t], init=lambda k: emb, vocab_size=6, max_len=6)
        assert not bigram.has_cache
        out = T.make_sampler(bigram, max_new_tokens=3, eos_id=2, pad_id=0)(
            emb, jnp.ones((2, 2), jnp.int32), jnp.asarray([2, 1]), jax.random.key(0)
        )
        assert out.tokens.shape == (2, 5)
        with pytest.raises(ValueError, match="exceeds the model's max_len"):
            T.make_sampler(bigram, max_new_tokens=5, eos_id=2, pad_id=0)(
                emb, jnp.ones((1, 2), jnp.int32), jnp.asarray([2]), jax.random.key(0)
            )
        with pytest.raises(ValueError, match="needs a PolicyModel with decode"):
            T.make_sampler(bigram, max_new_tokens=1, eos_id=2, pad_id=0, use_cache=True)


class TestLargeVocabularyPieces:
    def test_nucleus_cutoff_matches_sorting(self):
        """The bisection / top-k cutoff keeps exactly the tokens the sort-based definition keeps."""
        logits = np.asarray(jax.random.normal(jax.random.key(11), (16, 1000)) * 3, np.float32)
        filt = jax.jit(T.filter_logits, static_argnums=1)
        for top_k, top_p in [(0, 0.9), (0, 0.3), (0, 0.999), (50, 0.8), (7, 1.0)]:
            kept = np.asarray(filt(jnp.asarray(logits), top_k, top_p) > np.finfo(np.float32).min)
            for row, k in zip(logits, kept, strict=True):
                order = np.argsort(-row, kind="stable")
                keep = np.zeros(row.size, bool)
                keep[order[: top_k or row.size]] = True
                masked = np.where(keep, row.astype(np.float64), -np.inf)  # float64: exact boundaries
                p = np.exp(masked - masked.max())
                p /= p.sum()
                ps = p[order]
                before = np.cumsum(ps) - ps
                want = np.zeros(row.size, bool)
                want[order[(before < top_p) | (np.arange(row.size) == 0)]] = True
                np.testing.assert_array_equal(k, want & keep)

    def test_chunked_log_probs_equal_the_full_softmax(self, model_and_params, monkeypatch):
        policy, params = model_and_params
        tokens = jax.random.randint(jax.random.key(12), (3, 9), 0, CFG.vocab_size)
        full = jax.nn.log_softmax(policy.apply(params, tokens[:, :-1]) / 0.7, axis=-1)
        want = jnp.take_along_axis(full, tokens[:, 1:, None], axis=-1)[..., 0]
        monkeypatch.setattr(T, "LOGIT_CHUNK_ELEMENTS", 3 * CFG.vocab_size * 3)  # chunks of 3 positions
        fresh = T.transformer_policy(CFG)  # the chunk size is read when tracing: new jitted functions

        def total(p):
            return T.token_log_probs(fresh, p, tokens, 0.7).sum()

        lp = jax.jit(T.token_log_probs, static_argnums=0)(fresh, params, tokens, 0.7)
        np.testing.assert_allclose(lp[:, 1:], want, atol=1e-5)
        grad = jax.jit(jax.grad(total))(params)
        monkeypatch.setattr(T, "LOGIT_CHUNK_ELEMENTS", 1 << 24)
        ref = jax.jit(jax.grad(lambda p: total(p) + 0.0))(params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), grad, ref)
