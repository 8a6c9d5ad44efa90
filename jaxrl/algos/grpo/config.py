"""GRPO settings."""

from __future__ import annotations

from collections.abc import Callable

from flax import struct

from jaxrl.algos import base
from jaxrl.algos.grpo.tasks import Task
from jaxrl.losses import grpo as grpo_losses
from jaxrl.networks import transformer

WARMUP_SCHEDULES = ("constant", "linear")


@struct.dataclass
class Config:
    """GRPO settings. Defaults: the TRL peer's addition set-up (GPT-2 shape 2x4x128, G = 8, 64 completions
    per step, at most 4 new tokens, beta 0; lr 3e-5 rather than the peer's 1e-4, see below), with scarce
    demonstrations: the warm-up sees only 500 of the 9,800 training problems (step size decayed to 0),
    GRPO then learns from fresh prompts scored by the verifier (``benchmarks/grpo_demo.py``).

    Step size: the warmed-up model is sharp (N(0, 0.01) noise on its weights drops held-out accuracy
    0.645 -> 0.42) and a 64-completion policy gradient is mostly noise (over 16 batches: per-batch
    gradient norm ~13, norm of their mean ~3.7), while Adam moves every weight by about
    ``learning_rate`` per step whatever the signal. At 1e-4 that noise-driven walk costs about what the
    signal gains (400 iterations after a 1000-step warm-up made seed 1 worse, 0.18 -> 0.135 sampled
    reward); 3e-5 improved all of seeds 0-2 (benchmarks/RESULTS.md, GRPO section)."""

    # TASK, MODEL, REWARD
    task: str | Task = struct.field(pytree_node=False, default="addition")  # task name or a jaxrl.Task
    # built-in transformer size (nano | tiny | small) or any transformer.PolicyModel
    model: str | transformer.PolicyModel = struct.field(pytree_node=False, default="tiny")
    max_len: int = struct.field(pytree_node=False, default=32)  # model context (prompt + completion tokens)
    # reward source: "task" (the task's verifier), "format:<regex>", "name:arg" of a registered source
    # (e.g. "rm:<run_dir>"), "0.9*task + 0.1*format:<regex>", or a callable(RewardBatch) -> [N] rewards
    reward: str | Callable = struct.field(pytree_node=False, default="task")
    # SUPERVISED WARM-UP (from random weights, on the task's demonstrations; 0 steps: none)
    warmup_steps: int = struct.field(pytree_node=False, default=1500)  # gradient steps
    warmup_batch: int = struct.field(pytree_node=False, default=64)  # demonstrations per step
    warmup_demos: int = struct.field(pytree_node=False, default=500)  # distinct demonstrations drawn
    # step size over the warm-up: "constant" or "linear" (decayed to 0 at the last step)
    warmup_schedule: str = struct.field(pytree_node=False, default="linear")
    # GRPO
    num_iterations: int = struct.field(pytree_node=False, default=1000)  # sample-score-update iterations
    group_size: int = struct.field(pytree_node=False, default=8)  # G answers per prompt
    prompts_per_iteration: int = struct.field(pytree_node=False, default=8)  # prompts per iteration
    inner_steps: int = struct.field(pytree_node=False, default=1)  # gradient steps per sampled batch
    max_new_tokens: int | None = struct.field(pytree_node=False, default=None)  # None: the task's
    top_k: int = struct.field(pytree_node=False, default=0)  # sample from the k most likely (0: all)
    advantage_scale: str = struct.field(pytree_node=False, default="group")  # group | batch | none
    aggregation: str = struct.field(pytree_node=False, default="sequence")  # sequence | token | constant
    ref_update_every: int = struct.field(pytree_node=False, default=0)  # 0: reference = warm-up policy
    eval_every: int = struct.field(pytree_node=False, default=100)  # held-out greedy accuracy period
    learning_rate: float = 3e-5  # Adam step size of the GRPO updates (constant; 1e-4 is too noisy here)
    warmup_learning_rate: float = 1e-3  # Adam step size of the warm-up
    beta: float = 0.0  # KL(pi || pi_ref) penalty weight (k3 estimator)
    clip_eps_low: float = 0.2  # ratio clipped to [1 - clip_eps_low, 1 + clip_eps_high]
    clip_eps_high: float = 0.2
    temperature: float = 1.0  # sampling temperature (the policy's log-probs use it too)
    top_p: float = 1.0  # nucleus sampling mass
    max_grad_norm: float = 1.0  # global-norm gradient clip
    advantage_eps: float = 1e-4  # added to the std in the advantage

    @property
    def batch_size(self) -> int:
        """Completions per iteration."""
        return self.group_size * self.prompts_per_iteration

    def transformer_config(self, vocab_size: int) -> transformer.TransformerConfig:
        return transformer.TransformerConfig.of_size(self.model, vocab_size=vocab_size, max_len=self.max_len)


