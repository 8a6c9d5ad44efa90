"""Loading and saving Hugging Face checkpoints: config layouts, shards, round trip, errors."""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrl.lm
from jaxrl.lm import LMConfig

from .conftest import FIXTURES


def _copy(tmp_path, family="llama"):
    dst = tmp_path / family
    shutil.copytree(FIXTURES / family, dst)
    return dst


def _edit_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))


def test_transformers_4x_config_layout_reads_the_same():
    """4.x: rope_theta + rope_scaling (with "type"), torch_dtype; 5.x: rope_parameters, dtype."""
    new = json.loads((FIXTURES / "llama" / "config.json").read_text())
    old = dict(new)
    rope = dict(old.pop("rope_parameters"))
    old["rope_theta"] = rope.pop("rope_theta")
    old["rope_scaling"] = {("type" if k == "rope_type" else k): v for k, v in rope.items()}
    old["torch_dtype"] = old.pop("dtype")
    a, b = LMConfig.from_hf_dict(new), LMConfig.from_hf_dict(old)
    assert a == b and a.rope_type == "llama3" and a.rope_theta == 500.0 and a.dtype == "bfloat16"


def test_llama3_inverse_frequencies_match_transformers():
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    d = json.loads((FIXTURES / "llama" / "config.json").read_text())
    want, _ = ROPE_INIT_FUNCTIONS["llama3"](LlamaConfig(**d), torch.device("cpu"))
    np.testing.assert_allclose(LMConfig.from_hf_dict(d).inv_freq(), want.numpy(), rtol=1e-6)


def test_sharded_checkpoint_loads_the_same_parameters(tmp_path, loaded):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    path = _copy(tmp_path, "gpt2")
    with safe_open(path / "model.safetensors", "numpy") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    (path / "model.safetensors").unlink()
    names = sorted(tensors)
    weight_map = {}
    for i, part in enumerate((names[::2], names[1::2])):
        file = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({k: tensors[k] for k in part}, str(path / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    _, params, _ = jaxrl.lm.from_pretrained(path)
    _, want, _ = loaded("gpt2")
    jax.tree.map(np.testing.assert_array_equal, params, want)
    (path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002.safetensors is missing"):
        jaxrl.lm.from_pretrained(path)


@pytest.mark.parametrize("family", ["qwen3", "gpt2"])
def test_save_pretrained_round_trip_gives_identical_parameters(family, tmp_path, loaded):
    model, params, tok = loaded(family)
    out = jaxrl.lm.save_pretrained(tmp_path / "out", model, params, tok)
    model2, params2, tok2 = jaxrl.lm.from_pretrained(out)
    assert model2.config.dtype == "float32"  # the dtype of the parameters saved
    assert dataclasses.replace(model2.config, dtype=model.config.dtype) == model.config
    jax.tree.map(np.testing.assert_array_equal, params2, params)
    assert tok2.encode("12+30= the robot") == tok.encode("12+30= the robot")
    # bfloat16 export: config.json says so and the values are the rounded ones
    out16 = jaxrl.lm.save_pretrained(tmp_path / "out16", model, params, tok, dtype="bfloat16")
    assert json.loads((out16 / "config.json").read_text())["dtype"] == "bfloat16"
    _, p16, _ = jaxrl.lm.from_pretrained(out16, dtype="bfloat16")
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b.astype(jnp.bfloat16)), p16, params)


def test_exported_checkpoint_gives_transformers_the_same_logits(tmp_path):
    """A random checkpoint written by jaxrl (save_pretrained) loads in transformers with the same logits."""
    torch = pytest.importorskip("torch")
    import transformers

    path = jaxrl.lm.random_checkpoint(tmp_path / "rc", "llama-tiny", seed=3, qkv_bias=True, o_bias=True)
    model, params, tok = jaxrl.lm.from_pretrained(path)
    tokens = np.asarray([tok.encode("the robot ate 7 apples and nine cats sang")], np.int32)
    hf = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        want = hf(torch.tensor(tokens).long()).logits.numpy()
    np.testing.assert_allclose(np.asarray(jax.jit(model.apply)(params, jnp.asarray(tokens))), want, atol=1e-4)


# ------------------------------------------------------------------------------------ ERRORS
def test_unknown_architecture_is_refused_with_the_supported_list(tmp_path):
    path = _copy(tmp_path)
    _edit_config(path, architectures=["FalconForCausalLM"])
    with pytest.raises(ValueError, match=r"config.json: architecture 'FalconForCausalLM' is not supported.*"
                       r"GPT2LMHeadModel.*LlamaForCausalLM"):  # fmt: skip
        jaxrl.lm.from_pretrained(path)


def test_missing_weight_names_the_file_and_tensor(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    path = _copy(tmp_path, "gpt2")
    with safe_open(path / "model.safetensors", "numpy") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "transformer.h.1.mlp.c_fc.bias"}  # noqa: SIM118
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(
        KeyError, match=r"model.safetensors: weight 'transformer.h.1.mlp.c_fc.bias' is missing"
    ):
        jaxrl.lm.from_pretrained(path)


def test_shape_mismatch_names_the_file_and_tensor(tmp_path):
    path = _copy(tmp_path)
    _edit_config(path, intermediate_size=97)
    with pytest.raises(ValueError, match=r"model.safetensors: weight 'model.layers.0.mlp.gate_proj.weight' has "
                       r"shape \(96, 32\), config.json implies \(97, 32\)"):  # fmt: skip
        jaxrl.lm.from_pretrained(path)


def test_tokenizer_larger_than_the_embedding_is_refused(tmp_path):
    path = _copy(tmp_path, "gpt2")
    _edit_config(path, vocab_size=1000)
    with pytest.raises(
        ValueError, match=r"tokenizer.json: the tokenizer has 2048 ids but the embedding table"
    ):
        jaxrl.lm.from_pretrained(path)


def test_missing_files_say_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        jaxrl.lm.from_pretrained(tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        jaxrl.lm.from_pretrained(tmp_path)
    path = _copy(tmp_path)
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors or model.safetensors.index.json"):
        jaxrl.lm.from_pretrained(path)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (path / f).unlink()
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        jaxrl.lm.from_pretrained(path)


def test_unsupported_rope_and_dtype(tmp_path):
    d = json.loads((FIXTURES / "llama" / "config.json").read_text())
    d["rope_parameters"] = {"rope_type": "yarn", "factor": 2.0, "rope_theta": 1e4}
    with pytest.raises(ValueError, match="rope type 'yarn' is not supported"):
        LMConfig.from_hf_dict(d)
    with pytest.raises(ValueError, match="dtype must be one of"):
        jaxrl.lm.from_pretrained(FIXTURES / "gpt2", dtype="float16")
