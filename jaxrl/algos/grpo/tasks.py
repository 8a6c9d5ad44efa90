"""Tasks for GRPO: a task is (prompt generator, tokenizer, reward function).

A user task in a few lines (see also ``tests/algos/test_grpo_task_api.py``)::

    def generate(rng):                       # np.random.Generator -> Problem
        s = "".join(rng.choice(list("abc"), size=3))
        return jaxrl.Problem(prompt=s + ">", answer=s[::-1], solution=s[::-1])

    reverse = jaxrl.Task(
        name="reverse",
        tokenizer=jaxrl.CharTokenizer("abc>"),
        generate=generate,
        reward=lambda problem, text: float(text == problem.answer),
        max_new_tokens=4,
        num_heldout=8,  # of the 27 possible prompts
    )
    state, metrics = jaxrl.train(jaxrl.GRPOConfig(task=reverse), key)

``solution`` (a correct completion, without ``<eos>``) is only needed for the supervised warm-up.
A completion that does not end with ``<eos>`` within ``max_new_tokens`` gets ``unfinished_reward``.
Held-out prompts (for greedy accuracy) are ``heldout`` if given, else ``num_heldout`` distinct
problems drawn with ``heldout_seed``; training prompts never include a held-out prompt.

Built in: ``"addition"`` (the TRL peer's task: ``a+b=`` with a, b in [0, 99], exact answer),
``"multiplication"`` (``a*b=``, a in [0, 99], b in [0, 9]), and ``"pyfunc"`` (infer a one-line
Python function from input/output examples; scored by running it in the sandbox).
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxrl.algos.grpo import reward_checks, verifiers
from jaxrl.algos.grpo.tokenizer import CharTokenizer


@dataclasses.dataclass(frozen=True)
class Problem:
    """One prompt and what its reward function needs."""

    prompt: str  # text after <bos>, before the completion
    answer: Any = None  # what ``reward`` checks against (a number, test cases, ...)
    solution: str | None = None  # a correct completion, for the supervised warm-up


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A verifiable single-turn task."""

    name: str
    tokenizer: CharTokenizer
    generate: Callable[[np.random.Generator], Problem]  # a random training problem
    reward: Callable[[Problem, str], float]  # (problem, completion text before <eos>) -> reward
    max_new_tokens: int  # completion budget, <eos> included
    heldout: Sequence[Problem] | None = None  # fixed held-out problems (default: drawn, see below)
    num_heldout: int = 200
    heldout_seed: int = 1234
    unfinished_reward: float = 0.0  # reward of a completion without <eos>
    success_threshold: float = 1.0  # reward >= this counts as correct (held-out accuracy)
    #: optional batched reward: (problems, texts) -> rewards; used instead of ``reward`` when given
    #: (e.g. the Python verifier runs a batch of programs in parallel).
    batch_reward: Callable[[Sequence[Problem], Sequence[str]], Sequence[float]] | None = None

    def __post_init__(self):
        if self.max_new_tokens <= 0:
            raise ValueError(
                f"Task {self.name!r}: max_new_tokens must be positive, got {self.max_new_tokens}"
            )

    def heldout_problems(self) -> list[Problem]:
        """The fixed held-out problems (same every call)."""
        cached = _HELDOUT_CACHE.get(id(self))
        if cached is not None and cached[0] is self:
            return cached[1]
        if self.heldout is not None:
            problems = list(self.heldout)
        else:
            rng = np.random.default_rng(self.heldout_seed)
            seen: dict[str, Problem] = {}
            for _ in range(50 * self.num_heldout):
                p = self.generate(rng)
                seen.setdefault(p.prompt, p)
                if len(seen) == self.num_heldout:
                    break
            problems = list(seen.values())
        _HELDOUT_CACHE[id(self)] = (self, problems)
        return problems

    def sample_problems(self, rng: np.random.Generator, n: int) -> list[Problem]:
        """``n`` training problems; prompts of held-out problems are redrawn."""
        held = {p.prompt for p in self.heldout_problems()}
        out = []
        for _ in range(n):
            for _attempt in range(1000):
                p = self.generate(rng)
                if p.prompt not in held:
                    break
            else:
                raise ValueError(
                    f"Task {self.name!r}: the generator only produces held-out prompts (1000 draws in a "
                    f"row; {len(held)} prompts are held out): lower num_heldout (now {self.num_heldout}) "
                    "or let the generator produce more distinct prompts"
                )
            out.append(p)
        return out

    def score(
        self, problems: Sequence[Problem], texts: Sequence[str], finished: Sequence[bool]
    ) -> np.ndarray:
        """Rewards ``[N]`` of completions (``finished``: ended with <eos>)."""
        if self.batch_reward is not None:
            r = reward_checks.score_batch(self.name, self.batch_reward, problems, texts)
        else:
            r = reward_checks.score_each(self.name, self.reward, problems, texts)
        return np.where(np.asarray(finished, bool), r, np.float32(self.unfinished_reward))


