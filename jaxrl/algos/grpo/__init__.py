"""GRPO (group relative policy optimisation) for single-turn generation with verifier rewards.

Modules: ``tokenizer`` (character-level), ``tasks`` (Task/Problem API and built-in tasks), ``verifiers``
(number grader, format reward, sandboxed Python verifier).
"""

from jaxrl.algos.grpo.tasks import TASKS, Problem, Task, make_task, register_task
from jaxrl.algos.grpo.tokenizer import CharTokenizer

__all__ = ["TASKS", "CharTokenizer", "Problem", "Task", "make_task", "register_task"]
