"""GRPO speed on a Hugging Face checkpoint: jaxrl vs TRL ``GRPOTrainer`` (torch), tunix and EasyDeL (JAX).

All frameworks train the same random-initialised Llama-shaped checkpoint, written here with
``transformers.save_pretrained`` (hidden 512, 4 layers, 8 query / 4 key-value heads, MLP 1376,
vocabulary 32,768, tied embeddings: ~28.4M parameters, the shape of
``/work/shared/tools/trl_grpo_llama_throughput.py``) with a word-level tokenizer trained by
``tokenizers`` over a 32,765-word lexicon (every token id decodes to a word). Nothing is downloaded.

Same work for everyone: 8 prompts of 6 lexicon words per step, G = 8 completions each (64 per
step), 32 new tokens per completion, temperature 1, beta 0 (no reference model pass), one gradient
step per sampled batch, learning rate 1e-5, one CPU thread. The reward, a cheap function of the
decoded text (``len(text) % 7 / 6``), differs within groups so advantages are not all zero. A
random model emits ``<eos>`` with odds ~1/32,768 per token, so completions run the full 32 tokens
(TRL's ``min_new_tokens`` pins it; the others report their mean completion length).

Measured per framework: seconds per GRPO step (median of the steps after the first, which
compiles), completions/s and generated tokens/s from it, the time spent sampling where the framework
lets it be timed, the first step's time and the process's peak resident memory. Each framework runs
in its own process and Python (its own virtual environment for the peers), one after the other,
rotated between rounds, with the load average recorded before each run: the machine is shared.

Runs (``RUNS``; ``--only`` picks and orders them): ``trl`` is the issue's reference setup, that of
``/work/shared/tools/trl_grpo_llama_throughput.py``: ``GRPOConfig``'s defaults but ``bf16=False``, so
TRL's default gradient checkpointing is on (it costs TRL ~0.5-1 CPU s of a ~13-14 s step here);
``trl-nogc`` turns it off (TRL's fastest float32 setting); ``trl-bf16`` is TRL's own default
``bf16=True`` (torch CPU autocast). ``jaxrl`` is float32; ``jaxrl-bf16`` is
``GRPOConfig(compute_dtype="bfloat16")`` (bfloat16 sampling and forward/backward, float32 master
weights, Adam state and log-probabilities). Like-for-like pairs: jaxrl vs trl / trl-nogc (float32),
jaxrl-bf16 vs trl-bf16 (bfloat16); the summary gives every jaxrl run over every other run.

    python benchmarks/grpo_hf_vs_peers.py [--rounds 2] [--steps 4] [--only jaxrl jaxrl-bf16 trl ...]

Interpreters: ``--trl-python`` (default ``/work/venv``: torch, transformers, trl),
``--tunix-python`` (``/work/peers/tunix``: ``pip install google-tunix``),
``--easydel-python`` (``/work/peers/easydel``: ``pip install easydel pillow torch==2.13.0``; EasyDeL
0.3.0's model loading imports ``transformers`` model classes that need torch, its eSurge imports PIL; it
pulls jax 0.9.2), ``--jaxrl-python``
(this one). A framework whose interpreter is missing or whose run fails is recorded with its error.
Writes ``benchmarks/results/grpo_hf_vs_peers.json``; figures go in ``benchmarks/RESULTS.md``.

The same file is the per-framework worker: ``--worker NAME --ckpt DIR --json-out FILE`` (it only
imports the framework's own packages, so it runs under any of the interpreters).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FRAMEWORKS = ("jaxrl", "trl", "tunix", "easydel")
# run name -> (framework, settings of its worker). "trl" is the reference setup
# (/work/shared/tools/trl_grpo_llama_throughput.py): GRPOConfig's defaults with bf16=False, so TRL's
# default gradient checkpointing is on; "trl-nogc" turns it off (TRL's fastest float32 setting here);
# "trl-bf16" is GRPOConfig's own default bf16=True (torch CPU autocast); "jaxrl-bf16" is
# GRPOConfig(compute_dtype="bfloat16"): bfloat16 sampling and forward/backward, float32 master weights,
# Adam state and log-probabilities/ratio.
RUNS = {
    "jaxrl": ("jaxrl", {}),
    "jaxrl-bf16": ("jaxrl", {"compute_dtype": "bfloat16"}),
    "trl": ("trl", {}),
    "trl-nogc": ("trl", {"gradient_checkpointing": False}),
    "trl-bf16": ("trl", {"bf16": True}),
    "tunix": ("tunix", {}),
    "easydel": ("easydel", {}),
}

# the shared workload
PROMPTS_PER_STEP = 8
GROUP = 8
NEW_TOKENS = 32
LEARNING_RATE = 1e-5
MAX_PROMPT_TOKENS = 16
MODEL_SHAPE = dict(
    hidden_size=512,
    intermediate_size=1376,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=4,
    vocab_size=32768,
    max_position_embeddings=256,
    tie_word_embeddings=True,
)
SPECIALS = ["<|endoftext|>", "<|pad|>", "<|unk|>"]


def _lexicon(seed: int = 0) -> list[str]:
    """32,765 distinct lowercase words (3-8 letters), the tokenizer's whole vocabulary."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words: set[str] = set()
    n = MODEL_SHAPE["vocab_size"] - len(SPECIALS)
    while len(words) < n:
        words.update("".join(rng.choice(letters, size=int(rng.integers(3, 9)))) for _ in range(n))
    return sorted(words)[:n]


