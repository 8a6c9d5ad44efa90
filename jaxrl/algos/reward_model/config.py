"""Reward-model settings and their host-side checks."""

from __future__ import annotations

from typing import Any

from flax import struct

from jaxrl.algos import checks
from jaxrl.networks import transformer

#: how the scalar reward is read from the transformer (see :class:`~jaxrl.algos.reward_model.network.RewardModel`);
#: the config's default ``"auto"`` picks "head" for an ``"hf:<dir>"`` model and "loglik" for a built-in one
READOUTS = ("head", "loglik")


@checks.renamed_fields(batch_size="minibatch_size")
@struct.dataclass
class Config:
    """Reward-model settings; defaults train a ``tiny`` transformer on synthetic addition preferences
    (their held-out pair accuracy and time: ``benchmarks/RESULTS.md``, reward model)."""

    # DATA

    # GRPO task (name or jaxrl.Task): its tokenizer, and its problems for synthetic pairs
    task: Any = struct.field(pytree_node=False, default="addition")
    # JSONL file with prompt/chosen/rejected (None: synthetic pairs from the task's hidden rule)
    data: str | None = struct.field(pytree_node=False, default=None)
    # held-out JSONL (None: eval_fraction of data; synthetic: pairs on the task's held-out prompts)
    eval_data: str | None = struct.field(pytree_node=False, default=None)
    eval_fraction: float = struct.field(pytree_node=False, default=0.1)  # held-out share of data
    num_pairs: int = struct.field(pytree_node=False, default=20_000)  # synthetic training pairs
    num_eval_pairs: int = struct.field(pytree_node=False, default=2_000)  # synthetic held-out pairs
    data_seed: int = struct.field(pytree_node=False, default=0)  # synthetic pairs / JSONL split
    # system turn of JSONL prompts with an "hf:<dir>" model: prompts go through the checkpoint's chat
    # template when it has one, exactly as GRPOConfig(task="jsonl:...") formats them ("": no system turn)
    system_prompt: str = struct.field(pytree_node=False, default="")
    # MODEL
    # built-in transformer (nano | tiny | small), or "hf:<dir>": a Hugging Face causal-LM checkpoint
    # directory (jaxrl.lm families) as the trunk, its tokenizer replacing the task's
    model: str = struct.field(pytree_node=False, default="tiny")
    # context in tokens (<bos>, <eos> included) of a built-in model; an hf: model's is its checkpoint's
    max_len: int = struct.field(pytree_node=False, default=32)
    # the scalar reward: "head" (a linear head on the last token's features, the usual reward model) or
    # "loglik" (log-probability of the answer under the trunk's own next-token head: the implicit
    # reward of DPO with a uniform reference, Rafailov et al. 2023, arXiv:2305.18290); "auto": "head"
    # for an hf: model, "loglik" for a built-in one (higher held-out pair accuracy in fewer epochs than
    # "head" on synthetic addition; the figures are in benchmarks/RESULTS.md)
    readout: str = struct.field(pytree_node=False, default="auto")
    # a GRPO run directory: the transformer starts from that run's reference policy (its supervised warm-up
    # unless ref_update_every was set) instead of random weights, as RLHF starts its reward model from the
    # SFT model; model size, max_len and task must match. None: random weights. (Built-in models only:
    # an hf: model starts from its checkpoint.)
    init_from: str | None = struct.field(pytree_node=False, default=None)
    # TRAINING
    num_epochs: int = struct.field(pytree_node=False, default=4)  # passes over the pairs (one per iteration)
    minibatch_size: int = struct.field(pytree_node=False, default=64)  # pairs per gradient step
    anneal_lr: bool = struct.field(pytree_node=False, default=True)  # linear decay of the step size to 0
    learning_rate: float = 2e-3  # Adam step size (initial, if annealed)
    max_grad_norm: float = 1.0  # global-norm gradient clip
    margin: float = 0.0  # Bradley-Terry margin: -log sigmoid(r_c - r_r - margin)
    # weight of an auxiliary next-token loss on the chosen answers (0: pure Bradley-Terry). It teaches
    # the trunk what good answers look like, which the scalar head alone learns slowly.
    lm_coef: float = 1.0

    def transformer_config(self, vocab_size: int) -> transformer.TransformerConfig:
        return transformer.TransformerConfig.of_size(self.model, vocab_size=vocab_size, max_len=self.max_len)


def is_hf(cfg: Config) -> bool:
    """``cfg.model`` names a Hugging Face checkpoint (``"hf:<dir>"``)."""
    return isinstance(cfg.model, str) and cfg.model.startswith("hf:")


def resolved_readout(cfg: Config) -> str:
    """``cfg.readout`` with ``"auto"`` decided: "head" for an hf: model, "loglik" for a built-in one."""
    if cfg.readout == "auto":
        return "head" if is_hf(cfg) else "loglik"
    return cfg.readout


def context_length(cfg: Config) -> int:
    """Longest ``<bos> prompt answer <eos>`` row: ``max_len``, or an hf: checkpoint's own context."""
    if is_hf(cfg):
        from jaxrl import lm

        return lm.read_config(lm.spec_path(cfg.model)).max_position_embeddings
    return cfg.max_len
