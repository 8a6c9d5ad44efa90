"""GRPO settings."""

from __future__ import annotations

import functools
from collections.abc import Callable

from flax import struct

from jaxrl import tasks
from jaxrl.algos import checks
from jaxrl.losses import grpo as grpo_losses
from jaxrl.networks import lora, transformer
from jaxrl.tasks import jsonl
from jaxrl.tasks.task import Task

WARMUP_SCHEDULES = ("constant", "linear")
LR_SCHEDULES = ("constant", "linear")


@struct.dataclass
class Config:
    """GRPO settings: the task and its reward, the model, an optional supervised warm-up, and the GRPO
    updates. One iteration samples ``group_size`` completions for each of ``oversample x
    prompts_per_iteration`` prompts, scores them, keeps the ``prompts_per_iteration`` groups whose
    rewards vary most and takes ``inner_steps`` clipped-ratio gradient steps on them. Dr. GRPO:
    ``advantage_scale="none", aggregation="constant"``. The defaults learn the built-in ``addition`` task
    from random weights with a warm-up on 500 demonstrations (why each default: benchmarks/RESULTS.md,
    GRPO section)."""

    # TASK
    # a built-in task (addition | multiplication | pyfunc), "jsonl:<file>" (prompts and reference answers,
    # see the fields below), an importable "module:attr" naming a jaxrl.Task, or a jaxrl.Task object
    task: str | Task = struct.field(pytree_node=False, default="addition")
    # JSONL TASKS: the settings below apply to task="jsonl:<file>" only
    prompt_field: str = struct.field(pytree_node=False, default="prompt")  # JSON key of the prompt
    answer_field: str = struct.field(pytree_node=False, default="answer")  # JSON key of the reference answer
    system_prompt: str = struct.field(pytree_node=False, default="")  # optional system turn ("": none)
    # how a completion is checked against the reference: "number" (final number, GSM8K-style), "exact"
    # (text equal up to case/whitespace), "regex" (the reference is a regex that must match)
    verifier: str = struct.field(pytree_node=False, default="number")
    eval_file: str = struct.field(pytree_node=False, default="")  # held-out JSONL ("": 10% of the task file)
    # MODEL AND REWARD
    # built-in transformer size (nano | tiny | small), "hf:<dir>" (a Hugging Face checkpoint directory,
    # loaded by jaxrl.lm with its own tokenizer, which then replaces the task's), or any PolicyModel
    model: str | transformer.PolicyModel = struct.field(pytree_node=False, default="tiny")
    # model context (prompt + completion tokens) of a built-in model; an hf: model's is its checkpoint's
    max_len: int = struct.field(pytree_node=False, default=32)
    # LoRA: 0 trains every weight; r > 0 trains rank-r adapters on the lora_targets kernels only (the
    # optimizer holds just them; the KL reference is the same weights with the adapters off)
    lora_rank: int = struct.field(pytree_node=False, default=0)
    lora_alpha: float = struct.field(pytree_node=False, default=16.0)  # adapters scaled by alpha / rank
    # module names whose dense kernels get adapters (Llama: q_proj k_proj v_proj o_proj gate_proj ...;
    # the built-in transformer: qkv proj fc fc_out)
    lora_targets: tuple[str, ...] = struct.field(pytree_node=False, default=lora.DEFAULT_TARGETS)
    # "bfloat16": sample and run the forward/backward passes on a bfloat16 copy of the float32 weights
    # (the optimizer and its state stay float32; log-probabilities and the ratio are float32). Weight
    # products run bf16 x bf16 with float32 accumulation (jaxrl.networks.matmul: ~2x float32 on a CPU
    # with avx512_bf16), the KV cache is bf16; gradients differ from float32's by a few percent
    compute_dtype: str = struct.field(pytree_node=False, default="float32")
    # devices to shard over, FSDP-style (parameters and Adam state split across them, completions
    # data-parallel; jaxrl.algos.grpo.sharding); 0 or 1: one device
    fsdp_devices: int = struct.field(pytree_node=False, default=0)
    # reward source: "task" (the task's verifier), "format:<regex>", "name:arg" of a registered source
    # (e.g. "rm:<run_dir>"), "0.9*task + 0.1*format:<regex>", or a callable(RewardBatch) -> [N] rewards
    reward: str | Callable = struct.field(pytree_node=False, default="task")
    # a task whose reward runs the model's code (pyfunc) needs the OS sandbox (jaxrl.sandbox: bubblewrap);
    # without one the run is refused before training, unless this opts in to running the code as a plain
    # subprocess with rlimits, which hostile code can escape (also: JAXRL_UNSAFE_LOCAL_EXEC=1)
    unsafe_local_exec: bool = struct.field(pytree_node=False, default=False)
    # SUPERVISED WARM-UP (from random weights, on the task's demonstrations; 0 steps: none)
    # supervised gradient steps on the task's solutions (Problem.solution) before GRPO; 0: start GRPO
    # from the model as it is (e.g. a pretrained checkpoint)
    warmup_steps: int = struct.field(pytree_node=False, default=1500)
    warmup_batch: int = struct.field(pytree_node=False, default=64)  # demonstrations per warm-up step
    # how many distinct training problems the warm-up draws its demonstrations from (few = scarce
    # demonstrations, which GRPO then improves on with verifier rewards on fresh prompts)
    warmup_demos: int = struct.field(pytree_node=False, default=500)
    # step size over the warm-up: "constant" or "linear" (decayed to 0 at the last step)
    warmup_schedule: str = struct.field(pytree_node=False, default="linear")
    # GRPO
    num_iterations: int = struct.field(pytree_node=False, default=2000)  # sample -> score -> update rounds
    group_size: int = struct.field(pytree_node=False, default=8)  # G answers per prompt
    prompts_per_iteration: int = struct.field(pytree_node=False, default=8)  # prompts per update
    # dynamic sampling (DAPO-style): sample oversample x prompts_per_iteration prompts and update on the
    # prompts_per_iteration groups whose rewards vary most (all-equal groups carry no signal); 1: off
    oversample: int = struct.field(pytree_node=False, default=2)
    # gradient steps per sampled batch (TRL's num_iterations, the paper's mu): after the first, the
    # ratio pi / pi_old moves away from 1 and the clip (clip_eps_low / clip_eps_high) bounds the update
    inner_steps: int = struct.field(pytree_node=False, default=1)
    # completion budget in tokens, the closing <eos> included (a 3-digit answer needs 4); None: the task's
    max_new_tokens: int | None = struct.field(pytree_node=False, default=None)
    top_k: int = struct.field(pytree_node=False, default=0)  # sample from the k most likely (0: all)
    # advantage = reward - group mean, divided by the group's std ("group", GRPO), the batch's ("batch"),
    # or not at all ("none"); with aggregation "constant" that is Dr. GRPO, the unbiased form
    advantage_scale: str = struct.field(pytree_node=False, default="group")
    # loss over tokens: mean per answer then over answers ("sequence", GRPO), mean over all tokens
    # ("token", DAPO), or sum / (answers x max_new_tokens) ("constant", Dr. GRPO: no length bias)
    aggregation: str = struct.field(pytree_node=False, default="sequence")
    # the KL reference policy: 0 keeps the policy GRPO started from (after any warm-up); k > 0 replaces
    # it by the current policy every k iterations
    ref_update_every: int = struct.field(pytree_node=False, default=0)
    # greedy accuracy on the task's held-out prompts every eval_every iterations (and at the end): the
    # heldout_accuracy metric, eval.csv and summary.json
    eval_every: int = struct.field(pytree_node=False, default=100)
    learning_rate: float = 2e-4  # Adam step size of the GRPO updates (the peak with lr_schedule="linear")
    # GRPO step size over the iterations: "constant" or "linear" (decayed to 0 at the last iteration)
    lr_schedule: str = struct.field(pytree_node=False, default="linear")
    warmup_learning_rate: float = 1e-3  # Adam step size of the warm-up
    beta: float = 0.0  # KL(pi || pi_ref) penalty weight (k3 estimator)
    clip_eps_low: float = 0.2  # ratio pi / pi_old clipped to [1 - clip_eps_low, 1 + clip_eps_high]
    clip_eps_high: float = 0.2  # upper clip (DAPO's clip-higher: e.g. 0.28)
    temperature: float = 1.0  # sampling temperature (the policy's log-probs use it too)
    top_p: float = 1.0  # nucleus sampling mass
    max_grad_norm: float = 1.0  # global-norm gradient clip
    advantage_eps: float = 1e-4  # added to the std that divides the advantages (advantage_scale group/batch)

    @property
    def completions_per_iteration(self) -> int:
        """Completions per update."""
        return self.group_size * self.prompts_per_iteration

    @property
    def num_sampled_prompts(self) -> int:
        """Prompts sampled per iteration."""
        return self.oversample * self.prompts_per_iteration

    def transformer_config(self, vocab_size: int) -> transformer.TransformerConfig:
        return transformer.TransformerConfig.of_size(self.model, vocab_size=vocab_size, max_len=self.max_len)


