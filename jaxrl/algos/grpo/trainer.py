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

from jaxrl import optim
from jaxrl.algos import base
from jaxrl.algos.grpo import rewards as reward_sources
from jaxrl.algos.grpo import tasks as task_lib
from jaxrl.algos.grpo.config import Config
from jaxrl.losses import grpo as grpo_losses
from jaxrl.networks import transformer


class State(NamedTuple):
    params: Any  # policy parameters
    opt_state: Any  # Adam state of the GRPO updates
    warmup_opt_state: Any  # Adam state of the supervised warm-up (kept so it can be continued)
    ref_params: Any  # reference policy of the KL penalty
    key: jax.Array  # PRNG key for the next iteration
    iteration: jax.Array  # [] int32 GRPO iterations done
    init_accuracy: jax.Array  # [] held-out greedy accuracy of the random initial weights
    warmup_accuracy: jax.Array  # [] held-out greedy accuracy after the warm-up (before GRPO)


@base.metrics_type
class Metrics(NamedTuple):
    episode_return: Any  # mean reward of this iteration's completions (= reward)
    env_steps: Any  # completions sampled so far
    reward: Any  # mean reward from GRPOConfig.reward
    true_reward: Any  # mean reward from the task's verifier (differs from reward for a learned reward)
    heldout_accuracy: Any  # greedy accuracy on the held-out prompts after this iteration (NaN: not evaluated)
    completion_length: Any  # mean completion tokens (<eos> included)
    finished_fraction: Any  # completions that ended with <eos>
    zero_std_fraction: Any  # groups whose rewards were all equal (no learning signal)
    loss: Any
    kl: Any  # k3 KL(pi || pi_ref) per token (0 when beta = 0)
    clip_fraction: Any  # tokens whose gradient the ratio clip removed (0 with inner_steps = 1)
    ratio_mean: Any
    grad_norm: Any
    seconds: Any  # wall time of this iteration


# ---------------------------------------------------------------------------------------- SETUP
@dataclasses.dataclass(frozen=True, eq=False)
class Setup:
    """Everything built once per config: task, model, jitted functions."""

    task: task_lib.Task
    policy: transformer.PolicyModel
    max_new_tokens: int
    sample: Callable  # stochastic sampler
    greedy: Callable  # greedy sampler
    update: Callable  # jitted GRPO update
    warmup_step: Callable  # jitted supervised scan
    optimizer: optax.GradientTransformation
    warmup_optimizer: optax.GradientTransformation
    reward_fn: reward_sources.RewardFn
    base_width: int  # prompt tokens of the longest held-out/sampled prompt