def prompts(n: int, seed: int = 1) -> list[str]:
    """``n`` prompts of 6 lexicon words each (the same list for every framework)."""
    import numpy as np

    lex = _lexicon()
    rng = np.random.default_rng(seed)
    return [" ".join(lex[i] for i in rng.integers(0, len(lex), size=6)) for _ in range(n)]


def reward_of(text: str) -> float:
    """Cheap, deterministic, varies between completions: the decoded length modulo 7, in [0, 1]."""
    return (len(text) % 7) / 6.0


def make_checkpoint(out: str) -> dict:
    """Write the random Llama checkpoint and its tokenizer to ``out`` (needs torch + transformers)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    lex = _lexicon()
    tk = Tokenizer(models.WordLevel(unk_token="<|unk|>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    corpus = [" ".join(lex[i : i + 16]) for i in range(0, len(lex), 16)]
    tk.train_from_iterator(
        corpus,
        trainers.WordLevelTrainer(
            vocab_size=MODEL_SHAPE["vocab_size"], special_tokens=SPECIALS, show_progress=False
        ),
    )
    assert tk.get_vocab_size() == MODEL_SHAPE["vocab_size"], tk.get_vocab_size()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<|pad|>",
        unk_token="<|unk|>",
    )
    tok.padding_side = "left"
    torch.manual_seed(0)
    cfg = LlamaConfig(
        **MODEL_SHAPE,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"params": sum(p.numel() for p in model.parameters()), "dir": out}


# ----------------------------------------------------------------------------------------- workers
def _one_thread_env() -> None:
    """One compute thread for whatever framework this process runs (before any import of it)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    flags = os.environ.get("XLA_FLAGS", "")
    if "multi_thread_eigen" not in flags:
        flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["XLA_FLAGS"] = flags.strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[k] = "1"
    os.environ["WANDB_DISABLED"] = "true"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def _jax_one_thread() -> None:
    """XLA's CPU pool of one thread (jaxrl/cpu.py loaded by path: it imports nothing from jaxrl)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_jaxrl_cpu", ROOT / "jaxrl" / "cpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.set_cpu_threads(1)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _summary(
    name: str,
    step_s: list[float],
    step_cpu_s: list[float],
    sample_s: list[float],
    lengths: list[float],
    extra: dict,
) -> dict:
    """``step_cpu_s``: the process's CPU time per step (all its threads). With one compute thread it is
    the step's time without the other processes on the machine, so it is the steadier figure here."""
    timed = step_s[1:] if len(step_s) > 1 else step_s
    med = statistics.median(timed)
    cpu_med = statistics.median(step_cpu_s[1:] if len(step_cpu_s) > 1 else step_cpu_s)
    n = PROMPTS_PER_STEP * GROUP
    mean_len = statistics.fmean(lengths) if lengths else float(NEW_TOKENS)
    out = {
        "framework": name,
        "steps": len(step_s),
        "first_step_s": round(step_s[0], 3),
        "step_s_all": [round(t, 3) for t in step_s],
        "step_s_median": round(med, 3),
        "completions_per_s": round(n / med, 3),
        "gen_tokens_per_s": round(n * mean_len / med, 1),
        "mean_completion_tokens": round(mean_len, 2),
        "step_cpu_s_all": [round(t, 3) for t in step_cpu_s],
        "step_cpu_s_median": round(cpu_med, 3),
        "completions_per_cpu_s": round(n / cpu_med, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    if sample_s:
        st = sample_s[1:] if len(sample_s) > 1 else sample_s
        out["sample_s_median"] = round(statistics.median(st), 3)
        out["update_s_median"] = round(med - statistics.median(st), 3)  # the rest of the step
    out.update(extra)
    return out


def _timed(obj, name: str, wall: list, cpu: list | None = None, done=None, after=None) -> None:
    """Replace the method ``obj.name`` by one that appends each call's wall seconds to ``wall`` (and its
    process CPU seconds to ``cpu``). ``done(out)`` runs inside the timing (wait for the device work, or
    raise); ``after(out)`` after it (bookkeeping that must not be timed)."""
    fn = getattr(obj, name)

    def timed(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        out = fn(*a, **k)
        if done is not None:
            done(out)
        wall.append(time.perf_counter() - t)
        if cpu is not None:
            cpu.append(time.process_time() - c)
        if after is not None:
            after(out)
        return out

    setattr(obj, name, timed)


def worker_trl(ckpt: str, steps: int, gradient_checkpointing: bool = True, bf16: bool = False) -> dict:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    import transformers
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(ckpt)
    tok.padding_side = "left"
    ds = Dataset.from_dict({"prompt": prompts(PROMPTS_PER_STEP * steps)})
    lengths: list[float] = []

    def reward(completions, completion_ids, **kw):
        lengths.append(sum(len(c) for c in completion_ids) / len(completion_ids))
        return [reward_of(c) for c in completions]

    step_s: list[float] = []
    step_cpu_s: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, a, s, c, **k):
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_step_end(self, a, s, c, **k):
            step_s.append(time.perf_counter() - self.t)
            step_cpu_s.append(time.process_time() - self.c)

    gcfg = trl.GRPOConfig(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=PROMPTS_PER_STEP * GROUP,
        gradient_accumulation_steps=1,
        num_generations=GROUP,
        max_completion_length=NEW_TOKENS,
        max_steps=steps,
        learning_rate=LEARNING_RATE,
        beta=0.0,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        logging_steps=10**9,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=bf16,  # TRL's default is True; the reference setup sets False
        gradient_checkpointing=gradient_checkpointing,  # TRL's default (True) in the setup
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
        generation_kwargs={"min_new_tokens": NEW_TOKENS},
    )
    tr = trl.GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=gcfg,
        train_dataset=ds,
        processing_class=tok,
        callbacks=[Timer()],
    )
    sample_s: list[float] = []
    _timed(tr, "_generate_single_turn", sample_s)  # HF generate() alone (TRL's own timing: loggers only)
    tr.train()
    return _summary(
        "trl",
        step_s,
        step_cpu_s,
        sample_s,
        lengths,
        {
            "versions": {
                "trl": trl.__version__,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            },
            "threads": torch.get_num_threads(),
            "gradient_checkpointing": gradient_checkpointing,
            "bf16": bf16,
            "params": sum(p.numel() for p in model.parameters()),
        },
    )


def worker_tunix(ckpt: str, steps: int) -> dict:
    _jax_one_thread()
    import importlib.metadata as md

    import jax
    import numpy as np
    import optax
    from transformers import AutoConfig, AutoTokenizer
    from tunix.models.llama3 import model as llama_lib
    from tunix.models.llama3 import params as llama_params
    from tunix.rl import rl_cluster as rl_cluster_lib
    from tunix.rl.grpo import grpo_learner
    from tunix.rl.rollout import base_rollout

    hf = AutoConfig.from_pretrained(ckpt)
    mcfg = llama_lib.ModelConfig(
        num_layers=hf.num_hidden_layers,
        vocab_size=hf.vocab_size,
        embed_dim=hf.hidden_size,
        hidden_dim=hf.intermediate_size,
        num_heads=hf.num_attention_heads,
        head_dim=hf.hidden_size // hf.num_attention_heads,
        num_kv_heads=hf.num_key_value_heads,
        rope_theta=int(
            hf.rope_parameters["rope_theta"] if getattr(hf, "rope_parameters", None) else hf.rope_theta
        ),
        norm_eps=hf.rms_norm_eps,
        weight_tying=hf.tie_word_embeddings,
    )
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("fsdp", "tp"))  # Auto axes
    actor = llama_params.create_model_from_safe_tensors(ckpt, mcfg, mesh)
    tok = AutoTokenizer.from_pretrained(ckpt)
    lengths: list[float] = []

    def reward(prompts, completions, **kw):
        return [reward_of(c) for c in completions]

    rollout = base_rollout.RolloutConfig(
        max_tokens_to_generate=NEW_TOKENS,
        max_prompt_length=MAX_PROMPT_TOKENS,
        kv_cache_size=MAX_PROMPT_TOKENS + NEW_TOKENS + 8,
        temperature=1.0,
        top_p=1.0,
        top_k=None,
        eos_tokens=[tok.eos_token_id],
    )
    training = rl_cluster_lib.RLTrainingConfig(
        actor_optimizer=optax.chain(
            optax.clip_by_global_norm(1.0), optax.adamw(LEARNING_RATE, weight_decay=0.0)
        ),
        eval_every_n_steps=10**9,
        max_steps=steps,
    )
    cluster = rl_cluster_lib.RLCluster(
        actor=actor,
        reference=None,
        tokenizer=tok,
        cluster_config=rl_cluster_lib.ClusterConfig(
            role_to_mesh={
                rl_cluster_lib.Role.ACTOR: mesh,
                rl_cluster_lib.Role.REFERENCE: mesh,
                rl_cluster_lib.Role.ROLLOUT: mesh,
            },
            rollout_engine="vanilla",
            offload_to_cpu=False,
            training_config=training,
            rollout_config=rollout,
        ),
    )
    learner = grpo_learner.GrpoLearner(
        rl_cluster=cluster,
        algo_config=grpo_learner.GrpoConfig(num_generations=GROUP, num_iterations=1, beta=0.0, epsilon=0.2),
        reward_fns=reward,
    )
    sample_s: list[float] = []

    def count_lengths(out):
        toks = getattr(out, "tokens", None)
        if toks is not None:
            lengths.append(float(np.mean([len(np.asarray(x)) for x in toks])))

    done = lambda out: jax.block_until_ready(getattr(out, "tokens", out))  # noqa: E731
    _timed(cluster, "generate", sample_s, done=done, after=count_lengths)
    step_s: list[float] = []
    step_cpu_s: list[float] = []
    model_state = lambda: jax.tree.leaves(__import__("flax").nnx.state(cluster.actor_trainer.model))  # noqa: E731
    _timed(
        learner, "_run_global_step", step_s, step_cpu_s, done=lambda out: jax.block_until_ready(model_state())
    )
    all_prompts = prompts(PROMPTS_PER_STEP * steps)
    batches = [
        {"prompts": np.array(all_prompts[i : i + PROMPTS_PER_STEP])}
        for i in range(0, len(all_prompts), PROMPTS_PER_STEP)
    ]
    learner.train(batches)
    return _summary(
        "tunix",
        step_s,
        step_cpu_s,
        sample_s,
        lengths,
        {
            "versions": {p: md.version(p) for p in ("google-tunix", "jax", "flax", "qwix")},
            "threads": 1,
        },
    )


