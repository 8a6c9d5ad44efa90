"""Reference floor for PPO CartPole-v1 with PureJaxRL's settings on this machine.

Runs the shared floor script (``../shared/tools/floor_ppo_cartpole.py`` beside the repository, or the path
given with ``--script``): it times, each alone in one jitted scan, the env steps of a run (random actions)
and its network work (rollout forward passes and the minibatch gradient steps), with no RL logic. Their
sum is what a run costs if nothing else did; PureJaxRL measures at about 1.0x that sum.

    python benchmarks/floor_ppo.py            # prints env / network / sum, writes results/floor_ppo.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SCRIPT = HERE.parent.parent / "shared" / "tools" / "floor_ppo_cartpole.py"


def run_floor(script: Path = DEFAULT_SCRIPT, python: str = sys.executable) -> dict | None:
    """``{"env_s", "network_s", "sum_s"}`` from the floor script, or None if it is not there."""
    if not script.exists():
        return None
    proc = subprocess.run([python, str(script)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{proc.stderr[-3000:]}")
    env = re.search(r"env only: ([\d.]+) s", proc.stdout)
    net = re.search(r"network only: ([\d.]+) s", proc.stdout)
    if not (env and net):
        raise RuntimeError(f"unexpected output from {script}:\n{proc.stdout}")
    e, n = float(env.group(1)), float(net.group(1))
    return {"env_s": e, "network_s": n, "sum_s": e + n, "script": str(script)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--script", type=Path, default=DEFAULT_SCRIPT)
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    import _harness as H

    floor = run_floor(args.script)
    if floor is None:
        sys.exit(f"floor script not found: {args.script}")
    print(
        f"env only {floor['env_s']:.2f} s + network only {floor['network_s']:.2f} s = {floor['sum_s']:.2f} s"
    )
    path = H.write_json("floor_ppo", {"floor": floor, "machine": H.machine_info()})
    print(f"wrote {path}")
    print(json.dumps(floor))


if __name__ == "__main__":
    main()
