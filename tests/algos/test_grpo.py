"""GRPO trainer: config checks, API shapes, determinism, and the learning demo (short and full)."""

import dataclasses

import jax
import numpy as np
import pytest

import jaxrl
from jaxrl import cli, sandbox
from jaxrl.algos import grpo, registry
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
    oversample=1,  # (dynamic sampling and the step-size schedule have their own tests)
    lr_schedule="constant",
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
            ({"warmup_schedule": "cosine"}, "warmup_schedule must be one of"),
            ({"lr_schedule": "cosine"}, "lr_schedule must be one of"),
            ({"oversample": 0}, "oversample must be a positive"),
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
        algo = registry.get("grpo")
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

    def test_warmup_step_size_schedule(self):
        # linear: 1, 1 - 1/n, ..., 1/n (0 after the last step); a zero multiplier leaves the weights as they are
        np.testing.assert_allclose(
            trainer.warmup_lr_scale(SMALL.replace(warmup_steps=4)), [1.0, 0.75, 0.5, 0.25]
        )
        np.testing.assert_array_equal(
            trainer.warmup_lr_scale(SMALL.replace(warmup_steps=3, warmup_schedule="constant")),
            [1.0, 1.0, 1.0],
        )
        state = trainer.init(SMALL.replace(warmup_steps=0), jax.random.key(2))
        demos = trainer.init_demonstrations(SMALL, jax.random.key(2))
        kept, _ = trainer.warmup(SMALL, state, 3, jax.random.key(3), demos=demos, lr_scale=np.zeros(3))
        moved, _ = trainer.warmup(SMALL, state, 3, jax.random.key(3), demos=demos)
        jax.tree_util.tree_map(np.testing.assert_array_equal, kept.params, state.params)
        assert not np.array_equal(
            moved.params["params"]["head"]["kernel"], state.params["params"]["head"]["kernel"]
        )

    def test_grpo_step_size_schedule(self):
        # linear: 1 at the first iteration, 1/n at the last (0 after it); constant: 1
        lin = SMALL.replace(num_iterations=4, lr_schedule="linear")
        np.testing.assert_allclose(
            [trainer.grpo_lr_scale(lin, i) for i in range(5)], [1.0, 0.75, 0.5, 0.25, 0.0]
        )
        assert [trainer.grpo_lr_scale(SMALL, i) for i in (0, 2)] == [1.0, 1.0]
        # the multiplier reaches the update: at 0 the weights do not move, with the same Adam state update
        # as at 1 (a schedule on the step, not on the gradient)
        cfg = SMALL.replace(warmup_steps=0, inner_steps=1, beta=0.0)
        s = trainer.setup(cfg)
        state = trainer.init(cfg, jax.random.key(4))
        tokens = np.tile(np.arange(12, dtype=np.int32) % 10 + 3, (8, 1))
        mask = np.zeros((8, 12), np.float32)
        mask[:, 8:] = 1.0
        logp_old = np.full((8, 12), -1.0, np.float32)
        rewards = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]], np.float32)
        args = (
            trainer.HParams.of(cfg),
            state.params,
            None,
            state.opt_state,
            tokens,
            logp_old,
            mask,
            rewards,
            None,
        )
        p0, o0, _ = s.programs.update(*args, np.float32(0.0))
        p1, o1, _ = s.programs.update(*args, np.float32(1.0))
        jax.tree_util.tree_map(np.testing.assert_array_equal, p0, state.params)
        jax.tree_util.tree_map(np.testing.assert_allclose, o0, o1)
        assert not np.array_equal(p1["params"]["head"]["kernel"], state.params["params"]["head"]["kernel"])

    def test_dynamic_sampling_keeps_the_groups_with_signal(self):
        rewards = np.array(
            [[1, 1, 1, 1], [0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0.5, 0, 0, 0], [1, 1, 0, 1]], np.float32
        )
        # stds: 0, .433, 0, .5, .217, .433 -> the top 3 are groups 3, 1, 5 (1 before 5 on the tie)
        np.testing.assert_array_equal(trainer.select_groups(rewards, 3), [1, 3, 5])
        np.testing.assert_array_equal(trainer.select_groups(rewards, 4), [1, 3, 4, 5])
        np.testing.assert_array_equal(trainer.select_groups(rewards, 6), np.arange(6))
        with pytest.raises(ValueError, match="cannot keep 7 of 6"):
            trainer.select_groups(rewards, 7)
        # in training: twice the prompts sampled, the update on the prompts_per_iteration most varied groups
        # (same update shapes as without); same key, same run
        cfg = SMALL.replace(oversample=2, num_iterations=2, inner_steps=1, beta=0.0, lr_schedule="linear")
        state0 = trainer.init(cfg, jax.random.key(5))
        runs = []
        for _ in range(2):
            state, m1 = trainer.train_step(cfg, state0)
            state, m2 = trainer.train_step(cfg, state)
            runs.append((state, m1, m2))
        (sa, a1, a2), (sb, b1, b2) = runs
        jax.tree_util.tree_map(np.testing.assert_array_equal, sa.params, sb.params)
        assert (int(a1.env_steps), int(a2.env_steps)) == (16, 32)  # 4 prompts x 4 answers sampled
        assert registry.get("grpo").steps_per_iteration(cfg) == 16  # the progress bar's total counts the same
        for m, n in ((a1, b1), (a2, b2)):
            assert float(m.reward) == float(n.reward) and float(m.loss) == float(n.loss)
            assert float(m.used_zero_std_fraction) <= float(m.zero_std_fraction)

    def test_kl_reference_inner_steps_and_callable_reward(self):
        # a callable reward (the sum of the completion's token ids: unrelated to correctness) gives a
        # signal from random weights (answer lengths alone can tie in every group: no signal); beta > 0
        # with a frozen reference: KL is measured; 3 inner steps move the ratio
        cfg = SMALL.replace(
            reward=lambda b: (b.tokens * b.completion_mask).sum(axis=1), warmup_steps=0, learning_rate=1e-3
        )
        state0 = trainer.init(cfg, jax.random.key(1))
        state, m1 = trainer.train_step(cfg, state0)
        state, m2 = trainer.train_step(cfg, state)
        assert float(m2.kl) > 0.0 and float(m1.ratio_mean) != 1.0
        assert float(m1.reward) >= 1.0 and 0.0 <= float(m1.true_reward) <= 1.0  # length vs verifier
        jax.tree_util.tree_map(np.testing.assert_array_equal, state.ref_params, state0.params)