def model_tokenizer(cfg: Config):
    """The tokenizer an ``"hf:<dir>"`` model brings (None for the built-in models)."""
    from jaxrl import lm

    if not lm.is_hf_spec(cfg.model):
        return None
    return lm.resolve(cfg.model)[2]


def context_length(cfg: Config) -> int:
    """Longest prompt + completion: ``max_len`` for a built-in model, the model's own otherwise."""
    from jaxrl import lm

    if lm.is_hf_spec(cfg.model):
        return lm.read_config(lm.spec_path(cfg.model)).max_position_embeddings
    return cfg.max_len


def make_task(cfg: Config, tokenizer=None) -> Task:
    """The task ``cfg.task`` names; a ``"jsonl:<file>"`` one is read with the JSONL fields of ``cfg``
    (and ``tokenizer``, the model's, when it has one). With an ``"hf:<dir>"`` model the task's text is
    tokenized by the model's tokenizer (the task's own tokenizer is replaced)."""
    tokenizer = tokenizer or model_tokenizer(cfg)
    task = _task_text_only(cfg, tokenizer)
    return task if tokenizer is None else _with_tokenizer(task, tokenizer)


@functools.lru_cache(maxsize=8)
def _with_tokenizer(task: Task, tokenizer) -> Task:
    if task.tokenizer is tokenizer:
        return task
    import dataclasses

    return dataclasses.replace(task, tokenizer=tokenizer)


