"""GRPO trainer: config checks, API shapes, determinism, and the learning demo (short and full)."""

import dataclasses

import jax
import numpy as np
import pytest

import jaxrl
from jaxrl.algos import base, grpo
from jaxrl.algos.grpo import trainer

# a small, quick configuration (nano model, few prompts) for the API tests
SMALL = jaxrl.GRPOConfig(
    model="nano",
    warmup_steps=20,
    warmup_demos=64,
    warmup_batch=16,
    num_iterations=3,
    prompts_per_iteration=2,
    group_size=4,
    eval_every=2,
    beta=0.1,  # (the KL test below shares these compiled programs: same static settings)
    inner_steps=3,
)


class TestValidate:
    @pytest.mark.parametrize(
        "change,match",
        [
            ({"group_size": 1}, "group_size must be >= 2"),
            ({"model": "huge"}, "model must be one of"),
            ({"max_len": 8}, "max_len=8 is too short .* set max_len >= 11"),
            ({"aggregation": "mean"}, "aggregation must be one of"),
            ({"advantage_scale": "std"}, "advantage_scale must be one of"),
            ({"reward": "verifier"}, "unknown GRPO reward source"),
            ({"task": "sum"}, "unknown GRPO task"),
            ({"learning_rate": -1.0}, "learning_rate must be a positive"),
            ({"num_iterations": 0}, "num_iterations must be a positive"),
        ],
    )
    def test_clear_errors(self, change, match):
        with pytest.raises(ValueError, match=match):
            grpo.validate(SMALL.replace(**change))

    def test_warmup_needs_solutions(self):
        task = jaxrl.Task(
            name="nosol",
            tokenizer=jaxrl.CharTokenizer("ab"),
            generate=lambda rng: jaxrl.Problem("a" * int(rng.integers(1, 5))),
            reward=lambda p, t: 1.0,
            max_new_tokens=2,
            num_heldout=2,
        )
        with pytest.raises(ValueError, match="no Problem.solution"):
            grpo.validate(SMALL.replace(task=task))
        grpo.validate(SMALL.replace(task=task, warmup_steps=0))

    def test_registered(self):
        algo = base.get("grpo")
        assert algo.config is jaxrl.GRPOConfig and algo.host_loop and algo.report is not None


class TestTrainAPI:
    def test_train_shapes_determinism_and_policy(self):
        state, metrics = jaxrl.train(SMALL, jax.random.key(0))
        assert isinstance(metrics, trainer.Metrics)
        for name, col in metrics.items():
            assert np.shape(col) == (3,), name
        assert metrics["env_steps"].tolist() == [8, 16, 24]
        acc = metrics["heldout_accuracy"]
        assert np.isnan(acc[0]) and np.isfinite(acc[1]) and np.isfinite(acc[2])  # eval_every=2 and the last
        assert np.all(np.isfinite(metrics["loss"])) and np.all(metrics["completion_length"] >= 1)
        assert int(state.iteration) == 3 and 0 <= float(state.warmup_accuracy) <= 1
        # same key, same run (the host RNG for problems is derived from the JAX key)
        state2, metrics2 = jaxrl.train(SMALL, jax.random.key(0))
        for name in metrics.keys():
            if name != "seconds":
                np.testing.assert_array_equal(metrics[name], metrics2[name], err_msg=name)
        jax.tree_util.tree_map(np.testing.assert_array_equal, state.params, state2.params)
        # the policy maps prompt text to completion text
        act = jaxrl.make_policy(SMALL, state)
        out = act(["12+30=", "7+7="])
        assert isinstance(out, list) and len(out) == 2 and all(isinstance(t, str) for t in out)
        assert isinstance(act("1+1="), str)
        assert "warm-up" in trainer.report(SMALL, state)

    def test_kl_reference_inner_steps_and_callable_reward(self):
        # a callable reward (longer answers are better: unrelated to correctness) gives a signal from
        # random weights; beta > 0 with a frozen reference: KL is measured; 3 inner steps move the ratio
        cfg = SMALL.replace(
            reward=lambda b: b.completion_mask.sum(axis=1), warmup_steps=0, learning_rate=1e-3
        )
        state0 = trainer.init(cfg, jax.random.key(1))
        state, m1 = trainer.train_step(cfg, state0)
        state, m2 = trainer.train_step(cfg, state)
        assert float(m2.kl) > 0.0 and float(m1.ratio_mean) != 1.0
        assert float(m1.reward) >= 1.0 and 0.0 <= float(m1.true_reward) <= 1.0  # length vs verifier
        jax.tree_util.tree_map(np.testing.assert_array_equal, state.ref_params, state0.params)


