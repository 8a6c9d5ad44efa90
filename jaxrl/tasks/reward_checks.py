"""Checked calls of a task's reward functions: a reward that raises, or returns something that is neither
a finite real number nor ``None`` (the task's "could not parse this completion"), stops training with
:class:`RewardError` naming the task, the prompt and the completion (instead of a ``TypeError`` deep in
NumPy, or a string silently cast to a float)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxrl import errors, sandbox


class RewardError(errors.UserFunctionError):
    """A task's reward function raised or returned a non-number."""


def _short(text: Any, limit: int = 200) -> str:
    r = repr(text)
    return r if len(r) <= limit else r[:limit] + "..."


def as_reward(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` if it is not a real number (strings, bools, None,
    arrays of more than one element, NaN and infinities are not rewards)."""
    if isinstance(value, np.ndarray | np.generic) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _failure(task: str, what: str, problem: Any, text: str) -> RewardError:
    prompt = getattr(problem, "prompt", problem)
    return RewardError(
        f"Task {task!r}: the reward function {what} for prompt {_short(prompt)} and completion "
        f"{_short(text)}; a reward must be a finite real number (int or float), or None for a completion "
        "that could not be parsed"
    )


def score_each(
    task: str, reward: Callable[[Any, str], Any], problems: Sequence[Any], texts: Sequence[str]
) -> list[float | None]:
    """``[reward(p, t) for ...]`` as floats (``None`` kept: unparsed), checked."""
    out: list[float | None] = []
    for p, t in zip(problems, texts, strict=True):
        try:
            value = reward(p, t)
        except sandbox.SandboxUnavailable:  # the machine, not the function: say what to install
            raise
        except Exception as e:
            raise _failure(task, f"raised {type(e).__name__}: {e}", p, t) from e
        r = None if value is None else as_reward(value)
        if r is None and value is not None:
            raise _failure(task, f"returned {_short(value)} ({type(value).__name__})", p, t)
        out.append(r)
    return out


def score_batch(
    task: str,
    batch_reward: Callable[[Sequence[Any], Sequence[str]], Sequence[Any]],
    problems: Sequence[Any],
    texts: Sequence[str],
) -> list[float | None]:
    """``batch_reward(problems, texts)`` as ``N`` floats (``None`` kept: unparsed), checked."""
    try:
        values = batch_reward(problems, texts)
    except (errors.UserFunctionError, sandbox.SandboxUnavailable):
        raise
    except Exception as e:
        raise RewardError(
            f"Task {task!r}: the batched reward function raised {type(e).__name__}: {e} on a batch of "
            f"{len(problems)} completions (first prompt {_short(getattr(problems[0], 'prompt', None))})"
        ) from e
    try:
        values = list(values)
    except TypeError:
        raise RewardError(
            f"Task {task!r}: the batched reward function returned {_short(values)}; expected a sequence "
            f"of {len(problems)} numbers"
        ) from None
    if len(values) != len(problems):
        raise RewardError(
            f"Task {task!r}: the batched reward function returned {len(values)} rewards for "
            f"{len(problems)} completions"
        )
    out: list[float | None] = []
    for v, p, t in zip(values, problems, texts, strict=True):
        r = None if v is None else as_reward(v)
        if r is None and v is not None:
            raise _failure(task, f"returned {_short(v)} ({type(v).__name__})", p, t)
        out.append(r)
    return out
