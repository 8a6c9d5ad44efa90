"""kill -9 during a run, then `jaxrl train --resume`: identical final parameters."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from runtime_tiny import CHUNK, ITERATIONS, leaves_equal

from jaxrl import cli, runtime

# The child trains the shared tiny config with a checkpoint after every 4-update chunk and a short
# sleep per chunk (host callback), so the parent can kill it between checkpoints.
CHILD = textwrap.dedent(
    f"""
    import sys, time
    sys.path.insert(0, {os.path.dirname(__file__)!r})
    from runtime_tiny import tiny_config
    from jaxrl import runtime
    runtime.run(tiny_config(), 0, sys.argv[1], chunk_size={CHUNK}, eval_episodes=0, checkpoint_every=1,
                keep_checkpoints=2, progress=False, host_callback=lambda info: time.sleep(0.5))
    """
)


def test_kill_9_then_resume_gives_identical_params(tmp_path, reference_run, capsys):
    out = str(tmp_path / "run")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    child = subprocess.Popen([sys.executable, "-c", CHILD, out], env=env, start_new_session=True)
    try:
        deadline = time.time() + 600
        ckpts = os.path.join(out, "checkpoints")
        while time.time() < deadline and child.poll() is None:
            done = [int(s) for s in os.listdir(ckpts) if s.isdigit()] if os.path.isdir(ckpts) else []
            if done and max(done) >= 8:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the child finished (or died) before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(out, "summary.json"))  # it really died mid-run

    rc = cli.main(["train", "--resume", out, "--quiet", "--no-compile-cache", "--no-plot"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Run directory:" in text
    _, state = runtime.load_state(out)
    assert leaves_equal(state, reference_run.state)
    assert json.load(open(os.path.join(out, "summary.json")))["iterations"] == ITERATIONS
