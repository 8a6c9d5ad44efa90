"""Reward model: scoring shape/dtype, padding and jit/vmap agreement, data errors, training, GRPO source."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrl
from jaxrl import tasks
from jaxrl.algos import reward_model as rm
from jaxrl.algos.grpo import rewards as grpo_rewards
from jaxrl.algos.reward_model import scoring
from jaxrl.data import preferences as prefs

TOK = tasks.make_task("addition").tokenizer  # <pad> 0, <bos> 1, <eos> 2, '0'..'9' 3..12, '+' 13, '=' 14
SMALL = rm.Config(
    model="nano", num_pairs=256, num_eval_pairs=64, minibatch_size=64, num_epochs=2, max_len=16, readout="head"
)


def _rows(texts, width=12):
    pairs = [prefs.PreferencePair(p, a, a) for p, a in texts]
    t = prefs.tokenize_pairs(pairs, TOK, width)
    return jnp.asarray(t.chosen), jnp.asarray(t.chosen_len), jnp.asarray(t.prompt_len)


# jitted once per module: eager (op-by-op) transformer code is slow to dispatch on CPU
_apply = {r: jax.jit(rm.make_network(SMALL.replace(readout=r)).apply) for r in rm.READOUTS}
_train = jax.jit(jaxrl.train, static_argnums=0)
_init = jax.jit(rm.init, static_argnums=0)


@pytest.fixture(scope="module")
def params():
    return _init(SMALL, jax.random.key(0)).params


@pytest.fixture(scope="module")
def trained():
    """Two epochs of the small config (one compiled program, shared by the training tests)."""
    return _train(SMALL, jax.random.key(3))


@pytest.mark.parametrize("readout", rm.READOUTS)
class TestScoring:
    texts = [("1+2=", "3"), ("12+34=", "46"), ("99+99=", "198"), ("5+5=", "1+")]

    def test_shape_dtype_jit_and_vmap_agree(self, params, readout):
        net = rm.make_network(SMALL.replace(readout=readout))
        rows = _rows(self.texts)
        jitted = _apply[readout](params, *rows)
        assert jitted.shape == (4,) and jitted.dtype == jnp.float32
        assert np.all(np.isfinite(jitted))
        with jax.disable_jit():  # the same numbers without compilation
            eager = net.apply(params, *(x[1:2] for x in rows))
        np.testing.assert_allclose(eager, jitted[1:2], rtol=1e-5, atol=1e-6)
        one = lambda t, n, p: net.apply(params, t[None], n[None], p[None])[0]  # noqa: E731
        np.testing.assert_allclose(jax.jit(jax.vmap(one))(*rows), jitted, rtol=1e-5, atol=1e-6)

    def test_reads_the_answer_and_ignores_padding(self, params, readout):
        apply = _apply[readout]
        tokens, lengths, plen = _rows(self.texts, width=12)
        base_r = apply(params, tokens, lengths, plen)
        np.testing.assert_allclose(apply(params, *_rows(self.texts, width=16)), base_r, rtol=1e-5)
        # junk after the end of a row changes nothing (causal trunk, read up to lengths-1) ...
        junk = tokens.at[0, 8:].set(7)
        np.testing.assert_allclose(apply(params, junk, lengths, plen), base_r, rtol=1e-6)
        # ... while the answer itself does: "1+2=3" vs "1+2=4"
        other = tokens.at[0, 5].set(TOK.encode("4")[0])
        assert abs(float(apply(params, other, lengths, plen)[0] - base_r[0])) > 1e-6

    def test_text_scorer(self, trained, readout):
        state, _ = trained
        score = jaxrl.make_policy(SMALL.replace(readout=readout), state)
        batch = score(["1+2=", "12+34="], ["3", "46"])
        assert batch.shape == (2,) and batch.dtype == np.float32
        np.testing.assert_allclose(score("12+34=", "46"), batch[1], rtol=1e-5)


def test_loglik_readout_is_the_answer_log_probability(params):
    """Reference: the trunk's next-token log-probabilities of "46" and <eos> after "<bos>12+34=", summed."""
    from jaxrl.networks import transformer

    tokens, lengths, plen = _rows([("12+34=", "46")])
    r = _apply["loglik"](params, tokens, lengths, plen)
    trunk = transformer.Transformer(SMALL.transformer_config(TOK.vocab_size))
    logits = trunk.apply({"params": params["params"]["trunk"]}, tokens)
    logp = np.asarray(jax.nn.log_softmax(logits[0], axis=-1))
    ids = np.asarray(tokens[0])  # <bos> 1 2 + 3 4 = 4 6 <eos>: the answer is positions 7, 8, 9
    want = sum(logp[t - 1, ids[t]] for t in (7, 8, 9))
    np.testing.assert_allclose(r[0], want, rtol=1e-5)


