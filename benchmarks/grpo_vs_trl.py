"""GRPO speed, jaxrl vs Hugging Face TRL's GRPOTrainer, on the same config in one invocation.

The peer is /work/shared/tools/trl_grpo_bench.py (its docstring has the venv set-up): tiny GPT-2
(2 layers x 4 heads x 128, no dropout) from random weights, 2-digit addition, 600 supervised warm-up
steps (batch 64, lr 1e-3, 2000 demonstrations), then 200 GRPO optimizer steps of 64 completions
(G = 8 answers to each of 8 prompts), at most 4 new tokens, temperature 1, beta 0, lr 1e-4, one
gradient step per generated batch. jaxrl runs the same thing with
``GRPOConfig(warmup_steps=600, warmup_demos=2000, warmup_schedule="constant", prompts_per_iteration=8,
group_size=8, learning_rate=1e-4, num_iterations=200)`` on its built-in ``tiny`` transformer (the same
shape).

Measured for each: wall time of the 200 GRPO steps (jaxrl: its first, compiling step is timed apart
and the other 199 scaled to 200), completions/s, generated tokens/s (<eos> included), and the
supervised warm-up's wall time; held-out greedy accuracy before/after is recorded too (same 200
prompts). TRL runs as a subprocess of its own venv's python; it is run as shipped (it sets
``torch.set_num_threads(2)``) and with one torch thread, and rounds alternate jaxrl / TRL so both see
the same machine. Pin the whole command to one core for a like-for-like figure on a shared machine:

    taskset -c 1 python benchmarks/grpo_vs_trl.py --trl /work/venv-trl/bin/python [--rounds 2]

Writes ``benchmarks/results/grpo_vs_trl.json``.
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

import jaxrl  # noqa: E402
from jaxrl.algos.grpo import trainer  # noqa: E402
from jaxrl.runtime import configs  # noqa: E402

TRL_BENCH = "/work/shared/tools/trl_grpo_bench.py"
STEPS = 200

# the peer's settings, spelled out (independent of GRPOConfig's defaults)
PEER_CONFIG = jaxrl.GRPOConfig(
    task="addition",
    model="tiny",
    warmup_steps=600,
    warmup_batch=64,
    warmup_demos=2000,
    warmup_schedule="constant",
    warmup_learning_rate=1e-3,
    num_iterations=STEPS,
    group_size=8,
    prompts_per_iteration=8,
    inner_steps=1,
    max_new_tokens=4,
    learning_rate=1e-4,
    lr_schedule="constant",  # TRL's constant step size
    oversample=1,  # 64 completions sampled and updated on per step, as TRL
    beta=0.0,
    temperature=1.0,
    eval_every=10**9,
)


def run_jaxrl(seed: int) -> dict:
    cfg = PEER_CONFIG
    t0 = time.perf_counter()
    state = trainer.init(cfg, jax.random.key(seed))
    init_s = time.perf_counter() - t0  # warm-up incl. compilation and two held-out evaluations
    t0 = time.perf_counter()
    state, m = trainer.train_step(cfg, state)
    first_s = time.perf_counter() - t0
    tokens, walls = [float(m.completion_length) * cfg.completions_per_iteration], []
    cpu0 = time.process_time()
    for _ in range(1, cfg.num_iterations):
        t = time.perf_counter()
        state, m = trainer.train_step(cfg, state)
        jax.block_until_ready(state.params)
        walls.append(time.perf_counter() - t)
        tokens.append(float(m.completion_length) * cfg.completions_per_iteration)
    cpu_s = time.process_time() - cpu0
    wall = sum(walls) * cfg.num_iterations / len(walls)
    completions = cfg.completions_per_iteration * cfg.num_iterations
    return {
        "framework": "jaxrl",
        "seed": seed,
        "warmup_and_init_s": init_s,
        "first_step_s (compile)": first_s,
        "grpo_wall_s": wall,
        "grpo_cpu_s": cpu_s * cfg.num_iterations / len(walls),
        "s_per_step_median": statistics.median(walls),
        "completions_per_s": completions / wall,
        "gen_tokens_per_s": sum(tokens) / wall,
        "mean_completion_len": sum(tokens) / completions,
        "acc_before": float(state.warmup_accuracy),
        "acc_after": trainer.heldout_accuracy(cfg, state.params),
    }


def run_trl(python: str, seed: int, threads: int | None) -> dict:
    """One run of the peer script; ``threads=None``: as shipped (2 torch threads)."""
    out = os.path.join(tempfile.mkdtemp(), "trl.json")
    args = ["--seed", str(seed), "--json-out", out]
    if threads is None:
        cmd = [python, TRL_BENCH, *args]
    else:  # the same script with torch held to ``threads`` threads
        code = (
            f"import runpy, sys, torch; torch.set_num_threads({threads}); torch.set_num_threads = lambda n: None; "
            f"sys.argv = {[TRL_BENCH, *args]!r}; runpy.run_path({TRL_BENCH!r}, run_name='__main__')"
        )
        cmd = [python, "-c", code]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"TRL bench failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(out) as f:
        r = json.load(f)
    g = r["grpo"]
    return {
        "framework": "trl",
        "torch_threads": threads or 2,
        "seed": seed,
        "process_wall_s": time.perf_counter() - t0,
        "warmup_s": r["sft"]["time_s"],
        "grpo_wall_s": g["wall_s"],
        "s_per_step_mean": g["wall_s"] / g["steps"],
        "completions_per_s": g["completions_per_s"],
        "gen_tokens_per_s": g["gen_tokens_per_s"],
        "mean_completion_len": g["mean_completion_len"],
        "generate_s": g["generate_s"],
        "acc_before": r["acc_before_grpo"],
        "acc_after": r["acc_after_grpo"],
        "versions": r["versions"],
        "config": {k: v for k, v in g.items() if not isinstance(v, list)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trl", default="/work/venv-trl/bin/python", help="python of the TRL venv")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds of jaxrl and TRL")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="grpo_vs_trl")
    args = ap.parse_args()
    rows = []
    affinity = sorted(os.sched_getaffinity(0))
    for _ in range(args.rounds):
        for run in (
            lambda: run_jaxrl(args.seed),
            lambda: run_trl(args.trl, args.seed, None),
            lambda: run_trl(args.trl, args.seed, 1),
        ):
            r = run()
            r["load_avg_1min"] = H.load_average()
            rows.append(r)
            print(json.dumps({k: v for k, v in r.items() if k not in ("versions", "config")}), flush=True)

    def best(name, key):
        vals = [r[key] for r in rows if r["framework"] == name]
        return max(vals) if vals else None

    summary = {
        "jaxrl_completions_per_s_best": best("jaxrl", "completions_per_s"),
        "trl_completions_per_s_best": best("trl", "completions_per_s"),
        "jaxrl_tokens_per_s_best": best("jaxrl", "gen_tokens_per_s"),
        "trl_tokens_per_s_best": best("trl", "gen_tokens_per_s"),
    }
    summary["speedup_per_completion"] = (
        summary["jaxrl_completions_per_s_best"] / summary["trl_completions_per_s_best"]
    )
    print("summary:", json.dumps(summary))
    payload = {
        "rows": rows,
        "summary": summary,
        "cpu_affinity": affinity,
        "jaxrl_config": configs.to_dict(PEER_CONFIG),
        "machine": H.machine_info(),
    }
    print("wrote", H.write_json(args.out, payload))


if __name__ == "__main__":
    main()
