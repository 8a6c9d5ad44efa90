"""Plot ``dqn_minatar.py`` greedy-return curves against the MinAtar paper's DQN reference scores.

Each ``--run`` is a JSON written by ``benchmarks/dqn_minatar.py`` (its ``curve`` of greedy returns
after each chunk). ``--ref NAME=VALUE`` draws a horizontal line per reference score, e.g. the MinAtar
paper's DQN (Young & Tian 2019) at 5M frames; where those numbers come from is written in
``benchmarks/RESULTS.md`` ("MinAtar DQN at the paper's 5M frames"). Writes one PNG.

    python benchmarks/plot_minatar_vs_paper.py --title "DQN Asterix-MinAtar" \
        --run benchmarks/results/dqn_asterix_minatar_5m_seed1.json \
        --ref "paper DQN, greedy re-eval at 5M=25.6" --ref "paper DQN, training curve at 5M=16.5" \
        --out benchmarks/results/dqn_asterix_minatar_vs_paper.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", action="append", required=True, help="a dqn_minatar.py JSON (repeatable)")
    p.add_argument("--ref", action="append", default=[], help="NAME=VALUE reference line (repeatable)")
    p.add_argument("--title", default="DQN MinAtar")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    fig, ax = plt.subplots(figsize=(7, 4))
    for run in args.run:
        d = json.loads(Path(run).read_text())
        xs = [c["env_steps"] / 1e6 for c in d["curve"]]
        ax.plot(xs, [c["greedy_return"] for c in d["curve"]], marker="o", ms=2, label=Path(run).stem)
    for i, ref in enumerate(args.ref):
        name, _, value = ref.rpartition("=")
        if not name:
            raise SystemExit(f"--ref must be NAME=VALUE, got {ref!r}")
        ax.axhline(float(value), ls="--", lw=1, color=f"C{i + len(args.run)}", label=name)
    ax.set_xlabel("env steps (millions; 1 step = 1 MinAtar frame)")
    ax.set_ylabel("greedy return")
    ax.set_title(args.title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