class TestLoss:
    def test_answer_nll_hand_computed(self):
        # one row <bos> 1 + 2 = 3 <eos> <pad>: prompt_len 5, length 7 -> the loss covers the predictions
        # of positions 5 ("3") and 6 (<eos>) only. Uniform logits over V=15: -log(1/15) = 2.70805 each.
        tokens = jnp.array([[1, 4, 13, 5, 14, 6, 2, 0]])
        logits = jnp.zeros((1, 8, 15))
        np.testing.assert_allclose(
            rm.answer_nll(logits, tokens, jnp.array([5]), jnp.array([7])), np.log(15), rtol=1e-6
        )
        # make position 4 predict "3" (id 6) with logit 10: its loss is log(14 + e^10) - 10 = 6.354e-4;
        # mean with the uniform <eos> prediction: (6.354e-4 + 2.708050) / 2 = 1.354343
        logits = logits.at[0, 4, 6].set(10.0)
        np.testing.assert_allclose(
            rm.answer_nll(logits, tokens, jnp.array([5]), jnp.array([7])), 1.354343, rtol=1e-5
        )
        # a prediction inside the prompt or the padding does not count
        np.testing.assert_allclose(
            rm.answer_nll(
                logits.at[0, 1, 6].set(50.0).at[0, 7, 3].set(50.0), tokens, jnp.array([5]), jnp.array([7])
            ),
            1.354343,
            rtol=1e-5,
        )

    def test_bt_gradient_ranks_chosen_up(self, params):
        pairs = prefs.tokenize_pairs([prefs.PreferencePair("12+34=", "46", "47")], TOK)
        pairs = jax.tree_util.tree_map(jnp.asarray, pairs)
        net = rm.make_network(SMALL)
        grads = jax.jit(jax.grad(lambda p: rm.loss(p, net, pairs, 0.0, 0.0)[0]))(params)
        # one small gradient step raises r(chosen) - r(rejected)
        stepped = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)
        gap = jax.jit(lambda p: jnp.subtract(*rm.pair_rewards(p, net, pairs))[0])
        assert float(gap(stepped)) > float(gap(params))


class TestData:
    def test_bad_jsonl_fails_before_training(self, tmp_path):
        path = tmp_path / "prefs.jsonl"
        lines = [{"prompt": "1+2=", "chosen": "3", "rejected": "4"}] * 3 + [{"prompt": "1+2=", "chosen": "3"}]
        path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        with pytest.raises(prefs.PreferenceDataError, match="line 4: missing field"):
            jaxrl.train(SMALL.replace(data=str(path)), jax.random.key(0))

    def test_jsonl_data_and_split(self, tmp_path):
        path = tmp_path / "prefs.jsonl"
        prefs.write_jsonl(prefs.synthetic_pairs("addition", 100, seed=0), path)
        cfg = SMALL.replace(data=str(path), eval_fraction=0.2, minibatch_size=16)
        data = rm.dataset(cfg)
        # 100 pairs: 20 held out, 80 for training (a multiple of minibatch_size 16)
        assert data.eval.num_pairs == 20 and data.train.num_pairs == 80
        with pytest.raises(ValueError, match="fewer than minibatch_size=128"):
            rm.validate(cfg.replace(minibatch_size=128))

    def test_over_long_for_the_model(self, tmp_path):
        path = tmp_path / "long.jsonl"
        path.write_text(json.dumps({"prompt": "1+2=", "chosen": "3", "rejected": "1" * 20}) + "\n")
        with pytest.raises(
            prefs.PreferenceDataError, match="line 1: .* longer than the model's max length 16"
        ):
            rm.validate(SMALL.replace(data=str(path)))

    def test_config_checks(self):
        with pytest.raises(ValueError, match="readout must be one of"):
            rm.validate(SMALL.replace(readout="mean"))
        with pytest.raises(ValueError, match="model must be one of"):
            rm.validate(SMALL.replace(model="huge"))
        with pytest.raises(ValueError, match="learning_rate must be a positive"):
            rm.validate(SMALL.replace(learning_rate=0.0))


