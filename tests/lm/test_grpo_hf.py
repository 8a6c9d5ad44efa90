"""GRPO on a Hugging Face checkpoint: ``GRPOConfig(model="hf:<dir>")`` trains from the checkpoint's
weights with its tokenizer, and the choice survives config.json (``--config`` re-runs, ``--resume``)."""

import jax
import numpy as np
import pytest

import jaxrl
import jaxrl.lm
from jaxrl.algos import grpo
from jaxrl.runtime import configs

from .conftest import FIXTURES


def _generate(rng):
    a, b = int(rng.integers(0, 10)), int(rng.integers(0, 10))
    return jaxrl.Problem(prompt=f"{a}+{b}=", answer=a + b, solution=str(a + b))


TASK = jaxrl.Task(
    name="small-addition",
    tokenizer=jaxrl.CharTokenizer("0123456789+="),  # replaced by the checkpoint's tokenizer
    generate=_generate,
    reward=lambda p, text: float(text.strip() == str(p.answer)),
    max_new_tokens=4,
    heldout=[jaxrl.Problem("1+2=", 3, "3"), jaxrl.Problem("4+4=", 8, "8")],
)


def _cfg(**kw):
    base = dict(
        task=TASK,
        model=f"hf:{FIXTURES / 'qwen2'}",
        warmup_steps=1,  # a random model never finishes, so only the warm-up (on demonstrations
        warmup_batch=4,  # tokenized by the checkpoint's tokenizer) moves the weights here
        warmup_demos=8,
        num_iterations=2,
        group_size=2,
        prompts_per_iteration=2,
        oversample=1,
        eval_every=1000,
        learning_rate=1e-3,
    )
    return jaxrl.GRPOConfig(**{**base, **kw})


def test_grpo_trains_a_checkpoint_with_its_own_tokenizer():
    cfg = _cfg()
    grpo.validate(cfg)
    s = grpo.trainer.setup(cfg)
    model, params0, tok = jaxrl.lm.resolve(cfg.model)
    assert s.policy is model and s.task.tokenizer is tok  # the task's text, the model's tokens
    state, metrics = jaxrl.train(cfg, jax.random.key(0))
    assert np.all(np.isfinite(np.asarray(metrics.loss)))
    moved = jax.tree.map(
        lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), state.params, params0
    )
    assert max(jax.tree.leaves(moved)) > 0  # trained ...
    leaf = params0["params"]["norm"]["scale"]
    assert np.asarray(leaf).shape == (model.config.hidden_size,)  # ... and the checkpoint left unchanged
    np.testing.assert_array_equal(
        leaf, jaxrl.lm.from_pretrained(FIXTURES / "qwen2")[1]["params"]["norm"]["scale"]
    )


def test_hf_model_survives_config_json_and_cli_overrides():
    spec = f"hf:{FIXTURES / 'gpt2'}"
    cfg = configs.apply_overrides(jaxrl.GRPOConfig(), [f"model={spec}"])
    assert cfg.model == spec
    again = configs.from_dict(jaxrl.GRPOConfig, configs.to_dict(cfg))
    assert again.model == spec and configs.is_rerunnable(configs.to_dict(cfg))


def test_bad_hf_models_are_refused_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        grpo.validate(_cfg(model=f"hf:{tmp_path / 'missing'}"))
    with pytest.raises(ValueError, match="'hf:' needs a checkpoint directory"):
        grpo.validate(_cfg(model="hf:"))
    with pytest.raises(ValueError, match="or 'hf:<checkpoint dir>'"):
        grpo.validate(_cfg(model="huge"))
