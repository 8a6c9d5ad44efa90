"""Hugging Face checkpoints in and out: ``from_pretrained``, ``save_pretrained``, random checkpoints.

A checkpoint is a local directory as ``transformers``' ``save_pretrained`` writes it: ``config.json``,
``model.safetensors`` (or shards listed in ``model.safetensors.index.json``), the tokenizer files and
optionally ``generation_config.json``. Weights are read with the ``safetensors`` library straight into
the parameter pytree (no torch at run time); nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.lm import model as lm_model
from jaxrl.lm.config import DTYPES, LMConfig
from jaxrl.lm.tokenizer import HFTokenizer
from jaxrl.networks.transformer import PolicyModel

#: weights some checkpoints carry that are buffers, not parameters (recomputed here)
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")

#: Shapes for random checkpoints (``random_checkpoint``), named after the models they copy.
PRESETS: dict[str, dict[str, Any]] = {
    # Qwen/Qwen2.5-0.5B: 494M parameters, vocabulary 151,936 (tied)
    "qwen2.5-0.5b": dict(
        architecture="Qwen2ForCausalLM", vocab_size=151936, hidden_size=896, num_layers=24, num_heads=14,
        num_kv_heads=2, head_dim=64, intermediate_size=4864, max_position_embeddings=32768,
        rope_theta=1000000.0, tie_word_embeddings=True, qkv_bias=True,
    ),
    # HuggingFaceTB/SmolLM2-135M: 135M parameters, vocabulary 49,152 (tied)
    "smollm2-135m": dict(
        architecture="LlamaForCausalLM", vocab_size=49152, hidden_size=576, num_layers=30, num_heads=9,
        num_kv_heads=3, head_dim=64, intermediate_size=1536, max_position_embeddings=8192,
        norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
    ),
    # the TRL peer's throughput model (../shared/tools/trl_grpo_llama_throughput.py): 28.4M parameters
    "llama-30m": dict(
        architecture="LlamaForCausalLM", vocab_size=32768, hidden_size=512, num_layers=4, num_heads=8,
        num_kv_heads=4, head_dim=64, intermediate_size=1376, max_position_embeddings=256,
        tie_word_embeddings=True,
    ),
    # a few hundred thousand parameters, for tests
    "llama-tiny": dict(
        architecture="LlamaForCausalLM", vocab_size=512, hidden_size=64, num_layers=2, num_heads=4,
        num_kv_heads=2, head_dim=16, intermediate_size=128, max_position_embeddings=128,
    ),
}  # fmt: skip


def _as_dtype(dtype: Any) -> Any:
    name = jnp.dtype(dtype).name
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return jnp.dtype(name)


def read_config(path: str | os.PathLike) -> LMConfig:
    """``path/config.json`` as an :class:`LMConfig` (refuses unsupported architectures)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} is not a directory; jaxrl.lm loads a local Hugging Face checkpoint directory "
            f"(config.json, model.safetensors, tokenizer files) and downloads nothing"
        )
    file = path / "config.json"
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing: {path} is not a Hugging Face checkpoint directory")
    return LMConfig.from_hf_dict(json.loads(file.read_text()), where=str(file))