class TestTraining:
    def test_metrics_shapes_finite(self, trained):
        state, m = trained
        assert int(state.iteration) == 2
        assert all(np.shape(v) == (2,) and np.all(np.isfinite(v)) for v in m)
        # 256 training pairs per epoch; the headline number is the held-out accuracy
        np.testing.assert_array_equal(m.env_steps, [256, 512])
        np.testing.assert_array_equal(m.episode_return, m.eval_accuracy)
        assert 0.2 < float(m.train_loss[0]) < 1.0  # starts near log 2 = 0.69 (untrained: r_c ~ r_r)

    def test_deterministic_and_key_dependent(self, trained):
        state, m = trained
        state2, m2 = _train(SMALL, jax.random.key(3))
        same = jax.tree_util.tree_map(np.array_equal, state.params, state2.params)
        assert all(jax.tree_util.tree_leaves(same))
        _, m3 = _train(SMALL, jax.random.key(4))
        assert not np.array_equal(m.train_loss, m3.train_loss)


class TestRewardSource:
    def _batch(self):
        # two completions of "1+2=" (bos 1 + 4 prompt tokens): "3"<eos> (finished), "33" cut off (unfinished)
        prompt = [1, 4, 13, 5, 14]
        three, eos, pad = TOK.encode("3")[0], TOK.eos_id, TOK.pad_id
        tokens = np.array([prompt + [three, eos, pad], prompt + [three, three, three]], np.int32)
        mask = np.array([[0] * 5 + [1, 1, 0], [0] * 5 + [1, 1, 1]], np.float32)
        p = tasks.Problem("1+2=", 3, "3")
        return grpo_rewards.RewardBatch(
            [p, p], ["3", "333"], np.array([True, False]), tokens, np.array([5, 5]), mask
        )

    def test_completion_rows(self):
        rows, lengths, plen = rm.completion_rows(self._batch(), TOK.eos_id, TOK.pad_id)
        three = TOK.encode("3")[0]
        # finished row kept as is; unfinished row gets <eos> after its text (width grows by one)
        np.testing.assert_array_equal(rows[0], [1, 4, 13, 5, 14, three, 2, 0, 0])
        np.testing.assert_array_equal(rows[1], [1, 4, 13, 5, 14, three, three, three, 2])
        np.testing.assert_array_equal(lengths, [7, 9])
        np.testing.assert_array_equal(plen, [5, 5])

    def test_scores_match_text_scorer_and_normalize(self):
        state = _init(SMALL, jax.random.key(2))
        batch = self._batch()
        r = rm.reward_source(SMALL, state.params)(batch)
        assert r.shape == (2,) and r.dtype == np.float32
        np.testing.assert_allclose(
            r, jaxrl.make_policy(SMALL, state)(["1+2=", "1+2="], ["3", "333"]), rtol=1e-5
        )
        z = rm.reward_source(SMALL, state.params, normalize=True)(batch)
        np.testing.assert_allclose([z.mean(), z.std()], [0.0, 1.0], atol=1e-3)

    def test_tokenizer_mismatch_is_an_error(self):
        state = _init(SMALL, jax.random.key(2))
        with pytest.raises(ValueError, match="train the reward model on the same task"):
            rm.reward_source(SMALL, state.params, task=tasks.make_task("multiplication"))

    def test_rm_spec_options_checked(self):
        with pytest.raises(ValueError, match="only option is '\\?normalize'"):
            scoring._rm_source("/nonexistent?zscore", tasks.make_task("addition"))


