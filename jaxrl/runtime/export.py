"""Export a trained GRPO policy as a Hugging Face checkpoint (``jaxrl export RUN_DIR OUT_DIR``).

The run must have trained an ``"hf:<dir>"`` model: its final policy parameters are written with
:func:`jaxrl.lm.save_pretrained` next to the original checkpoint's config and tokenizer, so
``transformers.AutoModelForCausalLM.from_pretrained(OUT_DIR)`` (and vLLM) load the trained policy.
A LoRA run's adapters are merged into the base weights first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jaxrl.runtime import driver


def export_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike, *, dtype: Any = None) -> Path:
    """Write ``run_dir``'s final policy to ``out_dir`` in the Hugging Face format; returns ``out_dir``.

    ``dtype`` (``"float32"``/``"bfloat16"``; default: the parameters') sets the stored weights' dtype.
    Raises ``ValueError`` (with what to do) for a run that is not a finished single GRPO run of an
    ``hf:`` model.
    """
    from jaxrl import lm

    run_dir = os.fspath(run_dir)
    if not os.path.isfile(os.path.join(run_dir, "config.json")):
        raise FileNotFoundError(f"{run_dir} is not a jaxrl run directory (no config.json)")
    spec = driver.read_spec(run_dir)
    if spec.get("algo") != "grpo":
        raise ValueError(f"{run_dir} holds a {spec.get('algo')!r} run; only GRPO policies are exported")
    model = spec.get("config", {}).get("model")
    if not lm.is_hf_spec(model):
        raise ValueError(
            f"{run_dir} trained the built-in model {model!r}; only runs of a Hugging Face checkpoint "
            f"(--set model=hf:<dir>) can be exported in that format"
        )
    if spec.get("seeds", 1) != 1 or spec.get("sweep"):
        raise ValueError(f"{run_dir} is a population run (seeds/sweep); export one member's run instead")
    if not os.path.isfile(os.path.join(run_dir, driver.FINAL_STATE)):
        raise FileNotFoundError(
            f"{run_dir} has no {driver.FINAL_STATE}: the run did not finish (resume it with "
            f"`jaxrl train --resume {run_dir}`)"
        )
    from jaxrl.networks import lora

    cfg, state = driver.load_state(run_dir)
    policy, _, tokenizer = lm.resolve(cfg.model)
    params = state.params
    if isinstance(params, lora.LoRAParams):  # LoRA run: the adapters merged into the base kernels
        params = lora.merge(params, cfg.lora_alpha / cfg.lora_rank)
    return lm.save_pretrained(out_dir, policy, params, tokenizer, dtype=dtype)
