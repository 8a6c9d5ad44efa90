"""GRPO with ``compute_dtype="bfloat16"``: bfloat16 forward passes and sampling from float32 master
weights, float32 log-probabilities and optimizer state."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxrl
from jaxrl.algos.grpo import trainer

CFG = jaxrl.GRPOConfig(
    model="nano",
    warmup_steps=0,
    num_iterations=2,
    prompts_per_iteration=2,
    group_size=4,
    oversample=1,
    eval_every=1000,
    lr_schedule="constant",
    learning_rate=1e-3,
)


def test_bfloat16_compute_keeps_float32_weights_and_log_probs():
    bf = CFG.replace(compute_dtype="bfloat16")
    state = trainer.init(bf, jax.random.key(0))
    tokens = jnp.asarray(np.random.default_rng(0).integers(3, 15, size=(8, 12)), jnp.int32)
    mask = jnp.zeros((8, 12)).at[:, 6:].set(1.0)
    # with the mask: the completion-window log-probs the update computes (so the ratio below is 1)
    lp32 = trainer.setup(CFG).programs.ref_log_probs(state.params, tokens, 1.0, mask)
    lp16 = trainer.setup(bf).programs.ref_log_probs(state.params, tokens, 1.0, mask)
    assert lp16.dtype == jnp.float32  # the ratio and the loss are computed in float32
    err = float(jnp.abs(lp16 - lp32).max())
    assert 0 < err < 0.1  # bfloat16 arithmetic really ran, and stays close to float32
    # one update with rewards that vary within each group (a random model's own answers all score 0)
    s = trainer.setup(bf)
    rewards = jnp.asarray([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]])
    hp = trainer.HParams.of(bf)
    params, opt_state, (loss, diag, _) = s.programs.update(
        hp, state.params, None, state.opt_state, tokens, lp16, mask, rewards, None, jnp.float32(1.0)
    )
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    floats = [x for x in jax.tree.leaves(opt_state) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert {x.dtype for x in floats} == {jnp.dtype(jnp.float32)}
    assert np.isfinite(float(loss)) and abs(float(diag.ratio_mean) - 1.0) < 1e-6  # same bf16 forward
    moved = max(
        float(jnp.abs(a - b).max())
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state.params), strict=True)
    )
    assert moved > 1e-5
    new, metrics = trainer.train_step(bf, state)  # a whole iteration runs (sampling in bfloat16)
    assert np.isfinite(metrics.loss)
