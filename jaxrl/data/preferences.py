"""Preference pairs: JSONL loading with validation, tokenisation, and synthetic pairs for built-in tasks.

The JSONL format is the one preference tools already write (TRL, OpenRLHF, Anthropic HH converted):
one JSON object per line with three non-empty strings::

    {"prompt": "12+34=", "chosen": "46", "rejected": "47"}

Other fields are ignored; blank lines are skipped. ``chosen`` is the answer a person (or a hidden rule)
preferred to ``rejected`` for that ``prompt``. :func:`load_jsonl` reads and checks a file and raises a
:class:`PreferenceDataError` naming the file and line for the first bad record, before any training.

A reward model reads ``<bos> prompt answer <eos>`` (exactly what a policy writes after its prompt, with
the end token), so the length check counts those two special tokens too. A tokenizer is anything with
``encode(text, *, bos=False, eos=False) -> list[int]`` and ``pad_id`` (e.g. ``jaxrl.CharTokenizer``).

:func:`synthetic_pairs` makes pairs for the built-in GRPO tasks from a hidden rule, so reward models can
be trained and tested offline (see its docstring for the rules).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

FIELDS = ("prompt", "chosen", "rejected")


class PreferenceDataError(ValueError):
    """A preference file or record that cannot be used; the message names the line and the fix."""


class PreferencePair(NamedTuple):
    """One comparison: ``chosen`` was preferred to ``rejected`` as an answer to ``prompt``."""

    prompt: str
    chosen: str
    rejected: str


class Tokenizer(Protocol):
    pad_id: int

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]: ...


class PairTokens(NamedTuple):
    """Tokenised pairs, right-padded: each row is ``<bos> prompt answer <eos>``, then ``<pad>``.

    chosen, rejected: [N, L] int32 token ids, padded with the pad id after ``*_len`` tokens.
    chosen_len, rejected_len: [N] int32 number of real tokens (the reward head reads token ``len-1``).
    prompt_len: [N] int32 tokens of ``<bos> prompt`` (the answer starts there, in both rows).
    """

    chosen: Any
    rejected: Any
    chosen_len: Any
    rejected_len: Any
    prompt_len: Any

    @property
    def num_pairs(self) -> int:
        return int(self.chosen.shape[0])


# ------------------------------------------------------------------------------------- VALIDATING
def sequence_ids(tokenizer: Tokenizer, prompt: str, answer: str) -> list[int]:
    """``<bos> prompt answer <eos>`` token ids (prompt and answer encoded separately, as a policy
    writes them)."""
    return tokenizer.encode(prompt, bos=True) + tokenizer.encode(answer, eos=True)


def check_pair(
    record: Any,
    *,
    where: str = "record",
    tokenizer: Tokenizer | None = None,
    max_len: int | None = None,
) -> PreferencePair:
    """Check one decoded record and return it as a :class:`PreferencePair`.

    ``where`` names the record in error messages (e.g. ``"prefs.jsonl line 7"``). With a ``tokenizer``,
    every text must encode (e.g. no character outside its alphabet), and with ``max_len`` too,
    ``<bos> prompt chosen <eos>`` and ``<bos> prompt rejected <eos>`` must each fit ``max_len`` tokens.
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
    if tokenizer is not None:
        for f in ("chosen", "rejected"):
            try:
                n = len(sequence_ids(tokenizer, pair.prompt, getattr(pair, f)))
            except Exception as e:  # the tokenizer's own error, with the line added
                raise PreferenceDataError(f"{where}: cannot tokenize 'prompt' or {f!r}: {e}") from e
            if max_len is not None and n > max_len:
                raise PreferenceDataError(
                    f"{where}: <bos> prompt {f} <eos> is {n} tokens, longer than the model's max length "
                    f"{max_len}; shorten the text, drop the line, or raise the max length"
                )
    return pair


