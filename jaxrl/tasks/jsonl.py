"""Text tasks from JSONL files: one ``{"prompt": ..., "answer": ...}`` object per line, scored by a
verifier (``GRPOConfig(task="jsonl:<file>")``).

Verifiers (``verifier=``):

* ``"number"`` (default): the final number of the completion (:func:`verifiers.extract_number`:
  ``<answer>x</answer>``, ``\\boxed{x}``, ``#### x``, or the last number; commas and units handled)
  equals the reference's final number. The reference may be a GSM8K solution (``... #### 1,234``); a
  completion with no number is "unparsed" (scored 0, counted in ``unparsed_fraction``).
* ``"exact"``: the answer (the ``<answer>`` content if tagged, else the completion) equals the reference
  text up to case and whitespace runs.
* ``"regex"``: the reference is a regular expression that must match somewhere in the answer.

The reference answer is also the demonstration for a supervised warm-up (``warmup_steps > 0``). The
prompt is the user turn; with ``system_prompt`` it gets a system turn, through the tokenizer's chat
template when it has one (Hugging Face tokenizers), else as ``system + "\\n" + prompt``. Held-out
problems: the rows of ``eval_file`` if given, else a fixed 10% of the distinct prompts (at most 200).
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxrl.tasks import verifiers
from jaxrl.tasks.task import Problem, Task
from jaxrl.tasks.tokenizer import CharTokenizer

VERIFIERS = ("number", "exact", "regex")
PREFIX = "jsonl:"
MAX_HELDOUT = 200


def read_rows(path: str, prompt_field: str, answer_field: str) -> list[tuple[str, str]]:
    """``(prompt, answer)`` strings of every non-blank line of ``path``; clear errors for a missing file,
    bad JSON or a missing field (with the line number)."""
    if not os.path.isfile(path):
        raise ValueError(f"JSONL task file {path!r} does not exist (task='jsonl:<path to a .jsonl file>')")
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not a JSON object ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{n}: each line must be a JSON object, got {type(obj).__name__}")
            for field in (prompt_field, answer_field):
                if field not in obj:
                    raise ValueError(
                        f"{path}:{n}: no field {field!r} (fields: {sorted(obj)}); set prompt_field / "
                        f"answer_field to the names your file uses"
                    )
            rows.append((str(obj[prompt_field]), _text(obj[answer_field])))
    if not rows:
        raise ValueError(f"JSONL task file {path!r} has no rows")
    return rows


def _text(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def format_prompt(tokenizer: Any, prompt: str, system_prompt: str = "") -> str:
    """The text the model is given: the chat template's rendering of (system, user) when the tokenizer
    has one (``apply_chat_template``, generation prompt added), else ``system + "\\n" + prompt``."""
    chat = getattr(tokenizer, "apply_chat_template", None)
    if chat is not None and getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": "user", "content": prompt}
        ]
        return chat(messages, tokenize=False, add_generation_prompt=True)
    return f"{system_prompt}\n{prompt}" if system_prompt else prompt


def _grader(verifier: str):
    if verifier == "number":
        return lambda problem, text: verifiers.grade_number(text, problem.answer)
    if verifier == "exact":
        return lambda problem, text: verifiers.exact_match(text, problem.answer)
    if verifier == "regex":
        return lambda problem, text: verifiers.regex_match(text, problem.answer)
    raise ValueError(f"unknown JSONL verifier {verifier!r}; choose one of {VERIFIERS}")


def _problems(
    rows: Sequence[tuple[str, str]], verifier: str, tokenizer: Any, system_prompt: str, where: str
) -> list[Problem]:
    out = []
    for i, (prompt, answer) in enumerate(rows):
        if verifier == "number":
            target = verifiers.extract_number(answer)
            if target is None:
                raise ValueError(
                    f"{where} row {i + 1}: the answer {answer[:80]!r} holds no number for the 'number' "
                    f"verifier; use verifier='exact' or 'regex', or fix the row"
                )
        elif verifier == "regex":
            try:
                target = re.compile(answer)
            except re.error as e:
                raise ValueError(f"{where} row {i + 1}: answer {answer!r} is not a regex ({e})") from None
        else:
            target = answer
        out.append(Problem(format_prompt(tokenizer, prompt, system_prompt), target, answer))
    return out


def char_tokenizer(rows: Sequence[tuple[str, str]], system_prompt: str = "") -> CharTokenizer:
    """A character tokenizer over printable ASCII plus every other character in the data (for the
    built-in transformer, which has no tokenizer of its own)."""
    extra = {c for p, a in rows for c in p + a} | set(system_prompt)
    return CharTokenizer(string.printable[:-2] + "".join(sorted(extra - set(string.printable))))


def jsonl_task(
    path: str,
    *,
    prompt_field: str = "prompt",
    answer_field: str = "answer",
    system_prompt: str = "",
    verifier: str = "number",
    eval_file: str = "",
    max_new_tokens: int | None = None,
    tokenizer: Any = None,
) -> Task:
    """A :class:`Task` from a JSONL file (see the module docstring).

    Args:
      path: training rows. eval_file: held-out rows ('' = hold out 10% of ``path``'s distinct prompts).
      prompt_field / answer_field: the JSON keys of the prompt and the reference answer.
      system_prompt: optional system turn. verifier: ``"number"`` | ``"exact"`` | ``"regex"``.
      max_new_tokens: completion budget (``<eos>`` included); default: the longest reference + 1.
      tokenizer: the model's tokenizer (default: a character tokenizer over the data).
    """
    grade = _grader(verifier)
    rows = read_rows(path, prompt_field, answer_field)
    eval_rows = read_rows(eval_file, prompt_field, answer_field) if eval_file else []
    tok = tokenizer if tokenizer is not None else char_tokenizer(rows + eval_rows, system_prompt)
    train = _problems(rows, verifier, tok, system_prompt, path)
    if eval_file:
        heldout = _problems(eval_rows, verifier, tok, system_prompt, eval_file)
    else:
        distinct = list(dict.fromkeys(p.prompt for p in train))
        if len(distinct) < 2:
            raise ValueError(f"{path}: needs at least 2 distinct prompts to hold some out, or an eval_file")
        order = np.random.default_rng(0).permutation(len(distinct))
        held = {distinct[i] for i in order[: min(MAX_HELDOUT, max(1, len(distinct) // 10))]}
        heldout = list({p.prompt: p for p in train if p.prompt in held}.values())
    held_prompts = {p.prompt for p in heldout}
    train = [p for p in train if p.prompt not in held_prompts]
    if not train:
        raise ValueError(f"{path}: every training prompt is also in the held-out set {eval_file!r}")
    if max_new_tokens is None:
        max_new_tokens = max(len(tok.encode(p.solution)) for p in train + heldout) + 1

    def generate(rng: np.random.Generator) -> Problem:
        return train[int(rng.integers(0, len(train)))]

    return Task(
        name=os.path.splitext(os.path.basename(path))[0],
        tokenizer=tok,
        generate=generate,
        reward=grade,
        max_new_tokens=max_new_tokens,
        heldout=heldout,
    )
