"""A character-level tokenizer: one token per character, with ``<pad>``, ``<bos>`` and ``<eos>``.

Token ids: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, then the characters in the order given. Prompts
are encoded with a leading ``<bos>``; a completion ends at its first ``<eos>``. Batches are RIGHT-padded
(the layout :mod:`jaxrl.networks.transformer` samples and scores).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


class CharTokenizer:
    """``CharTokenizer("0123456789+=")``: every character of the alphabet is one token."""

    pad_id = 0
    bos_id = 1
    eos_id = 2

    def __init__(self, chars: str):
        alphabet = "".join(dict.fromkeys(chars))  # de-duplicated, order kept
        if not alphabet:
            raise ValueError("CharTokenizer needs at least one character")
        self.chars = alphabet
        self._ids = {c: i + 3 for i, c in enumerate(alphabet)}
        self._tokens = [PAD, BOS, EOS, *alphabet]

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:
        return f"CharTokenizer({self.chars!r})"

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """``text`` -> token ids (optionally with a leading ``<bos>`` / trailing ``<eos>``)."""
        try:
            ids = [self._ids[c] for c in text]
        except KeyError as e:
            raise ValueError(
                f"character {e.args[0]!r} in {text!r} is not in the tokenizer's alphabet {self.chars!r}; "
                f"add it to the task's CharTokenizer"
            ) from None
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids -> text, stopping at the first ``<eos>``. Other special tokens are written out
        (``<pad>``, ``<bos>``) so that a grader never mistakes them for nothing."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            out.append(self._tokens[i] if 0 <= i < len(self._tokens) else "<unk>")
        return "".join(out)

    def encode_batch(self, texts: Sequence[str], *, bos: bool = True, width: int | None = None):
        """Right-padded batch: ``(ids [B, W] int32, lengths [B] int32)``; ``W`` = longest (or ``width``)."""
        seqs = [self.encode(t, bos=bos) for t in texts]
        lengths = np.array([len(s) for s in seqs], np.int32)
        w = int(lengths.max()) if width is None else width
        if lengths.max() > w:
            raise ValueError(f"a text encodes to {lengths.max()} tokens, more than width={w}")
        ids = np.full((len(seqs), w), self.pad_id, np.int32)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
        return ids, lengths
