"""Reward sources for GRPO: what turns a batch of sampled completions into rewards ``[N]``.

A reward source is any ``callable(RewardBatch) -> array [N]`` (host side, between jitted steps).
``GRPOConfig.reward`` selects one:

* ``"task"``: the task's own verifier (``Task.reward`` / ``Task.batch_reward``);
* ``"format:<regex>"``: 1 if the completion (finished with ``<eos>``) fully matches the regex;
* ``"think_answer"``: 1 if the completion is ``<think>...</think><answer>...</answer>`` (R1's format);
* ``"<name>:<arg>"``: a source registered with :func:`register_reward_source` (e.g. a reward
  model, ``"rm:<run_dir>"``), built once as ``factory(arg, task)``;
* ``"0.9*task + 0.1*format:\\d+"``: a weighted sum of the above (terms separated by ``" + "``);
* a Python callable taking a :class:`RewardBatch`.

The trainer always also scores with the task's verifier (``true_reward`` in the metrics), so a learned
reward's divergence from the true score is visible.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxrl.tasks import verifiers
from jaxrl.tasks.task import Problem, Task


class RewardBatch(NamedTuple):
    """N sampled completions (G per prompt, prompt-major), host arrays."""

    problems: Sequence[Problem]  # [N] the problem each completion answers
    texts: Sequence[str]  # [N] completion text before <eos>
    finished: np.ndarray  # [N] bool: the completion ended with <eos>
    tokens: np.ndarray  # [N, L] int32 <bos> prompt completion <pad>..., right-padded
    prompt_len: np.ndarray  # [N] int32 prompt tokens (with <bos>)
    completion_mask: np.ndarray  # [N, L] float32 1 on completion tokens (<eos> included)


RewardFn = Callable[[RewardBatch], np.ndarray]

#: sources named without an argument (``"think_answer"``)
ARGLESS_SOURCES = ("think_answer",)

#: ``name -> factory(arg, task) -> RewardFn`` for ``"name:arg"`` specs.
REWARD_SOURCES: dict[str, Callable[[str, Task], RewardFn]] = {}


def register_reward_source(name: str, factory: Callable[[str, Task], RewardFn]) -> None:
    """Make ``GRPOConfig(reward="name:arg")`` use ``factory(arg, task)`` (called once per run)."""
    REWARD_SOURCES[name] = factory


def task_reward(task: Task) -> RewardFn:
    """The task's verifier as a reward source."""
    return lambda b: task.score(b.problems, b.texts, b.finished)


def format_source(pattern: str, task: Task) -> RewardFn:
    def reward(b: RewardBatch) -> np.ndarray:
        r = [
            verifiers.format_reward(t, pattern) if f else 0.0
            for t, f in zip(b.texts, b.finished, strict=True)
        ]
        return np.asarray(r, np.float32)

    return reward


register_reward_source("format", format_source)
register_reward_source("think_answer", lambda _arg, task: format_source(verifiers.THINK_ANSWER, task))


def make_reward(spec: Any, task: Task) -> RewardFn:
    """The reward source ``spec`` names (see the module docstring)."""
    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"GRPOConfig.reward must be a string or a callable, got {type(spec).__name__}")
    terms = [t.strip() for t in spec.split(" + ")]
    if len(terms) > 1:
        parts = [_weighted(t, task) for t in terms]
        return lambda b: np.sum([w * np.asarray(fn(b), np.float32) for w, fn in parts], axis=0)
    w, fn = _weighted(spec.strip(), task)
    return fn if w == 1.0 else (lambda b: w * np.asarray(fn(b), np.float32))


def _weighted(term: str, task: Task) -> tuple[float, RewardFn]:
    weight = 1.0
    head, star, rest = term.partition("*")
    if star:
        try:
            weight, term = float(head), rest.strip()
        except ValueError:
            pass  # a '*' inside the source's argument, not a weight
    if term == "task":
        return weight, task_reward(task)
    name, colon, arg = term.partition(":")
    if not colon and name not in ARGLESS_SOURCES:
        raise ValueError(_unknown(term))
    # Sources owned by other algorithms (the reward model's "rm:") are registered when their module is
    # imported; importing this module imports the jaxrl.algos package, which imports every algorithm.
    if name not in REWARD_SOURCES:
        raise ValueError(_unknown(term))
    return weight, _build(name, arg, task)


@functools.lru_cache(maxsize=16)
def _build(name: str, arg: str, task: Task) -> RewardFn:
    """Built once per (source, task): validation and training share e.g. a loaded reward model."""
    return REWARD_SOURCES[name](arg, task)


def _unknown(term: str) -> str:
    names = sorted(["task", *(n if n in ARGLESS_SOURCES else f"{n}:<arg>" for n in REWARD_SOURCES)])
    return (
        f"unknown GRPO reward source {term!r}; use one of {names}, a weighted sum 'w*a + w*b', or a callable"
    )