def _weight_files(path: Path) -> dict[str, Path]:
    """transformers weight name -> the safetensors file holding it."""
    single, index = path / "model.safetensors", path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = {name: path / f for name, f in weight_map.items()}
        for f in set(files.values()):
            if not f.is_file():
                raise FileNotFoundError(f"{f} is missing (listed in {index})")
        return files
    if single.is_file():
        from safetensors import safe_open

        with safe_open(single, framework="numpy") as f:
            return {name: single for name in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    found = sorted(p.name for p in path.iterdir())
    raise FileNotFoundError(
        f"no model.safetensors or model.safetensors.index.json in {path} (found {found}); jaxrl.lm reads "
        f"safetensors weights only (re-save a PyTorch .bin checkpoint with transformers' save_pretrained)"
    )


def load_params(path: str | os.PathLike, cfg: LMConfig, dtype: Any = "float32") -> Any:
    """The parameter pytree of ``cfg``'s model from the safetensors files in ``path``, cast to ``dtype``.
    Every missing tensor, shape mismatch or unexpected tensor is an error naming the file and tensor."""
    from safetensors import safe_open

    path, dtype = Path(path), _as_dtype(dtype)
    files = _weight_files(path)
    if cfg.family == "gpt2":  # older GPT-2 checkpoints name weights without the "transformer." prefix
        files = {
            (n if n.startswith(("transformer.", "lm_head.")) else f"transformer.{n}"): f
            for n, f in files.items()
        }
    names = lm_model.hf_names(cfg)
    template = jax.eval_shape(lm_model.policy(cfg).init, jax.random.key(0))["params"]
    expected = {n for n, _ in names.values()}
    tied_head = {"lm_head.weight"} if cfg.tie_word_embeddings else set()
    unexpected = sorted(
        n for n in files if n not in expected and n not in tied_head and not n.endswith(_IGNORED_SUFFIXES)
    )
    if unexpected:
        raise ValueError(
            f"{path}: tensors this {cfg.architecture} config does not use: {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}; the config.json does not describe these weights"
        )
    handles: dict[Path, Any] = {}
    leaves = {}
    try:
        for flax_path, (name, transposed) in names.items():
            if name not in files:
                where = path / "model.safetensors"
                if (path / "model.safetensors.index.json").is_file():
                    where = path / "model.safetensors.index.json"
                raise KeyError(f"{where}: weight {name!r} is missing (needed by {cfg.architecture})")
            file = files[name]
            if file not in handles:
                handles[file] = safe_open(file, framework="flax")
            x = handles[file].get_tensor(name)
            if transposed:
                x = x.T
            want = _get(template, flax_path).shape
            if tuple(x.shape) != tuple(want):
                raise ValueError(
                    f"{file}: weight {name!r} has shape {tuple(x.shape if not transposed else x.T.shape)}, "
                    f"config.json implies {tuple(want if not transposed else want[::-1])}"
                )
            leaves[flax_path] = jnp.asarray(x, dtype)
    finally:
        handles.clear()
    return {"params": _unflatten(leaves)}


def from_pretrained(path: str | os.PathLike, dtype: Any = "float32") -> tuple[PolicyModel, Any, HFTokenizer]:
    """``(model, params, tokenizer)`` from a local Hugging Face checkpoint directory.

    ``model`` is a :class:`~jaxrl.networks.transformer.PolicyModel` (``model.apply(params, tokens) ->
    logits``, KV-cached ``decode``, ``features``, ``model.config`` the :class:`LMConfig`); ``params``
    are in ``dtype`` (``"float32"`` or ``"bfloat16"``); ``tokenizer`` follows
    :class:`jaxrl.lm.tokenizer.Tokenizer`, its EOS ids taken from ``generation_config.json`` when present.
    """
    path = Path(path)
    cfg = read_config(path)
    tokenizer = load_tokenizer(path, cfg)
    params = load_params(path, cfg, dtype)
    return lm_model.policy(cfg), params, tokenizer


#: a config's ``model`` string naming a checkpoint directory: ``"hf:<dir>"``
HF_PREFIX = "hf:"


def is_hf_spec(model: Any) -> bool:
    """``model`` is a ``"hf:<dir>"`` string (GRPOConfig/RewardModelConfig ``model``)."""
    return isinstance(model, str) and model.startswith(HF_PREFIX)


def spec_path(spec: str) -> Path:
    """The directory of ``"hf:<dir>"`` (``~`` expanded, made absolute)."""
    if not is_hf_spec(spec):
        raise ValueError(f"expected 'hf:<checkpoint dir>', got {spec!r}")
    path = spec[len(HF_PREFIX) :]
    if not path:
        raise ValueError("'hf:' needs a checkpoint directory after it, e.g. model=hf:/models/Qwen2.5-0.5B")
    return Path(path).expanduser().resolve()


def resolve(spec: str, dtype: Any = "float32") -> tuple[PolicyModel, Any, HFTokenizer]:
    """``from_pretrained`` of ``"hf:<dir>"``, loaded once per process and dtype: every config naming the
    same checkpoint shares one model object (so one set of compiled programs) and one copy of the
    weights. Treat the returned parameters as read-only."""
    return _resolve_cached(str(spec_path(spec)), jnp.dtype(_as_dtype(dtype)).name)


@functools.lru_cache(maxsize=4)
def _resolve_cached(path: str, dtype: str):
    return from_pretrained(path, dtype)


def load_tokenizer(path: str | os.PathLike, cfg: LMConfig | None = None) -> HFTokenizer:
    """The checkpoint's own tokenizer; refuses one with ids beyond the embedding table."""
    path = Path(path)
    cfg = cfg or read_config(path)
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        raise FileNotFoundError(
            f"no tokenizer files (tokenizer.json, tokenizer_config.json) in {path}; save the tokenizer with "
            f"the model (tokenizer.save_pretrained(path))"
        )
    eos = list(cfg.eos_ids)
    gen = path / "generation_config.json"
    if gen.is_file():
        g = json.loads(gen.read_text()).get("eos_token_id")
        eos = ([g] if isinstance(g, int) else list(g or [])) + eos
    eos = list(dict.fromkeys(eos))
    tok = HFTokenizer.from_dir(path)
    tok = HFTokenizer(tok.hf, eos or None)
    if tok.vocab_size > cfg.vocab_size:
        raise ValueError(
            f"{path / 'tokenizer.json'}: the tokenizer has {tok.vocab_size} ids but the embedding table "
            f"(model.embed_tokens / wte, config.json vocab_size) has {cfg.vocab_size} rows; this tokenizer "
            f"does not belong to this model"
        )
    return tok


def save_pretrained(
    path: str | os.PathLike, model: PolicyModel | LMConfig, params: Any, tokenizer: Any = None, *, dtype=None
) -> Path:
    """Write ``params`` as a Hugging Face checkpoint that ``transformers.AutoModelForCausalLM`` (and
    vLLM) load: ``config.json``, ``model.safetensors``, ``generation_config.json`` and, when given an
    :class:`HFTokenizer`, its files. ``dtype`` (default: the parameters') sets the stored dtype."""
    from safetensors.flax import save_file

    cfg = model.config if isinstance(model, PolicyModel) else model
    if not isinstance(cfg, LMConfig):
        raise TypeError("save_pretrained needs a jaxrl.lm model (from from_pretrained or random_checkpoint)")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    p = params["params"] if "params" in params else params
    tensors = {}
    for flax_path, (name, transposed) in lm_model.hf_names(cfg).items():
        x = _get(p, flax_path)
        if dtype is not None:
            x = jnp.asarray(x, _as_dtype(dtype))
        tensors[name] = jnp.asarray(x.T if transposed else x)
    stored = dtype or next(iter(tensors.values())).dtype.name
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / "config.json").write_text(
        json.dumps(cfg.to_hf_dict(jnp.dtype(stored).name), indent=2, sort_keys=True)
    )
    gen = {
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
    }
    if isinstance(gen["eos_token_id"], tuple):
        gen["eos_token_id"] = list(gen["eos_token_id"])
    (path / "generation_config.json").write_text(json.dumps({k: v for k, v in gen.items() if v is not None}))
    if tokenizer is not None:
        tokenizer.save(path)
    return path


