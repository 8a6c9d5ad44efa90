"""Regenerate ``tests/lm/fixtures``: tiny random-initialised Hugging Face checkpoints, one per family
jaxrl.lm loads, with the logits and greedy continuations ``transformers`` computes for fixed token ids.

Needs torch and transformers (the tests that read the fixtures need neither). Each checkpoint: a few
layers, width 32, a byte-level BPE vocabulary of 2,048 tokens trained with ``tokenizers`` on a
built-in corpus, a chat template; weights stored in bfloat16 (GPT-2: float32), the references
computed from exactly those values in float32. Run from the repository root::

    python scripts/make_tiny_lm_checkpoints.py [--out tests/lm/fixtures]

Writes ``<out>/<family>/`` (``config.json``, ``model.safetensors``, tokenizer files) and
``<out>/<family>/reference.npz``: ``tokens [2, 12]``, ``logits [2, 12, V]`` (float32),
``prompt_0``/``prompt_1`` (two prompts of different lengths) and ``greedy [2, 32]`` (transformers'
greedy continuation of each prompt alone, KV cache on, no EOS stop).
"""

import argparse
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
VOCAB = 2048
NEW_TOKENS = 32
BF16 = ("llama", "mistral", "qwen2", "qwen3")  # stored in bfloat16; GPT-2 stays float32


def corpus() -> list[str]:
    rng = np.random.default_rng(0)
    words = (
        "the a robot ate seven green apples while counting primes under bright moons and nine cats sang "
        "question answer think step solve add multiply number result final because then so what is of "
        "Qwen Llama GPT token model sample reward policy gradient value function train test"
    ).split()
    lines = [" ".join(rng.choice(words, size=12)) + f" {int(rng.integers(0, 10000))}" for _ in range(4000)]
    return lines + [f"{a}+{b}={a + b}" for a in range(60) for b in range(60)]


def tokenizer() -> transformers.PreTrainedTokenizerFast:
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
    raw.train_from_iterator(
        corpus(),
        trainers.BpeTrainer(
            vocab_size=VOCAB, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|endoftext|>", pad_token="<|pad|>", bos_token="<|endoftext|>"
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def configs(tok) -> dict[str, transformers.PretrainedConfig]:
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return {
        # Llama 3 shape: GQA, untied head, llama3 rope scaling that changes these frequencies
        "llama": transformers.LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
            rope_theta=500.0,
            rope_scaling=dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0,
                              original_max_position_embeddings=16),
            tie_word_embeddings=False, rms_norm_eps=1e-5, **ids,
        ),
        # Mistral: a sliding window shorter than the reference sequences
        "mistral": transformers.MistralConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=1, head_dim=8, max_position_embeddings=128,
            sliding_window=6, tie_word_embeddings=False, **ids,
        ),
        # Qwen2: q/k/v bias, tied embeddings padded beyond the tokenizer (as Qwen2.5's 151,936 rows)
        "qwen2": transformers.Qwen2Config(
            vocab_size=VOCAB + 64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rope_theta=10000.0,
            tie_word_embeddings=True, **ids,
        ),
        # Qwen3: q/k RMSNorm, head_dim independent of the width
        "qwen3": transformers.Qwen3Config(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
            tie_word_embeddings=True, **ids,
        ),
        "gpt2": transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128, **ids,
        ),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/lm/fixtures")
    args = ap.parse_args()
    torch.manual_seed(0)
    tok = tokenizer()
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, VOCAB, size=(2, 12)).astype(np.int64)
    prompts = [tok.encode("the robot ate 7 apples"), tok.encode("12+30=")]
    for family, cfg in configs(tok).items():
        out = os.path.join(args.out, family)
        shutil.rmtree(out, ignore_errors=True)
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
        with torch.no_grad():
            for p in model.parameters():  # random biases and norm scales too, so a dropped one shows
                if p.ndim == 1:
                    p.add_(0.1 * torch.randn_like(p))
        # store bfloat16 for most families (half the bytes); the references come from transformers
        # loading exactly the stored values back in float32 (a cast model would keep a rounded rotary
        # buffer that a fresh load recomputes)
        (model.to(torch.bfloat16) if family in BF16 else model).save_pretrained(out)
        tok.save_pretrained(out)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            out, dtype=torch.float32, attn_implementation="eager"
        ).eval()
        with torch.no_grad():
            logits = model(torch.tensor(tokens)).logits.numpy()
            greedy = [
                model.generate(
                    torch.tensor([p]), max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )[0, len(p):].numpy()
                for p in prompts
            ]  # fmt: skip
        np.savez_compressed(
            os.path.join(out, "reference.npz"),
            tokens=tokens.astype(np.int32),
            logits=logits.astype(np.float32),
            prompt_0=np.array(prompts[0], np.int32),
            prompt_1=np.array(prompts[1], np.int32),
            greedy=np.stack(greedy).astype(np.int32),
        )
        print(family, sum(p.numel() for p in model.parameters()), "parameters ->", out)


if __name__ == "__main__":
    main()