def worker_easydel(ckpt: str, steps: int) -> dict:
    _jax_one_thread()
    import importlib.metadata as md

    import easydel as ed
    import jax
    import jax.numpy as jnp
    from datasets import Dataset
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ckpt)
    tok.padding_side = "left"
    model = ed.AutoEasyDeLModelForCausalLM.from_pretrained(
        ckpt,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        sharding_axis_dims=(1, 1, 1, 1, 1),
        auto_shard_model=True,
        from_torch=True,  # a transformers checkpoint (False: an EasyDeL one)
    )
    lengths: list[float] = []

    def reward(prompts, completions, **kw):
        return [reward_of(c if isinstance(c, str) else str(c)) for c in completions]

    args = ed.GRPOConfig(
        total_batch_size=PROMPTS_PER_STEP,
        num_generations=GROUP,
        max_prompt_length=MAX_PROMPT_TOKENS,
        max_completion_length=NEW_TOKENS,
        learning_rate=LEARNING_RATE,
        beta=0.0,
        temperature=1.0,
        top_p=1.0,
        top_k=None,
        max_training_steps=steps,
        num_train_epochs=1,
        skip_apply_chat_template=True,
        use_esurge_generation=False,
        save_steps=None,
        do_last_save=False,
        report_steps=10**9,
        log_steps=10**9,
        use_wandb=False,
        do_eval=False,
    )
    ds = Dataset.from_dict({"prompt": prompts(PROMPTS_PER_STEP * steps)})
    trainer = ed.GRPOTrainer(
        arguments=args, model=model, reward_funcs=reward, train_dataset=ds, processing_class=tok
    )
    sample_s: list[float] = []
    _timed(trainer, "generate_unified", sample_s, done=lambda out: jax.block_until_ready(out.completion_ids))
    step_s: list[float] = []
    step_cpu_s: list[float] = []

    def raise_error(out):  # (state, metrics, err), after the update is done
        if out[2] is not None:  # EasyDeL catches it to save the state; a benchmark must not go on
            raise out[2]

    _timed(trainer, "_execute_train_step", step_s, step_cpu_s, done=raise_error)
    trainer.train()
    if len(step_s) != steps:
        raise RuntimeError(f"EasyDeL ran {len(step_s)} steps, {steps} were asked")
    return _summary(
        "easydel",
        step_s,
        step_cpu_s,
        sample_s,
        lengths,
        {"versions": {p: md.version(p) for p in ("easydel", "eformer", "jax", "flax")}, "threads": 1},
    )


