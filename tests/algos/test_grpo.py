"""GRPO trainer: config checks, API shapes, determinism, and the learning demo (short and full)."""

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
            reward=lambda b: b.completion_mask.sum(axis=1),
            beta=0.1,
            inner_steps=3,
            warmup_steps=0,
            learning_rate=1e-3,
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
        cfg = SMALL.replace(task="pyfunc", warmup_steps=10, num_iterations=1, eval_every=10**6)
        state, m = jaxrl.train(cfg, jax.random.key(3))
        assert 0.0 <= float(m["reward"][0]) <= 1.0 and np.isfinite(m["loss"][0])
        assert 0.0 <= float(m["heldout_accuracy"][0]) <= 1.0
        assert all(isinstance(t, str) for t in jaxrl.make_policy(cfg, state)(["f(1)=3;f(2)=4;"]))
