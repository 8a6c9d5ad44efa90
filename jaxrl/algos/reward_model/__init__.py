"""Reward model from preference pairs (Bradley-Terry), and its use as a GRPO reward source.

The model is the built-in decoder-only transformer (:mod:`jaxrl.networks.transformer`), or a Hugging
Face causal-LM checkpoint with ``model="hf:<dir>"`` (:class:`HFRewardModel`: its tokenizer, its chat
template for JSONL prompts, only its hidden states made), reading ``<bos> prompt answer <eos>``, with a
scalar reward per row: a linear head on the features of the last non-pad token (``readout="head"``, the
default for a checkpoint), or the log-probability of the answer under the trunk's own next-token head
(``readout="loglik"``, DPO's implicit reward with a uniform reference; the built-in models' default). It is trained to
rank the chosen answer of each pair above the rejected one, ``-log sigmoid(r(chosen) - r(rejected) -
margin)`` (Ouyang et al. 2022, arXiv:2203.02155), plus ``lm_coef`` x the next-token loss of the chosen
answers (it teaches the trunk what good answers look like; without it the scalar head learns arithmetic
very slowly). Data is a JSONL file (``data=``, see :mod:`jaxrl.data.preferences`) or synthetic pairs
for a built-in task from a hidden rule (the default).

One ``train_step`` is one epoch: shuffled minibatches over the training pairs, then the loss and pair
accuracy on the held-out pairs. It is pure JAX, so ``jaxrl.train(RewardModelConfig(), key)`` is one
``lax.scan`` and runs under the same runtime as every other algorithm (``jaxrl train --algo
reward_model``)::

    cfg = jaxrl.RewardModelConfig(task="addition")
    state, metrics = jaxrl.train(cfg, key)
    metrics["eval_accuracy"][-1]                  # held-out pair accuracy after the last epoch
    score = jaxrl.make_policy(cfg, state)         # score("12+34=", "46") -> float

A trained model becomes a GRPO reward with :func:`reward_source` (``GRPOConfig(reward=reward_source(cfg,
state.params))``) or from its run directory: ``GRPOConfig(reward="rm:<run_dir>")``,
``"rm:<run_dir>?normalize"`` for scores standardised over each batch, ``"0.5*rm:<dir> + 0.5*task"`` to
mix with the verifier. GRPO's metrics then hold both ``reward`` (the model's score) and
``true_reward`` (the task's verifier), so reward hacking shows as the two parting.
"""

from jaxrl.algos import base
from jaxrl.algos.reward_model.config import READOUTS, Config
from jaxrl.algos.reward_model.data import Dataset, dataset, make_task
from jaxrl.algos.reward_model.network import HFRewardModel, RewardModel, answer_log_probs, make_network
from jaxrl.algos.reward_model.scoring import (
    NAME,
    completion_rows,
    load,
    make_policy,
    make_scorer,
    register_reward_source,
    report,
    reward_source,
)
from jaxrl.algos.reward_model.train import (
    Metrics,
    State,
    answer_nll,
    evaluate_pairs,
    init,
    loss,
    num_iterations,
    pair_rewards,
    train_step,
    update,
    validate,
)

register_reward_source()

ALGORITHM = base.register(
    base.Algorithm(
        name=NAME,
        config=Config,
        init=init,
        train_step=train_step,
        num_iterations=num_iterations,
        make_policy=make_policy,
        validate=validate,
        description="Bradley-Terry reward model on preference pairs (JSONL or synthetic); a GRPO reward source",
        steps_per_iteration=lambda cfg: dataset(cfg).train.num_pairs,
        report=report,
    )
)

__all__ = [
    "ALGORITHM",
    "READOUTS",
    "Config",
    "Dataset",
    "HFRewardModel",
    "Metrics",
    "RewardModel",
    "State",
    "answer_log_probs",
    "answer_nll",
    "completion_rows",
    "dataset",
    "evaluate_pairs",
    "init",
    "load",
    "loss",
    "make_network",
    "make_policy",
    "make_scorer",
    "make_task",
    "num_iterations",
    "pair_rewards",
    "report",
    "reward_source",
    "train_step",
    "update",
    "validate",
]
