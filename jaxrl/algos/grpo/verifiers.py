"""Automated graders for GRPO: a number grader for math answers, a format reward, and a sandboxed
Python-code verifier.

Every grader maps a completion's text to a float reward on the host (between jitted steps).

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
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_MARKED = [
    re.compile(r"\\boxed\{\s*(" + _NUMBER + r")\s*\}"),
    re.compile(r"####\s*(" + _NUMBER + r")"),
    re.compile(r"answer(?: is|:)\s*(" + _NUMBER + r")", re.IGNORECASE),
]


def extract_number(text: str) -> float | None:
    """The answer in ``text``: ``\\boxed{x}``, ``#### x`` or ``answer: x`` if present, else the last
    number; ``None`` if there is none. Thousands separators (``1,234``) are removed first."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    for pattern in _MARKED:
        m = pattern.findall(text)
        if m:
            return float(m[-1])
    found = re.findall(_NUMBER, text)
    return float(found[-1]) if found else None


def number_reward(text: str, target: float, *, exact: bool = False, tol: float = 1e-6) -> float:
    """1.0 if the answer in ``text`` equals ``target`` (within ``tol``), else 0.0.

    ``exact=True``: the whole text must be the canonical decimal of ``target`` (``"42"``, not ``"042"``,
    ``"42.0"`` or ``"x=42"``), as a strict format for small models.
    """
    if exact:
        canonical = str(int(target)) if float(target).is_integer() else repr(float(target))
        return float(text == canonical)
    value = extract_number(text)
    return float(value is not None and abs(value - float(target)) <= tol)


def format_reward(text: str, pattern: str | re.Pattern) -> float:
    """1.0 if the whole completion matches the regular expression ``pattern``, else 0.0."""
    return float(re.fullmatch(pattern, text, flags=re.DOTALL) is not None)


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
