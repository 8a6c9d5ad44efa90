"""Reward model from synthetic preferences, then GRPO with the reward model as its only reward.

On the built-in addition task:
  0. the supervised warm-up policy (GRPO's warm-up, saved as a run directory ``<out>/sft``);
  1. preference pairs labelled by a hidden rule (correct > closer wrong > farther wrong > malformed): by
     default, pairs of the warm-up policy's own answers to training prompts (``--onpolicy-prompts``,
     ``preferences.label_samples``: labels where the policy actually errs, as RLHF collects them)
     topped up with synthetic candidates to 20,000 pairs; a reward model (default ``RewardModelConfig``,
     ``jaxrl.run``: progress, logs, checkpoints) whose transformer starts from the warm-up policy
     (``init_from``, as RLHF starts from the SFT model; ``--rm-init random``: from random weights) -> held-out pair
     accuracy per epoch on the synthetic held-out pairs, split into pair kinds;
  2. GRPO from the same warm-started policy with ``reward="rm:<rm run dir>"`` (nothing else), once
     with ``beta=0`` and once with a KL penalty ``beta>0``; every iteration logs the reward-model score
     (``reward``) and the verifier's true score (``true_reward``) of the sampled answers, and the
     held-out greedy accuracy (true, verifier-measured);
  3. ``rm_vs_true.png`` in the output directory: reward-model score and true score over training, with
     and without KL, so reward hacking (RM score up, true score flat or down) is visible.

    python benchmarks/rm_grpo_demo.py                     # defaults below, a few minutes on a quiet CPU
    python benchmarks/rm_grpo_demo.py --rm-set num_epochs=4 --grpo-set num_iterations=60 --out /tmp/demo

Wall times are on a shared 2-core machine (other jobs running): re-run on a quiet machine for clean
figures. Writes ``<out>/results.json`` and ``benchmarks/results/rm_grpo_demo.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl.algos import reward_model as rm  # noqa: E402
from jaxrl.algos.grpo import trainer  # noqa: E402
from jaxrl.data import preferences as prefs  # noqa: E402
from jaxrl.runtime import configs  # noqa: E402

RM_DEFAULTS = ["task=addition"]
# GRPO's step size with a reward model: 1e-5, a third of the verifier default. The reward model is noisier
# than the verifier where the policy errs (near misses), and at 3e-5 the policy learns its blind spots
# (units-digit slips) within ~200 iterations while the reward-model score keeps rising (RESULTS.md).
GRPO_DEFAULTS = [
    "task=addition", "num_iterations=400", "eval_every=50",
    "learning_rate=1e-5", "lr_schedule=constant", "oversample=1",
]  # fmt: skip


def pair_kinds(cfg: rm.Config) -> dict[str, np.ndarray]:
    """Masks over the held-out pairs: which comparisons need exact arithmetic."""
    from jaxrl import tasks

    task = tasks.make_task(cfg.task)
    answers = {p.prompt: p.answer for p in task.heldout_problems()}
    held = prefs.synthetic_pairs(task, cfg.num_eval_pairs, seed=cfg.data_seed + 1, heldout=True)
    s = np.array([[prefs.numeric_score(answers[p.prompt], t) for t in (p.chosen, p.rejected)] for p in held])
    numeric = s[:, 1] > prefs.MALFORMED
    return {
        "correct_vs_near (<=9 off)": (s[:, 0] == 0) & numeric & (s[:, 1] >= -9),
        "near_vs_near (both wrong, gap<=9)": (s[:, 0] < 0) & numeric & (s[:, 0] - s[:, 1] <= 9),
        "far (gap>9)": numeric & (s[:, 0] - s[:, 1] > 9),
        "number_vs_malformed": ~numeric,
    }


def rm_accuracy_by_kind(cfg: rm.Config, params) -> dict[str, float]:
    net = rm.make_network(cfg)
    held = jax.tree_util.tree_map(jax.numpy.asarray, rm.dataset(cfg).eval)
    r_c, r_r = jax.jit(lambda p: rm.pair_rewards(p, net, held))(params)
    ok = np.asarray(r_c > r_r)
    return {
        k: {"share": float(m.mean()), "accuracy": float(ok[m].mean())} for k, m in pair_kinds(cfg).items()
    }


def rm_on_policy_samples(grpo_cfg, policy_params, rm_cfg, rm_params, key, group: int = 8) -> dict[str, float]:
    """How well the reward model ranks what the policy actually writes: ``group`` samples for every
    held-out prompt; over all (correct, wrong) pairs of samples of a prompt, the fraction the reward
    model orders right, and how often its favourite sample of a group is correct."""
    from jaxrl.algos.grpo import rewards

    s = trainer.setup(grpo_cfg)
    problems = s.task.heldout_problems()
    prompts, plen = trainer.encode_prompts(s, grpo_cfg, problems)
    prompts, plen = np.repeat(prompts, group, axis=0), np.repeat(plen, group)
    out = jax.device_get(
        s.programs.sample(policy_params, prompts, plen, key, grpo_cfg.temperature, grpo_cfg.top_p, False)
    )
    reps = [p for p in problems for _ in range(group)]
    texts = trainer.decode_completions(s, out.tokens, plen)
    batch = rewards.RewardBatch(reps, texts, out.finished, out.tokens, plen, out.completion_mask)
    r = rm.reward_source(rm_cfg, rm_params)(batch).reshape(len(problems), group)
    ok = s.task.score(reps, texts, out.finished).reshape(len(problems), group) >= s.task.success_threshold
    right = total = 0
    for ri, oi in zip(r, ok, strict=True):
        d = ri[oi][:, None] - ri[~oi][None, :]
        right, total = right + int((d > 0).sum()), total + d.size
    mixed = ok.any(axis=1) & ~ok.all(axis=1)
    best_ok = ok[np.arange(len(ok)), r.argmax(axis=1)]
    return {
        "sample_accuracy": float(ok.mean()),
        "pair_accuracy_correct_vs_wrong_samples": right / max(total, 1),
        "rm_favourite_correct_in_mixed_groups": float(best_ok[mixed].mean()) if mixed.any() else float("nan"),
        "mixed_groups": int(mixed.sum()),
    }


def onpolicy_data(
    grpo_cfg, policy_params, warmup_accuracy: float, seed: int, num_prompts: int, out: str
) -> tuple[str, str, dict]:
    """Preference data as RLHF collects it: the warm-up policy (GRPO's, same config and seed) answers
    ``num_prompts`` training problems ``group_size`` times; the hidden rule labels pairs of its distinct
    answers (``preferences.label_samples``); mixed with as many synthetic pairs as the default
    ``num_pairs`` minus those, into ``<out>/prefs.jsonl``. Held-out pairs: the usual synthetic ones on
    the held-out prompts (``<out>/prefs_eval.jsonl``), so the pair accuracy is comparable."""
    task = trainer.setup(grpo_cfg).task
    problems = task.sample_problems(np.random.default_rng(10_000 + seed), num_prompts)
    g = grpo_cfg.group_size
    rows = [p for p in problems for _ in range(g)]
    texts, _ = trainer.generate(grpo_cfg, policy_params, rows, jax.random.key(10_000 + seed), greedy=False)
    own = prefs.label_samples(task, problems, texts, g, seed=seed)
    n_syn = max(jaxrl.RewardModelConfig().num_pairs - len(own), 0)
    mixed = own + prefs.synthetic_pairs(task, n_syn, seed=seed)
    np.random.default_rng(seed).shuffle(mixed)
    data, eval_data = os.path.join(out, "prefs.jsonl"), os.path.join(out, "prefs_eval.jsonl")
    prefs.write_jsonl(mixed, data)
    held = prefs.synthetic_pairs(task, jaxrl.RewardModelConfig().num_eval_pairs, seed=1, heldout=True)
    prefs.write_jsonl(held, eval_data)
    ok = np.mean([prefs.numeric_score(p.answer, t) == 0 for p, t in zip(rows, texts, strict=True)])
    info = {
        "warmup_accuracy": warmup_accuracy,
        "sample_accuracy": float(ok),
        "onpolicy_pairs": len(own),
        "synthetic_pairs": n_syn,
    }
    return data, eval_data, info


def read_metrics(run_dir: str) -> dict[str, np.ndarray]:
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    return {k: np.array([r.get(k, np.nan) for r in rows], np.float64) for k in rows[0]}


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    return np.convolve(x, np.ones(k) / k, mode="valid")


def plot(out: str, runs: dict[str, dict[str, np.ndarray]]) -> str:
    """Left: RM score (solid, left axis) and true score (dashed, right axis) of the sampled answers;
    right: held-out greedy accuracy (verifier). One colour per GRPO run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rm, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.2))
    ax_true = ax_rm.twinx()
    k = 1
    for (name, m), color in zip(
        runs.items(), ("tab:blue", "tab:red", "tab:green", "tab:purple"), strict=False
    ):
        it = np.arange(1, len(m["reward"]) + 1)
        k = max(1, len(it) // 20)
        ax_rm.plot(it[k - 1 :], _smooth(m["reward"], k), color=color, label=f"{name}: RM score")
        ax_true.plot(
            it[k - 1 :], _smooth(m["true_reward"], k), color=color, ls="--", label=f"{name}: true score"
        )
        ok = np.isfinite(m["heldout_accuracy"])
        ax_acc.plot(it[ok], m["heldout_accuracy"][ok], "o-", color=color, label=name)
    ax_rm.set_xlabel("GRPO iteration")
    ax_rm.set_ylabel("reward-model score of the samples (solid)")
    ax_true.set_ylabel("true (verifier) reward of the samples (dashed)")
    ax_rm.set_title(f"reward-model vs true score (moving mean over {k})")
    h1, l1 = ax_rm.get_legend_handles_labels()
    h2, l2 = ax_true.get_legend_handles_labels()
    ax_rm.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower right")
    ax_acc.set_xlabel("GRPO iteration")
    ax_acc.set_ylabel("held-out greedy accuracy (verifier)")
    ax_acc.set_title("true held-out accuracy")
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "rm_vs_true.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rm-set", nargs="+", action="extend", default=[], help="RewardModelConfig field=value")
    ap.add_argument("--grpo-set", nargs="+", action="extend", default=[], help="GRPOConfig field=value")
    ap.add_argument("--betas", default="0,0.04", help="KL weights of the GRPO runs (comma-separated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rm-dir", default=None, help="reuse a trained reward-model run instead of training one")
    ap.add_argument(
        "--rm-init", choices=("sft", "random"), default="sft",
        help="the reward model's starting weights: the supervised warm-up policy (RLHF's usual start) or random",
    )  # fmt: skip
    ap.add_argument(
        "--onpolicy-prompts", type=int, default=14_000,
        help="training problems the warm-up policy answers (group_size times) for rule-labelled pairs of its "
        "own answers, mixed into the reward model's data; 0: synthetic pairs only",
    )  # fmt: skip
    ap.add_argument("--out", default="runs/rm_grpo_demo")
    ap.add_argument("--results", default="rm_grpo_demo", help="name of the JSON under benchmarks/results/")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    result: dict = {"machine": H.machine_info(), "seed": args.seed}

    # 1. REWARD MODEL (optionally also on pairs of the warm-up policy's own answers, labelled by the rule)
    rm_dir = args.rm_dir or os.path.join(args.out, "rm")
    if args.rm_dir is None:
        rm_overrides = list(RM_DEFAULTS)
        grpo_cfg = configs.apply_overrides(jaxrl.GRPOConfig(), GRPO_DEFAULTS + args.grpo_set)
        sft_dir = os.path.join(args.out, "sft")
        if args.onpolicy_prompts > 0 or args.rm_init == "sft":
            # the supervised (warm-up) policy as a run directory: one GRPO iteration, whose reference policy
            # (ref_params) is the warm-up's; the GRPO runs below start from the same warm-up (same key)
            t0 = time.perf_counter()
            sft = jaxrl.run(
                grpo_cfg.replace(num_iterations=1, eval_every=1), args.seed, out_dir=sft_dir, progress=False
            )
            result["sft_wall_s"] = time.perf_counter() - t0
        if args.rm_init == "sft":
            rm_overrides.append(f"init_from={os.path.abspath(sft_dir)}")
        if args.onpolicy_prompts > 0:
            t0 = time.perf_counter()
            data, eval_data, info = onpolicy_data(
                grpo_cfg, sft.state.ref_params, float(sft.state.warmup_accuracy), args.seed, args.onpolicy_prompts,
                args.out,
            )  # fmt: skip
            result["onpolicy_data"] = {**info, "wall_s": time.perf_counter() - t0}
            print("on-policy preference data:", json.dumps(result["onpolicy_data"]), flush=True)
            rm_overrides += [f"data={data}", f"eval_data={eval_data}"]
        rm_cfg = configs.apply_overrides(jaxrl.RewardModelConfig(), rm_overrides + args.rm_set)
        t0 = time.perf_counter()
        r = jaxrl.run(rm_cfg, args.seed, out_dir=rm_dir, progress=False)
        result["rm_wall_s"] = time.perf_counter() - t0
        result["rm_compile_s"] = r.compile_time
        result["rm_train_s"] = r.train_time
    rm_cfg, rm_state = rm.load(rm_dir)
    m = read_metrics(rm_dir)
    result["rm_config"] = configs.to_dict(rm_cfg)
    result["rm_eval_accuracy_per_epoch"] = [round(float(x), 4) for x in m["eval_accuracy"]]
    result["rm_accuracy_by_kind"] = rm_accuracy_by_kind(rm_cfg, rm_state.params)
    print(
        "reward model:",
        json.dumps({k: result[k] for k in result if k.startswith("rm_") and k != "rm_config"}),
    )

    # 2. GRPO with the reward model as the only reward, with and without KL
    runs = {}
    for beta in (float(b) for b in args.betas.split(",")):
        name = f"beta={beta:g}"
        cfg = configs.apply_overrides(
            jaxrl.GRPOConfig(),
            GRPO_DEFAULTS + [f"reward=rm:{os.path.abspath(rm_dir)}", f"beta={beta}"] + args.grpo_set,
        )
        run_dir = os.path.join(args.out, f"grpo_beta{beta:g}")
        t0 = time.perf_counter()
        res = jaxrl.run(cfg, args.seed, out_dir=run_dir, progress=False)
        state = res.state
        gm = read_metrics(run_dir)
        if "rm_on_warmup_policy_samples" not in result:  # the warm-up policy is the same in every run
            result["rm_on_warmup_policy_samples"] = rm_on_policy_samples(
                cfg,
                state.ref_params,
                rm_cfg,
                rm_state.params,
                jax.random.key(7),
            )
            print("reward model on the warm-up policy's samples:", result["rm_on_warmup_policy_samples"])
        runs[name] = gm
        acc = gm["heldout_accuracy"][np.isfinite(gm["heldout_accuracy"])]
        k = max(1, len(gm["reward"]) // 10)
        result[name] = {
            "heldout_accuracy_after_warmup": float(state.warmup_accuracy),
            "heldout_sampled_reward_after_warmup": trainer.sampled_heldout_reward(cfg, state.ref_params),
            "heldout_sampled_reward_final": trainer.sampled_heldout_reward(cfg, state.params),
            "heldout_accuracy_final": float(acc[-1]),
            "heldout_accuracy_curve": [round(float(a), 3) for a in acc],
            "rm_score_first10pct": float(gm["reward"][:k].mean()),
            "rm_score_last10pct": float(gm["reward"][-k:].mean()),
            "true_reward_first10pct": float(gm["true_reward"][:k].mean()),
            "true_reward_last10pct": float(gm["true_reward"][-k:].mean()),
            "kl_last10pct": float(gm["kl"][-k:].mean()),
            "wall_s": time.perf_counter() - t0,
            "train_s": res.train_time,
        }
        print(name, json.dumps(result[name]), flush=True)

    # 3. PLOT
    result["plot"] = plot(args.out, runs)
    print("wrote", result["plot"])
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", H.write_json(args.results, result))


if __name__ == "__main__":
    main()