def worker_jaxrl(ckpt: str, steps: int, compute_dtype: str = "float32") -> dict:
    """jaxrl's GRPO on the checkpoint: ``jaxrl.lm.from_pretrained`` gives the policy, its weights and
    tokenizer; the task draws the shared prompts and the reward callable scores every completion
    (finished or not, as the peers do). After the timed steps, sampling is timed alone
    (the split of a step: the update and host work are the rest)."""
    _jax_one_thread()
    import jax
    import numpy as np

    import jaxrl
    import jaxrl.lm
    from jaxrl.algos.grpo import trainer

    hf = jaxrl.lm.is_hf_spec(f"hf:{ckpt}") if hasattr(jaxrl.lm, "is_hf_spec") else False
    model, params, tok = jaxrl.lm.from_pretrained(ckpt, dtype="float32")
    pool = prompts(PROMPTS_PER_STEP * steps)
    task = jaxrl.Task(
        name="words",
        tokenizer=tok,
        generate=lambda rng: jaxrl.Problem(prompt=pool[int(rng.integers(len(pool)))]),
        reward=lambda problem, text: reward_of(text),
        max_new_tokens=NEW_TOKENS,
        heldout=[jaxrl.Problem(prompt=prompts(1, seed=2)[0])],
    )
    lora_rank = int(os.environ.get("GRPO_PEERS_LORA_RANK", "0"))
    extra = {"lora_rank": lora_rank} if lora_rank else {}
    cfg = jaxrl.GRPOConfig(
        task=task,
        model=f"hf:{ckpt}" if hf else model,  # the user's path where this jaxrl has it
        reward=lambda batch: [reward_of(t) for t in batch.texts],  # unfinished completions too
        warmup_steps=0,
        num_iterations=10**6,  # never reached: no final evaluation inside the timed steps
        group_size=GROUP,
        prompts_per_iteration=PROMPTS_PER_STEP,
        oversample=1,
        inner_steps=1,
        max_new_tokens=NEW_TOKENS,
        learning_rate=LEARNING_RATE,
        lr_schedule="constant",
        beta=0.0,
        temperature=1.0,
        eval_every=10**9,
        **extra,
    )
    if compute_dtype != "float32":
        cfg = cfg.replace(compute_dtype=compute_dtype)
    state = trainer.init(cfg, jax.random.key(0))
    if not hf:  # an older jaxrl: start from the checkpoint's weights by hand
        opt = trainer.optimizer(cfg.learning_rate, cfg.max_grad_norm)
        state = state._replace(params=params, ref_params=params, opt_state=opt.init(params))
    step_s, step_cpu_s, lengths = [], [], []
    for _ in range(steps):
        t, c = time.perf_counter(), time.process_time()
        state, m = trainer.train_step(cfg, state)
        jax.block_until_ready(state.params)
        step_s.append(time.perf_counter() - t)
        step_cpu_s.append(time.process_time() - c)
        lengths.append(float(m.completion_length))

    # the split: the jitted sampler alone on a step's shapes (the update is the rest of the step)
    s = trainer.setup(cfg)
    problems = s.task.sample_problems(np.random.default_rng(0), PROMPTS_PER_STEP)
    pr, plen = trainer.encode_prompts(s, cfg, problems)
    pr, plen = np.repeat(pr, GROUP, axis=0), np.repeat(plen, GROUP)
    sample_cpu = []
    for i in range(2):
        c = time.process_time()
        jax.block_until_ready(s.programs.sample(state.params, pr, plen, jax.random.key(i), 1.0, 1.0, False))
        sample_cpu.append(time.process_time() - c)
    step_cpu_med = statistics.median(step_cpu_s[1:])
    return _summary(
        "jaxrl",
        step_s,
        step_cpu_s,
        [],
        lengths,
        {
            "versions": {"jax": jax.__version__, "jaxrl": getattr(jaxrl, "__version__", "main")},
            "threads": 1,
            "params": int(sum(x.size for x in jax.tree.leaves(params))),
            "model": "hf:<ckpt>" if hf else "PolicyModel from jaxrl.lm.from_pretrained",
            "lora_rank": lora_rank,
            "compute_dtype": compute_dtype,
            "sample_cpu_s_alone": [round(x, 3) for x in sample_cpu],
            "update_and_host_cpu_s": round(step_cpu_med - min(sample_cpu), 3),
        },
    )


