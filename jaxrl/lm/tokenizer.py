"""The tokenizer protocol every jaxrl language-model task uses, and the Hugging Face implementation.

A task holds text; the model brings its tokenizer. Anything with these members works (the built-in
character tokenizer :class:`jaxrl.tasks.tokenizer.CharTokenizer` is another implementation)::

    ids = tok.encode("text", bos=False, eos=False)   # list[int]; no special tokens unless asked
    text = tok.decode(ids)                          # text before the first EOS; never raises on an id
    ids, lengths = tok.encode_batch(texts, bos=True, width=None)   # right-padded int32 [B, W], [B]
    tok.vocab_size, tok.pad_id, tok.bos_id (None when the model has none), tok.eos_id
    tok.apply_chat_template([{"role": "user", "content": "..."}])  # str, generation prompt added

:class:`HFTokenizer` wraps ``transformers``' tokenizer (``tokenizer.json`` through the ``tokenizers``
library, special tokens and the chat template from ``tokenizer_config.json``): nothing is
re-implemented. Ids the tokenizer does not know (a checkpoint's embedding table is often larger than
its vocabulary, and an untrained model can sample the extra rows) decode to nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Tokenizer(Protocol):
    """What jaxrl needs from a tokenizer (see the module docstring)."""

    pad_id: int
    eos_id: int
    bos_id: int | None

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def encode_batch(
        self, texts: Sequence[str], *, bos: bool = True, width: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, width: int | None = None):
    """Right-padded batch of id lists: ``(ids [B, W] int32, lengths [B] int32)``; ``W`` = the longest
    (or ``width``, which must fit them all)."""
    lengths = np.array([len(s) for s in seqs], np.int32)
    w = int(lengths.max(initial=0)) if width is None else width
    if len(seqs) and lengths.max() > w:
        raise ValueError(f"a text encodes to {lengths.max()} tokens, more than width={w}")
    ids = np.full((len(seqs), w), pad_id, np.int32)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    return ids, lengths


class HFTokenizer:
    """A ``transformers`` tokenizer behind jaxrl's :class:`Tokenizer` protocol.

    ``HFTokenizer.from_dir(path)`` reads ``tokenizer.json`` / ``tokenizer_config.json`` from a local
    directory (never downloads). ``eos_ids`` (e.g. from ``generation_config.json``) are the ids that end
    a completion; ``eos_id`` is the first.
    """

    def __init__(self, hf: Any, eos_ids: Sequence[int] | None = None):
        self.hf = hf
        ids = [i for i in (eos_ids or ()) if i is not None] or [hf.eos_token_id]
        if ids[0] is None:
            raise ValueError(
                "the tokenizer has no eos_token and the config no eos_token_id; sampling needs one to stop "
                "(set eos_token in tokenizer_config.json)"
            )
        self.eos_ids = tuple(int(i) for i in ids)
        self.eos_id = self.eos_ids[0]
        self.bos_id = hf.bos_token_id
        self.pad_id = hf.pad_token_id if hf.pad_token_id is not None else self.eos_id
        self._size = len(hf)

    @classmethod
    def from_dir(cls, path: str | os.PathLike, eos_ids: Sequence[int] | None = None) -> HFTokenizer:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(os.fspath(path), local_files_only=True), eos_ids)

    @property
    def vocab_size(self) -> int:
        """Number of ids the tokenizer knows (added tokens included)."""
        return self._size

    def __repr__(self) -> str:
        return f"HFTokenizer({type(self.hf).__name__}, vocab_size={self._size}, eos={self.eos_ids})"

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        ids = list(self.hf.encode(text, add_special_tokens=False))
        head = [self.bos_id] if bos and self.bos_id is not None else []
        return head + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` before the first EOS; special tokens and unknown ids are left out."""
        out = []
        for i in ids:
            i = int(i)
            if i in self.eos_ids:
                break
            if 0 <= i < self._size:
                out.append(i)
        return self.hf.decode(out, skip_special_tokens=True)

    def encode_batch(self, texts: Sequence[str], *, bos: bool = True, width: int | None = None):
        return pad_batch([self.encode(t, bos=bos) for t in texts], self.pad_id, width)

    def apply_chat_template(
        self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """The checkpoint's chat template applied to ``messages`` (text; encode it with ``encode``)."""
        if not getattr(self.hf, "chat_template", None):
            raise ValueError(
                "this tokenizer has no chat_template (tokenizer_config.json / chat_template.jinja)"
            )
        return self.hf.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer files (as ``transformers``' ``save_pretrained``)."""
        self.hf.save_pretrained(os.fspath(path))


def train_bpe(
    corpus: Sequence[str],
    vocab_size: int,
    *,
    eos: str = "<|endoftext|>",
    pad: str | None = "<|pad|>",
    bos: str | None = None,
    chat_template: str | None = None,
) -> HFTokenizer:
    """A byte-level BPE tokenizer trained with the ``tokenizers`` library on ``corpus`` (for tests,
    benchmarks and random checkpoints; nothing is downloaded)."""
    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [t for t in dict.fromkeys((eos, pad, bos)) if t]
    raw = RawTokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    raw.train_from_iterator(list(corpus), trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token=eos, pad_token=pad, bos_token=bos)
    if chat_template:
        hf.chat_template = chat_template
    return HFTokenizer(hf)
