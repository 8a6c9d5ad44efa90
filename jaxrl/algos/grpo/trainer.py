"""GRPO trainer: supervised warm-up from random weights, then sample -> score on the host -> update.

One iteration (``train_step``): draw ``prompts_per_iteration`` training problems, sample ``group_size``
answers to each with the jitted KV-cache sampler, decode and score them on the host (verifiers may
run Python in a sandbox, so this cannot be inside ``jit``), compute group-relative advantages, and take
``inner_steps`` jitted gradient steps on the GRPO loss. The reference policy of the KL penalty is the
warm-up policy (``ref_update_every=0``) or the current one refreshed every ``ref_update_every``
iterations. Because of the host-side scoring, ``train`` is a Python loop around jitted functions
rather than one ``lax.scan``; it is still ``jaxrl.train(jaxrl.GRPOConfig(...), key)`` and is
reproducible for a fixed key (the host RNG for problems is derived from the JAX key).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl import optim, sandbox, schedules
from jaxrl import tasks as task_lib
from jaxrl.algos import named_metrics, prng
from jaxrl.algos.grpo import config as config_lib
from jaxrl.algos.grpo import logprobs as logprobs_lib
from jaxrl.algos.grpo import rewards as reward_sources
from jaxrl.algos.grpo import sharding
from jaxrl.algos.grpo.config import Config
from jaxrl.losses import grpo as grpo_losses
from jaxrl.networks import lora, transformer


class State(NamedTuple):
    params: Any  # policy parameters (lora.LoRAParams(base, adapters) with lora_rank > 0)
    opt_state: Any  # Adam state of the GRPO updates (of the adapters alone with LoRA)
    warmup_opt_state: Any  # Adam state of the supervised warm-up (kept so it can be continued)
    ref_params: Any  # reference policy of the KL penalty (with LoRA: the same base arrays, no copy)
    key: jax.Array  # PRNG key for the next iteration
    iteration: jax.Array  # [] int32 GRPO iterations done
    init_accuracy: jax.Array  # [] held-out greedy accuracy of the random initial weights
    warmup_accuracy: jax.Array  # [] held-out greedy accuracy after the warm-up (before GRPO)


@named_metrics.metrics_type
class Metrics(NamedTuple):
    """One iteration's figures as NumPy scalars (``jaxrl.train`` stacks them into ``[iterations]``)."""

    episode_return: Any  # mean reward of this iteration's completions (= reward)
    env_steps: Any  # completions sampled so far
    reward: Any  # mean reward from GRPOConfig.reward
    true_reward: Any  # mean reward from the task's verifier (differs from reward for a learned reward)
    heldout_accuracy: Any  # greedy accuracy on the held-out prompts after this iteration (NaN: not evaluated)
    completion_length: Any  # mean completion tokens (<eos> included)
    finished_fraction: Any  # completions that ended with <eos>
    unparsed_fraction: Any  # finished completions the task's verifier could not parse (scored 0)
    zero_std_fraction: Any  # sampled groups whose rewards were all equal (no learning signal)
    used_zero_std_fraction: Any  # the same among the groups of the update (dynamic sampling lowers it)
    loss: Any
    kl: Any  # k3 KL(pi || pi_ref) per token (0 when beta = 0)
    clip_fraction: Any  # tokens whose gradient the ratio clip removed (0 with inner_steps = 1)
    ratio_mean: Any
    grad_norm: Any
    seconds: Any  # wall time of this iteration


# ---------------------------------------------------------------------------------------- SETUP
class HParams(NamedTuple):
    """The tunable floats of a config, passed to the jitted programs as arguments (traced), so that
    configs differing only in them share compiled programs."""

    learning_rate: Any
    warmup_learning_rate: Any
    beta: Any
    clip_eps_low: Any
    clip_eps_high: Any
    temperature: Any
    max_grad_norm: Any
    advantage_eps: Any

    @classmethod
    def of(cls, cfg: Config) -> HParams:
        return cls(*(jnp.asarray(getattr(cfg, f), jnp.float32) for f in cls._fields))


@dataclasses.dataclass(frozen=True, eq=False)
class Programs:
    """The jitted functions, shared by every config with the same model and shape settings."""

    sample: Callable  # sample(params, prompts, prompt_len, key, temperature, top_p, greedy) -> Samples
    # update(hp, params, opt_state, tokens, logp_old, mask, rewards[P, G], logp_ref, lr_scale)
    update: Callable
    ref_log_probs: Callable  # (params, tokens, temperature, mask=None) -> [N, L]
    # (hp, params, opt_state, tokens, mask, batches[S, B], lr_scale[S]) -> (params, opt_state, losses)
    warmup_step: Callable


