"""Automated graders for GRPO: a number grader for math answers (GSM8K ``#### x``, ``\\boxed{x}``, the
last number), exact and regex matching, format rewards (``<think>...</think><answer>...</answer>``),
and a sandboxed Python-code verifier.

Every grader maps a completion's text to a float reward on the host (between jitted steps); the text
graders never raise, whatever the completion.

The Python verifier runs generated code with :func:`jaxrl.sandbox.run_python`: isolated by the operating
system (bubblewrap namespaces, a read-only root, seccomp, rlimits); test cases are ``(expression,
expected)`` pairs whose values the PARENT compares with ``expected``, which the child never sees.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from jaxrl import sandbox

# ------------------------------------------------------------------------------------ NUMBERS
# Text graders never raise on a completion: whatever the model wrote, they return a score, or ``None``
# ("could not parse": no number where one was expected), which the task scores 0 and counts.
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_FRAC = re.compile(r"\\d?frac\{\s*(" + _NUMBER + r")\s*\}\{\s*(" + _NUMBER + r")\s*\}")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_HASHES = re.compile(r"####([^\n]*)")
_ANSWER_IS = re.compile(r"answer(?: is|:)([^\n]*)", re.IGNORECASE)


def _first_number(text: str) -> float | None:
    frac = _FRAC.search(text)
    if frac and not _NUMBER_RE.search(text[: frac.start()]):
        num, den = float(frac.group(1)), float(frac.group(2))
        return num / den if den != 0 else None
    m = _NUMBER_RE.search(text)
    return float(m.group()) if m else None


def extract_number(text: str) -> float | None:
    """The answer in ``text``, or ``None`` if it holds no number. Where the answer is marked, the first
    number of the last marked span: ``<answer>x</answer>``, ``\\boxed{x}`` (also ``\\frac{a}{b}``),
    ``#### x`` (GSM8K), ``answer: x`` / ``answer is x``; otherwise the last number of the text. Thousands
    separators (``1,234``) are removed first; units and currency around the number are ignored
    (``$1,234.50``, ``12 km``, ``50%``). Never raises: any string (or non-string) gives a float or None."""
    if not isinstance(text, str):
        return None
    text = _THOUSANDS.sub("", text)
    for pattern in (_ANSWER_TAG, _BOXED, _HASHES, _ANSWER_IS):
        spans = pattern.findall(text)
        if spans:
            value = _first_number(spans[-1])
            if value is not None:
                return value
    found = _NUMBER_RE.findall(text)
    return float(found[-1]) if found else None


def grade_number(text: str, target: float, *, tol: float = 1e-6) -> float | None:
    """1.0 if the answer in ``text`` (:func:`extract_number`) equals ``target`` within ``tol`` (absolute,
    or relative for large targets), 0.0 if it differs, ``None`` if ``text`` holds no number."""
    value = extract_number(text)
    if value is None:
        return None
    target = float(target)
    return float(abs(value - target) <= max(tol, tol * abs(target)))


def number_reward(text: str, target: float, *, exact: bool = False, tol: float = 1e-6) -> float:
    """1.0 if the answer in ``text`` equals ``target`` (within ``tol``), else 0.0.

    ``exact=True``: the whole text must be the canonical decimal of ``target`` (``"42"``, not ``"042"``,
    ``"42.0"`` or ``"x=42"``), as a strict format for small models.
    """
    if exact:
        canonical = str(int(target)) if float(target).is_integer() else repr(float(target))
        return float(text == canonical)
    return grade_number(text, target, tol=tol) or 0.0


# ------------------------------------------------------------------------------ TEXT MATCHING
def answer_span(text: str) -> str:
    """The content of the last ``<answer>...</answer>`` in ``text`` if there is one, else ``text``."""
    if not isinstance(text, str):
        return ""
    spans = _ANSWER_TAG.findall(text)
    return spans[-1] if spans else text


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def exact_match(text: str, target: str) -> float:
    """1.0 if the answer (:func:`answer_span`) equals ``target`` up to case and runs of whitespace."""
    return float(_normal(answer_span(text)) == _normal(str(target)))


def regex_match(text: str, pattern: str | re.Pattern) -> float:
    """1.0 if the regular expression ``pattern`` matches somewhere in the answer (:func:`answer_span`)."""
    return float(re.search(pattern, answer_span(text)) is not None)


def format_reward(text: str, pattern: str | re.Pattern) -> float:
    """1.0 if the whole completion matches the regular expression ``pattern``, else 0.0."""
    if not isinstance(text, str):
        return 0.0
    return float(re.fullmatch(pattern, text, flags=re.DOTALL) is not None)


_NO_TAG = r"(?:(?!</?think>|</?answer>).)*"
THINK_ANSWER = rf"\s*<think>{_NO_TAG}</think>\s*<answer>{_NO_TAG}</answer>\s*"


def think_answer_format(text: str) -> float:
    """1.0 if the completion is ``<think>...</think><answer>...</answer>`` (whitespace around the
    parts allowed, no nested or repeated tags), else 0.0 (DeepSeek-R1's format reward)."""
    return format_reward(text, THINK_ANSWER)


# ----------------------------------------------------------------------------- PYTHON SANDBOX
# The runner lives in jaxrl.sandbox (OS-level isolation); these names stay importable from here.
SandboxLimits = sandbox.SandboxLimits
SandboxUnavailable = sandbox.SandboxUnavailable
ExecResult = sandbox.ExecResult
run_python = sandbox.run_python
run_python_batch = sandbox.run_python_batch
_DEFAULT_LIMITS = SandboxLimits()


def code_reward(
    source: str, tests: Sequence[tuple[str, Any]], *, limits: SandboxLimits = _DEFAULT_LIMITS
) -> float:
    """Fraction of ``tests`` passed by ``source`` in the sandbox (0.0 if it fails to run)."""
    return run_python(source, tests, limits=limits).fraction
