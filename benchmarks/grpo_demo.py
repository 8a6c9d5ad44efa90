"""GRPO demo with its control: does GRPO beat simply continuing the supervised warm-up?

The default GRPOConfig is a scarce-demonstration regime: the warm-up sees 500 of the 9,800 training
problems (1500 steps, step size decayed linearly to 0, so it ends at a settled point), while GRPO
draws fresh prompts and only needs the verifier (2000 iterations, 16 prompts sampled and the 8 most
varied groups updated on, step size 2e-4 decayed linearly to 0). For each seed, on the built-in addition task (the
TRL peer's task and held-out split):
  1. random weights -> supervised warm-up (``warmup_steps``) -> held-out greedy accuracy ``before``;
  2. GRPO for ``num_iterations`` from that state -> accuracy ``grpo``, wall time ``T`` (compile excluded);
  3. control A: from the SAME warm-up state, continue supervised training on the same demonstrations
     (same Adam state) at the warm-up's peak step size for the same wall time ``T`` -> accuracy ``sft``;
  4. control B: the same at GRPO's (peak) step size.
Held-out accuracy along the way is also recorded (untimed), and at the end the sampled held-out reward
(mean verifier reward of 8 answers per held-out problem, less noisy than greedy accuracy).

    python benchmarks/grpo_demo.py                                  # 3 seeds, default GRPOConfig
    python benchmarks/grpo_demo.py --seeds 1 --set warmup_demos=2000 --set warmup_steps=600

Timings are wall clock on a shared 2-core machine: pin it to one core (``taskset -c 1``). Writes
``benchmarks/results/grpo_demo.json`` (``--out`` for another name).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl.algos import grpo  # noqa: E402
from jaxrl.algos.grpo import trainer  # noqa: E402
from jaxrl.runtime import configs  # noqa: E402


def continue_sft(cfg, state, demos, budget_s: float, key, lr: float | None):
    """Supervised steps in chunks of 10 until ``budget_s`` seconds of stepping have passed."""
    if lr is not None:
        cfg = cfg.replace(warmup_learning_rate=lr)
    chunk = 10
    trainer.warmup(cfg, state, chunk, key, demos=demos)  # compile (not timed)
    spent, steps = 0.0, 0
    while spent < budget_s:
        key, k = jax.random.split(key)
        t0 = time.perf_counter()
        state, _ = trainer.warmup(cfg, state, chunk, k, demos=demos)
        jax.block_until_ready(state.params)
        spent += time.perf_counter() - t0
        steps += chunk
    return state, steps, spent


def run_seed(cfg, seed: int, curve_every: int) -> dict:
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    state0 = trainer.init(cfg, key)
    warm_s = time.perf_counter() - t0
    before = float(state0.warmup_accuracy)

    # GRPO: time only the train steps after the first (compilation) step
    grpo_cfg = cfg.replace(eval_every=10**9)
    state, m = trainer.train_step(grpo_cfg, state0)
    rewards, curve, grpo_s = [m.reward], [], 0.0
    for i in range(1, cfg.num_iterations):
        t = time.perf_counter()
        state, m = trainer.train_step(grpo_cfg, state)
        jax.block_until_ready(state.params)
        grpo_s += time.perf_counter() - t
        rewards.append(m.reward)
        if (i + 1) % curve_every == 0:
            curve.append(round(trainer.heldout_accuracy(cfg, state.params), 3))
    after = trainer.heldout_accuracy(cfg, state.params)
    # the first (compiling) step is not timed: give the control the average step time for it
    grpo_s *= cfg.num_iterations / max(1, cfg.num_iterations - 1)

    demos = trainer.init_demonstrations(cfg, key)
    k_ctrl = jax.random.key(10_000 + seed)
    sft_state, sft_steps, sft_s = continue_sft(cfg, state0, demos, grpo_s, k_ctrl, None)
    sft_lo_state, sft_lo_steps, sft_lo_s = continue_sft(cfg, state0, demos, grpo_s, k_ctrl, cfg.learning_rate)
    sampled = {  # mean verifier reward of 8 sampled answers per held-out problem (less noisy than greedy)
        name: trainer.sampled_heldout_reward(cfg, st.params)
        for name, st in (
            ("before", state0),
            ("grpo", state),
            ("sft", sft_state),
            ("sft_grpo_lr", sft_lo_state),
        )
    }
    row = {
        "seed": seed,
        "acc_init": float(state0.init_accuracy),
        "acc_before": before,
        "acc_grpo": after,
        "acc_sft_same_time": trainer.heldout_accuracy(cfg, sft_state.params),
        "acc_sft_same_time_grpo_lr": trainer.heldout_accuracy(cfg, sft_lo_state.params),
        **{f"sampled_{k}": v for k, v in sampled.items()},
        "warmup_s_incl_compile": warm_s,
        "grpo_s": grpo_s,
        "grpo_s_per_iteration": grpo_s / cfg.num_iterations,
        "sft_steps": sft_steps,
        "sft_s": sft_s,
        "sft_lowlr_steps": sft_lo_steps,
        "sft_lowlr_s": sft_lo_s,
        "reward_first10pct": float(np.mean(rewards[: max(1, len(rewards) // 10)])),
        "reward_last10pct": float(np.mean(rewards[-max(1, len(rewards) // 10) :])),
        "acc_curve": curve,
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], help="GRPOConfig field=value")
    ap.add_argument("--curve-every", type=int, default=100)
    ap.add_argument("--out", default="grpo_demo")
    args = ap.parse_args()
    cfg = configs.apply_overrides(jaxrl.GRPOConfig(), args.set)
    grpo.validate(cfg)
    rows = [run_seed(cfg, s, args.curve_every) for s in range(args.seeds)]
    keys = ["acc_before", "acc_grpo", "acc_sft_same_time", "acc_sft_same_time_grpo_lr", "grpo_s"]
    keys += ["sampled_before", "sampled_grpo", "sampled_sft", "sampled_sft_grpo_lr"]
    summary = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    print("mean over seeds:", json.dumps(summary))
    path = H.write_json(
        args.out,
        {"config": configs.to_dict(cfg), "rows": rows, "mean": summary, "machine": H.machine_info()},
    )
    print("wrote", path)


if __name__ == "__main__":
    main()
