"""Completion-only log-probabilities (``jaxrl.algos.grpo.logprobs``) give the GRPO loss and gradients of
the full-sequence path (``transformer.token_log_probs``), and the trainer's update uses them."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrl
from jaxrl.algos.grpo import logprobs, trainer
from jaxrl.losses import grpo as grpo_losses
from jaxrl.networks import transformer as T

WIDTH = 6  # max_new_tokens of the batch below


def _batch(vocab: int, rows: int = 6, width: int = 9, seed: int = 0):
    """Right-padded rows: prompts of 2..width tokens, completions of 0..WIDTH tokens, then pad (id 0).
    Row 0 has no completion token at all; row 1 the longest prompt and a full completion."""
    rng = np.random.default_rng(seed)
    length = width + WIDTH
    tokens = np.zeros((rows, length), np.int32)
    mask = np.zeros((rows, length), np.float32)
    for i in range(rows):
        plen = width if i == 1 else int(rng.integers(2, width + 1))
        n = 0 if i == 0 else WIDTH if i == 1 else int(rng.integers(1, WIDTH + 1))
        tokens[i, : plen + n] = rng.integers(1, vocab, size=plen + n)
        mask[i, plen : plen + n] = 1.0
    adv = rng.normal(size=rows).astype(np.float32)
    logp_old = (np.log(rng.uniform(0.01, 1.0, size=(rows, length))) * mask).astype(np.float32)
    return jnp.asarray(tokens), jnp.asarray(mask), jnp.asarray(adv), jnp.asarray(logp_old)


def _builtin():
    policy = T.transformer_policy(T.TransformerConfig.of_size("nano", vocab_size=97, max_len=16))
    return policy, policy.init(jax.random.key(1))


def _llama():
    pytest.importorskip("safetensors")
    import jaxrl.lm

    cfg = jaxrl.lm.init_config("llama-tiny", vocab_size=97, tie_word_embeddings=True)
    policy = jaxrl.lm.policy(cfg)
    return policy, policy.init(jax.random.key(2))


@pytest.mark.parametrize("make", [_builtin, _llama], ids=["builtin", "llama-tied"])
@pytest.mark.parametrize("chunked", [False, True], ids=["one-chunk", "chunked"])
def test_completion_log_probs_match_full_sequence_loss_and_gradients(make, chunked, monkeypatch):
    if chunked:  # 2 positions per chunk: the head runs in 3 chunks of the 6-position window
        monkeypatch.setattr(T, "LOGIT_CHUNK_ELEMENTS", 2 * 6 * 97)
    policy, params = make()
    tokens, mask, adv, logp_old = _batch(policy.vocab_size)

    full = T.token_log_probs(policy, params, tokens, 0.7)
    window = logprobs.completion_log_probs(policy, params, tokens, mask, WIDTH, 0.7)
    np.testing.assert_allclose(np.asarray(window * mask), np.asarray(full * mask), rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(full * mask).min(where=mask > 0, initial=1.0)) > 0  # real log-probs compared
    # outside the window (from the first completion token; row 0, without one, from position 1) the
    # new path returns 0: nothing is computed there
    outside = np.ones(mask.shape, bool)
    for i in range(tokens.shape[0]):
        start = max(1, int(np.argmax(np.asarray(mask[i]) > 0)))
        outside[i, start : start + WIDTH] = False
    assert float(jnp.abs(window).max(where=outside, initial=0.0)) == 0.0

    def loss(p, fn):
        lp = fn(p)
        return grpo_losses.grpo_loss(lp, logp_old, adv, mask, logp_ref=logp_old - 0.1, beta=0.05)[0]

    l_full, g_full = jax.value_and_grad(loss)(params, lambda p: T.token_log_probs(policy, p, tokens, 0.7))
    l_win, g_win = jax.value_and_grad(loss)(
        params, lambda p: logprobs.completion_log_probs(policy, p, tokens, mask, WIDTH, 0.7)
    )
    np.testing.assert_allclose(float(l_win), float(l_full), rtol=1e-6)
    leaves_full, leaves_win = jax.tree.leaves(g_full), jax.tree.leaves(g_win)
    assert max(float(jnp.abs(g).max()) for g in leaves_full) > 1e-3  # a gradient that can differ
    for a, b in zip(leaves_win, leaves_full, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_long_window_falls_back_to_the_full_sequence():
    policy, params = _builtin()
    tokens, mask, _, _ = _batch(policy.vocab_size, width=2)
    got = logprobs.completion_log_probs(policy, params, tokens, mask, tokens.shape[1], 1.0)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(T.token_log_probs(policy, params, tokens, 1.0)))


def test_trainer_update_equals_an_adam_step_on_full_sequence_gradients():
    """``programs.update`` (completion-window log-probs) = one hand-written Adam step whose gradient
    comes from ``token_log_probs`` over the whole sequence (the previous path)."""
    cfg = jaxrl.GRPOConfig(
        model="nano", warmup_steps=0, prompts_per_iteration=2, group_size=3, oversample=1,
        lr_schedule="constant", learning_rate=1e-2, beta=0.04, inner_steps=1, eval_every=1000,
    )  # fmt: skip
    s = trainer.setup(cfg)
    policy = s.policy
    params = policy.init(jax.random.key(0))
    width = s.max_new_tokens
    rng = np.random.default_rng(3)
    plen = np.array([3, 5, 4, 3, 5, 4])
    length = int(plen.max()) + width
    tokens = np.zeros((6, length), np.int32)
    mask = np.zeros((6, length), np.float32)
    for i, n in enumerate(plen):
        k = int(rng.integers(1, width + 1))
        tokens[i, : n + k] = rng.integers(1, policy.vocab_size, size=n + k)
        mask[i, n : n + k] = 1.0
    tokens, mask = jnp.asarray(tokens), jnp.asarray(mask)
    logp_old = T.token_log_probs(policy, params, tokens, cfg.temperature) * mask - 0.02 * mask
    logp_ref = logp_old + 0.05 * mask
    rewards = jnp.asarray([[1.0, 0.0, 0.5], [0.0, 0.0, 1.0]])
    hp = trainer.HParams.of(cfg)
    opt = trainer.optimizer(cfg.learning_rate, cfg.max_grad_norm)
    opt_state = opt.init(params)
    new, _, (loss, _, _) = s.programs.update(
        hp, params, None, opt_state, tokens, logp_old, mask, rewards, logp_ref, jnp.float32(1.0)
    )

    adv = grpo_losses.group_advantages(rewards, scale=cfg.advantage_scale, eps=cfg.advantage_eps).reshape(-1)

    def ref_loss(p):
        lp = T.token_log_probs(policy, p, tokens, cfg.temperature)
        return grpo_losses.grpo_loss(
            lp, logp_old, adv, mask, logp_ref=logp_ref, beta=cfg.beta, clip_eps_low=cfg.clip_eps_low,
            clip_eps_high=cfg.clip_eps_high, aggregation=cfg.aggregation, max_tokens=width,
        )[0]  # fmt: skip

    ref_l, grads = jax.value_and_grad(ref_loss)(params)
    updates, _ = opt.update(grads, opt_state, params)
    expected = optax.apply_updates(params, updates)
    np.testing.assert_allclose(float(loss), float(ref_l), rtol=1e-5, atol=1e-7)  # a loss near 0
    moved = max(
        float(jnp.abs(a - b).max())
        for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(params), strict=True)
    )
    assert moved > 1e-3
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
