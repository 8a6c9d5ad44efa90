"""GRPO tokenizer, task API, built-in tasks and reward sources (no training)."""

import random

import numpy as np
import pytest

import jaxrl
from jaxrl import tasks
from jaxrl.algos.grpo import rewards
from jaxrl.tasks.tokenizer import CharTokenizer


class TestTokenizer:
    def test_ids_roundtrip_and_specials(self):
        tok = CharTokenizer("0123456789+=")
        assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.vocab_size) == (0, 1, 2, 15)
        ids = tok.encode("12+3=", bos=True, eos=True)
        # <bos>=1, '1'=3+1=4, '2'=5, '+'=13, '3'=6, '='=14, <eos>=2
        assert ids == [1, 4, 5, 13, 6, 14, 2]
        assert tok.decode(ids[1:]) == "12+3="  # stops at <eos>
        assert tok.decode([4, 2, 5]) == "1"
        assert tok.decode([4, 0, 5]) == "1<pad>2"  # specials are spelled out, never dropped

    def test_unknown_character_is_a_clear_error(self):
        with pytest.raises(ValueError, match="'x' in '1x' is not in the tokenizer's alphabet"):
            CharTokenizer("0123456789").encode("1x")

    def test_batch_is_right_padded(self):
        tok = CharTokenizer("ab")
        ids, n = tok.encode_batch(["a", "abab"])
        np.testing.assert_array_equal(n, [2, 5])
        np.testing.assert_array_equal(ids, [[1, 3, 0, 0, 0], [1, 3, 4, 3, 4]])
        with pytest.raises(ValueError, match="more than width"):
            tok.encode_batch(["abab"], width=3)


class TestBuiltinTasks:
    def test_addition_is_the_trl_peer_task(self):
        task = tasks.make_task("addition")
        pairs = [(a, b) for a in range(100) for b in range(100)]
        random.Random(1234).shuffle(pairs)  # the peer's split_pairs(200, seed=1234)
        held = task.heldout_problems()
        assert [p.prompt for p in held] == [f"{a}+{b}=" for a, b in pairs[:200]]
        train = task.sample_problems(np.random.default_rng(0), 3000)
        assert not {p.prompt for p in train} & {p.prompt for p in held}
        p = held[0]
        assert task.score(
            [p] * 4, [str(p.answer), "0", str(p.answer), ""], [True, True, False, True]
        ).tolist() == [
            1.0,
            0.0,
            0.0,  # no <eos>: unfinished_reward
            0.0,
        ]

    @pytest.mark.parametrize("name", sorted(tasks.TASKS))
    def test_solutions_score_one_and_fit(self, name, request):
        if name == "pyfunc":
            request.getfixturevalue("isolation")  # runs code: needs the OS sandbox
        task = tasks.make_task(name)
        probs = task.sample_problems(np.random.default_rng(1), 6)
        assert np.all(task.score(probs, [p.solution for p in probs], [True] * 6) == 1.0)
        for p in probs:
            assert len(task.tokenizer.encode(p.solution, eos=True)) <= task.max_new_tokens
        assert len({p.prompt for p in task.heldout_problems()}) == len(task.heldout_problems())

    def test_pyfunc_wrong_code_scores_partially(self, isolation):
        task = tasks.make_task("pyfunc")
        p = tasks.Problem(
            "f(1)=2;f(2)=4;", answer=(("f(0)", 0), ("f(2)", 4), ("f(3)", 6)), solution="f=lambda x:x*2"
        )
        # x+2 agrees at x = 2 only (1 of 3); a syntax error scores 0
        assert task.score([p, p], ["f=lambda x:x+2", "f=lambda x:"], [True, True]).tolist() == pytest.approx(
            [1 / 3, 0.0]
        )

    def test_unknown_task(self):
        with pytest.raises(ValueError, match="unknown GRPO task 'sum'"):
            tasks.make_task("sum")


def _copy_task():
    def generate(rng):
        s = "".join(rng.choice(list("ab"), size=3))
        return jaxrl.Problem(prompt=s + ">", answer=s, solution=s)

    return jaxrl.Task(
        name="copy",
        tokenizer=jaxrl.CharTokenizer("ab>"),
        generate=generate,
        reward=lambda p, text: float(text == p.answer),
        max_new_tokens=4,
        num_heldout=4,
    )


class TestUserTaskAndRewards:
    def test_user_task_heldout_is_fixed_and_excluded(self):
        task = _copy_task()
        held = task.heldout_problems()
        assert len(held) == 4 and held == task.heldout_problems()
        assert not {p.prompt for p in task.sample_problems(np.random.default_rng(0), 200)} & {
            p.prompt for p in held
        }
        tasks.register_task("copy_test", _copy_task)
        assert tasks.make_task("copy_test").name == "copy"

    def _batch(self, task, texts, finished):
        probs = [task.heldout_problems()[0]] * len(texts)
        z = np.zeros((len(texts), 2))
        return rewards.RewardBatch(probs, texts, np.asarray(finished), z, z[:, 0], z)

    def test_sources(self):
        task = _copy_task()
        right = task.heldout_problems()[0].answer
        b = self._batch(task, [right, "b", "ab"], [True, True, False])
        np.testing.assert_array_equal(rewards.make_reward("task", task)(b), [1.0, 0.0, 0.0])
        np.testing.assert_array_equal(rewards.make_reward("format:[ab]{2,3}", task)(b), [1.0, 0.0, 0.0])
        mixed = rewards.make_reward("0.5*task + 0.25*format:[ab]+", task)(b)
        np.testing.assert_allclose(mixed, [0.75, 0.25, 0.0])
        np.testing.assert_array_equal(rewards.make_reward(lambda bb: np.arange(3.0), task)(b), [0, 1, 2])

    def test_registered_source_and_errors(self):
        task = _copy_task()
        calls = []

        def factory(arg, t):
            calls.append(arg)
            return lambda b: np.full(len(b.texts), float(arg))

        jaxrl.register_reward_source("const_test", factory)
        b = self._batch(task, ["a", "b"], [True, True])
        np.testing.assert_array_equal(rewards.make_reward("const_test:0.5", task)(b), [0.5, 0.5])
        rewards.make_reward("const_test:0.5", task)
        assert calls == ["0.5"]  # built once per (source, task)
        with pytest.raises(ValueError, match="unknown GRPO reward source 'nope:1'"):
            rewards.make_reward("nope:1", task)
        with pytest.raises(ValueError, match="unknown GRPO reward source 'verifier'"):
            rewards.make_reward("verifier", task)
