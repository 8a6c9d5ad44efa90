"""Preference pairs: JSONL loading with validation, tokenisation, and synthetic pairs for built-in tasks.

The JSONL format is the one preference tools already write (TRL, OpenRLHF, Anthropic HH converted):
one JSON object per line with three non-empty strings::

    {"prompt": "12+34=", "chosen": "46", "rejected": "47"}

Other fields are ignored; blank lines are skipped. ``chosen`` is the answer a person (or a hidden rule)
preferred to ``rejected`` for that ``prompt``. :func:`load_jsonl` reads and checks a file and raises a
:class:`PreferenceDataError` naming the file and line for the first bad record, before any training.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

FIELDS = ("prompt", "chosen", "rejected")


class PreferenceDataError(ValueError):
    """A preference file or record that cannot be used; the message names the line and the fix."""


class PreferencePair(NamedTuple):
    """One comparison: ``chosen`` was preferred to ``rejected`` as an answer to ``prompt``."""

    prompt: str
    chosen: str
    rejected: str


class PairTokens(NamedTuple):
    """Tokenised pairs, right-padded: each sequence is ``prompt + answer`` (the model reads it whole).

    chosen, rejected: [N, L] int32 token ids, padded with the pad id after ``*_len`` tokens.
    chosen_len, rejected_len: [N] int32 number of real tokens (the reward head reads token ``len-1``).
    """

    chosen: Any
    rejected: Any
    chosen_len: Any
    rejected_len: Any

    @property
    def num_pairs(self) -> int:
        return int(self.chosen.shape[0])


# ------------------------------------------------------------------------------------- VALIDATING
def check_pair(
    record: Any,
    *,
    where: str = "record",
    encode: Callable[[str], Sequence[int]] | None = None,
    max_len: int | None = None,
) -> PreferencePair:
    """Check one decoded record and return it as a :class:`PreferencePair`.

    ``where`` names the record in error messages (e.g. ``"prefs.jsonl line 7"``). With ``encode`` (text ->
    token ids) and ``max_len``, ``prompt + chosen`` and ``prompt + rejected`` must each fit ``max_len``
    tokens; an ``encode`` that raises (e.g. a character outside the vocabulary) is reported the same way.
    """
    if not isinstance(record, dict):
        raise PreferenceDataError(
            f"{where}: expected a JSON object with fields {list(FIELDS)}, got {type(record).__name__}"
        )
    missing = [f for f in FIELDS if f not in record]
    if missing:
        raise PreferenceDataError(
            f"{where}: missing field(s) {missing}; every line needs string fields {list(FIELDS)} "
            f"(found {sorted(record)})"
        )
    for f in FIELDS:
        v = record[f]
        if not isinstance(v, str):
            raise PreferenceDataError(f"{where}: field {f!r} must be a string, got {type(v).__name__} {v!r}")
        if not v.strip():
            raise PreferenceDataError(f"{where}: field {f!r} is empty; remove the line or fill in the text")
    pair = PreferencePair(record["prompt"], record["chosen"], record["rejected"])
    if pair.chosen == pair.rejected:
        raise PreferenceDataError(
            f"{where}: 'chosen' and 'rejected' are the same text ({pair.chosen!r}); such a pair teaches "
            "nothing, remove it"
        )
    if encode is not None:
        for f in ("chosen", "rejected"):
            try:
                n = len(encode(pair.prompt)) + len(encode(getattr(pair, f)))
            except Exception as e:  # the tokenizer's own error, with the line added
                raise PreferenceDataError(f"{where}: cannot tokenize field {f!r} or 'prompt': {e}") from e
            if max_len is not None and n > max_len:
                raise PreferenceDataError(
                    f"{where}: prompt + {f} is {n} tokens, longer than the model's max length {max_len}; "
                    "shorten the text, drop the line, or raise the max length"
                )
    return pair


def parse_jsonl(
    lines: Iterable[str],
    *,
    source: str = "<jsonl>",
    encode: Callable[[str], Sequence[int]] | None = None,
    max_len: int | None = None,
) -> list[PreferencePair]:
    """Parse and check JSONL text lines (see the module docstring); line numbers start at 1."""
    pairs = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source} line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise PreferenceDataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        pairs.append(check_pair(record, where=where, encode=encode, max_len=max_len))
    if not pairs:
        raise PreferenceDataError(f"{source}: no preference pairs found (the file is empty)")
    return pairs


def load_jsonl(
    path: str | os.PathLike,
    *,
    encode: Callable[[str], Sequence[int]] | None = None,
    max_len: int | None = None,
) -> list[PreferencePair]:
    """Read preference pairs from a JSONL file, checking every line before returning.

    Raises:
      FileNotFoundError: no such file.
      PreferenceDataError: the first bad line (invalid JSON, missing/non-string/empty field, identical
        chosen and rejected, text the tokenizer rejects, or a sequence longer than ``max_len``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"preference file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        return parse_jsonl(f, source=path, encode=encode, max_len=max_len)


def write_jsonl(pairs: Iterable[PreferencePair], path: str | os.PathLike) -> None:
    """Write pairs in the format :func:`load_jsonl` reads."""
    with open(path, "w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(dict(p._asdict())) + "\n")


# ------------------------------------------------------------------------------------ TOKENISING
def tokenize_pairs(
    pairs: Sequence[PreferencePair],
    encode: Callable[[str], Sequence[int]],
    max_len: int,
    pad_id: int,
) -> PairTokens:
    """Token ids of ``prompt + chosen`` and ``prompt + rejected``, right-padded to ``max_len``.

    Prompt and answer are encoded separately and concatenated, so a tokenizer that adds nothing between
    them sees exactly what a policy produces after the prompt. Raises if a sequence does not fit.
    """
    n = len(pairs)
    out = {f: np.full((n, max_len), pad_id, np.int32) for f in ("chosen", "rejected")}
    lens = {f: np.zeros((n,), np.int32) for f in ("chosen", "rejected")}
    for i, p in enumerate(pairs):
        prompt = list(encode(p.prompt))
        for f in ("chosen", "rejected"):
            ids = prompt + list(encode(getattr(p, f)))
            if len(ids) > max_len:
                raise PreferenceDataError(
                    f"pair {i}: prompt + {f} is {len(ids)} tokens, longer than max length {max_len}"
                )
            if not ids:
                raise PreferenceDataError(f"pair {i}: prompt + {f} encodes to no tokens")
            out[f][i, : len(ids)] = ids
            lens[f][i] = len(ids)
    return PairTokens(out["chosen"], out["rejected"], lens["chosen"], lens["rejected"])