def validate(cfg: Config) -> None:
    """Host-side checks with what to change."""
    from jaxrl.algos.grpo import rewards, tasks

    for name in (
        "max_len",
        "num_iterations",
        "group_size",
        "prompts_per_iteration",
        "inner_steps",
        "eval_every",
        "warmup_batch",
    ):
        if int(getattr(cfg, name)) <= 0:
            raise ValueError(f"GRPOConfig.{name} must be a positive integer, got {getattr(cfg, name)!r}")
    for name in ("warmup_steps", "warmup_demos", "top_k", "ref_update_every"):
        if int(getattr(cfg, name)) < 0:
            raise ValueError(f"GRPOConfig.{name} must be >= 0, got {getattr(cfg, name)!r}")
    if cfg.group_size < 2:
        raise ValueError(
            f"GRPOConfig.group_size must be >= 2 (got {cfg.group_size}): the group-mean baseline of a single "
            f"answer is its own reward, so every advantage would be 0"
        )
    if isinstance(cfg.model, str) and cfg.model not in transformer.SIZES:
        raise ValueError(f"GRPOConfig.model must be one of {sorted(transformer.SIZES)}, got {cfg.model!r}")
    if cfg.warmup_schedule not in WARMUP_SCHEDULES:
        raise ValueError(
            f"GRPOConfig.warmup_schedule must be one of {WARMUP_SCHEDULES}, got {cfg.warmup_schedule!r}"
        )
    if cfg.advantage_scale not in grpo_losses.ADVANTAGE_SCALES:
        raise ValueError(f"GRPOConfig.advantage_scale must be one of {grpo_losses.ADVANTAGE_SCALES}")
    if cfg.aggregation not in grpo_losses.AGGREGATIONS:
        raise ValueError(f"GRPOConfig.aggregation must be one of {grpo_losses.AGGREGATIONS}")
    base.check_positive(cfg, "learning_rate", "temperature", "max_grad_norm", "advantage_eps")
    base.check_range(cfg, "beta", 0.0, float("inf"))
    base.check_range(cfg, "clip_eps_low", 0.0, 1.0)
    base.check_range(cfg, "clip_eps_high", 0.0, float("inf"))
    base.check_range(cfg, "top_p", 1e-6, 1.0)
    task = tasks.make_task(cfg.task)
    if cfg.warmup_steps > 0:
        if cfg.warmup_learning_rate <= 0:
            raise ValueError("GRPOConfig.warmup_learning_rate must be positive")
        if cfg.warmup_demos <= 0:
            raise ValueError("GRPOConfig.warmup_demos must be positive when warmup_steps > 0")
        probe = task.sample_problems(__import__("numpy").random.default_rng(0), 1)[0]
        if probe.solution is None:
            raise ValueError(
                f"task {task.name!r} gives no Problem.solution, so there is nothing to warm up on; set "
                f"warmup_steps=0 or return solutions from the task's generator"
            )
    new = cfg.max_new_tokens or task.max_new_tokens
    if new <= 0:
        raise ValueError(f"GRPOConfig.max_new_tokens must be positive, got {new}")
    width = max(len(task.tokenizer.encode(p.prompt, bos=True)) for p in task.heldout_problems())
    if width + new > cfg.max_len:
        raise ValueError(
            f"GRPOConfig.max_len={cfg.max_len} is too short for task {task.name!r}: prompts take up to "
            f"{width} tokens and completions {new}; set max_len >= {width + new}"
        )
    rewards.make_reward(cfg.reward, task)  # raises for an unknown reward source