class TestCodeTask:
    def test_grpo_iteration_with_the_python_verifier(self, isolation):
        # one iteration on the code task: completions are run in the sandbox and scored in [0, 1]
        task = dataclasses.replace(grpo.make_task("pyfunc"), num_heldout=8)  # fewer sandbox runs
        cfg = SMALL.replace(task=task, warmup_steps=10, num_iterations=1, eval_every=10**6)
        state, m = jaxrl.train(cfg, jax.random.key(3))
        assert 0.0 <= float(m["reward"][0]) <= 1.0 and np.isfinite(m["loss"][0])
        assert 0.0 <= float(m["heldout_accuracy"][0]) <= 1.0
        assert all(isinstance(t, str) for t in jaxrl.make_policy(cfg, state)(["f(1)=3;f(2)=4;"]))

    def test_without_a_sandbox_unsafe_local_exec_decides(self, monkeypatch, tmp_path, capsys):
        """No sandbox on this machine: a code task is refused before any training, saying what to install
        and how to opt out; GRPOConfig.unsafe_local_exec=True (the CLI: the same field) runs the code as a
        plain subprocess."""
        monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
        monkeypatch.delenv(sandbox.UNSAFE_ENV, raising=False)
        sandbox._setup.cache_clear()
        try:
            task = dataclasses.replace(grpo.make_task("pyfunc"), num_heldout=4)
            cfg = SMALL.replace(task=task, warmup_steps=0, num_iterations=1, eval_every=10**6)
            assert cfg.unsafe_local_exec is False  # the default
            what_to_do = r"apt-get install bubblewrap.*GRPOConfig\(unsafe_local_exec=True\)"
            with pytest.raises(sandbox.SandboxUnavailable, match=what_to_do):
                jaxrl.train(cfg, jax.random.key(0))
            out = tmp_path / "run"
            argv = ["train", "--algo", "grpo", "--set", "task=pyfunc", "--out", str(out), "--quiet"]
            assert cli.main(argv) == 2 and not out.exists()
            err = capsys.readouterr().err
            assert "apt-get install bubblewrap" in err and "--set unsafe_local_exec=true" in err
            # opted in: init scores the held-out problems and the iteration its completions, unsandboxed
            state, m = jaxrl.train(cfg.replace(unsafe_local_exec=True), jax.random.key(0))
            assert 0.0 <= float(m["true_reward"][0]) <= 1.0 and np.isfinite(m["loss"][0])
            probs = task.heldout_problems()[:2]  # and the code does run: right solutions score 1
            with sandbox.local_exec_allowed(True):
                assert task.score(probs, [p.solution for p in probs], [True, True]).tolist() == [1.0, 1.0]
            with pytest.raises(sandbox.SandboxUnavailable):  # only inside the opted-in block
                task.score(probs, [p.solution for p in probs], [True, True])
        finally:
            sandbox._setup.cache_clear()


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
            task=task,
            model="nano",
            warmup_steps=0,
            num_iterations=80,
            eval_every=40,
            learning_rate=1e-3,
            lr_schedule="constant",  # (the settings its figures were measured with)
            oversample=1,
        )
        state, metrics = jaxrl.train(cfg, jax.random.key(0))
        # measured: 0.0 -> 0.70 (seeds 1, 2: 0.70, 0.56); chance (right letter and stop) is ~0.01
        assert float(state.init_accuracy) <= 0.05
        assert metrics["heldout_accuracy"][-1] >= 0.4
        assert np.mean(metrics["reward"][-10:]) > np.mean(metrics["reward"][:10]) + 0.2