_HELDOUT_CACHE: dict[int, tuple[Task, list[Problem]]] = {}


# ------------------------------------------------------------------------------------ BUILT-IN
def _arith(op: str, fn: Callable[[int, int], int], b_max: int) -> Callable[[np.random.Generator], Problem]:
    def generate(rng: np.random.Generator) -> Problem:
        a, b = int(rng.integers(0, 100)), int(rng.integers(0, b_max + 1))
        return Problem(prompt=f"{a}{op}{b}=", answer=fn(a, b), solution=str(fn(a, b)))

    return generate


def _exact_number(problem: Problem, text: str) -> float:
    return verifiers.number_reward(text, problem.answer, exact=True)


def addition() -> Task:
    """``a+b=`` -> ``str(a+b)``, a, b in [0, 99]; the held-out set is the TRL peer's 200 pairs."""
    pairs = [(a, b) for a in range(100) for b in range(100)]
    random.Random(1234).shuffle(pairs)  # the same split as /work/shared/tools/trl_grpo_bench.py
    heldout = [Problem(f"{a}+{b}=", a + b, str(a + b)) for a, b in pairs[:200]]
    return Task(
        name="addition",
        tokenizer=CharTokenizer("0123456789+="),
        generate=_arith("+", lambda a, b: a + b, 99),
        reward=_exact_number,
        max_new_tokens=4,  # "198" + <eos>
        heldout=heldout,
    )


def multiplication() -> Task:
    """``a*b=`` -> ``str(a*b)``, a in [0, 99], b in [0, 9]."""
    return Task(
        name="multiplication",
        tokenizer=CharTokenizer("0123456789*="),
        generate=_arith("*", lambda a, b: a * b, 9),
        reward=_exact_number,
        max_new_tokens=4,  # "891" + <eos>
    )


_PYFUNC_OPS = ("+", "-", "*")


def _pyfunc_generate(rng: np.random.Generator) -> Problem:
    """f(x) = x <op> c from three examples; answer = hidden test cases on other inputs."""
    op, c = _PYFUNC_OPS[int(rng.integers(0, 3))], int(rng.integers(1, 10))
    f = {"+": lambda x: x + c, "-": lambda x: x - c, "*": lambda x: x * c}[op]
    shown = sorted(int(x) for x in rng.choice(10, size=2, replace=False))
    prompt = ";".join(f"f({x})={f(x)}" for x in shown) + ";"
    tests = tuple((f"f({x})", f(x)) for x in (0, 7, 11, 23))
    return Problem(prompt=prompt, answer=tests, solution=f"f=lambda x:x{op}{c}")


def _pyfunc_batch_reward(problems: Sequence[Problem], texts: Sequence[str]) -> list[float]:
    results = verifiers.run_python_batch([(t, p.answer) for p, t in zip(problems, texts, strict=True)])
    return [r.fraction for r in results]


def pyfunc() -> Task:
    """Write ``f=lambda x:...`` matching two examples (``f(2)=5;f(7)=10;``); reward = fraction of
    four hidden test cases the code passes when run in the Python sandbox."""
    return Task(
        name="pyfunc",
        tokenizer=CharTokenizer("0123456789+-*=;:()fxlambd "),
        generate=_pyfunc_generate,
        reward=lambda p, t: verifiers.code_reward(t, p.answer),
        batch_reward=_pyfunc_batch_reward,
        max_new_tokens=15,  # "f=lambda x:x*9" + <eos>
        num_heldout=64,
    )


TASKS: dict[str, Callable[[], Task]] = {
    "addition": addition,
    "multiplication": multiplication,
    "pyfunc": pyfunc,
}


def register_task(name: str, factory: Callable[[], Task]) -> None:
    """Make ``GRPOConfig(task=name)`` (and ``--set task=name``) build ``factory()``."""
    TASKS[name] = factory
    _cached_task.cache_clear()


def make_task(task: str | Task) -> Task:
    """A :class:`Task` from itself or a registered name."""
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown GRPO task {task!r}; choose one of {sorted(TASKS)} or pass a jaxrl.Task")
    return _cached_task(task)


@functools.cache
def _cached_task(name: str) -> Task:
    return TASKS[name]()