@dataclasses.dataclass(frozen=True, eq=False)
class Setup:
    """Everything built once per config: task, model, programs, reward source."""

    task: task_lib.Task
    policy: transformer.PolicyModel
    max_new_tokens: int
    programs: Programs
    reward_fn: reward_sources.RewardFn
    base_width: int  # prompt tokens of the longest held-out/sampled prompt


def optimizer(learning_rate: Any, max_grad_norm: Any) -> optax.GradientTransformation:
    """Adam with global-norm clipping (constant step size; the state does not depend on the values)."""
    return optim.make_optimizer(learning_rate, max_grad_norm)


@functools.lru_cache(maxsize=16)
def _builtin_policy(tcfg: transformer.TransformerConfig) -> transformer.PolicyModel:
    return transformer.transformer_policy(tcfg)


def _policy_model(cfg: Config, task: task_lib.Task) -> transformer.PolicyModel:
    """The model ``cfg.model`` names, taking LoRA parameters when ``lora_rank > 0``."""
    policy = _base_policy_model(cfg, task)
    if cfg.lora_rank > 0:
        return _lora_policy(policy, cfg.lora_rank, cfg.lora_alpha, tuple(cfg.lora_targets))
    return policy


@functools.lru_cache(maxsize=16)
def _lora_policy(policy, rank, alpha, targets) -> transformer.PolicyModel:
    return lora.wrap(policy, rank, alpha, targets)


def _base_policy_model(cfg: Config, task: task_lib.Task) -> transformer.PolicyModel:
    from jaxrl import lm

    if lm.is_hf_spec(cfg.model):
        return lm.resolve(cfg.model)[0]
    if isinstance(cfg.model, transformer.PolicyModel):
        if cfg.model.vocab_size < task.tokenizer.vocab_size:
            raise ValueError(
                f"the policy's vocab_size {cfg.model.vocab_size} is smaller than the task tokenizer's "
                f"{task.tokenizer.vocab_size}"
            )
        return cfg.model
    return _builtin_policy(cfg.transformer_config(task.tokenizer.vocab_size))


