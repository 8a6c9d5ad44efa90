"""The shape of a Hugging Face causal language model, read from (and written back to) ``config.json``.

:class:`LMConfig` is the one place where Hugging Face's config fields are interpreted. Both layouts in
use are read: transformers 4.x (``rope_theta``, ``rope_scaling``, ``torch_dtype``) and 5.x
(``rope_parameters``, ``dtype``). Architectures other than :data:`ARCHITECTURES` are refused with the
supported list, before any weight is read.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np

#: ``architectures[0]`` of a ``config.json`` -> jaxrl model family.
ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "llama",
    "Qwen3ForCausalLM": "llama",
    "GPT2LMHeadModel": "gpt2",
}
_MODEL_TYPES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "GPT2LMHeadModel": "gpt2",
}
#: rope types jaxrl computes (transformers' names); others (yarn, dynamic, longrope) are refused.
ROPE_TYPES = ("default", "linear", "llama3")
DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Static shape and numerics of a decoder-only language model (all fields hashable).

    ``rope_scaling`` is ``None`` or a sorted tuple of ``(key, value)`` pairs of transformers'
    ``rope_parameters`` without ``rope_theta`` (e.g. ``(("factor", 8.0), ..., ("rope_type", "llama3"))``).
    ``source`` is the original ``config.json`` text (kept so that an export writes back every field
    jaxrl does not interpret).
    """

    architecture: str  # e.g. "LlamaForCausalLM"
    vocab_size: int  # rows of the embedding table (often more than the tokenizer's vocabulary)
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int  # grouped-query attention: num_heads % num_kv_heads == 0
    head_dim: int
    intermediate_size: int
    max_position_embeddings: int
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: tuple | None = None
    tie_word_embeddings: bool = False
    qkv_bias: bool = False  # bias on q/k/v projections (Qwen2; Llama/Qwen3 with attention_bias)
    o_bias: bool = False  # bias on the output projection (Llama/Qwen3 with attention_bias)
    mlp_bias: bool = False
    qk_norm: bool = False  # RMSNorm over each head of q and k before rotary embedding (Qwen3)
    sliding_window: int | None = None  # Mistral: a query sees the last sliding_window keys
    hidden_act: str = "silu"
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None
    dtype: str = "float32"  # the checkpoint's own dtype (config.json), not the dtype loaded in
    source: str = dataclasses.field(default="", compare=False, repr=False)

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(unsupported_message(self.architecture))
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"LMConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_heads}) must be a multiple of num_key_value_heads "
                f"({self.num_kv_heads})"
            )
        if self.family == "llama" and self.head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head_dim, got {self.head_dim}")

    @property
    def family(self) -> str:
        """``"llama"`` (Llama, Mistral, Qwen2, Qwen3) or ``"gpt2"``."""
        return ARCHITECTURES[self.architecture]

    @property
    def eos_ids(self) -> tuple[int, ...]:
        e = self.eos_token_id
        return () if e is None else (e,) if isinstance(e, int) else tuple(e)

    @property
    def rope_type(self) -> str:
        return dict(self.rope_scaling or ()).get("rope_type", "default")

    def num_params(self) -> int:
        """Parameter count (tied embeddings counted once)."""
        d, f, v, h = self.hidden_size, self.intermediate_size, self.vocab_size, self.head_dim
        if self.family == "gpt2":
            per = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d
            return v * d + self.max_position_embeddings * d + self.num_layers * per + 2 * d
        q, kv = self.num_heads * h, self.num_kv_heads * h
        attn = d * (q + 2 * kv) + q * d + (q + 2 * kv) * self.qkv_bias + d * self.o_bias
        attn += 2 * h * self.qk_norm
        mlp = 3 * d * f + (2 * f + d) * self.mlp_bias
        head = 0 if self.tie_word_embeddings else v * d
        return v * d + self.num_layers * (attn + mlp + 2 * d) + d + head

    # ------------------------------------------------------------------------- HF config.json
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], *, where: str = "config.json") -> LMConfig:
        """Read a ``config.json`` dict (transformers 4.x or 5.x layout)."""
        archs = d.get("architectures") or []
        arch = archs[0] if archs else _arch_from_model_type(d.get("model_type"))
        if arch not in ARCHITECTURES:
            raise ValueError(f"{where}: " + unsupported_message(arch))
        common = dict(
            architecture=arch,
            bos_token_id=d.get("bos_token_id"),
            eos_token_id=tuple(e) if isinstance(e := d.get("eos_token_id"), list) else e,
            pad_token_id=d.get("pad_token_id"),
            dtype=_dtype_name(d.get("dtype") or d.get("torch_dtype") or "float32"),
            source=json.dumps(d, sort_keys=True),
        )
        if ARCHITECTURES[arch] == "gpt2":
            n_embd = d["n_embd"]
            return cls(
                vocab_size=d["vocab_size"],
                hidden_size=n_embd,
                num_layers=d["n_layer"],
                num_heads=d["n_head"],
                num_kv_heads=d["n_head"],
                head_dim=n_embd // d["n_head"],
                intermediate_size=d.get("n_inner") or 4 * n_embd,
                max_position_embeddings=d["n_positions"],
                norm_eps=d.get("layer_norm_epsilon", 1e-5),
                tie_word_embeddings=d.get("tie_word_embeddings", True),
                hidden_act=d.get("activation_function", "gelu_new"),
                **common,
            )
        rope = dict(d.get("rope_parameters") or {})  # 5.x
        theta = rope.pop("rope_theta", d.get("rope_theta", 10000.0))
        if d.get("rope_scaling"):  # 4.x
            rope = dict(d["rope_scaling"])
        if "type" in rope and "rope_type" not in rope:
            rope["rope_type"] = rope.pop("type")
        rope.pop("type", None)
        rope_type = rope.get("rope_type", "default")
        if rope_type not in ROPE_TYPES:
            raise ValueError(
                f"{where}: rope type {rope_type!r} is not supported; jaxrl computes {list(ROPE_TYPES)}"
            )
        heads = d["num_attention_heads"]
        bias = bool(d.get("attention_bias", False))
        sliding = None
        if arch == "MistralForCausalLM":
            sliding = d.get("sliding_window")
        elif d.get("use_sliding_window"):
            raise ValueError(
                f"{where}: use_sliding_window=true (per-layer sliding attention) is not supported; "
                f"jaxrl runs full attention"
            )
        if d.get("hidden_act", "silu") != "silu":
            raise ValueError(f"{where}: hidden_act {d.get('hidden_act')!r} is not supported (silu only)")
        return cls(
            vocab_size=d["vocab_size"],
            hidden_size=d["hidden_size"],
            num_layers=d["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=d.get("num_key_value_heads") or heads,
            head_dim=d.get("head_dim") or d["hidden_size"] // heads,
            intermediate_size=d["intermediate_size"],
            max_position_embeddings=d.get("max_position_embeddings", 2048),
            norm_eps=d.get("rms_norm_eps", 1e-6),
            rope_theta=float(theta),
            rope_scaling=None if rope_type == "default" else tuple(sorted(rope.items())),
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
            qkv_bias=arch == "Qwen2ForCausalLM" or bias,
            o_bias=bias and arch != "Qwen2ForCausalLM",
            mlp_bias=bool(d.get("mlp_bias", False)),
            qk_norm=arch == "Qwen3ForCausalLM",
            sliding_window=sliding,
            **common,
        )

    def to_hf_dict(self, dtype: str | None = None) -> dict[str, Any]:
        """A ``config.json`` dict in transformers 5.x layout (with ``torch_dtype``/``rope_theta`` kept too,
        so 4.x readers such as vLLM find them). Fields of the source config jaxrl does not read survive."""
        d = json.loads(self.source) if self.source else {}
        for old in ("rope_scaling", "torch_dtype", "rope_theta", "rope_parameters"):
            d.pop(old, None)
        dtype = dtype or self.dtype
        d.update(
            architectures=[self.architecture],
            model_type=_MODEL_TYPES[self.architecture],
            vocab_size=self.vocab_size,
            bos_token_id=self.bos_token_id,
            eos_token_id=list(self.eos_token_id)
            if isinstance(self.eos_token_id, tuple)
            else self.eos_token_id,
            pad_token_id=self.pad_token_id,
            tie_word_embeddings=self.tie_word_embeddings,
            dtype=dtype,
            torch_dtype=dtype,
        )
        if self.family == "gpt2":
            d.update(
                n_embd=self.hidden_size,
                n_layer=self.num_layers,
                n_head=self.num_heads,
                n_inner=self.intermediate_size if self.intermediate_size != 4 * self.hidden_size else None,
                n_positions=self.max_position_embeddings,
                layer_norm_epsilon=self.norm_eps,
                activation_function=self.hidden_act,
            )
            return d
        rope = dict(self.rope_scaling or (("rope_type", "default"),))
        d.update(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
            rms_norm_eps=self.norm_eps,
            hidden_act=self.hidden_act,
            rope_theta=self.rope_theta,
            rope_parameters={**rope, "rope_theta": self.rope_theta},
            mlp_bias=self.mlp_bias,
        )
        if self.rope_scaling:
            d["rope_scaling"] = dict(rope)
        if self.architecture != "Qwen2ForCausalLM":
            d["attention_bias"] = self.qkv_bias
        if self.architecture == "MistralForCausalLM":
            d["sliding_window"] = self.sliding_window
        return d

    # ------------------------------------------------------------------------------- ROTARY
    def inv_freq(self) -> np.ndarray:
        """Rotary inverse frequencies ``[head_dim // 2]`` (float32), as transformers computes them."""
        dim = self.head_dim
        inv = 1.0 / (self.rope_theta ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim))
        inv = inv.astype(np.float32)
        p = dict(self.rope_scaling or ())
        if self.rope_type == "linear":
            inv = inv / np.float32(p["factor"])
        elif self.rope_type == "llama3":
            factor, lo, hi = p["factor"], p["low_freq_factor"], p["high_freq_factor"]
            old = p["original_max_position_embeddings"]
            wavelen = 2 * math.pi / inv
            scaled = np.where(wavelen > old / lo, inv / factor, inv)
            smooth = (old / wavelen - lo) / (hi - lo)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
            inv = np.where(medium, smoothed, scaled).astype(np.float32)
        return inv


def unsupported_message(arch: Any) -> str:
    return (
        f"architecture {arch!r} is not supported; jaxrl.lm loads {sorted(ARCHITECTURES)} "
        f"(Llama/Mistral/SmolLM, Qwen2, Qwen3, GPT-2)"
    )


def _arch_from_model_type(model_type: Any) -> Any:
    inverse = {v: k for k, v in _MODEL_TYPES.items()}
    return inverse.get(model_type, model_type)


def _dtype_name(d: Any) -> str:
    s = str(d).replace("torch.", "")
    return {"float": "float32", "bf16": "bfloat16", "half": "float16", "fp16": "float16"}.get(s, s)
