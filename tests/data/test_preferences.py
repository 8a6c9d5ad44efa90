"""Preference JSONL loading: valid files load, each kind of bad line is reported with its line number."""

import json

import numpy as np
import pytest

from jaxrl.data import preferences as prefs
from jaxrl.data.preferences import PreferenceDataError, PreferencePair
from jaxrl.tasks.tokenizer import CharTokenizer

# ids: <pad> 0, <bos> 1, <eos> 2, '0'..'9' 3..12, '+' 13, '=' 14
TOK = CharTokenizer("0123456789+=")


def _write(tmp_path, lines, name="p.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = [
    json.dumps({"prompt": "1+2=", "chosen": "3", "rejected": "4"}),
    "",  # blank lines are skipped but still counted
    json.dumps({"prompt": "10+5=", "chosen": "15", "rejected": "51", "id": 7}),  # extra fields ignored
]


def test_load_valid_file(tmp_path):
    pairs = prefs.load_jsonl(_write(tmp_path, GOOD), tokenizer=TOK, max_len=10)
    assert pairs == [PreferencePair("1+2=", "3", "4"), PreferencePair("10+5=", "15", "51")]


def test_write_then_load_round_trip(tmp_path):
    pairs = [PreferencePair("1+1=", "2", "3"), PreferencePair("9+9=", "18", "81")]
    prefs.write_jsonl(pairs, tmp_path / "rt.jsonl")
    assert prefs.load_jsonl(tmp_path / "rt.jsonl") == pairs


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"prompt": "1+2=", "chosen": "3"}', r"line 4: missing field\(s\) \['rejected'\]"),
        ('{"prompt": "1+2=", "chosen": "", "rejected": "4"}', r"line 4: field 'chosen' is empty"),
        ('{"prompt": "  ", "chosen": "3", "rejected": "4"}', r"line 4: field 'prompt' is empty"),
        ('{"prompt": "1+2=", "chosen": 3, "rejected": "4"}', r"line 4: field 'chosen' must be a string"),
        (
            '{"prompt": "1+2=", "chosen": "3", "rejected": "3"}',
            r"line 4: 'chosen' and 'rejected' are the same",
        ),
        ('{"prompt": "1+2=", "chosen": "3", ', r"line 4: not valid JSON"),
        ('["1+2=", "3", "4"]', r"line 4: expected a JSON object"),
        # <bos> + 6 + 5 + <eos> = 13 tokens > max_len 10
        (
            '{"prompt": "123+4=", "chosen": "3", "rejected": "99999"}',
            r"line 4: <bos> prompt rejected <eos> is 13 tokens",
        ),
        ('{"prompt": "1+2=", "chosen": "three", "rejected": "4"}', r"line 4: cannot tokenize"),
    ],
)
def test_bad_line_is_named(tmp_path, bad, message):
    path = _write(tmp_path, GOOD + [bad])  # the bad record is on line 4
    with pytest.raises(PreferenceDataError, match=message) as err:
        prefs.load_jsonl(path, tokenizer=TOK, max_len=10)
    assert str(path) in str(err.value)


def test_over_long_only_checked_with_max_len(tmp_path):
    path = _write(tmp_path, [json.dumps({"prompt": "123+4=", "chosen": "127", "rejected": "99999"})])
    assert len(prefs.load_jsonl(path, tokenizer=TOK)) == 1
    assert len(prefs.load_jsonl(path, tokenizer=TOK, max_len=13)) == 1  # exactly fits
    with pytest.raises(
        PreferenceDataError,
        match="line 1: <bos> prompt rejected <eos> is 13 tokens, longer than the model's max length 12",
    ):
        prefs.load_jsonl(path, tokenizer=TOK, max_len=12)


def test_missing_and_empty_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prefs.load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(PreferenceDataError, match="no preference pairs"):
        prefs.load_jsonl(_write(tmp_path, ["", "  "]))


def test_tokenize_pairs_pads_and_counts():
    pairs = [PreferencePair("1+2=", "3", "40"), PreferencePair("10+5=", "15", "6")]
    tok = prefs.tokenize_pairs(pairs, TOK, width=10)
    assert tok.chosen.shape == (2, 10) and tok.chosen.dtype == np.int32
    # <bos> 1 + 2 = 3 <eos> -> 1, 4, 13, 5, 14, 6, 2, then <pad> 0
    np.testing.assert_array_equal(tok.chosen[0], [1, 4, 13, 5, 14, 6, 2, 0, 0, 0])
    np.testing.assert_array_equal(tok.chosen_len, [7, 9])
    np.testing.assert_array_equal(tok.rejected_len, [8, 8])
    np.testing.assert_array_equal(tok.prompt_len, [5, 6])  # <bos> + "1+2=" ; <bos> + "10+5="
    assert prefs.tokenize_pairs(pairs, TOK).chosen.shape == (2, 9)  # default width: the longest
    with pytest.raises(PreferenceDataError, match="longer than width 8"):
        prefs.tokenize_pairs(pairs, TOK, width=8)