@functools.lru_cache(maxsize=16)
def programs(
    policy: transformer.PolicyModel,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    top_k: int,
    inner_steps: int,
    aggregation: str,
    advantage_scale: str,
    compute_dtype: str = "float32",
    eos_ids: tuple[int, ...] = (),
) -> Programs:
    """Build (once per distinct static setting) the jitted sample / update / warm-up programs.

    ``compute_dtype="bfloat16"``: sampling and every forward/backward pass use a bfloat16 copy of the
    float32 parameters (made inside the jitted programs; the optimizer updates the float32 ones); the
    log-probabilities, and so the ratio, the KL and the loss, are computed in float32. ``eos_ids``: more
    ids that end a completion (a checkpoint's tokenizer may have several)."""
    cast = _caster(compute_dtype)
    raw_sample = transformer.make_sampler(
        policy, max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id, top_k=top_k, eos_ids=eos_ids
    )
    if compute_dtype == "float32":
        sample = raw_sample
    else:
        cast_jit = jax.jit(cast)

        def sample(params, *args):
            return raw_sample(cast_jit(params), *args)

    def log_probs(params, tokens, mask, temperature=1.0):
        # the head and log-softmax on the completion positions only (a chunk at a time)
        return logprobs_lib.completion_log_probs(
            policy, cast(params), tokens, mask, max_new_tokens, temperature
        )

    def loss_fn(params, hp, tokens, logp_old, mask, adv, logp_ref):
        logp = log_probs(params, tokens, mask, hp.temperature)
        return grpo_losses.grpo_loss(
            logp,
            logp_old,
            adv,
            mask,
            logp_ref=logp_ref,
            beta=hp.beta,
            clip_eps_low=hp.clip_eps_low,
            clip_eps_high=hp.clip_eps_high,
            aggregation=aggregation,
            max_tokens=max_new_tokens,
        )

    @jax.jit
    def update(hp, trainable, frozen, opt_state, tokens, logp_old, mask, rewards, logp_ref, lr_scale):
        """``inner_steps`` Adam steps on one batch at ``lr_scale * learning_rate``; rewards [P, G] -> group
        advantages inside. Differentiates and returns ``trainable`` only (``lora.split``: the adapters
        with LoRA, else every parameter); ``frozen`` (the LoRA base) is read, never copied out."""
        adv = grpo_losses.group_advantages(rewards, scale=advantage_scale, eps=hp.advantage_eps).reshape(-1)
        opt = optimizer(hp.learning_rate, hp.max_grad_norm)

        def loss_of(t):
            return loss_fn(lora.join(t, frozen), hp, tokens, logp_old, mask, adv, logp_ref)

        def step(carry, _):
            trainable, opt_state = carry
            (loss, diag), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable)
            updates, opt_state = opt.update(grads, opt_state, trainable)
            updates = jax.tree_util.tree_map(lambda u: lr_scale * u, updates)
            return (optax.apply_updates(trainable, updates), opt_state), (loss, diag, optax.tree.norm(grads))

        (trainable, opt_state), (loss, diag, gnorm) = jax.lax.scan(
            step, (trainable, opt_state), None, inner_steps
        )
        return trainable, opt_state, jax.tree_util.tree_map(jnp.mean, (loss, diag, gnorm))

    @jax.jit
    def ref_log_probs(params, tokens, temperature, mask=None):
        """Every position's log-prob, or (``mask`` given) those of the completion window, 0 elsewhere."""
        if mask is None:
            return transformer.token_log_probs(policy, cast(params), tokens, temperature)
        return log_probs(params, tokens, mask, temperature)

    @jax.jit
    def warmup_step(hp, trainable, frozen, opt_state, tokens, mask, batches, lr_scale):
        """``batches [S, B]`` rows of (tokens, mask) -> S supervised steps (cross-entropy on the answer),
        step ``s`` at ``lr_scale[s] * warmup_learning_rate`` (a schedule without a schedule state)."""
        opt = optimizer(hp.warmup_learning_rate, hp.max_grad_norm)

        def step(carry, inp):
            trainable, opt_state = carry
            idx, scale = inp

            def nll(t):
                logp = log_probs(lora.join(t, frozen), tokens[idx], mask[idx])
                return -grpo_losses.aggregate(logp, mask[idx], "token")

            loss, grads = jax.value_and_grad(nll)(trainable)
            updates, opt_state = opt.update(grads, opt_state, trainable)
            updates = jax.tree_util.tree_map(lambda u: scale * u, updates)
            return (optax.apply_updates(trainable, updates), opt_state), loss

        (trainable, opt_state), losses = jax.lax.scan(step, (trainable, opt_state), (batches, lr_scale))
        return trainable, opt_state, losses

    return Programs(sample=sample, update=update, ref_log_probs=ref_log_probs, warmup_step=warmup_step)


COMPUTE_DTYPES = ("float32", "bfloat16")


def _caster(compute_dtype: str) -> Callable[[Any], Any]:
    """``params -> params`` with floating leaves in ``compute_dtype`` (identity for float32)."""
    if compute_dtype == "float32":
        return lambda params: params
    dtype = jnp.dtype(compute_dtype)
    return lambda params: jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params
    )


def setup(cfg: Config) -> Setup:
    """The (cached) :class:`Setup` of ``cfg``."""
    try:
        return _setup_cached(cfg)
    except TypeError:  # unhashable config (e.g. array leaves): build without the cache
        return _build_setup(cfg)


@functools.lru_cache(maxsize=8)
def _setup_cached(cfg: Config) -> Setup:
    return _build_setup(cfg)


def _build_setup(cfg: Config) -> Setup:
    task = config_lib.make_task(cfg)
    tok = task.tokenizer
    policy = _policy_model(cfg, task)
    new = cfg.max_new_tokens or task.max_new_tokens
    progs = programs(
        policy,
        new,
        tok.eos_id,
        tok.pad_id,
        cfg.top_k,
        cfg.inner_steps,
        cfg.aggregation,
        cfg.advantage_scale,
        cfg.compute_dtype,
        tuple(getattr(tok, "eos_ids", ())),  # a checkpoint's tokenizer may stop at several ids
    )
    probe = task.sample_problems(np.random.default_rng(0), 256) + task.heldout_problems()
    width = max(len(tok.encode(p.prompt, bos=True)) for p in probe)
    return Setup(
        task=task,
        policy=policy,
        max_new_tokens=new,
        programs=progs,
        reward_fn=reward_sources.make_reward(cfg.reward, task),
        base_width=width,
    )


