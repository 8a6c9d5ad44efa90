"""LoRA on a Hugging Face checkpoint: a fresh adapter is exactly the base model, GRPO with
``lora_rank > 0`` changes only adapter leaves (and Adam holds only them), the reference shares the
base arrays, and export merges the adapters into a checkpoint that reloads with the same logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrl
import jaxrl.lm
from jaxrl.algos.grpo import trainer
from jaxrl.networks import lora

from .test_grpo_hf import _cfg

TARGETS = ("q_proj", "v_proj")


def test_zero_adapter_gives_exactly_the_base_logits_and_export_merges(tmp_path, loaded):
    model, params, tok = loaded("llama")
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 200, size=(2, 9)), jnp.int32)
    adapters = lora.init_adapters(jax.random.key(0), params, 4, TARGETS)
    n_layers = model.config.num_layers
    assert len(adapters) == 2 * n_layers  # q and v of every layer
    wrapped = lora.wrap(model, 4, 8.0, TARGETS)
    apply, wrapped_apply = jax.jit(model.apply), jax.jit(wrapped.apply)  # one compile each, not op by op
    base = apply(params, tokens)
    lp = lora.LoRAParams(params, adapters)
    np.testing.assert_array_equal(wrapped_apply(lp, tokens), base)
    # a trained (non-zero) adapter moves the logits; merging gives the same model as a plain checkpoint
    lp = lp._replace(adapters=jax.tree.map(lambda x: x + 0.05, adapters))
    moved = wrapped_apply(lp, tokens)
    assert float(jnp.abs(moved - base).max()) > 1e-3
    merged = lora.merge(lp, 8.0 / 4)
    jaxrl.lm.save_pretrained(tmp_path / "merged", model.config, merged, tok)
    _, params2, _ = jaxrl.lm.from_pretrained(tmp_path / "merged", dtype="float32")
    np.testing.assert_allclose(apply(params2, tokens), moved, atol=1e-5)  # same config: same program
    # the base is untouched by merging
    k = params["params"]["layers_0"]["self_attn"]["q_proj"]["kernel"]
    assert merged["params"]["layers_0"]["self_attn"]["q_proj"]["kernel"] is not k


def test_unknown_targets_are_a_clear_error(loaded):
    _, params, _ = loaded("llama")
    with pytest.raises(ValueError, match="no dense kernel under the LoRA targets.*q_proj"):
        lora.init_adapters(jax.random.key(0), params, 4, ("query",))
    with pytest.raises(ValueError, match="rank must be positive"):
        lora.init_adapters(jax.random.key(0), params, 0)


def test_grpo_with_lora_trains_only_the_adapters_then_exports(tmp_path):
    cfg = _cfg(
        lora_rank=4, lora_alpha=8.0, lora_targets=TARGETS, learning_rate=1e-2, warmup_learning_rate=1e-2
    )
    model, base0, tok = jaxrl.lm.resolve(cfg.model)
    state = jaxrl.run(cfg, 0, str(tmp_path / "run"), progress=False, plot=False).state
    assert isinstance(state.params, lora.LoRAParams)
    # the base weights are the checkpoint's, bit for bit; the adapters moved
    same = jax.tree.map(
        lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b))), state.params.base, base0
    )
    assert all(jax.tree.leaves(same))
    assert max(float(np.abs(np.asarray(ab["b"])).max()) for ab in state.params.adapters.values()) > 0
    # Adam's moments cover the adapters alone (2 x their size, plus step counters)
    n_adapter = sum(x.size for x in jax.tree.leaves(state.params.adapters))
    n_opt = sum(np.size(x) for x in jax.tree.leaves(state.opt_state))
    assert 2 * n_adapter <= n_opt < 2 * n_adapter + 16
    # the reference policy: the same base arrays with the adapters off
    assert all(float(np.abs(np.asarray(x)).max()) == 0 for x in jax.tree.leaves(state.ref_params.adapters))
    base_leaf = lambda p: p.base["params"]["norm"]["scale"]  # noqa: E731
    assert base_leaf(state.ref_params) is base_leaf(state.params)
    # the saved run reloads, and exports (adapters merged) to a checkpoint with the same logits
    cfg2, saved = jaxrl.load_state(str(tmp_path / "run"))
    for a, b in zip(jax.tree.leaves(saved.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(a, b)
    plain = trainer.export_params(cfg2, saved)
    assert jax.tree.structure(plain) == jax.tree.structure(base0)
    jaxrl.lm.save_pretrained(tmp_path / "export", model.config, plain, tok)
    model2, params2, _ = jaxrl.lm.from_pretrained(tmp_path / "export")
    tokens = jnp.asarray([[1, 2, 3, 4, 5]], jnp.int32)
    wrapped = trainer.setup(cfg).policy
    np.testing.assert_allclose(model2.apply(params2, tokens), wrapped.apply(saved.params, tokens), atol=1e-6)
