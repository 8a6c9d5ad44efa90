"""The checkpoint's tokenizer through jaxrl's protocol gives transformers' tokens."""

import numpy as np
import pytest

import jaxrl.lm
from jaxrl.tasks.tokenizer import CharTokenizer

from .conftest import FIXTURES

TEXTS = ["the robot ate 7 apples", "12+30=42", " leading space and ünïcödé ✓", ""]


def test_same_tokens_and_chat_template_as_transformers(loaded):
    from transformers import AutoTokenizer

    _, _, tok = loaded("llama")
    ref = AutoTokenizer.from_pretrained(FIXTURES / "llama")
    for text in TEXTS:
        assert tok.encode(text) == ref.encode(text, add_special_tokens=False)
        assert tok.decode(tok.encode(text)) == text
    assert tok.encode("hi", bos=True, eos=True) == [
        ref.bos_token_id,
        *ref.encode("hi", add_special_tokens=False),
        ref.eos_token_id,
    ]
    messages = [{"role": "user", "content": "What is 12+30?"}]
    text = tok.apply_chat_template(messages)
    assert text == ref.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    want = ref.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    want = want["input_ids"] if isinstance(want, dict) or hasattr(want, "keys") else want
    assert tok.encode(text) == list(want)


def test_decode_stops_at_eos_and_never_raises_on_padded_embedding_ids(loaded):
    model, _, tok = loaded("qwen2")  # 64 embedding rows beyond the tokenizer
    ids = tok.encode("the robot")
    assert tok.decode([*ids, model.config.vocab_size - 1, tok.vocab_size, -5]) == "the robot"
    assert tok.decode([*ids, tok.eos_id, *tok.encode(" ate")]) == "the robot"


def test_both_tokenizers_follow_the_protocol(loaded):
    _, _, tok = loaded("gpt2")
    for t in (tok, CharTokenizer("0123456789+=")):
        assert isinstance(t, jaxrl.lm.Tokenizer)
        ids, lengths = t.encode_batch(["1+2=", "12+3="], bos=True)
        assert ids.dtype == np.int32 and ids.shape == (2, int(lengths.max()))
        assert t.decode(ids[1, 1 : lengths[1]]) == "12+3="


def test_no_chat_template_is_a_clear_error():
    tok = jaxrl.lm.train_bpe(["a b c"] * 10, 280)
    with pytest.raises(ValueError, match="no chat_template"):
        tok.apply_chat_template([{"role": "user", "content": "x"}])
