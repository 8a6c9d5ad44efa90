"""The README's Python examples run (cut down: fewer steps and seeds, same code), so none can silently
break. Each substitution must match the README text: when an example changes, this test says which
cut-down no longer applies instead of running it at full length."""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _blocks() -> list[str]:
    with open(os.path.join(ROOT, "README.md")) as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), flags=re.S | re.M)


def _find(fragment: str) -> str:
    found = [b for b in _blocks() if fragment in b]
    assert len(found) == 1, f"expected one README python block containing {fragment!r}, found {len(found)}"
    return found[0]


def _cut(src: str, *subs: tuple[str, str]) -> str:
    for old, new in subs:
        assert old in src, f"README example changed: {old!r} no longer appears; update tests/test_readme.py"
        src = src.replace(old, new)
    return src


def test_every_block_is_covered():
    markers = ("PPOConfig(env=\"CartPole-v1\"", "set_cpu_threads(1)", "Pendulum-v1", "def double_dqn_loss",
               "truncated_gae", "def generate(rng)", "jaxrl.lm.from_pretrained", "train_population")  # fmt: skip
    blocks = _blocks()
    assert len(blocks) == len(markers)
    for m in markers:
        _find(m)
    for b in blocks:
        compile(b, "README.md", "exec")


@pytest.mark.slow  # ~6 PPO compilations: about a minute of CPU
def test_quick_start_and_scale_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example writes runs/my-ppo
    ns: dict = {}
    quick = _cut(
        _find('PPOConfig(env="CartPole-v1"'),
        ("total_timesteps=524_288", "total_timesteps=1024, rollout_steps=64"),
        ("jax.random.split(key, 16)", "jax.random.split(key, 2)"),
        ('jaxrl.run(cfg, key, out_dir="runs/my-ppo")', 'jaxrl.run(cfg, key, out_dir="runs/my-ppo", progress=False)'),
    )  # fmt: skip
    exec(quick, ns)
    assert ns["returns"].shape == (32,) and ns["metrics"]["episode_return"].shape == (4,)
    assert os.path.exists(tmp_path / "runs/my-ppo/summary.json")
    pendulum = dict(ns)
    exec(_find("Pendulum-v1"), pendulum)  # a config only: it must validate
    from jaxrl.algos import checks, registry

    checks.validate_config(pendulum["cfg"], registry.algorithm_for(pendulum["cfg"]).validate)
    exec(_cut(_find("train_population"), ("cfgs_or_cfg, keys", "cfg, jax.random.split(key, 2)")), ns)
    assert ns["ms"]["episode_return"].shape == (2, 4)


def test_loss_examples_run():
    ns: dict = {}
    exec(_find("def double_dqn_loss"), ns)

    class Batch:
        obs = jnp.ones((3, 2))
        next_obs = jnp.zeros((3, 2))
        action = jnp.array([0, 1, 0])
        reward = jnp.array([1.0, 0.0, 1.0])
        terminated = jnp.array([0.0, 1.0, 0.0])

    loss = ns["double_dqn_loss"](
        {"w": 1.0}, {"w": 2.0}, lambda p, o: p["w"] * jnp.ones((o.shape[0], 2)), Batch
    )
    # targets r + 0.99 * (1 - terminated) * 2; q = 1: td = [1.98, -1, 1.98], Huber(1) of each
    assert float(loss) == pytest.approx((1.48 + 0.5 + 1.48) / 3, rel=1e-5)
    t, b = 5, 2
    ns.update(
        jax=jax, jaxrl=__import__("jaxrl"), gamma=0.99, reward=jnp.ones((t, b)), v_s=jnp.zeros((t, b)),
        v_next_true=jnp.zeros((t, b)), terminated=jnp.zeros((t, b), bool), truncated=jnp.zeros((t, b), bool),
    )  # fmt: skip
    exec(_find("truncated_gae"), ns)
    assert ns["adv"].shape == (t, b) and float(ns["adv"][-1, 0]) == pytest.approx(1.0)


def test_custom_grpo_task_example_builds_a_trainable_task():
    """The part that broke before (a task whose prompts were all held out), without training."""
    import jaxrl
    from jaxrl.algos import checks, registry

    ns = {"jax": jax, "jaxrl": jaxrl}
    src = _cut(_find("def generate(rng)"), ("state, metrics = jaxrl.train(", "cfg = ("))
    exec(src, ns)
    reverse = ns["reverse"]
    held = {p.prompt for p in reverse.heldout_problems()}
    train = reverse.sample_problems(np.random.default_rng(0), 64)
    assert len(held) == 8 and not held & {p.prompt for p in train}
    cfg = ns["cfg"][0]
    checks.validate_config(cfg, registry.algorithm_for(cfg).validate)


@pytest.mark.slow  # compiles the nano model's warm-up, sampling and update programs
def test_custom_grpo_task_example():
    import jaxrl

    ns = {"jax": jax, "jaxrl": jaxrl}
    src = _cut(
        _find("def generate(rng)"),
        ("jaxrl.GRPOConfig(task=reverse)",
         "jaxrl.GRPOConfig(task=reverse, model='nano', warmup_steps=2, warmup_demos=8, warmup_batch=4, "
         "num_iterations=1, prompts_per_iteration=2, group_size=2, eval_every=10**6)"),
    )  # fmt: skip
    exec(src, ns)
    assert ns["metrics"]["reward"].shape == (1,)


def test_cpu_threads_example_in_a_fresh_process():
    src = _find("set_cpu_threads(1)") + "\nimport jax\nprint(jax.numpy.zeros(2).sum())\n"
    r = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"})  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]


def test_language_model_example(tmp_path, monkeypatch):
    pytest.importorskip("tokenizers")
    import jaxrl
    import jaxrl.lm

    monkeypatch.chdir(tmp_path)  # the example writes "out" and "ckpt"
    jaxrl.lm.random_checkpoint("tiny", "llama-tiny")  # stands in for the downloaded checkpoint
    src = _cut(
        _find("jaxrl.lm.from_pretrained"),
        ('"path/to/Qwen2.5-0.5B", dtype="bfloat16"', '"tiny", dtype="float32"'),
        ('random_checkpoint("ckpt", "llama-30m")', 'random_checkpoint("ckpt", "llama-tiny")'),
        # a random checkpoint has no chat template; give it a minimal one (Qwen's has its own)
        ("prompt = tokenizer.apply_chat_template",
         "tokenizer.hf.chat_template = CHAT\nprompt = tokenizer.apply_chat_template"),
    )  # fmt: skip
    chat = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    ns = {"jax": jax, "jaxrl": jaxrl, "tokens": jnp.ones((1, 4), jnp.int32), "CHAT": chat}
    exec(src, ns)
    assert ns["logits"].shape[:2] == (1, 4) and isinstance(ns["text"], str)
    assert ns["prompt"] == "<user>What is 12+30?<assistant>"
    assert (tmp_path / "out").is_dir() and (tmp_path / "ckpt").is_dir()
