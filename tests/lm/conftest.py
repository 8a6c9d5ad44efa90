"""Fixtures of tests/lm: the committed tiny checkpoints (``scripts/make_tiny_lm_checkpoints.py``)."""

from pathlib import Path

import pytest

pytest.importorskip("safetensors")
pytest.importorskip("transformers")

FIXTURES = Path(__file__).parent / "fixtures"
FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gpt2")


@pytest.fixture(scope="session")
def loaded():
    """family -> (model, params, tokenizer) in float32, loaded once per test session."""
    import jaxrl.lm

    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = jaxrl.lm.from_pretrained(FIXTURES / family, dtype="float32")
        return cache[family]

    return get