def _policy_model(cfg: Config, task: task_lib.Task) -> transformer.PolicyModel:
    if isinstance(cfg.model, transformer.PolicyModel):
        if cfg.model.vocab_size < task.tokenizer.vocab_size:
            raise ValueError(
                f"the policy's vocab_size {cfg.model.vocab_size} is smaller than the task tokenizer's "
                f"{task.tokenizer.vocab_size}"
            )
        return cfg.model
    return transformer.transformer_policy(cfg.transformer_config(task.tokenizer.vocab_size))


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
    task = task_lib.make_task(cfg.task)
    tok = task.tokenizer
    policy = _policy_model(cfg, task)
    new = cfg.max_new_tokens or task.max_new_tokens
    optimizer = optim.make_optimizer(cfg.learning_rate, cfg.max_grad_norm)
    warmup_optimizer = optim.make_optimizer(cfg.warmup_learning_rate, cfg.max_grad_norm)
    kw = dict(max_new_tokens=new, eos_id=tok.eos_id, pad_id=tok.pad_id)
    sample = transformer.make_sampler(policy, top_k=cfg.top_k, **kw)
    greedy = transformer.make_sampler(policy, greedy=True, **kw)
    probe = task.sample_problems(np.random.default_rng(0), 256) + task.heldout_problems()
    width = max(len(tok.encode(p.prompt, bos=True)) for p in probe)
    use_ref = float(cfg.beta) != 0.0
    temperature = float(cfg.temperature)

    def loss_fn(params, tokens, logp_old, mask, adv, logp_ref):
        logp = transformer.token_log_probs(policy, params, tokens, temperature)
        return grpo_losses.grpo_loss(
            logp,
            logp_old,
            adv,
            mask,
            logp_ref=logp_ref,
            beta=cfg.beta,
            clip_eps_low=cfg.clip_eps_low,
            clip_eps_high=cfg.clip_eps_high,
            aggregation=cfg.aggregation,
            max_tokens=new,
        )

    @jax.jit
    def update(params, opt_state, ref_params, tokens, logp_old, mask, adv):
        logp_ref = transformer.token_log_probs(policy, ref_params, tokens, temperature) if use_ref else None

        def step(carry, _):
            params, opt_state = carry
            (loss, diag), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, tokens, logp_old, mask, adv, logp_ref
            )
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (loss, diag, optax.global_norm(grads))

        (params, opt_state), (loss, diag, gnorm) = jax.lax.scan(
            step, (params, opt_state), None, cfg.inner_steps
        )
        stats = jax.tree_util.tree_map(jnp.mean, (loss, diag, gnorm))
        return params, opt_state, stats

    @jax.jit
    def warmup_step(params, opt_state, tokens, mask, batches):
        """``batches [S, B]`` rows of (tokens, mask) -> S supervised steps (cross-entropy on the answer)."""

        def step(carry, idx):
            params, opt_state = carry

            def nll(p):
                logp = transformer.token_log_probs(policy, p, tokens[idx])
                return -grpo_losses.aggregate(logp, mask[idx], "token")

            loss, grads = jax.value_and_grad(nll)(params)
            updates, opt_state = warmup_optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), batches)
        return params, opt_state, losses

    return Setup(
        task=task,
        policy=policy,
        max_new_tokens=new,
        sample=sample,
        greedy=greedy,
        update=update,
        warmup_step=warmup_step,
        optimizer=optimizer,
        warmup_optimizer=warmup_optimizer,
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


# ------------------------------------------------------------------------------------ EVALUATION
def heldout_accuracy(
    cfg: Config, params: Any, *, problems: Sequence[task_lib.Problem] | None = None
) -> float:
    """Greedy accuracy (reward >= the task's success threshold, scored by the task's verifier)."""
    s = setup(cfg)
    problems = list(problems if problems is not None else s.task.heldout_problems())
    prompts, plen = encode_prompts(s, cfg, problems)
    out = jax.device_get(s.greedy(params, prompts, plen, jax.random.key(0)))
    texts = decode_completions(s, out.tokens, plen)
    r = s.task.score(problems, texts, out.finished)
    return float(np.mean(r >= s.task.success_threshold))


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


def warmup(
    cfg: Config,
    state: State,
    num_steps: int,
    key: jax.Array,
    *,
    demos: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[State, np.ndarray]:
    """``num_steps`` supervised steps (batches of ``warmup_batch`` drawn with replacement from the
    demonstrations); returns the new state and the per-step losses. Used by ``init``, and to continue
    supervised training instead of GRPO (the control experiment)."""
    s = setup(cfg)
    k_demo, k_batch = jax.random.split(key)
    tokens, mask = demos if demos is not None else demonstrations(cfg, k_demo)
    idx = host_rng(k_batch).integers(0, len(tokens), size=(num_steps, cfg.warmup_batch))
    params, opt_state, losses = s.warmup_step(state.params, state.warmup_opt_state, tokens, mask, idx)
    return state._replace(params=params, warmup_opt_state=opt_state), np.asarray(losses)


# ---------------------------------------------------------------------------------------- INIT
def init(cfg: Config, key: jax.Array) -> State:
    """Random weights, then the supervised warm-up (``warmup_steps`` > 0); records held-out accuracy
    before and after the warm-up. The reference policy is the warmed-up one."""
    s = setup(cfg)
    k_params, k_warm, key = jax.random.split(key, 3)
    params = s.policy.init(k_params)
    state = State(
        params=params,
        opt_state=s.optimizer.init(params),
        warmup_opt_state=s.warmup_optimizer.init(params),
        ref_params=params,
        key=key,
        iteration=jnp.zeros((), jnp.int32),
        init_accuracy=jnp.asarray(heldout_accuracy(cfg, params), jnp.float32),
        warmup_accuracy=jnp.full((), jnp.nan, jnp.float32),
    )
    if cfg.warmup_steps > 0:
        state, _ = warmup(cfg, state, cfg.warmup_steps, k_warm)
    return state._replace(
        ref_params=state.params,
        warmup_accuracy=jnp.asarray(heldout_accuracy(cfg, state.params), jnp.float32),
    )


# ---------------------------------------------------------------------------------- TRAIN STEP
def train_step(cfg: Config, state: State) -> tuple[State, Metrics]:
    """One GRPO iteration (host Python around jitted sample and update; not traceable)."""
    t0 = time.perf_counter()
    s = setup(cfg)
    g = cfg.group_size
    key, k_prob, k_sample = jax.random.split(state.key, 3)

    # SAMPLE: G answers to each of the prompts
    problems = s.task.sample_problems(host_rng(k_prob), cfg.prompts_per_iteration)
    prompts, plen = encode_prompts(s, cfg, problems)
    prompts, plen = np.repeat(prompts, g, axis=0), np.repeat(plen, g)
    out = s.sample(state.params, prompts, plen, k_sample, cfg.temperature, cfg.top_p)
    tokens, mask, finished = jax.device_get((out.tokens, out.completion_mask, out.finished))

    # SCORE on the host
    reps = [p for p in problems for _ in range(g)]
    texts = decode_completions(s, tokens, plen)
    batch = reward_sources.RewardBatch(reps, texts, finished, tokens, plen, mask)
    reward = np.asarray(s.reward_fn(batch), np.float32).reshape(-1)
    if reward.shape != (len(reps),):
        raise ValueError(f"the reward source returned shape {reward.shape}; expected ({len(reps)},)")
    true_reward = reward if cfg.reward == "task" else s.task.score(reps, texts, finished)
    grouped = reward.reshape(cfg.prompts_per_iteration, g)
    adv = grpo_losses.group_advantages(jnp.asarray(grouped), scale=cfg.advantage_scale, eps=cfg.advantage_eps)

    # UPDATE
    params, opt_state, (loss, diag, gnorm) = s.update(
        state.params,
        state.opt_state,
        state.ref_params,
        out.tokens,
        out.log_probs,
        out.completion_mask,
        adv.reshape(-1),
    )
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
    metrics = Metrics(
        episode_return=float(reward.mean()),
        env_steps=iteration * cfg.batch_size,
        reward=float(reward.mean()),
        true_reward=float(np.mean(true_reward)),
        heldout_accuracy=float(acc),
        completion_length=float(mask.sum(axis=1).mean()),
        finished_fraction=float(finished.mean()),
        zero_std_fraction=float(np.mean(grouped.std(axis=1) == 0)),
        loss=float(loss),
        kl=float(diag.kl),
        clip_fraction=float(diag.clip_fraction),
        ratio_mean=float(diag.ratio_mean),
        grad_norm=float(gnorm),
        seconds=time.perf_counter() - t0,
    )
    return new_state, metrics


def num_iterations(cfg: Config) -> int:
    return cfg.num_iterations


# -------------------------------------------------------------------------------------- ACTING
def make_policy(cfg: Config, state: State, *, deterministic: bool = True):
    """``act(prompts, key) -> completions``: prompt text(s) -> completion text(s) (greedy by default)."""
    s = setup(cfg)

    def act(prompts: str | Sequence[str], key: jax.Array | None = None):
        single = isinstance(prompts, str)
        problems = [task_lib.Problem(p) for p in ([prompts] if single else prompts)]
        ids, plen = encode_prompts(s, cfg, problems)
        sampler = s.greedy if deterministic else s.sample
        key = jax.random.key(0) if key is None else base.as_key(key)
        out = jax.device_get(sampler(state.params, ids, plen, key, cfg.temperature, cfg.top_p))
        texts = decode_completions(s, out.tokens, plen)
        return texts[0] if single else texts

    return act
