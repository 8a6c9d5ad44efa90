"""Text tasks (GRPO, reward models): a task is (prompt generator, tokenizer, reward function).

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

from jaxrl.tasks import reward_checks, verifiers
from jaxrl.tasks.tokenizer import CharTokenizer


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
    #: (problem, completion text before <eos>) -> reward, or None if the completion could not be parsed
    #: (e.g. no number in it): scored 0 and counted in the metrics (``unparsed_fraction``)
    reward: Callable[[Problem, str], float | None]
    max_new_tokens: int  # completion budget, <eos> included
    heldout: Sequence[Problem] | None = None  # fixed held-out problems (default: drawn, see below)
    num_heldout: int = 200
    heldout_seed: int = 1234
    unfinished_reward: float = 0.0  # reward of a completion without <eos>
    success_threshold: float = 1.0  # reward >= this counts as correct (held-out accuracy)
    #: optional batched reward: (problems, texts) -> rewards; used instead of ``reward`` when given
    #: (e.g. the Python verifier runs a batch of programs in parallel).
    batch_reward: Callable[[Sequence[Problem], Sequence[str]], Sequence[float]] | None = None
    #: the reward runs the completions as code (``jaxrl.sandbox``): training checks for the sandbox (or
    #: ``GRPOConfig.unsafe_local_exec``) before it starts
    runs_code: bool = False

    def __post_init__(self):
        if self.max_new_tokens <= 0:
            raise ValueError(
                f"Task {self.name!r}: max_new_tokens must be positive, got {self.max_new_tokens}"
            )

    def config_ref(self) -> str | None:
        """``"module:attr"`` that imports this task again (stored in ``config.json``), or None."""
        return task_ref(self)

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
                    f"Task {self.name!r}: the generator only produces held-out prompts (it made "
                    f"{len(held)} distinct prompts and all are held out for evaluation); lower "
                    f"Task.num_heldout (now {self.num_heldout}) or pass Task.heldout=[...]"
                )
            out.append(p)
        return out

    def score(
        self, problems: Sequence[Problem], texts: Sequence[str], finished: Sequence[bool]
    ) -> np.ndarray:
        """Rewards ``[N]`` of completions (``finished``: ended with <eos>)."""
        return self.score_details(problems, texts, finished)[0]

    def score_details(
        self, problems: Sequence[Problem], texts: Sequence[str], finished: Sequence[bool]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rewards [N] float32, unparsed [N] bool)``: a finished completion the reward function could
        not parse (it returned ``None``) scores 0 and is flagged; an unfinished one gets
        ``unfinished_reward`` and is not flagged."""
        if self.batch_reward is not None:
            raw = reward_checks.score_batch(self.name, self.batch_reward, problems, texts)
        else:
            raw = reward_checks.score_each(self.name, self.reward, problems, texts)
        if len(raw) != len(texts):
            raise ValueError(
                f"task {self.name!r}: the reward function gave {len(raw)} rewards for {len(texts)}"
            )
        unparsed = np.array([r is None for r in raw], bool)
        r = np.array([0.0 if x is None else x for x in raw], np.float32)
        done = np.asarray(finished, bool)
        return np.where(done, r, np.float32(self.unfinished_reward)), unparsed & done


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
        runs_code=True,
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
    """A :class:`Task` from itself, a registered name, or an importable ``"module:attr"`` (a Task or a
    function returning one; the module is looked up on ``sys.path`` and then in the current directory).
    JSONL files (``"jsonl:<path>"``) are read by :func:`jaxrl.algos.grpo.config.make_task`."""
    if isinstance(task, Task):
        return task
    if not isinstance(task, str):
        raise ValueError(f"GRPOConfig.task must be a task name or a jaxrl.Task, got {type(task).__name__}")
    if task not in TASKS and ":" in task:
        return import_task(task)
    if task not in TASKS:
        raise ValueError(
            f"unknown GRPO task {task!r}; choose one of {sorted(TASKS)}, 'jsonl:<file>', an importable "
            f"'module:attr', or pass a jaxrl.Task"
        )
    return _cached_task(task)


@functools.cache
def _cached_task(name: str) -> Task:
    return TASKS[name]()


def import_task(ref: str) -> Task:
    """The Task that ``"module:attr"`` names (``attr`` a Task or a zero-argument function returning one),
    built once per reference."""
    if ref in _IMPORTED:
        return _IMPORTED[ref]
    import importlib
    import os
    import sys

    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name.split(".")[0] or os.getcwd() in sys.path:
            raise ValueError(f"task {ref!r}: cannot import {module_name!r} ({e})") from None
        sys.path.insert(0, os.getcwd())  # as `python -m` would: a tasks module next to the user's files
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e2:
            raise ValueError(f"task {ref!r}: no module {module_name!r} on sys.path or here ({e2})") from None
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ValueError(f"task {ref!r}: module {module_name!r} has no attribute {attr!r}")
    if not isinstance(obj, Task) and callable(obj):
        obj = obj()
    if not isinstance(obj, Task):
        raise ValueError(
            f"task {ref!r} is a {type(obj).__name__}, not a jaxrl.Task (or a function returning one)"
        )
    _IMPORTED[ref] = obj
    return obj


def task_ref(task: Task) -> str | None:
    """``"module:attr"`` under which ``task`` can be imported again (a module-level Task, or a
    module-level function whose result it is), or None (e.g. a Task defined in ``__main__``)."""
    cached = [ref for ref, t in _IMPORTED.items() if t is task]
    if cached:
        return cached[0]
    import sys

    module = sys.modules.get(getattr(task.generate, "__module__", "") or "")
    if module is None or module.__name__ == "__main__":
        return None
    for name, value in vars(module).items():
        if value is task:
            return f"{module.__name__}:{name}"
    return None


_IMPORTED: dict[str, Task] = {}
