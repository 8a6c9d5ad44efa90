"""Where a jaxrl DQN Pong env step goes on the CPU (``atari_vs_cleanrl.py --algo dqn`` settings): the
training program's CPU time per env step split by running its parts as separate compiled programs in one
process, alternating rounds:

* ``train``: the whole chunk program (act, env step, replay add, and every 4th step one update on a
  sampled minibatch), the figure ``atari_vs_cleanrl.py`` times;
* ``act_store``: the same program before ``learning_starts`` (act, env step, replay add; no sampling, no
  update);
* ``sample``: one ``sample_batches`` of 32 (stacks rebuilt from the de-duplicated store, successors, end
  store), at top level on the filled replay;
* ``update``: one gradient step (Nature CNN, L2 TD loss, Adam) on a fixed minibatch of 32, at top level.

Figures are process CPU seconds (less disturbed than wall time by other processes on a shared machine).

    python benchmarks/dqn_pong_profile.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402
from envpool_train import DQN_ATARI  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl.algos import dqn, offpolicy, registry  # noqa: E402
from jaxrl.envs import envpool as ep  # noqa: E402


def cpu_time(fn, *args):
    c = time.process_time()
    out = jax.block_until_ready(fn(*args))
    return time.process_time() - c, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="Pong-v5")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--chunk", type=int, default=400, help="env steps per compiled chunk")
    p.add_argument("--calls", type=int, default=25, help="top-level sample/update calls per round")
    p.add_argument("--buffer-size", type=int, default=10_000)
    p.add_argument("--learning-starts", type=int, default=1_000)
    p.add_argument("--dedup-frames", type=int, default=1)
    p.add_argument("--out", default=str(H.RESULTS_DIR / "dqn_pong_profile.json"))
    args = p.parse_args()
    settings = dict(
        DQN_ATARI,
        buffer_size=args.buffer_size,
        learning_starts=args.learning_starts,
        dedup_frames=bool(args.dedup_frames),
    )
    settings["exploration_fraction"] = args.learning_starts / DQN_ATARI["total_timesteps"]
    env = "envpool:" + args.task
    cfg = jaxrl.DQNConfig(env=env, env_params=ep.EnvpoolParams(seed=0), **settings)
    idle = cfg.replace(learning_starts=10**9)  # the same program, never learning
    algo = registry.algorithm_for(cfg)
    n = args.chunk // algo.steps_per_iteration(cfg)
    chunk = lambda c: jax.jit(lambda s: registry.run_iterations(algo, c, s, n))
    state = jax.jit(lambda k: algo.init(cfg, k))(jax.random.key(0))
    run_train, run_idle = chunk(cfg), chunk(idle)
    while int(state.iteration) * algo.steps_per_iteration(cfg) < args.learning_starts + args.chunk:
        state, _ = run_train(state)  # fill the replay past learning_starts (and compile)
    jax.block_until_ready(run_idle(state))

    env_obj = dqn.make_env(cfg)
    net = dqn.make_network(cfg, env_obj)
    buf = dqn.make_buffer(cfg, state.env.timestep.obs[0], env_obj.max_episode_steps)
    sample = jax.jit(lambda rs, k: offpolicy.sample_batches(buf, rs, k, 1, cfg.minibatch_size))
    batch = jax.tree_util.tree_map(lambda x: x[0], sample(state.replay, jax.random.key(1)))
    learner = dqn.Learner(state.params, state.target_params, state.opt_state)
    update = jax.jit(lambda lr, b: dqn.update(cfg, net, lr, b))
    jax.block_until_ready(update(learner, batch))

    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": H.machine_info(),
        "args": vars(args),
        "rounds": [],
    }
    for i in range(args.rounds):
        row = {}
        dt, (state, _) = cpu_time(run_train, state)
        row["train_cpu_ms_per_env_step"] = 1e3 * dt / args.chunk
        dt, _ = cpu_time(run_idle, state)
        row["act_store_cpu_ms_per_env_step"] = 1e3 * dt / args.chunk
        ts = [cpu_time(sample, state.replay, jax.random.key(100 * i + j))[0] for j in range(args.calls)]
        row["sample_cpu_ms"] = 1e3 * statistics.median(ts)
        tu = [cpu_time(update, learner, batch)[0] for _ in range(args.calls)]
        row["update_cpu_ms"] = 1e3 * statistics.median(tu)
        row["load_avg_1min"] = H.load_average()
        result["rounds"].append(row)
        print(json.dumps(row), flush=True)
    med = lambda k: statistics.median(r[k] for r in result["rounds"])
    per4 = cfg.train_frequency
    result["median"] = {k: med(k) for k in result["rounds"][0] if k != "load_avg_1min"}
    m = result["median"]
    result["split_per_env_step_ms"] = {
        "act_env_add": m["act_store_cpu_ms_per_env_step"],
        "sample": m["sample_cpu_ms"] / per4,
        "update": m["update_cpu_ms"] / per4,
        "rest": m["train_cpu_ms_per_env_step"]
        - m["act_store_cpu_ms_per_env_step"]
        - (m["sample_cpu_ms"] + m["update_cpu_ms"]) / per4,
    }
    print(json.dumps(result["split_per_env_step_ms"]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