_WORKER_FNS = {"trl": worker_trl, "tunix": worker_tunix, "easydel": worker_easydel, "jaxrl": worker_jaxrl}


def _worker(run: str):
    framework, settings = RUNS[run]
    return lambda ckpt, steps: _WORKER_FNS[framework](ckpt, steps, **settings)


WORKERS = {run: _worker(run) for run in RUNS}


# ----------------------------------------------------------------------------------------- driver
def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def run_worker(
    python: str, name: str, ckpt: str, steps: int, timeout: float, pythonpath: str = str(ROOT)
) -> dict:
    """One framework in its own process (``pythonpath``: where it imports jaxrl from); returns its
    JSON, or ``{"error": ...}``."""
    out = os.path.join(tempfile.mkdtemp(), f"{name}.json")
    cmd = [python, str(Path(__file__).resolve()), "--worker", name, "--ckpt", ckpt, "--steps", str(steps)]
    cmd += ["--json-out", out]
    env = {**os.environ, "PYTHONPATH": pythonpath}
    t0 = time.perf_counter()
    load = os.getloadavg()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"framework": name, "error": f"timed out after {timeout:.0f} s", "load_avg_before": load}
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not os.path.exists(out):
        tail = (proc.stderr or proc.stdout)[-3000:]
        return {
            "framework": name,
            "error": f"exit {proc.returncode}",
            "stderr_tail": tail,
            "load_avg_before": load,
        }
    with open(out) as f:
        r = json.load(f)
    r.update(process_wall_s=round(wall, 1), load_avg_before=load, load_avg_after=os.getloadavg())
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help="an existing checkpoint directory (default: write a fresh one)")
    ap.add_argument("--json-out", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=4, help="GRPO steps per run (the first is not timed)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds over the frameworks, order rotated")
    ap.add_argument(
        "--only",
        nargs="+",
        choices=list(RUNS),
        default=list(RUNS),
        help="runs, in order (see RUNS: trl = the issue's reference setup, -bf16 = bfloat16 variants)",
    )
    ap.add_argument("--jaxrl-python", default=sys.executable)
    ap.add_argument(
        "--jaxrl-root",
        default=str(ROOT),
        help="repository the jaxrl run imports jaxrl from (default: this one; e.g. another branch's worktree)",
    )
    ap.add_argument("--trl-python", default="/work/venv/bin/python")
    ap.add_argument("--tunix-python", default="/work/peers/tunix/bin/python")
    ap.add_argument("--easydel-python", default="/work/peers/easydel/bin/python")
    ap.add_argument(
        "--jaxrl-lora-rank", type=int, default=0, help="jaxrl trains rank-r LoRA adapters (0: every weight)"
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per framework run")
    ap.add_argument("--out", default="grpo_hf_vs_peers", help="results/<out>.json")
    args = ap.parse_args()

    if args.worker:
        _one_thread_env()
        if args.steps < 2:
            raise SystemExit("--steps must be >= 2 (the first step compiles and is not timed)")
        r = WORKERS[args.worker](args.ckpt, args.steps)
        with open(args.json_out, "w") as f:
            json.dump(r, f)
        print(json.dumps(r))
        return

    if args.jaxrl_lora_rank:
        os.environ["GRPO_PEERS_LORA_RANK"] = str(args.jaxrl_lora_rank)
    ckpt = args.ckpt
    info: dict = {}
    if ckpt is None:
        ckpt = tempfile.mkdtemp(prefix="grpo_hf_ckpt_")
        code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import grpo_hf_vs_peers as b; "
        code += f"import json; print(json.dumps(b.make_checkpoint({ckpt!r})))"
        proc = subprocess.run([args.trl_python, "-c", code], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"could not write the checkpoint with {args.trl_python}:\n{proc.stderr[-3000:]}")
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        print("checkpoint:", info, flush=True)
    pythons = {
        "jaxrl": args.jaxrl_python,
        "trl": args.trl_python,
        "tunix": args.tunix_python,
        "easydel": args.easydel_python,
    }
    rows = []
    order = list(args.only)
    for rnd in range(args.rounds):
        for name in order[rnd % len(order) :] + order[: rnd % len(order)]:
            fw = RUNS[name][0]
            if not Path(pythons[fw]).exists():
                r = {"framework": fw, "error": f"no interpreter at {pythons[fw]}"}
            else:
                root = args.jaxrl_root if fw == "jaxrl" else str(ROOT)
                r = run_worker(pythons[fw], name, ckpt, args.steps, args.timeout, root)
                if fw == "jaxrl":
                    r["jaxrl_root"] = root
            r.update(run=name, settings=RUNS[name][1], round=rnd, uptime=_uptime())
            rows.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "stderr_tail"}), flush=True)
            if "error" in r:
                print(r.get("stderr_tail", ""), flush=True)

    def best(name: str, key: str = "completions_per_s") -> float | None:
        vals = [r[key] for r in rows if r.get("run") == name and "error" not in r]
        return max(vals) if vals else None

    summary: dict = {f"{n}_completions_per_s_best": best(n) for n in order}
    summary.update({f"{n}_completions_per_cpu_s_best": best(n, "completions_per_cpu_s") for n in order})
    for mine in [n for n in order if RUNS[n][0] == "jaxrl"]:  # every jaxrl run against every other
        for other in [n for n in order if RUNS[n][0] != "jaxrl"]:
            if best(mine) and best(other):
                summary[f"{mine}_over_{other}"] = round(best(mine) / best(other), 2)
                cpu = best(mine, "completions_per_cpu_s") / best(other, "completions_per_cpu_s")
                summary[f"{mine}_over_{other}_cpu"] = round(cpu, 2)
    print("summary:", json.dumps(summary), flush=True)
    sys.path.insert(0, str(HERE))
    import _harness as H

    payload = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "checkpoint": info or {"dir": ckpt},
        "workload": {
            "prompts_per_step": PROMPTS_PER_STEP,
            "group_size": GROUP,
            "new_tokens": NEW_TOKENS,
            "learning_rate": LEARNING_RATE,
            "beta": 0.0,
            "temperature": 1.0,
            "model_shape": MODEL_SHAPE,
            "steps_per_run": args.steps,
        },
        "rows": rows,
        "summary": summary,
        "cpu": H.machine_info()["cpu"] if args.only else None,
    }
    print("wrote", H.write_json(args.out, payload))


if __name__ == "__main__":
    main()