def host_rng(key: jax.Array) -> np.random.Generator:
    """A NumPy generator determined by a JAX key (problems are drawn on the host)."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def encode_prompts(
    s: Setup, cfg: Config, problems: Sequence[task_lib.Problem]
) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded prompt ids ``[N, W]`` (``W`` >= the task's usual width, so shapes rarely change)."""
    ids = [s.task.tokenizer.encode(p.prompt, bos=True) for p in problems]
    width = max(s.base_width, max(map(len, ids)))
    if width + s.max_new_tokens > s.policy.max_len:
        raise ValueError(
            f"a prompt of {width} tokens plus {s.max_new_tokens} new tokens exceeds the model context "
            f"{s.policy.max_len}; raise GRPOConfig.max_len"
        )
    return s.task.tokenizer.encode_batch([p.prompt for p in problems], width=width)


def decode_completions(s: Setup, tokens: np.ndarray, prompt_len: np.ndarray) -> list[str]:
    """Completion text (before <eos>) of each row."""
    tok = s.task.tokenizer
    return [tok.decode(row[n : n + s.max_new_tokens]) for row, n in zip(tokens, prompt_len, strict=True)]


def generate(
    cfg: Config, params: Any, problems: Sequence[task_lib.Problem], key: jax.Array, *, greedy: bool
) -> tuple[list[str], np.ndarray]:
    """Completions of ``problems`` (text, finished [N]), in batches of ``cfg.completions_per_iteration`` rows so that
    evaluation reuses the training sampler's compiled program (the last batch is padded)."""
    s = setup(cfg)
    rows = cfg.completions_per_iteration
    texts, finished = [], []
    for start in range(0, len(problems), rows):
        chunk = list(problems[start : start + rows])
        padded = chunk + [chunk[0]] * (rows - len(chunk))
        prompts, plen = encode_prompts(s, cfg, padded)
        key, k = jax.random.split(key)
        out = s.programs.sample(params, prompts, plen, k, cfg.temperature, cfg.top_p, greedy)
        tokens, fin = jax.device_get((out.tokens, out.finished))
        texts += decode_completions(s, tokens, plen)[: len(chunk)]
        finished.append(fin[: len(chunk)])
    return texts, np.concatenate(finished)


# ------------------------------------------------------------------------------------ EVALUATION
def heldout_accuracy(
    cfg: Config, params: Any, *, problems: Sequence[task_lib.Problem] | None = None
) -> float:
    """Greedy accuracy (reward >= the task's success threshold, scored by the task's verifier)."""
    s = setup(cfg)
    problems = list(problems if problems is not None else s.task.heldout_problems())
    texts, finished = generate(cfg, params, problems, jax.random.key(0), greedy=True)
    with sandbox.local_exec_allowed(cfg.unsafe_local_exec):
        r = s.task.score(problems, texts, finished)
    return float(np.mean(r >= s.task.success_threshold))


def sampled_heldout_reward(cfg: Config, params: Any, *, answers: int = 8) -> float:
    """Mean verifier reward of ``answers`` sampled answers (``cfg.temperature``, fixed key) to each held-out
    problem: what GRPO maximises, and a much less noisy measure than greedy accuracy on 200 problems."""
    s = setup(cfg)
    problems = list(s.task.heldout_problems()) * answers
    texts, finished = generate(cfg, params, problems, jax.random.key(0), greedy=False)
    with sandbox.local_exec_allowed(cfg.unsafe_local_exec):
        return float(np.mean(s.task.score(problems, texts, finished)))


