"""Pretrained decoder-only language models from Hugging Face checkpoints, in flax.

::

    model, params, tokenizer = jaxrl.lm.from_pretrained(path, dtype="float32")  # or "bfloat16"
    logits = model.apply(params, tokens)          # tokens int32 [B, L] -> logits [B, L, V]
    ids = tokenizer.encode("text")                # no special tokens added unless asked
    text = tokenizer.decode(ids)
    jaxrl.lm.save_pretrained(out_dir, model, params, tokenizer)   # transformers loads it back

Families: Llama (Llama 2/3 incl. Llama-3 rope scaling, Mistral, SmolLM), Qwen2, Qwen3, GPT-2
(:data:`ARCHITECTURES`). ``model`` is a :class:`jaxrl.networks.transformer.PolicyModel`, so GRPO and the
reward model take it as they take the built-in transformer. ``random_checkpoint(dir, "llama-30m")``
writes a random-initialised checkpoint of a preset shape (:data:`PRESETS`) for tests and benchmarks.
Configs name a checkpoint as ``model="hf:<dir>"`` (``resolve`` loads it once per process).
Modules: ``config`` (LMConfig), ``llama``/``gpt2`` (the models and their weight-name tables),
``checkpoint`` (load/save), ``tokenizer`` (the tokenizer protocol and HFTokenizer), ``model``
(family -> PolicyModel). Needs the ``lm`` extra (``safetensors``, ``tokenizers``, ``transformers``;
not torch).
"""

from jaxrl.lm.checkpoint import (
    HF_PREFIX,
    PRESETS,
    from_pretrained,
    init_config,
    is_hf_spec,
    load_params,
    load_tokenizer,
    random_checkpoint,
    read_config,
    resolve,
    save_pretrained,
    spec_path,
)
from jaxrl.lm.config import ARCHITECTURES, LMConfig
from jaxrl.lm.model import policy
from jaxrl.lm.tokenizer import HFTokenizer, Tokenizer, train_bpe

__all__ = [
    "ARCHITECTURES",
    "HF_PREFIX",
    "PRESETS",
    "HFTokenizer",
    "LMConfig",
    "Tokenizer",
    "from_pretrained",
    "init_config",
    "is_hf_spec",
    "load_params",
    "load_tokenizer",
    "policy",
    "random_checkpoint",
    "read_config",
    "resolve",
    "save_pretrained",
    "spec_path",
    "train_bpe",
]
