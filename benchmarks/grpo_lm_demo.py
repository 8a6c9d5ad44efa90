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
  5. the control: from the same checkpoint, more supervised training on the same demonstrations for
     the same wall time as GRPO's training (compilation excluded on both sides).

Held-out greedy accuracy (number verifier) is measured before, after GRPO and after the control, per
seed. Writes ``benchmarks/results/grpo_lm_demo.json``.

    python benchmarks/grpo_lm_demo.py                 # 3 seeds
    python benchmarks/grpo_lm_demo.py --seeds 1 --iterations 20 --sft-steps 100   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
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
from jaxrl.algos.grpo import trainer  # noqa: E402

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
        eval_every=max(1, args.iterations // 4),
    )


def pretrain(cfg: jaxrl.GRPOConfig, seed: int, out: Path) -> tuple[float, float]:
    """Supervised training (jaxrl's warm-up) from the random checkpoint, saved as a checkpoint."""
    state = trainer.init(cfg, jax.random.key(seed))
    model = trainer.setup(cfg).policy
    tok = trainer.setup(cfg).task.tokenizer
    lm.save_pretrained(out, model.config, state.params, tok)
    return float(state.init_accuracy), float(state.warmup_accuracy)


def grpo_cli(sft_dir: Path, train: Path, held: Path, args, seed: int, run_dir: Path) -> dict:
    """GRPO from the SFT checkpoint through ``jaxrl train`` (as a user would run it)."""
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
        f"eval_every={max(1, args.iterations // 4)}",
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
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"jaxrl train failed:\n{proc.stdout}\n{proc.stderr}")
    summary = json.loads((run_dir / "summary.json").read_text())
    # GRPO's training time without its compilation: the first iteration compiled the sampler and the
    # update, so it counts as a typical (median) one
    secs = jaxrl.runtime.logs.read_csv(str(run_dir / "metrics.csv"))["seconds"]
    train_s = float(np.sum(secs[1:]) + np.median(secs))
    return {"summary": summary, "train_s": train_s, "wall_s": time.perf_counter() - t}


def more_sft(cfg: jaxrl.GRPOConfig, sft_dir: Path, seed: int, budget_s: float) -> tuple[float, int, float]:
    """The control: from the SFT checkpoint, more supervised steps on the same demonstrations (the
    warm-up's demonstrations come from the same key) for ``budget_s`` seconds of stepping."""
    cfg = cfg.replace(model=f"hf:{sft_dir}")
    k_params, k_demo, k_batch, _ = jax.random.split(jax.random.key(seed), 4)
    demos = trainer.demonstrations(cfg, k_demo)
    state = trainer.init(cfg.replace(warmup_steps=0), jax.random.key(seed))
    chunk = 10
    trainer.warmup(cfg, state, chunk, k_batch, demos=demos)  # compile, not timed
    spent, steps, key = 0.0, 0, k_batch
    while spent < budget_s:
        key, k = jax.random.split(key)
        t = time.perf_counter()
        state, _ = trainer.warmup(cfg, state, chunk, k, demos=demos)
        jax.block_until_ready(state.params)
        spent += time.perf_counter() - t
        steps += chunk
    return trainer.heldout_accuracy(cfg, state.params), steps, spent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--eval", type=int, default=200)
    p.add_argument("--demos", type=int, default=200, help="distinct problems the supervised training sees")
    p.add_argument("--sft-steps", type=int, default=500)
    p.add_argument("--iterations", type=int, default=80, help="GRPO iterations")
    p.add_argument("--lr", type=float, default=1e-3, help="GRPO peak step size")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "grpo_lm_demo.json"))
    args = p.parse_args()
    jaxrl.cpu.set_cpu_threads(1)

    work = Path(tempfile.mkdtemp(prefix="grpo_lm_demo_"))
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
    results = []
    for seed in range(args.seeds):
        rand_dir, sft_dir = work / f"random{seed}", work / f"sft{seed}"
        lm.random_checkpoint(rand_dir, shape, seed=seed, tokenizer=tok)
        cfg = base_config(train, held, f"hf:{rand_dir}", args)
        t = time.perf_counter()
        init_acc, sft_acc = pretrain(cfg, seed, sft_dir)
        sft_s = time.perf_counter() - t
        g = grpo_cli(sft_dir, train, held, args, seed, work / f"grpo{seed}")
        grpo_acc = g["summary"]["final_eval"]["heldout_accuracy"]
        budget = g["train_s"]
        ctrl_acc, ctrl_steps, ctrl_s = more_sft(cfg, sft_dir, seed, budget)
        row = dict(
            seed=seed,
            random_init=init_acc,
            sft=sft_acc,
            grpo=grpo_acc,
            more_sft=ctrl_acc,
            grpo_train_s=budget,
            more_sft_steps=ctrl_steps,
            more_sft_s=ctrl_s,
            sft_s=sft_s,
            grpo_wall_s=g["wall_s"],
            load=os.getloadavg()[0],
        )
        print(json.dumps(row), flush=True)
        results.append(row)
    summary = {k: float(np.mean([r[k] for r in results])) for k in ("sft", "grpo", "more_sft")}
    out = {
        "args": vars(args),
        "shape": shape,
        "vocab": tok.vocab_size,
        "seeds": results,
        "mean": summary,
        "jax": jax.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("mean held-out accuracy:", json.dumps(summary))


if __name__ == "__main__":
    main()