class TestCodeTask:
    def test_grpo_iteration_with_the_python_verifier(self):
        # one iteration on the code task: completions are run in the sandbox and scored in [0, 1]
        task = dataclasses.replace(grpo.make_task("pyfunc"), num_heldout=8)  # fewer sandbox runs
        cfg = SMALL.replace(task=task, warmup_steps=10, num_iterations=1, eval_every=10**6)
        state, m = jaxrl.train(cfg, jax.random.key(3))
        assert 0.0 <= float(m["reward"][0]) <= 1.0 and np.isfinite(m["loss"][0])
        assert 0.0 <= float(m["heldout_accuracy"][0]) <= 1.0
        assert all(isinstance(t, str) for t in jaxrl.make_policy(cfg, state)(["f(1)=3;f(2)=4;"]))


class TestUserTask:
    def test_user_defined_task_learns_from_random_weights(self):
        """A task defined only through the public API; pure GRPO (no warm-up) from random weights."""

        def generate(rng):
            s = "".join(rng.choice(list("abcd"), size=4))
            return jaxrl.Problem(prompt=s + ":", answer=s[0])

        def reward(problem, text):  # half a point for the right first letter, half for stopping after it
            return 0.5 * text.startswith(problem.answer) + 0.5 * (len(text) == 1)

        task = jaxrl.Task(
            name="first_letter",
            tokenizer=jaxrl.CharTokenizer("abcd:"),
            generate=generate,
            reward=reward,
            max_new_tokens=3,
            num_heldout=64,
        )
        cfg = jaxrl.GRPOConfig(
            task=task, model="nano", warmup_steps=0, num_iterations=80, eval_every=40, learning_rate=1e-3
        )
        state, metrics = jaxrl.train(cfg, jax.random.key(0))
        # measured: 0.0 -> 0.70 (seeds 1, 2: 0.70, 0.56); chance (right letter and stop) is ~0.01
        assert float(state.init_accuracy) <= 0.05
        assert metrics["heldout_accuracy"][-1] >= 0.4
        assert np.mean(metrics["reward"][-10:]) > np.mean(metrics["reward"][:10]) + 0.2


# ------------------------------------------------------------------------------------ THE DEMO
# The TRL peer's setting (addition, GPT-2-shaped 2x4x128 model from random weights, 600 warm-up steps on
# 2000 demonstrations), with 16 prompts x 8 answers per GRPO iteration at lr 1e-4.
DEMO = jaxrl.GRPOConfig(prompts_per_iteration=16, num_iterations=30, eval_every=30)


class TestDemo:
    def test_short_demo_grpo_raises_heldout_accuracy(self):
        # measured (key 0): warm-up 0.785 -> 0.90 after 25-30 GRPO iterations
        state, metrics = jaxrl.train(DEMO, jax.random.key(0))
        before, after = float(state.warmup_accuracy), float(metrics["heldout_accuracy"][-1])
        assert float(state.init_accuracy) == 0.0
        assert 0.5 <= before <= 0.85, before  # clearly below the ceiling after the short warm-up
        assert after >= 0.85 and after >= before + 0.05, (before, after)

    @pytest.mark.slow
    def test_full_demo_with_supervised_control(self):
        """100 GRPO iterations, and the control: continue the warm-up for the same wall time instead."""
        import time

        cfg = DEMO.replace(num_iterations=100, eval_every=100)
        key = jax.random.key(0)
        state0 = trainer.init(cfg, key)
        t0 = time.perf_counter()
        state = state0
        for _ in range(cfg.num_iterations):
            state, _ = trainer.train_step(cfg, state)
        grpo_s = time.perf_counter() - t0
        before, after = float(state0.warmup_accuracy), trainer.heldout_accuracy(cfg, state.params)
        demos = trainer.init_demonstrations(cfg, key)
        sft, spent, k = state0, 0.0, jax.random.key(1)
        while spent < grpo_s:
            k, kk = jax.random.split(k)
            t = time.perf_counter()
            sft, _ = trainer.warmup(cfg, sft, 10, kk, demos=demos)
            jax.block_until_ready(sft.params)
            spent += time.perf_counter() - t
        control = trainer.heldout_accuracy(cfg, sft.params)
        print(
            f"warm-up {before:.3f} -> GRPO {after:.3f} ({grpo_s:.0f} s); same time of SFT instead: {control:.3f}"
        )
        assert after >= 0.85 and after >= before + 0.05