def parse_jsonl(
    lines: Iterable[str],
    *,
    source: str = "<jsonl>",
    tokenizer: Tokenizer | None = None,
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
        pairs.append(check_pair(record, where=where, tokenizer=tokenizer, max_len=max_len))
    if not pairs:
        raise PreferenceDataError(f"{source}: no preference pairs found (the file is empty)")
    return pairs


def load_jsonl(
    path: str | os.PathLike,
    *,
    tokenizer: Tokenizer | None = None,
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
        return parse_jsonl(f, source=path, tokenizer=tokenizer, max_len=max_len)


def write_jsonl(pairs: Iterable[PreferencePair], path: str | os.PathLike) -> None:
    """Write pairs in the format :func:`load_jsonl` reads."""
    with open(path, "w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(dict(p._asdict())) + "\n")


# ------------------------------------------------------------------------------------ TOKENISING
def tokenize_pairs(
    pairs: Sequence[PreferencePair], tokenizer: Tokenizer, width: int | None = None
) -> PairTokens:
    """``<bos> prompt answer <eos>`` ids of both answers of every pair, right-padded to ``width``
    (default: the longest sequence). Raises if a sequence does not fit ``width``."""
    seqs = [
        (sequence_ids(tokenizer, p.prompt, p.chosen), sequence_ids(tokenizer, p.prompt, p.rejected))
        for p in pairs
    ]
    longest = max((max(len(c), len(r)) for c, r in seqs), default=1)
    width = longest if width is None else width
    if longest > width:
        raise PreferenceDataError(f"a pair encodes to {longest} tokens, longer than width {width}")
    n = len(pairs)
    ids = np.full((2, n, width), tokenizer.pad_id, np.int32)
    lens = np.zeros((2, n), np.int32)
    for i, pair_ids in enumerate(seqs):
        for j, s in enumerate(pair_ids):
            ids[j, i, : len(s)] = s
            lens[j, i] = len(s)
    prompt_len = np.array([len(tokenizer.encode(p.prompt, bos=True)) for p in pairs], np.int32)
    return PairTokens(ids[0], ids[1], lens[0], lens[1], prompt_len)


# ------------------------------------------------------------------------------------- SYNTHETIC
# Hidden rules: how good an answer is for a problem (higher is better; None: not comparable).
MALFORMED = -1e9  # score of an answer that is not a canonical number (ranked below every number)


def numeric_score(answer: int | float, text: str) -> float:
    """Arithmetic rule: ``-|value - answer|`` for a canonical decimal (``"42"``, not ``"042"``),
    else :data:`MALFORMED`. So the correct answer beats every wrong one, a closer wrong answer beats a
    farther one, and any number beats text that is not one."""
    if not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        return MALFORMED
    return -abs(int(text) - answer)


def _near_tie(score_a: float, score_b: float) -> bool:
    """Two wrong numbers about equally far off (neither at least twice as far as the other): like labellers
    who mark near-ties as ties, the synthetic rule does not compare them."""
    lo, hi = min(score_a, score_b), max(score_a, score_b)
    return MALFORMED < lo and hi < 0 and lo > 2 * hi


def _numeric_candidate(rng: random.Random, answer: int, alphabet: str, max_chars: int) -> str:
    """One candidate answer for an arithmetic problem: correct (20%), near miss (25%), tens slip (10%),
    one digit changed (15%), far off (20%), or malformed (10%: leading zero, operator character, too long)."""
    s = str(answer)
    u = rng.random()
    if u < 0.2:
        return s
    if u < 0.45:
        return str(abs(answer + rng.choice((-1, 1)) * rng.randint(1, 9)))
    if u < 0.55:
        return str(abs(answer + rng.choice((-1, 1)) * 10 * rng.randint(1, 3)))
    if u < 0.7:
        i = rng.randrange(len(s))
        return s[:i] + str(rng.randrange(10)) + s[i + 1 :]
    if u < 0.9:
        return str(rng.randrange(10 ** max(len(s), 2)))
    symbols = [c for c in alphabet if not c.isdigit()]
    options = ["0" + s, s + "0" * max_chars]
    if symbols:
        options.append(s[: max(len(s) - 1, 1)] + rng.choice(symbols))
    return rng.choice(options)[: max_chars + 1]


def synthetic_pairs(
    task: Any, num_pairs: int, *, seed: int = 0, heldout: bool = False
) -> list[PreferencePair]:
    """``num_pairs`` preference pairs for a GRPO task, labelled by a hidden rule.

    Arithmetic tasks (a task whose problems have an ``int`` answer, e.g. the built-in ``"addition"``
    and ``"multiplication"``): candidate answers are the correct result, near misses, digit slips, far
    values and malformed text, ranked by :func:`numeric_score` (correct > closer > farther > malformed;
    answers may be one character longer than the task's completion budget, which a policy would leave
    unfinished). Like labellers who mark near-ties as ties, two wrong numbers are only compared when one
    is at least twice as far off as the other (``146`` vs ``152`` for 148 is skipped, ``147`` vs ``160``
    kept). Any other task (``"pyfunc"``, user tasks with a ``solution``): candidates are the
    solution and character edits of it, ranked by the task's own reward; pairs of equal reward are
    skipped. Prompts come from the task's training problems, or its held-out problems with
    ``heldout=True`` (to measure a reward model on prompts it never saw).
    """
    from jaxrl import tasks as task_lib  # lazily: the package imports numpy-heavy graders

    task = task_lib.make_task(task)
    if num_pairs <= 0:
        raise ValueError(f"num_pairs must be positive, got {num_pairs}")
    rng = np.random.default_rng(seed)
    fast = random.Random(seed)  # per-candidate draws (numpy's per-call overhead is 10x Python's here)
    max_chars = task.max_new_tokens - 1  # the answer text a finished completion can hold
    held = task.heldout_problems()
    out: list[PreferencePair] = []
    for _round in range(20):
        need = num_pairs - len(out)
        if need <= 0:
            break
        n = 2 * need + 8  # draw extra: pairs of equal reward are dropped
        problems = (
            [held[i] for i in rng.integers(0, len(held), n)] if heldout else task.sample_problems(rng, n)
        )
        numeric = all(isinstance(p.answer, int | np.integer) for p in problems)
        if numeric:
            cand = [
                [_numeric_candidate(fast, int(p.answer), task.tokenizer.chars, max_chars) for _ in range(2)]
                for p in problems
            ]
            scores = np.array(
                [[numeric_score(p.answer, t) for t in c] for p, c in zip(problems, cand, strict=True)]
            )
        else:  # the task's own reward, one batch (a sandboxed verifier runs its programs in parallel)
            cand = [
                [_edited_solution(fast, p.solution, task.tokenizer.chars, max_chars) for _ in range(2)]
                for p in problems
            ]
            flat_p = [p for p in problems for _ in range(2)]
            flat_t = [t for c in cand for t in c]
            scores = task.score(flat_p, flat_t, np.ones(len(flat_t), bool)).reshape(n, 2)
        for p, (a, b), (sa, sb) in zip(problems, cand, scores, strict=True):
            if numeric and _near_tie(sa, sb):
                continue
            if sa != sb and a and b and len(out) < num_pairs:
                out.append(PreferencePair(p.prompt, a, b) if sa > sb else PreferencePair(p.prompt, b, a))
    if len(out) < num_pairs:
        raise ValueError(f"task {task.name!r}: could not make {num_pairs} pairs with distinct rewards")
    return out


def label_samples(
    task: Any,
    problems: Sequence[Any],
    texts: Sequence[str],
    group_size: int,
    *,
    pairs_per_prompt: int = 3,
    seed: int = 0,
) -> list[PreferencePair]:
    """Preference pairs among a policy's own answers, labelled by the task's hidden rule: the usual RLHF
    recipe (sample from the supervised policy, have labellers compare its answers), offline.

    ``problems [P]`` and ``texts [P * group_size]`` (the ``group_size`` answers to problem ``i`` at rows
    ``i * group_size ...``): for each problem, every two distinct answers that the rule ranks apart
    (:func:`numeric_score` for arithmetic tasks, with :func:`synthetic_pairs`' near-tie rule; else the
    task's reward) become a pair, at most ``pairs_per_prompt`` per problem (a random choice with
    ``seed``). Answers the task's tokenizer cannot encode (e.g. a sampled special token) are skipped.
    A reward model trained on these (mixed with :func:`synthetic_pairs`) is right more often where the
    policy actually errs than one trained on synthetic candidates alone (benchmarks/rm_grpo_demo.py).
    """
    from jaxrl import tasks as task_lib

    task = task_lib.make_task(task)
    if len(texts) != len(problems) * group_size:
        raise ValueError(
            f"label_samples: {len(texts)} answers for {len(problems)} problems x group_size {group_size}"
        )
    alphabet = set(task.tokenizer.chars)
    rng = random.Random(seed)
    out: list[PreferencePair] = []
    for i, p in enumerate(problems):
        answers = sorted(
            {t for t in texts[i * group_size : (i + 1) * group_size] if t and set(t) <= alphabet}
        )
        if len(answers) < 2:
            continue
        numeric = isinstance(p.answer, int | np.integer)
        if numeric:
            score = {t: numeric_score(int(p.answer), t) for t in answers}
        else:
            rewards = task.score([p] * len(answers), answers, np.ones(len(answers), bool))
            score = dict(zip(answers, (float(r) for r in rewards), strict=True))
        pairs = []
        for a in answers:
            for b in answers:
                sa, sb = score[a], score[b]
                if sa <= sb:
                    continue
                if numeric and _near_tie(sa, sb):
                    continue
                pairs.append(PreferencePair(p.prompt, a, b))
        rng.shuffle(pairs)
        out += pairs[:pairs_per_prompt]
    return out


def _edited_solution(rng: random.Random, solution: str | None, alphabet: str, max_chars: int) -> str:
    """The solution (40%) or it with 1-3 random character substitutions, deletions or insertions."""
    if solution is None:
        raise ValueError("synthetic pairs for a non-arithmetic task need Problem.solution")
    if rng.random() < 0.4:
        return solution
    s = list(solution)
    for _ in range(rng.randint(1, 3)):
        op, i, c = rng.randrange(3), rng.randrange(max(len(s), 1)), rng.choice(alphabet)
        if op == 0 and s:
            s[i] = c
        elif op == 1 and len(s) > 1:
            del s[i]
        else:
            s.insert(i, c)
    return "".join(s)[:max_chars]
