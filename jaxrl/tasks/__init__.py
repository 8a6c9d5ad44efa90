"""Text tasks for language-model RL and reward models: the :class:`Task` / :class:`Problem` API and the
built-in tasks (``task``), the character tokenizer (``tokenizer``), automated graders (``verifiers``),
checked calls of a task's reward (``reward_checks``) and tasks read from JSONL files (``jsonl``).

A layer below the algorithms: GRPO (:mod:`jaxrl.algos.grpo`), the reward model and preference data
(:mod:`jaxrl.data.preferences`) all use it, and it imports none of them.
"""

from jaxrl.tasks import jsonl, reward_checks, tokenizer, verifiers
from jaxrl.tasks.task import TASKS, Problem, Task, import_task, make_task, register_task, task_ref
from jaxrl.tasks.tokenizer import CharTokenizer

__all__ = [
    "TASKS",
    "CharTokenizer",
    "Problem",
    "Task",
    "import_task",
    "jsonl",
    "make_task",
    "register_task",
    "reward_checks",
    "task_ref",
    "tokenizer",
    "verifiers",
]