# ------------------------------------------------------------------------------------ THE DEMO
def grpo_and_supervised_instead(cfg, key, supervised_steps):
    """Warm-up (``init``), then ``cfg.num_iterations`` GRPO iterations, and from the same warm-up instead
    ``supervised_steps`` more supervised steps on the warm-up's demonstrations at GRPO's step size.
    Returns (warm-up state, GRPO state, sampled reward of the warm-up, of GRPO, of the supervised control)."""
    state0 = trainer.init(cfg, key)
    state = state0
    for _ in range(cfg.num_iterations):
        state, _ = trainer.train_step(cfg, state)
    demos = trainer.init_demonstrations(cfg, key)
    sft_cfg = cfg.replace(warmup_learning_rate=cfg.learning_rate)
    sft, _ = trainer.warmup(sft_cfg, state0, supervised_steps, jax.random.key(1), demos=demos)
    before, after, control = (trainer.sampled_heldout_reward(cfg, s.params) for s in (state0, state, sft))
    return state0, state, before, after, control


# The default regime (scarce demonstrations: 500 of the 9,800 training problems, warm-up with the step size
# decayed to 0; GRPO on fresh prompts scored by the verifier, dynamic sampling, step size decayed to 0),
# shortened: a 1000-step warm-up, 300 GRPO iterations from a peak step size of 1e-4 (the default 2e-4
# decayed over only 300 iterations made key 1's weak warm-up worse: sampled 0.170 -> 0.138).
# benchmarks/grpo_demo.py runs the full version over seeds.
DEMO = jaxrl.GRPOConfig(warmup_steps=1000, num_iterations=300, learning_rate=1e-4, eval_every=10**6)


class TestDemo:
    def test_short_demo_grpo_raises_the_verifier_reward(self):
        """GRPO raises the held-out reward, and the same time of supervised training at GRPO's step size
        does not. Supervised training at the warm-up's peak step size (1e-3) is not asserted against: its
        outcome depends on the batch order, and it nearly ties GRPO on seed 2 of the full demo
        (benchmarks/RESULTS.md)."""
        # the control: about as many more supervised steps as take GRPO's time (a GRPO iteration, 128
        # completions sampled and 64 updated on, costs ~2 supervised steps of 64 demonstrations here), at
        # GRPO's peak step size
        state0, state, before, after, control = grpo_and_supervised_instead(DEMO, jax.random.key(0), 600)
        greedy_before, greedy_after = (
            float(state0.warmup_accuracy),
            trainer.heldout_accuracy(DEMO, state.params),
        )
        print(
            f"sampled reward: warm-up {before:.3f} -> GRPO {after:.3f}, more supervised steps instead "
            f"{control:.3f}; greedy accuracy {greedy_before:.3f} -> {greedy_after:.3f}"
        )
        # measured (key 0, pinned to one core): sampled 0.585 -> GRPO 0.707, supervised instead 0.589;
        # greedy 0.635 -> 0.735. Other warm-ups (as another XLA thread count gives: CI runs 2 threads),
        # keys 1 / 2: sampled 0.170 -> 0.241 / 0.695 -> 0.783, supervised instead 0.169 / 0.711 (greedy
        # 0.17 -> 0.28 / 0.715 -> 0.825). A different GRPO trajectory from the same warm-up moves the final
        # reward by ~0.01 (sd), so the tightest margin (key 1: 0.071 over the warm-up and the control)
        # clears the 0.04 bounds by ~3 sd and key 0 by ~8 sd.
        assert float(state0.init_accuracy) == 0.0
        assert 0.3 <= greedy_before <= 0.8, greedy_before  # clearly below the ceiling
        assert after >= before + 0.04 and after >= control + 0.04, (before, after, control)
        assert greedy_after >= greedy_before, (greedy_before, greedy_after)

    @pytest.mark.slow
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_full_demo_grpo_gain_is_not_more_supervised_training(self, seed):
        """The default config (1500-step warm-up, 2000 GRPO iterations; ~6 min per seed): GRPO raises
        the sampled held-out reward on every seed, supervised training at GRPO's (peak) step size for about
        the same time (4000 steps) does not. Continuing at the warm-up's peak step size (1e-3) is NOT
        clearly beaten on every seed (2026-11-25: a near tie on seed 2; benchmarks/RESULTS.md), so it is
        not asserted."""
        cfg = jaxrl.GRPOConfig(eval_every=10**6)
        _, _, before, after, control = grpo_and_supervised_instead(cfg, jax.random.key(seed), 4000)
        print(
            f"seed {seed}: sampled reward warm-up {before:.3f} -> GRPO {after:.3f}; supervised instead {control:.3f}"
        )
        # measured by benchmarks/grpo_demo.py (pinned; its control: calls of 10 steps for GRPO's time, 4130-5250
        # steps): seeds 0/1/2 0.639/0.236/0.651 -> 0.932/0.799/0.900, supervised instead 0.626/0.234/0.666.
        # As this test (one 4000-step call, pinned): 0.639/0.236/0.651 -> 0.932/0.799/0.900, supervised instead
        # 0.623/0.239/0.706 (335-398 s per seed).
        assert after >= before + 0.15 and after >= control + 0.15, (before, after, control)
