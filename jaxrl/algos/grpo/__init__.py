"""GRPO (group relative policy optimisation, Shao et al. 2024, arXiv:2402.03300) for single-turn
generation with verifier rewards, on a small built-in transformer trained from random weights.

Modules: ``config`` (GRPOConfig), ``trainer`` (warm-up, sample -> score -> update), ``tasks`` (Task /
Problem API, built-in tasks), ``tokenizer`` (character level), ``verifiers`` (number grader, format
reward, sandboxed Python verifier), ``rewards`` (reward sources, incl. pluggable ones such as a reward
model). The losses are :mod:`jaxrl.losses.grpo`.

``train_step`` scores answers on the host between jitted calls, so the algorithm is registered with
``host_loop=True``: ``jaxrl.train(GRPOConfig(...), key)`` runs a Python loop (not one ``lax.scan``).
"""

from jaxrl.algos import base
from jaxrl.algos.grpo import trainer
from jaxrl.algos.grpo.config import Config, validate
from jaxrl.algos.grpo.rewards import RewardBatch, register_reward_source
from jaxrl.algos.grpo.tasks import TASKS, Problem, Task, make_task, register_task
from jaxrl.algos.grpo.tokenizer import CharTokenizer
from jaxrl.algos.grpo.trainer import (
    Metrics,
    State,
    heldout_accuracy,
    init,
    make_policy,
    num_iterations,
    train_step,
)

ALGORITHM = base.register(
    base.Algorithm(
        name="grpo",
        config=Config,
        init=init,
        train_step=train_step,
        num_iterations=num_iterations,
        make_policy=make_policy,
        validate=validate,
        description="GRPO: group-relative policy optimisation of a small transformer with verifier rewards",
        steps_per_iteration=lambda cfg: cfg.batch_size,
        host_loop=True,
        report=trainer.report,
    )
)

__all__ = [
    "ALGORITHM",
    "TASKS",
    "CharTokenizer",
    "Config",
    "Metrics",
    "Problem",
    "RewardBatch",
    "State",
    "Task",
    "heldout_accuracy",
    "make_task",
    "register_reward_source",
    "register_task",
]