def _task_text_only(cfg: Config, tokenizer) -> Task:
    if isinstance(cfg.task, str) and cfg.task.startswith(jsonl.PREFIX):
        return _jsonl_task(
            cfg.task[len(jsonl.PREFIX) :],
            cfg.prompt_field,
            cfg.answer_field,
            cfg.system_prompt,
            cfg.verifier,
            cfg.eval_file,
            tokenizer,
        )
    return tasks.make_task(cfg.task)


@functools.lru_cache(maxsize=8)
def _jsonl_task(path, prompt_field, answer_field, system_prompt, verifier, eval_file, tokenizer) -> Task:
    return jsonl.jsonl_task(
        path,
        prompt_field=prompt_field,
        answer_field=answer_field,
        system_prompt=system_prompt,
        verifier=verifier,
        eval_file=eval_file,
        tokenizer=tokenizer,
    )


def validate(cfg: Config) -> None:
    """Host-side checks with what to change."""
    from jaxrl import sandbox
    from jaxrl.algos.grpo import rewards

    for name in (
        "max_len",
        "num_iterations",
        "group_size",
        "prompts_per_iteration",
        "inner_steps",
        "oversample",
        "eval_every",
        "warmup_batch",
    ):
        if int(getattr(cfg, name)) <= 0:
            raise ValueError(f"GRPOConfig.{name} must be a positive integer, got {getattr(cfg, name)!r}")
    for name in ("warmup_steps", "warmup_demos", "top_k", "ref_update_every", "lora_rank", "fsdp_devices"):
        if int(getattr(cfg, name)) < 0:
            raise ValueError(f"GRPOConfig.{name} must be >= 0, got {getattr(cfg, name)!r}")
    if cfg.group_size < 2:
        raise ValueError(
            f"GRPOConfig.group_size must be >= 2 (got {cfg.group_size}): the group-mean baseline of a single "
            f"answer is its own reward, so every advantage would be 0"
        )
    if isinstance(cfg.model, str) and cfg.model.startswith("hf:"):
        from jaxrl import lm

        lm.read_config(lm.spec_path(cfg.model))  # a clear error for a missing or unsupported checkpoint
    elif isinstance(cfg.model, str) and cfg.model not in transformer.SIZES:
        raise ValueError(
            f"GRPOConfig.model must be one of {sorted(transformer.SIZES)} or 'hf:<checkpoint dir>', "
            f"got {cfg.model!r}"
        )
    if cfg.warmup_schedule not in WARMUP_SCHEDULES:
        raise ValueError(
            f"GRPOConfig.warmup_schedule must be one of {WARMUP_SCHEDULES}, got {cfg.warmup_schedule!r}"
        )
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"GRPOConfig.lr_schedule must be one of {LR_SCHEDULES}, got {cfg.lr_schedule!r}")
    if cfg.advantage_scale not in grpo_losses.ADVANTAGE_SCALES:
        raise ValueError(f"GRPOConfig.advantage_scale must be one of {grpo_losses.ADVANTAGE_SCALES}")
    if cfg.aggregation not in grpo_losses.AGGREGATIONS:
        raise ValueError(f"GRPOConfig.aggregation must be one of {grpo_losses.AGGREGATIONS}")
    checks.check_positive(cfg, "learning_rate", "temperature", "max_grad_norm", "advantage_eps")
    checks.check_range(cfg, "beta", 0.0, float("inf"))
    checks.check_range(cfg, "clip_eps_low", 0.0, 1.0)
    checks.check_range(cfg, "clip_eps_high", 0.0, float("inf"))
    checks.check_range(cfg, "top_p", 1e-6, 1.0)
    if cfg.fsdp_devices > 1:
        import jax

        if cfg.fsdp_devices > len(jax.devices()):
            raise ValueError(
                f"GRPOConfig.fsdp_devices={cfg.fsdp_devices} but only {len(jax.devices())} devices are visible "
                f"(on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts)"
            )
        if (cfg.prompts_per_iteration * cfg.group_size) % cfg.fsdp_devices:
            raise ValueError(
                f"GRPOConfig.fsdp_devices={cfg.fsdp_devices} must divide the completions per update "
                f"({cfg.prompts_per_iteration} x {cfg.group_size})"
            )
    if cfg.compute_dtype not in ("float32", "bfloat16"):
        raise ValueError(
            f"GRPOConfig.compute_dtype must be 'float32' or 'bfloat16', got {cfg.compute_dtype!r}"
        )
    if cfg.verifier not in jsonl.VERIFIERS:
        raise ValueError(f"GRPOConfig.verifier must be one of {jsonl.VERIFIERS}, got {cfg.verifier!r}")
    task = make_task(cfg)
    if task.runs_code:  # before the warm-up, not at the first scoring
        sandbox.require(cfg.unsafe_local_exec or sandbox.unsafe_local_exec_default())
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
    limit = context_length(cfg)
    if width + new > limit:
        if limit != cfg.max_len:
            raise ValueError(
                f"the model {cfg.model!r} has a context of {limit} tokens; task {task.name!r} needs "
                f"{width} prompt tokens and {new} completion tokens; lower max_new_tokens"
            )
        raise ValueError(
            f"GRPOConfig.max_len={cfg.max_len} is too short for task {task.name!r}: prompts take up to "
            f"{width} tokens and completions {new}; set max_len >= {width + new}"
        )
    rewards.make_reward(cfg.reward, task)  # raises for an unknown reward source