class TestSynthetic:
    def test_numeric_rule(self):
        # correct > closer > farther > malformed (leading zero, not a number)
        assert prefs.numeric_score(46, "46") == 0
        assert prefs.numeric_score(46, "44") == -2 > prefs.numeric_score(46, "50") == -4
        assert prefs.numeric_score(46, "046") == prefs.MALFORMED
        assert prefs.numeric_score(46, "4+") == prefs.MALFORMED
        assert prefs.numeric_score(46, "0") == -46

    @pytest.mark.parametrize("task", ["addition", "multiplication"])
    def test_arithmetic_pairs_follow_the_rule(self, task):
        from jaxrl import tasks

        t = tasks.make_task(task)
        pairs = prefs.synthetic_pairs(task, 300, seed=3)
        assert len(pairs) == 300
        answers = {p.prompt: p.answer for p in t.heldout_problems()}
        held = set(answers)
        for p in pairs:
            truth = _truth(p, task)
            assert prefs.numeric_score(truth, p.chosen) > prefs.numeric_score(truth, p.rejected)
            assert p.prompt not in held  # training pairs never use the task's held-out prompts
            # every pair fits the model's context and the tokenizer's alphabet
            assert len(prefs.sequence_ids(t.tokenizer, p.prompt, p.rejected)) <= 12
        # a mix: the correct answer is chosen in some pairs, two wrong answers compared in others
        n_correct = sum(p.chosen == str(_truth(p, task)) for p in pairs)
        assert 0.2 * len(pairs) < n_correct < 0.6 * len(pairs)

    def test_heldout_pairs_use_heldout_prompts_and_are_deterministic(self):
        from jaxrl import tasks

        held = {p.prompt for p in tasks.make_task("addition").heldout_problems()}
        pairs = prefs.synthetic_pairs("addition", 100, seed=5, heldout=True)
        assert {p.prompt for p in pairs} <= held
        assert pairs == prefs.synthetic_pairs("addition", 100, seed=5, heldout=True)
        assert pairs != prefs.synthetic_pairs("addition", 100, seed=6, heldout=True)

    def test_user_task_uses_its_own_reward(self):
        from jaxrl.tasks.task import Problem, Task

        def generate(rng):
            s = "".join(rng.choice(list("abc"), size=3))
            return Problem(prompt=s + ">", answer=s[::-1], solution=s[::-1])

        def reward(problem, text):  # fraction of positions right
            return sum(x == y for x, y in zip(text, problem.answer, strict=False)) / 3

        task = Task("rev", CharTokenizer("abc>"), generate, reward, max_new_tokens=4, num_heldout=3)
        pairs = prefs.synthetic_pairs(task, 50, seed=0)
        for p in pairs:
            prob = Problem(p.prompt, p.prompt[:-1][::-1])
            assert reward(prob, p.chosen) > reward(prob, p.rejected)


def _truth(p, task):
    a, _, b = p.prompt[:-1].partition("+" if task == "addition" else "*")
    return int(a) + int(b) if task == "addition" else int(a) * int(b)


class TestLabelSamples:
    def test_pairs_from_a_policys_answers_follow_the_rule(self):
        from jaxrl import tasks

        task = tasks.make_task("addition")
        p1 = tasks.Problem(prompt="12+34=", answer=46, solution="46")
        p2 = tasks.Problem(prompt="5+5=", answer=10, solution="10")
        texts = [
            "46", "46", "47", "56", "4<", "",   # p1: correct, near miss, tens slip, un-encodable, empty
            "10", "10", "10", "10", "10", "10",  # p2: all the same answer: nothing to compare
        ]  # fmt: skip
        pairs = prefs.label_samples(task, [p1, p2], texts, 6, pairs_per_prompt=10)
        # p1's distinct encodable answers: 46 (0), 47 (-1), 56 (-10): 46>47, 46>56, 47>56 (47 is 10x closer)
        assert sorted(pairs) == sorted(
            [PreferencePair("12+34=", "46", "47"), PreferencePair("12+34=", "46", "56"),
             PreferencePair("12+34=", "47", "56")]
        )  # fmt: skip
        assert len(prefs.label_samples(task, [p1, p2], texts, 6, pairs_per_prompt=2)) == 2
        assert prefs.label_samples(
            task, [p1, p2], texts, 6, pairs_per_prompt=2, seed=3
        ) == prefs.label_samples(task, [p1, p2], texts, 6, pairs_per_prompt=2, seed=3)

    def test_near_ties_skipped_and_shape_checked(self):
        from jaxrl import tasks

        task = tasks.make_task("addition")
        p = tasks.Problem(prompt="12+34=", answer=46, solution="46")
        assert prefs.label_samples(task, [p], ["44", "49"], 2) == []  # -2 vs -3: a near-tie
        with pytest.raises(ValueError, match="3 answers for 1 problems x group_size 2"):
            prefs.label_samples(task, [p], ["44", "49", "46"], 2)