class TestEndToEnd:
    def test_reward_model_run_then_grpo_with_it(self, tmp_path):
        """The CLI path in Python: train a reward model with the runtime, then GRPO with
        ``reward="rm:<run_dir>"``; GRPO logs both the reward-model score and the verifier's score."""
        import json

        rm_dir = str(tmp_path / "rm")
        cfg = SMALL.replace(num_epochs=1)
        jaxrl.run(cfg, 0, out_dir=rm_dir, progress=False, checkpoint_every=0)
        loaded_cfg, state = rm.load(rm_dir)
        assert loaded_cfg == cfg

        grpo_cfg = jaxrl.GRPOConfig(
            model="nano", warmup_steps=10, warmup_demos=32, warmup_batch=16, num_iterations=2,
            prompts_per_iteration=2, group_size=4, eval_every=2, reward=f"rm:{rm_dir}?normalize",
        )  # fmt: skip
        g_dir = str(tmp_path / "grpo")
        jaxrl.run(grpo_cfg, 0, out_dir=g_dir, progress=False, checkpoint_every=0)
        rows = [json.loads(line) for line in open(f"{g_dir}/metrics.jsonl")]
        assert len(rows) == 2
        for r in rows:
            # normalised reward-model scores average 0 over the batch; the true score is a fraction
            assert abs(r["reward"]) < 1e-4
            assert 0.0 <= r["true_reward"] <= 1.0
        with pytest.raises(FileNotFoundError, match="not a finished jaxrl run"):
            rm.load(str(tmp_path))
        with pytest.raises(ValueError, match="holds a grpo run, not a reward model"):
            rm.load(g_dir)


@pytest.mark.slow
def test_default_reward_model_reaches_90_percent():
    """The issue's check: the default RewardModelConfig (tiny transformer, loglik readout, 20,000 synthetic
    addition pairs, 4 epochs), trained from random weights, ranks >= 90% of the held-out pairs right
    (measured 0.936 in 84 s on one quiet core; benchmarks/RESULTS.md). Chance is 0.5."""
    _, m = _train(rm.Config(), jax.random.key(0))
    acc = np.asarray(m.eval_accuracy)
    print("held-out pair accuracy per epoch:", acc)
    assert acc[-1] >= 0.90
    assert acc[-1] > acc[0]


def test_init_from_a_grpo_policy(tmp_path):
    """``init_from``: the reward model's transformer starts from a GRPO run's reference (warm-up) policy,
    and a policy of another size or a run of another algorithm is a clear error before training."""
    g_dir = str(tmp_path / "sft")
    grpo_cfg = jaxrl.GRPOConfig(
        model="nano", max_len=16, warmup_steps=5, warmup_demos=32, warmup_batch=16, num_iterations=1,
        prompts_per_iteration=2, group_size=4, eval_every=1,
    )  # fmt: skip
    jaxrl.run(grpo_cfg, 0, out_dir=g_dir, progress=False, checkpoint_every=0)
    from jaxrl.runtime import driver

    _, g_state = driver.load_state(g_dir)
    cfg = SMALL.replace(readout="loglik", init_from=g_dir)
    state = _init(cfg, jax.random.key(0))
    chex_equal = jax.tree_util.tree_map(
        lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b))),
        state.params["params"]["trunk"],
        g_state.ref_params["params"],
    )
    assert all(jax.tree_util.tree_leaves(chex_equal))
    # the reward of an answer is then the warm-up policy's log-probability of it
    row = _rows([("12+34=", "46")])
    logp = rm.make_network(cfg).apply(state.params, *row)
    assert np.isfinite(np.asarray(logp)).all()
    with pytest.raises(ValueError, match="does not fit this reward model"):
        rm.validate(SMALL.replace(model="tiny", init_from=g_dir))
    with pytest.raises(FileNotFoundError, match="not a finished jaxrl run"):
        rm.validate(SMALL.replace(init_from=str(tmp_path)))
