"""GRPO on a "pretrained" Hugging Face-format checkpoint, offline, against more supervised training.

No weights can be downloaded here, so the script makes its own pretrained model:

  1. word problems with numeric answers ("Tom has 7 apples and buys 5 more. How many apples does Tom
     have now?" -> " 12") written to ``train.jsonl`` / ``eval.jsonl`` (held out);
  2. a byte-level BPE tokenizer trained on them and a random Llama-shaped checkpoint
     (``jaxrl.lm.random_checkpoint``);
  3. supervised training by jaxrl (GRPO's warm-up: cross-entropy on the answers of ``--demos``
     problems only, scarce on purpose), saved with ``jaxrl.lm.save_pretrained``: the "pretrained" model;
  4. GRPO from that checkpoint through the CLI, as a user would:
     ``jaxrl train --algo grpo --set model=hf:<sft dir> task=jsonl:train.jsonl eval_file=eval.jsonl
     warmup_steps=0 ...`` (fresh prompts, the number verifier as reward, no supervision);
  5. the control: from the same checkpoint, more supervised training on the same demonstrations, for
     as much CPU time as the whole GRPO subprocess used (its start-up, compilation and evaluations
     included, the control's excluded: the comparison favours the control). CPU time, not wall time,
     because the machine is shared: equal wall time under a varying load is not equal work.

The premise is the usual one for RL from a verifier: demonstrations are scarce (``--demos`` of the
``--train`` problems have a worked answer), while the verifier can check an answer to any training
prompt. Held-out greedy accuracy (number verifier) is measured per problem for the SFT checkpoint,
after GRPO and after the control, per seed; the report gives the per-seed pairs, a t interval over the
seeds and a bootstrap interval over (seed, problem) pairs. Writes ``benchmarks/results/grpo_lm_demo.json``
and ``.png``.

    python benchmarks/grpo_lm_demo.py --jobs 3        # 3 seeds in parallel processes (RESULTS.md)
    python benchmarks/grpo_lm_demo.py --seeds 1 --iterations 20 --sft-steps 100   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jaxrl  # noqa: E402
import jaxrl.runtime.logs  # noqa: E402
from jaxrl import lm  # noqa: E402
from jaxrl.algos import grpo  # noqa: E402
from jaxrl.algos.grpo import trainer  # noqa: E402
from jaxrl.runtime import rundir  # noqa: E402

NAMES = ("Tom", "Ana", "Raj", "Mia", "Lee", "Sam")
ITEMS = ("apples", "coins", "books", "cards", "shells")


def word_problem(rng: np.random.Generator) -> dict:
    """One problem: addition, subtraction or doubling of small numbers, in words."""
    name, item = NAMES[rng.integers(len(NAMES))], ITEMS[rng.integers(len(ITEMS))]
    kind = int(rng.integers(3))
    a, b = int(rng.integers(1, 16)), int(rng.integers(1, 10))
    if kind == 0:
        text, answer = f"{name} has {a} {item} and buys {b} more.", a + b
    elif kind == 1:
        a += b
        text, answer = f"{name} has {a} {item} and gives away {b}.", a - b
    else:
        text, answer = f"{name} has {a} {item} and then doubles them.", 2 * a
    return {"prompt": f"{text} How many {item} does {name} have now? Answer:", "answer": f" {answer}"}


def write_data(folder: Path, n_train: int, n_eval: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    rows: dict[str, dict] = {}
    while len(rows) < n_train + n_eval:
        r = word_problem(rng)
        rows.setdefault(r["prompt"], r)
    rows_l = list(rows.values())
    train, held = folder / "train.jsonl", folder / "eval.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows_l[:n_train]))
    held.write_text("".join(json.dumps(r) + "\n" for r in rows_l[n_train:]))
    return train, held


def base_config(train: Path, held: Path, model: str, args) -> jaxrl.GRPOConfig:
    return jaxrl.GRPOConfig(
        task=f"jsonl:{train}",
        eval_file=str(held),
        model=model,
        warmup_steps=args.sft_steps,
        warmup_demos=args.demos,
        warmup_batch=32,
        warmup_learning_rate=3e-3,
        num_iterations=args.iterations,
        group_size=8,
        prompts_per_iteration=8,
        oversample=2,
        learning_rate=args.lr,
        eval_every=max(1, args.iterations // args.points),
    )


def pretrain(cfg: jaxrl.GRPOConfig, seed: int, out: Path) -> tuple[float, float]:
    """Supervised training (jaxrl's warm-up) from the random checkpoint, saved as a checkpoint."""
    state = trainer.init(cfg, jax.random.key(seed))
    model = trainer.setup(cfg).policy
    tok = trainer.setup(cfg).task.tokenizer
    lm.save_pretrained(out, model.config, state.params, tok)
    return float(state.init_accuracy), float(state.warmup_accuracy)


def correct(cfg: jaxrl.GRPOConfig, params) -> np.ndarray:
    """Per held-out problem: greedy answer right (bool [N]); its mean is ``trainer.heldout_accuracy``."""
    s = trainer.setup(cfg)
    problems = list(s.task.heldout_problems())
    texts, finished = trainer.generate(cfg, params, problems, jax.random.key(0), greedy=True)
    return np.asarray(s.task.score(problems, texts, finished) >= s.task.success_threshold)


def grpo_cli(sft_dir: Path, train: Path, held: Path, args, seed: int, run_dir: Path) -> dict:
    """GRPO from the SFT checkpoint through ``jaxrl train`` (as a user would run it). Returns its
    summary, eval curve, final parameters and the CPU seconds of the whole subprocess."""
    sets = [
        f"model=hf:{sft_dir}",
        f"task=jsonl:{train}",
        f"eval_file={held}",
        "warmup_steps=0",
        f"num_iterations={args.iterations}",
        "group_size=8",
        "prompts_per_iteration=8",
        "oversample=2",
        f"learning_rate={args.lr}",
        f"eval_every={max(1, args.iterations // args.points)}",
    ]
    cmd = [
        sys.executable,
        "-c",
        "import sys; from jaxrl.cli import main; sys.exit(main())",
        "train",
        "--algo",
        "grpo",
        "--seed",
        str(seed),
        "--out",
        str(run_dir),
        "--quiet",
        "--set",
        *sets,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"jaxrl train failed:\n{proc.stdout}\n{proc.stderr}")
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = json.loads((run_dir / "summary.json").read_text())
    curve = jaxrl.runtime.logs.read_csv(str(run_dir / "eval.csv"))
    run_cfg, state = rundir.load_state(str(run_dir), grpo.ALGORITHM)
    return {
        "summary": summary,
        "cpu_s": cpu_s,
        "wall_s": time.perf_counter() - t,
        "curve": [
            (int(i) / args.iterations, float(a))
            for i, a in zip(curve["iteration"], curve["heldout_accuracy"], strict=True)
        ],
        "params": state.params,
        "cfg": run_cfg,
    }


def more_sft(
    cfg: jaxrl.GRPOConfig, sft_dir: Path, seed: int, budget_s: float, points: int, lr_scale: float
) -> dict:
    """The control: from the SFT checkpoint, more supervised steps on the same demonstrations (the
    warm-up's demonstrations come from the same key) at ``lr_scale`` x the warm-up's step size, for
    ``budget_s`` CPU seconds of stepping (its compilation and evaluations not counted); held-out accuracy
    at ``points`` even fractions of the budget."""
    cfg = cfg.replace(model=f"hf:{sft_dir}")
    _, k_demo, k_batch, _ = jax.random.split(jax.random.key(seed), 4)
    demos = trainer.demonstrations(cfg, k_demo)
    state = trainer.init(cfg.replace(warmup_steps=0), jax.random.key(seed))
    chunk = 10
    scale = np.full(chunk, lr_scale, np.float32)
    trainer.warmup(cfg, state, chunk, k_batch, demos=demos, lr_scale=scale)  # compile, not timed
    spent, steps, key, curve = 0.0, 0, k_batch, []
    for point in range(1, points + 1):
        while spent < budget_s * point / points:
            key, k = jax.random.split(key)
            t = time.process_time()
            state, _ = trainer.warmup(cfg, state, chunk, k, demos=demos, lr_scale=scale)
            jax.block_until_ready(state.params)
            spent += time.process_time() - t
            steps += chunk
        curve.append((point / points, trainer.heldout_accuracy(cfg, state.params)))
    return {"correct": correct(cfg, state.params), "curve": curve, "steps": steps, "cpu_s": spent}


def bits(correct: np.ndarray) -> str:
    return "".join("1" if c else "0" for c in correct)


def t_interval(d: np.ndarray) -> tuple[float, float]:
    """95% Student-t interval of the mean of ``d`` (per-seed paired differences)."""
    from scipy import stats

    if len(d) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def bootstrap_interval(a: np.ndarray, b: np.ndarray, n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of mean(a - b) over (seed, problem) pairs, problems resampled within each
    seed (``a``, ``b``: bool [seeds, problems], the same problems in the same order)."""
    rng = np.random.default_rng(seed)
    d = a.astype(np.float64) - b.astype(np.float64)
    s, p = d.shape
    idx = rng.integers(0, p, size=(n, s, p))
    means = d[np.arange(s)[None, :, None], idx].mean(axis=(1, 2))
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in results:
        c = f"C{r['seed']}"
        ax.plot(*zip(*([(0.0, r["sft"])] + r["grpo_curve"]), strict=True), "-o", color=c, ms=3,
                label=f"seed {r['seed']}: GRPO")  # fmt: skip
        ax.plot(*zip(*([(0.0, r["sft"])] + r["more_sft_curve"]), strict=True), "--s", color=c, ms=3,
                alpha=0.7, label=f"seed {r['seed']}: more SFT")  # fmt: skip
    ax.set_xlabel("fraction of the run (GRPO: of its iterations; more SFT: of its CPU-time budget = GRPO's)")
    ax.set_ylabel("held-out greedy accuracy")
    n = len(results[0]["grpo_correct"]) if results else 0
    ax.set_title(f"GRPO vs more supervised training from the same SFT checkpoint ({n} held-out problems)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run_seed(seed: int, work: Path, train: Path, held: Path, tok, shape: dict, args) -> dict:
    """One seed: random checkpoint -> SFT checkpoint -> GRPO (CLI) and the control, per-problem results."""
    if not jaxrl.cpu.backends_initialized():  # a worker process (--jobs): one XLA thread, as main()
        jaxrl.cpu.set_cpu_threads(1)
    rand_dir, sft_dir = work / f"random{seed}", work / f"sft{seed}"
    lm.random_checkpoint(rand_dir, shape, seed=seed, tokenizer=tok)
    cfg = base_config(train, held, f"hf:{rand_dir}", args)
    t = time.perf_counter()
    init_acc, _ = pretrain(cfg, seed, sft_dir)
    sft_s = time.perf_counter() - t
    sft_cfg = cfg.replace(model=f"hf:{sft_dir}", warmup_steps=0)
    sft_correct = correct(sft_cfg, trainer.initial_params(sft_cfg, jax.random.key(seed)))
    g = grpo_cli(sft_dir, train, held, args, seed, work / f"grpo{seed}")
    grpo_correct = correct(g["cfg"], g["params"])
    ctrl = more_sft(cfg, sft_dir, seed, g["cpu_s"], args.points, args.control_lr_scale)
    row = dict(
        seed=seed,
        random_init=init_acc,
        sft=float(sft_correct.mean()),
        grpo=float(grpo_correct.mean()),
        grpo_summary=float(g["summary"]["final_eval"]["heldout_accuracy"]),
        more_sft=float(ctrl["correct"].mean()),
        grpo_cpu_s=g["cpu_s"],
        grpo_wall_s=g["wall_s"],
        more_sft_steps=ctrl["steps"],
        more_sft_cpu_s=ctrl["cpu_s"],
        sft_wall_s=sft_s,
        grpo_curve=g["curve"],
        more_sft_curve=ctrl["curve"],
        load=os.getloadavg()[0],
    )
    print(json.dumps(row), flush=True)
    row.update(  # per held-out problem, "1" right / "0" wrong, in eval.jsonl's order
        sft_correct=bits(sft_correct),
        grpo_correct=bits(grpo_correct),
        more_sft_correct=bits(ctrl["correct"]),
    )
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--eval", type=int, default=500)
    p.add_argument("--demos", type=int, default=200, help="distinct problems the supervised training sees")
    p.add_argument("--sft-steps", type=int, default=500)
    p.add_argument("--iterations", type=int, default=300, help="GRPO iterations")
    p.add_argument("--lr", type=float, default=5e-4, help="GRPO peak step size")
    p.add_argument("--control-lr-scale", type=float, default=0.1,
                   help="the control's step size, x the SFT's peak (3e-3); constant")  # fmt: skip
    p.add_argument("--points", type=int, default=5, help="held-out evaluations along each arm")
    p.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "grpo_lm_demo.json"))
    args = p.parse_args()
    jaxrl.cpu.set_cpu_threads(1)

    work = Path(tempfile.mkdtemp(prefix="grpo_lm_demo_"))
    print("work dir:", work, flush=True)
    train, held = write_data(work, args.train, args.eval)
    corpus = [
        json.loads(line)["prompt"] + json.loads(line)["answer"] for line in train.read_text().splitlines()
    ]
    tok = lm.train_bpe(corpus, 400)
    shape = dict(
        architecture="LlamaForCausalLM",
        vocab_size=512,
        hidden_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=32,
        intermediate_size=256,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    if args.jobs > 1:  # seeds in parallel processes (CPU time is measured per process, so still fair)
        import concurrent.futures
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            futures = [
                pool.submit(run_seed, seed, work, train, held, tok, shape, args) for seed in range(args.seeds)
            ]
            results = [f.result() for f in futures]
    else:
        results = [run_seed(seed, work, train, held, tok, shape, args) for seed in range(args.seeds)]
    mean = {k: float(np.mean([r[k] for r in results])) for k in ("sft", "grpo", "more_sft")}
    d = np.array([r["grpo"] - r["more_sft"] for r in results])
    a = np.array([[c == "1" for c in r["grpo_correct"]] for r in results])
    b = np.array([[c == "1" for c in r["more_sft_correct"]] for r in results])
    paired = {
        "grpo_minus_more_sft_per_seed": d.tolist(),
        "mean": float(d.mean()),
        "t95_over_seeds": t_interval(d),
        "bootstrap95_over_problems": bootstrap_interval(a, b),
        "seeds_won": int((d > 0).sum()),
    }
    out = {
        "args": vars(args),
        "shape": shape,
        "vocab": tok.vocab_size,
        "seeds": results,
        "mean": mean,
        "paired": paired,
        "jax": jax.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    plot(results, Path(args.out).with_suffix(".png"))
    print("mean held-out accuracy:", json.dumps(mean))
    print("GRPO - more SFT:", json.dumps(paired))


if __name__ == "__main__":
    main()
