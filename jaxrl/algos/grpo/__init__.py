"""GRPO (group relative policy optimisation, Shao et al. 2024, arXiv:2402.03300) for single-turn
generation with verifier rewards, on a small built-in transformer trained from random weights.

Modules: ``config`` (GRPOConfig), ``trainer`` (warm-up, sample -> score -> update), ``rewards`` (reward
sources, incl. pluggable ones such as a reward model), ``sharding``. The Task / Problem API, the built-in
tasks, the character tokenizer and the verifiers are :mod:`jaxrl.tasks` (a layer below, shared with the
reward model); the losses are :mod:`jaxrl.losses.grpo`.

``train_step`` scores answers on the host between jitted calls, so the algorithm is registered with
``host_loop=True``: ``jaxrl.train(GRPOConfig(...), key)`` runs a Python loop (not one ``lax.scan``).
"""

from jaxrl.algos import base
from jaxrl.algos.grpo import trainer
from jaxrl.algos.grpo.config import Config, validate
from jaxrl.algos.grpo.rewards import RewardBatch, register_reward_source
from jaxrl.algos.grpo.trainer import (
    Metrics,
    State,
    heldout_accuracy,
    init,
    make_policy,
    num_iterations,
    train_step,
)
from jaxrl.networks import lora
from jaxrl.tasks import TASKS, CharTokenizer, Problem, Task, make_task, register_task


def state_template(cfg: Config, key) -> State:
    """The shapes of ``init(cfg, key)``'s state without running it (``init`` warms up on the host and
    cannot be traced), for loading a saved run (``jaxrl.runtime.driver.load_state``)."""
    import jax
    import jax.numpy as jnp

    s = trainer.setup(cfg)
    params = jax.eval_shape(s.policy.init, key)
    trainable = lora.split(params)[0]
    opt = jax.eval_shape(trainer.optimizer(cfg.learning_rate, cfg.max_grad_norm).init, trainable)
    warm = jax.eval_shape(trainer.optimizer(cfg.warmup_learning_rate, cfg.max_grad_norm).init, trainable)
    scalar = lambda dtype: jax.ShapeDtypeStruct((), dtype)  # noqa: E731
    return State(
        params=params,
        opt_state=opt,
        warmup_opt_state=warm,
        ref_params=params,
        key=jax.eval_shape(lambda k: k, key),
        iteration=scalar(jnp.int32),
        init_accuracy=scalar(jnp.float32),
        warmup_accuracy=scalar(jnp.float32),
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
        steps_per_iteration=lambda cfg: cfg.num_sampled_prompts * cfg.group_size,  # completions sampled
        host_loop=True,
        report=trainer.report,
        state_template=state_template,
        presentation=base.Presentation(
            steps="completions sampled",
            steps_short="completions",
            curve_label="reward (mean over completions)",
            curve_short="reward",
            eval_metric="heldout_accuracy",
            eval_label="held-out greedy accuracy",
        ),
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
