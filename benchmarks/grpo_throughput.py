"""GRPO throughput: sampling tokens/s and GRPO iteration time per built-in model size, and the TRL peer.

For each size (nano, tiny, small) on the addition task's vocabulary:
  * sampling: the jitted KV-cache sampler on 64 prompts, (a) the addition budget of 4 new tokens
    (b) 24 new tokens; generated tokens/s (completion tokens actually produced, <eos> included)
    and the same with full recompute (no cache) for (b);
  * GRPO iteration: ``train_step`` (sample 8 prompts x 8 answers, decode, score, one update) with the
    default GRPOConfig, median wall and CPU time over 20 iterations after compilation.
Then, optionally, the TRL peer (``--trl``): /work/shared/tools/trl_grpo_bench.py run once in its own venv
(same task, same tiny GPT-2 shape, 64 completions per step).

    python benchmarks/grpo_throughput.py [--sizes nano,tiny,small] [--trl /work/venv-trl/bin/python]

Timings are wall clock (and process CPU) on whatever machine runs it; the 2-core machine these
figures came from was shared with other jobs, so re-run on a quiet machine for clean numbers.
Writes ``benchmarks/results/grpo_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl import tasks  # noqa: E402
from jaxrl.algos.grpo import trainer  # noqa: E402
from jaxrl.networks import transformer  # noqa: E402

TRL_BENCH = "/work/shared/tools/trl_grpo_bench.py"


def time_calls(fn, repeats: int) -> tuple[float, float, float]:
    """(median wall s, median CPU s, best wall s) of ``repeats`` calls after one warm-up call."""
    jax.block_until_ready(fn(0))
    walls, cpus = [], []
    for i in range(1, repeats + 1):
        c0, t0 = time.process_time(), time.perf_counter()
        jax.block_until_ready(fn(i))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), min(walls)


def bench_sampling(size: str, new_tokens: int, use_cache: bool, repeats: int) -> dict:
    task = tasks.make_task("addition")
    tok = task.tokenizer
    cfg = transformer.TransformerConfig.of_size(size, tok.vocab_size, max_len=32)
    policy = transformer.transformer_policy(cfg)
    params = jax.jit(policy.init)(jax.random.key(0))
    problems = task.sample_problems(np.random.default_rng(0), 64)
    prompts, plen = tok.encode_batch([p.prompt for p in problems], width=7)
    sample = transformer.make_sampler(
        policy, max_new_tokens=new_tokens, eos_id=-1, pad_id=tok.pad_id, use_cache=use_cache
    )  # eos_id=-1: never stops early, so every row generates new_tokens tokens
    t0 = time.perf_counter()
    jax.block_until_ready(sample(params, prompts, plen, jax.random.key(1)))
    compile_s = time.perf_counter() - t0
    wall, cpu, best = time_calls(lambda i: sample(params, prompts, plen, jax.random.key(i)), repeats)
    n_tokens = 64 * new_tokens
    return {
        "size": size,
        "new_tokens": new_tokens,
        "kv_cache": use_cache,
        "batch": 64,
        "compile_s": compile_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "tokens_per_s": n_tokens / wall,
        "tokens_per_s_best": n_tokens / best,
        "params": int(sum(x.size for x in jax.tree_util.tree_leaves(params))),
    }


def bench_iteration(size: str, repeats: int) -> dict:
    # 64 completions sampled and updated on (no oversampling), as in the recorded figures
    cfg = jaxrl.GRPOConfig(model=size, warmup_steps=0, eval_every=10**9, num_iterations=10**6, oversample=1)
    state = trainer.init(cfg, jax.random.key(0))
    t0 = time.perf_counter()
    state, _ = trainer.train_step(cfg, state)
    compile_s = time.perf_counter() - t0
    box = [state]

    def one(_):
        box[0], m = trainer.train_step(cfg, box[0])
        return box[0].params

    wall, cpu, best = time_calls(one, repeats)
    return {
        "size": size,
        "completions_per_iteration": cfg.completions_per_iteration,
        "first_iteration_s (compile)": compile_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "best_s": best,
        "completions_per_s": cfg.completions_per_iteration / wall,
    }


def run_trl(python: str, timeout: float) -> dict:
    out = os.path.join(tempfile.mkdtemp(), "trl.json")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, TRL_BENCH, "--json-out", out], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"TRL bench failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(out) as f:
        r = json.load(f)
    r.pop("trl_logs", None)
    r["total_wall_s"] = time.perf_counter() - t0
    r["stdout_tail"] = proc.stdout[-1500:]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="nano,tiny,small")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--trl", default=None, help="python of the TRL venv (e.g. /work/venv-trl/bin/python)")
    ap.add_argument("--out", default="grpo_throughput")
    args = ap.parse_args()
    sizes = args.sizes.split(",")
    result = {"machine": H.machine_info(), "sampling": [], "iteration": []}
    for size in sizes:
        for new, cache in ((4, True), (24, True), (24, False)):
            r = bench_sampling(size, new, cache, args.repeats)
            result["sampling"].append(r)
            print(json.dumps(r), flush=True)
        r = bench_iteration(size, args.repeats)
        result["iteration"].append(r)
        print(json.dumps(r), flush=True)
    if args.trl:
        result["trl"] = run_trl(args.trl, timeout=3600)
        print(
            json.dumps({k: v for k, v in result["trl"].items() if k != "stdout_tail"}, default=str),
            flush=True,
        )
    result["machine_after"] = {"load_avg_1min": H.load_average()}
    print("wrote", H.write_json(args.out, result))


if __name__ == "__main__":
    main()