def random_checkpoint(
    path: str | os.PathLike,
    config: str | LMConfig | Mapping[str, Any],
    *,
    seed: int = 0,
    tokenizer: HFTokenizer | None = None,
    dtype: Any = "float32",
    **overrides: Any,
) -> Path:
    """Write a random-initialised checkpoint of a preset (:data:`PRESETS`), an :class:`LMConfig` or
    LMConfig fields to ``path`` (for tests and benchmarks: no download). Without a tokenizer a small
    byte-level BPE is trained (its ids fit any vocabulary of at least 300)."""
    cfg = init_config(config, **overrides)
    if tokenizer is None:
        from jaxrl.lm.tokenizer import train_bpe

        tokenizer = train_bpe(_CORPUS, min(cfg.vocab_size, 300))
    cfg = _with_special_ids(cfg, tokenizer)
    params = lm_model.policy(cfg).init(jax.random.key(seed))
    return save_pretrained(path, cfg, params, tokenizer, dtype=dtype)


def init_config(config: str | LMConfig | Mapping[str, Any], **overrides: Any) -> LMConfig:
    """An :class:`LMConfig` from a preset name, an LMConfig, or its fields (with ``overrides``)."""
    import dataclasses

    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown preset {config!r}; choose one of {sorted(PRESETS)}")
        config = PRESETS[config]
    if isinstance(config, LMConfig):
        return dataclasses.replace(config, **overrides)
    return LMConfig(**{**dict(config), **overrides})


def _with_special_ids(cfg: LMConfig, tok: HFTokenizer) -> LMConfig:
    import dataclasses

    return dataclasses.replace(cfg, bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)


_CORPUS = [
    f"{w} {n} {w2} = {n * 7 % 101}"
    for n, (w, w2) in enumerate(
        zip(
            "the a robot ate seven green apples while counting primes under bright moons and nine cats sang".split()
            * 20,
            "question answer think step solve add multiply number result final because then so".split() * 25,
            strict=False,
        )
    )
]


def _get(tree: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def _unflatten(leaves: dict[tuple[str, ...], Any]) -> dict:
    out: dict = {}
    for path, x in leaves.items():
        d = out
        for k in path[:-1]:
            d = d.setdefault(k, {})
        d[path[-1]] = x
    return out