# ------------------------------------------------------------------------------------- WARM-UP
def demonstrations(cfg: Config, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """``warmup_demos`` training problems as (tokens [D, L], answer mask [D, L]): <bos> prompt solution
    <eos>, the loss mask on solution + <eos>."""
    s = setup(cfg)
    tok = s.task.tokenizer
    problems = s.task.sample_problems(host_rng(key), cfg.warmup_demos)
    prompts, plen = encode_prompts(s, cfg, problems)
    length = prompts.shape[1] + s.max_new_tokens
    tokens = np.full((len(problems), length), tok.pad_id, np.int32)
    mask = np.zeros((len(problems), length), np.float32)
    for i, (p, n) in enumerate(zip(problems, plen, strict=True)):
        answer = tok.encode(p.solution, eos=True)
        if len(answer) > s.max_new_tokens:
            raise ValueError(
                f"solution {p.solution!r} of prompt {p.prompt!r} needs {len(answer)} tokens with <eos>, more "
                f"than max_new_tokens={s.max_new_tokens}"
            )
        tokens[i, :n] = prompts[i, :n]
        tokens[i, n : n + len(answer)] = answer
        mask[i, n : n + len(answer)] = 1.0
    return tokens, mask


def init_demonstrations(cfg: Config, key: Any) -> tuple[np.ndarray, np.ndarray]:
    """The demonstrations ``init(cfg, key)`` warms up on (to continue the warm-up later)."""
    return demonstrations(cfg, jax.random.split(prng.as_key(key), 4)[1])


def warmup_lr_scale(cfg: Config) -> np.ndarray:
    """``[warmup_steps]`` multipliers of ``warmup_learning_rate`` for ``init``'s warm-up."""
    n = cfg.warmup_steps
    if cfg.warmup_schedule == "linear":  # to 0 at the end: the warm-up ends at a settled point
        return np.asarray(schedules.linear(1.0, 0.0, n, np.arange(n)), np.float32)
    return np.ones(n, np.float32)


def grpo_lr_scale(cfg: Config, iteration: int) -> np.float32:
    """Multiplier of ``learning_rate`` for GRPO iteration ``iteration`` (0-based): 1 throughout for
    ``lr_schedule="constant"``; ``1 - iteration / num_iterations`` for ``"linear"`` (1 at the first
    iteration, ``1 / num_iterations`` at the last: GRPO ends at a settled point, like the warm-up)."""
    if cfg.lr_schedule == "linear":
        return np.float32(schedules.linear(1.0, 0.0, cfg.num_iterations, iteration))
    return np.float32(1.0)


def select_groups(rewards: np.ndarray, k: int) -> np.ndarray:
    """Dynamic sampling: indices (ascending) of the ``k`` groups of ``rewards [S, G]`` whose rewards
    vary most (largest std; ties: the earlier group). Groups of all-equal rewards have advantage 0 and
    carry no gradient, so an update on the selected ``k`` of ``S`` sampled groups has more signal at the
    same cost. ``k = S`` keeps all of them."""
    rewards = np.asarray(rewards, np.float32)
    if not 0 < k <= rewards.shape[0]:
        raise ValueError(f"cannot keep {k} of {rewards.shape[0]} groups")
    order = np.argsort(-rewards.std(axis=1), kind="stable")
    return np.sort(order[:k])


def warmup(
    cfg: Config,
    state: State,
    num_steps: int,
    key: jax.Array,
    *,
    demos: tuple[np.ndarray, np.ndarray],
    lr_scale: np.ndarray | None = None,
) -> tuple[State, np.ndarray]:
    """``num_steps`` supervised steps on ``demos`` (batches of ``warmup_batch`` drawn with replacement)
    at ``lr_scale [num_steps]`` times ``warmup_learning_rate`` (default: constant); returns the new state
    and the per-step losses. Used by ``init``, and to continue supervised training instead of GRPO
    (the control experiment)."""
    s = setup(cfg)
    tokens, mask = demos
    idx = host_rng(key).integers(0, len(tokens), size=(num_steps, cfg.warmup_batch))
    scale = np.ones(num_steps, np.float32) if lr_scale is None else np.asarray(lr_scale, np.float32)
    if scale.shape != (num_steps,):
        raise ValueError(f"lr_scale must have shape ({num_steps},), got {scale.shape}")
    trainable, frozen = lora.split(state.params)
    trainable, opt_state, losses = s.programs.warmup_step(
        HParams.of(cfg), trainable, frozen, state.warmup_opt_state, tokens, mask, idx, scale
    )
    params = lora.join(trainable, frozen)
    return state._replace(params=params, warmup_opt_state=opt_state), np.asarray(losses)


# ---------------------------------------------------------------------------------------- INIT
def initial_params(cfg: Config, key: jax.Array) -> Any:
    """The policy's starting weights: the checkpoint's for an ``"hf:<dir>"`` model, random otherwise."""
    from jaxrl import lm

    if not lm.is_hf_spec(cfg.model):
        return setup(cfg).policy.init(key)  # (with LoRA: random base and fresh adapters)
    base = lm.resolve(cfg.model)[1]
    if cfg.lora_rank > 0:
        return lora.LoRAParams(base, lora.init_adapters(key, base, cfg.lora_rank, cfg.lora_targets))
    return base


def init(cfg: Config, key: jax.Array) -> State:
    """Random (or the checkpoint's) weights, then the supervised warm-up (``warmup_steps`` > 0);
    records held-out accuracy before and after the warm-up. The reference policy is the warmed-up one."""
    k_params, k_demo, k_batch, key = jax.random.split(key, 4)
    params = initial_params(cfg, k_params)
    trainable = lora.split(params)[0]
    state = State(
        params=params,
        opt_state=optimizer(cfg.learning_rate, cfg.max_grad_norm).init(trainable),
        warmup_opt_state=optimizer(cfg.warmup_learning_rate, cfg.max_grad_norm).init(trainable),
        ref_params=params,
        key=key,
        iteration=jnp.zeros((), jnp.int32),
        init_accuracy=jnp.asarray(heldout_accuracy(cfg, params), jnp.float32),
        warmup_accuracy=jnp.full((), jnp.nan, jnp.float32),
    )
    if cfg.fsdp_devices > 1:  # every later program runs sharded: XLA follows the inputs' placement
        mesh = sharding.make_mesh(cfg.fsdp_devices)
        state = state._replace(
            params=sharding.shard_params(state.params, mesh),
            opt_state=sharding.shard_params(state.opt_state, mesh),
            warmup_opt_state=sharding.shard_params(state.warmup_opt_state, mesh),
        )
    if cfg.warmup_steps > 0:
        demos = demonstrations(cfg, k_demo)
        state, _ = warmup(cfg, state, cfg.warmup_steps, k_batch, demos=demos, lr_scale=warmup_lr_scale(cfg))
    return state._replace(
        ref_params=reference(cfg, state.params),
        warmup_accuracy=jnp.asarray(heldout_accuracy(cfg, state.params), jnp.float32),
    )


def reference(cfg: Config, params: Any) -> Any:
    """The KL reference policy of GRPO's start: ``params`` itself, or with LoRA the same base arrays
    with the adapters off (zero)."""
    return lora.without_adapters(params) if isinstance(params, lora.LoRAParams) else params


def export_params(cfg: Config, state: State) -> Any:
    """The policy's parameters as a plain model's: LoRA adapters merged into their kernels."""
    if isinstance(state.params, lora.LoRAParams):
        return lora.merge(state.params, cfg.lora_alpha / cfg.lora_rank)
    return state.params


# ---------------------------------------------------------------------------------- TRAIN STEP
def train_step(cfg: Config, state: State) -> tuple[State, Metrics]:
    """One GRPO iteration (host Python around jitted sample and update; not traceable)."""
    t0 = time.perf_counter()
    s = setup(cfg)
    g = cfg.group_size
    key, k_prob, k_sample = jax.random.split(state.key, 3)

    # SAMPLE: G answers to each of the prompts
    n_sampled = cfg.num_sampled_prompts
    problems = s.task.sample_problems(host_rng(k_prob), n_sampled)
    prompts, plen = encode_prompts(s, cfg, problems)
    prompts, plen = np.repeat(prompts, g, axis=0), np.repeat(plen, g)
    if cfg.fsdp_devices > 1:  # data-parallel completions
        prompts, plen = sharding.shard_batch((prompts, plen), sharding.make_mesh(cfg.fsdp_devices))
    out = s.programs.sample(state.params, prompts, plen, k_sample, cfg.temperature, cfg.top_p, False)
    tokens, mask, finished = jax.device_get((out.tokens, out.completion_mask, out.finished))

    # SCORE on the host
    reps = [p for p in problems for _ in range(g)]
    texts = decode_completions(s, tokens, plen)
    with sandbox.local_exec_allowed(cfg.unsafe_local_exec):  # code rewards: the config's opt-in
        true_reward, unparsed = s.task.score_details(reps, texts, finished)
        if isinstance(cfg.reward, str) and cfg.reward == "task":
            reward = true_reward
        else:
            batch = reward_sources.RewardBatch(reps, texts, finished, tokens, plen, mask)
            reward = np.asarray(s.reward_fn(batch), np.float32).reshape(-1)
        if reward.shape != (len(reps),):
            raise ValueError(f"the reward source returned shape {reward.shape}; expected ({len(reps)},)")
    grouped = reward.reshape(n_sampled, g)

    # DYNAMIC SAMPLING: keep the prompts_per_iteration groups whose rewards vary most (static shapes)
    upd_tokens, upd_logp, upd_mask, upd_rewards = out.tokens, out.log_probs, out.completion_mask, grouped
    if n_sampled > cfg.prompts_per_iteration:
        keep = select_groups(grouped, cfg.prompts_per_iteration)
        rows = (keep[:, None] * g + np.arange(g)).reshape(-1)
        upd_tokens, upd_logp, upd_mask = (x[rows] for x in (out.tokens, out.log_probs, out.completion_mask))
        upd_rewards = grouped[keep]

    # UPDATE (advantages inside: rewards [P, G])
    logp_ref = None
    if float(cfg.beta) != 0.0:
        logp_ref = s.programs.ref_log_probs(state.ref_params, upd_tokens, cfg.temperature, upd_mask)
    if cfg.fsdp_devices > 1:
        upd_tokens, upd_logp, upd_mask, logp_ref = sharding.shard_batch(
            (upd_tokens, upd_logp, upd_mask, logp_ref), sharding.make_mesh(cfg.fsdp_devices)
        )
    trainable, frozen = lora.split(state.params)
    trainable, opt_state, (loss, diag, gnorm) = s.programs.update(
        HParams.of(cfg),
        trainable,
        frozen,
        state.opt_state,
        upd_tokens,
        upd_logp,
        upd_mask,
        upd_rewards,
        logp_ref,
        grpo_lr_scale(cfg, int(state.iteration)),
    )
    params = lora.join(trainable, frozen)
    iteration = int(state.iteration) + 1
    ref = state.ref_params
    if cfg.ref_update_every and iteration % cfg.ref_update_every == 0:
        ref = params
    acc = np.nan
    if iteration % cfg.eval_every == 0 or iteration == cfg.num_iterations:
        acc = heldout_accuracy(cfg, params)
    new_state = state._replace(
        params=params,
        opt_state=opt_state,
        ref_params=ref,
        key=key,
        iteration=jnp.asarray(iteration, jnp.int32),
    )
    f32 = np.float32
    metrics = Metrics(
        episode_return=f32(reward.mean()),
        env_steps=np.int64(iteration * n_sampled * g),  # completions sampled
        reward=f32(reward.mean()),
        true_reward=f32(np.mean(true_reward)),
        heldout_accuracy=f32(acc),
        completion_length=f32(mask.sum(axis=1).mean()),
        finished_fraction=f32(finished.mean()),
        unparsed_fraction=f32(unparsed.mean()),
        zero_std_fraction=f32(np.mean(grouped.std(axis=1) == 0)),  # of the sampled groups
        used_zero_std_fraction=f32(np.mean(upd_rewards.std(axis=1) == 0)),  # of the groups updated on
        loss=f32(loss),
        kl=f32(diag.kl),
        clip_fraction=f32(diag.clip_fraction),
        ratio_mean=f32(diag.ratio_mean),
        grad_norm=f32(gnorm),
        seconds=f32(time.perf_counter() - t0),
    )
    return new_state, metrics


def num_iterations(cfg: Config) -> int:
    return cfg.num_iterations


# -------------------------------------------------------------------------------------- ACTING
def make_policy(cfg: Config, state: State, *, deterministic: bool = True):
    """``act(prompts, key) -> completions``: prompt text(s) -> completion text(s) (greedy by default)."""
    setup(cfg)  # build (and check) now rather than at the first call

    def act(prompts: str | Sequence[str], key: jax.Array | None = None):
        single = isinstance(prompts, str)
        problems = [task_lib.Problem(p) for p in ([prompts] if single else prompts)]
        key = jax.random.key(0) if key is None else prng.as_key(key)
        texts, _ = generate(cfg, state.params, problems, key, greedy=deterministic)
        return texts[0] if single else texts

    return act


def report(cfg: Config, state: State) -> str:
    """Held-out greedy accuracy at random init, after the warm-up, and now (for ``jaxrl train``)."""
    s = setup(cfg)
    now = heldout_accuracy(cfg, state.params)
    n = len(s.task.heldout_problems())
    return (
        f"Held-out greedy accuracy ({n} {s.task.name} prompts): random init {float(state.init_accuracy):.3f}, "
        f"after warm-up {float(state.warmup_accuracy):.3f}, after {int(state.iteration)} GRPO iterations {now:.3f}"
    )
