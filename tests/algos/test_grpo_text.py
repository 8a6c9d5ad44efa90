"""GRPO text tasks: the number / exact / regex / format graders on hand-written and hostile completions,
JSONL tasks (fields, system prompt, held-out split, clear errors), reward combinations, unparsed
counting, and tasks named by ``module:attr`` surviving ``config.json``."""

import json
import sys
import time

import numpy as np
import pytest

from jaxrl import tasks
from jaxrl.algos.grpo import config as grpo_config
from jaxrl.algos.grpo import rewards
from jaxrl.tasks import jsonl
from jaxrl.tasks import verifiers as V


class TestNumberGrader:
    @pytest.mark.parametrize(
        "text,want",
        [
            ("Natalia sold 48 + 24 = 72 clips.\n#### 72", 72.0),
            ("#### 1,234", 1234.0),
            ("#### $1,234,567.50.", 1234567.5),
            ("so the total is \\boxed{18} dollars; check: 3*6=18, not 20", 18.0),
            ("\\boxed{\\$42}", 42.0),
            ("\\boxed{\\frac{3}{4}}", 0.75),
            ("\\boxed{-7} and \\boxed{12}", 12.0),  # the last marked span
            ("<think>2+2 is 4, plus 10 is 14</think><answer>14 apples</answer>", 14.0),
            ("The answer is 50%.", 50.0),
            ("he walks 12km then 3km, 15 km in total", 15.0),
            ("-3", -3.0),
            ("0.5", 0.5),
            ("no number at all", None),
            ("", None),
            ("#### none", None),  # a marked span without a number, and no number elsewhere
        ],
    )
    def test_extract(self, text, want):
        assert V.extract_number(text) == want

    def test_grade_against_gsm8k_reference(self):
        ref = V.extract_number("She has 3 * 4 = 12 eggs.\n#### 1,200")
        assert ref == 1200.0
        assert V.grade_number("so 1200", ref) == 1.0
        assert V.grade_number("#### 1,200", ref) == 1.0
        assert V.grade_number("1199", ref) == 0.0
        assert V.grade_number("I do not know", ref) is None  # unparsed, not 0
        assert V.number_reward("I do not know", ref) == 0.0

    @pytest.mark.parametrize(
        "text",
        [
            "9" * 5000,  # float overflow -> inf, no int() digit limit error
            "1e99999",
            "\\boxed{" * 2000 + "1" + "}" * 2000,
            "<answer>" * 1000,
            "####" * 3000,
            "\\frac{1}{0}",
            "\x00\ud800\uffff",
            "1,2,3,,,4" * 500,
            "<think></think><answer></answer>",
            None,
            b"42",
        ],
    )
    def test_hostile_completions_never_raise(self, text):
        t = time.perf_counter()
        r = V.grade_number(text, 42)
        assert r in (0.0, 1.0, None)
        assert V.exact_match(text, "42") in (0.0, 1.0)
        assert V.regex_match(text, r"\d") in (0.0, 1.0)
        assert V.think_answer_format(text) in (0.0, 1.0)
        assert time.perf_counter() - t < 2.0  # no catastrophic regex backtracking


class TestMatchAndFormat:
    def test_exact(self):
        assert V.exact_match("  Paris ", "paris") == 1.0
        assert V.exact_match("New   York", "new york") == 1.0
        assert V.exact_match("<think>hmm</think><answer>Paris</answer>", "Paris") == 1.0
        assert V.exact_match("Paris, France", "Paris") == 0.0

    def test_regex(self):
        assert V.regex_match("x = 3.0", r"3(\.0+)?\b") == 1.0
        assert V.regex_match("<answer>no</answer> 3", r"3") == 0.0  # only the answer span is checked

    def test_think_answer(self):
        f = V.think_answer_format
        assert f("<think>a\nb</think><answer>4</answer>") == 1.0
        assert f("  <think>a</think>\n<answer>4</answer>\n") == 1.0
        assert f("<answer>4</answer>") == 0.0
        assert f("<think>a</think>4") == 0.0
        assert f("<think>a</think><answer>4</answer> extra") == 0.0
        assert f("<think>a</think><answer>4</answer><answer>5</answer>") == 0.0
        assert f("<think><think>a</think></think><answer>4</answer>") == 0.0


# ------------------------------------------------------------------------------------- JSONL
def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    return str(path)


def _word_rows(n=40):
    return [
        {"question": f"Tom has {i} apples and buys {i + 2}. How many?", "solution": f"#### {2 * i + 2}"}
        for i in range(n)
    ]


class TestJsonlTask:
    def test_fields_split_and_scoring(self, tmp_path):
        path = _write(tmp_path / "apples.jsonl", _word_rows())
        task = jsonl.jsonl_task(path, prompt_field="question", answer_field="solution")
        held = task.heldout_problems()
        assert task.name == "apples" and len(held) == 4  # 10% of 40
        train = task.sample_problems(np.random.default_rng(0), 100)
        assert not {p.prompt for p in train} & {p.prompt for p in held}
        p = held[0]
        want = int(p.prompt.split()[2]) * 2 + 2
        assert p.answer == want and p.solution == f"#### {want}"
        texts = [f"#### {want}", f"{want - 1}", "I give up", f"{want}"]
        r, unparsed = task.score_details([p] * 4, texts, [True, True, True, False])
        np.testing.assert_array_equal(r, [1.0, 0.0, 0.0, 0.0])
        np.testing.assert_array_equal(unparsed, [False, False, True, False])  # unfinished: not counted
        assert task.max_new_tokens == max(len(q.solution) for q in train + held) + 1
        # the character tokenizer covers the data and the format tags
        task.tokenizer.encode(p.prompt + "<think></think><answer>\\boxed{1}</answer>")

    def test_system_prompt_and_chat_template(self, tmp_path):
        path = _write(tmp_path / "t.jsonl", [{"prompt": f"q{i}", "answer": str(i)} for i in range(20)])
        task = jsonl.jsonl_task(path, system_prompt="Answer with a number.")
        assert all(p.prompt.startswith("Answer with a number.\nq") for p in task.heldout_problems())

        class ChatTok(tasks.CharTokenizer):
            chat_template = "x"

            def apply_chat_template(self, messages, tokenize, add_generation_prompt):
                assert not tokenize and add_generation_prompt
                return "".join(f"[{m['role']}]{m['content']}" for m in messages) + "[assistant]"

        import string

        tok = ChatTok(string.printable)
        task = jsonl.jsonl_task(path, system_prompt="S", tokenizer=tok)
        assert task.tokenizer is tok
        assert task.heldout_problems()[0].prompt.startswith("[system]S[user]q")

    def test_eval_file_exact_and_regex(self, tmp_path):
        train = _write(
            tmp_path / "a.jsonl",
            [
                {"prompt": f"capital of {c}?", "answer": a}
                for c, a in [("fr", "Paris"), ("it", "Rome"), ("de", "Berlin")]
            ],
        )
        held = _write(tmp_path / "b.jsonl", [{"prompt": "capital of es?", "answer": "Madrid"}])
        task = jsonl.jsonl_task(train, eval_file=held, verifier="exact")
        assert [p.prompt for p in task.heldout_problems()] == ["capital of es?"]
        assert list(task.score(task.heldout_problems() * 2, ["madrid", "Rome"], [True, True])) == [1.0, 0.0]
        rx = _write(tmp_path / "c.jsonl", [{"prompt": f"p{i}", "answer": r"^\d+$"} for i in range(12)])
        task = jsonl.jsonl_task(rx, verifier="regex", max_new_tokens=5)
        p = task.heldout_problems()[0]
        assert list(task.score([p, p], ["123", "12a"], [True, True])) == [1.0, 0.0]

    def test_clear_errors(self, tmp_path):
        with pytest.raises(ValueError, match="does not exist"):
            jsonl.jsonl_task(str(tmp_path / "missing.jsonl"))
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"prompt": "a", "answer": "1"}\nnot json\n')
        with pytest.raises(ValueError, match=r"bad.jsonl:2: not a JSON object"):
            jsonl.jsonl_task(str(bad))
        path = _write(tmp_path / "q.jsonl", _word_rows(5))
        with pytest.raises(ValueError, match="no field 'prompt'.*prompt_field"):
            jsonl.jsonl_task(path)
        nonum = _write(
            tmp_path / "n.jsonl", [{"prompt": "a", "answer": "yes"}, {"prompt": "b", "answer": "no"}]
        )
        with pytest.raises(ValueError, match="holds no number.*verifier='exact'"):
            jsonl.jsonl_task(nonum)
        with pytest.raises(ValueError, match="unknown JSONL verifier"):
            jsonl.jsonl_task(nonum, verifier="fuzzy")

    def test_config_reads_jsonl_and_validates(self, tmp_path):
        path = _write(tmp_path / "apples.jsonl", _word_rows())
        cfg = grpo_config.Config(
            task=f"jsonl:{path}", prompt_field="question", answer_field="solution", max_len=96
        )
        grpo_config.validate(cfg)
        task = grpo_config.make_task(cfg)
        assert task is grpo_config.make_task(cfg)  # read once
        with pytest.raises(ValueError, match="verifier must be one of"):
            grpo_config.validate(cfg.replace(verifier="fuzzy"))
        with pytest.raises(ValueError, match="max_len=32 is too short"):
            grpo_config.validate(cfg.replace(max_len=32))


class TestRewardSources:
    def test_weighted_format_and_task(self, tmp_path):
        path = _write(tmp_path / "t.jsonl", [{"prompt": f"q{i}", "answer": str(i)} for i in range(20)])
        task = jsonl.jsonl_task(path, max_new_tokens=40)
        p = task.heldout_problems()[0]
        texts = [
            f"<think>hm</think><answer>{p.answer}</answer>",
            f"{p.answer}",
            "<think></think><answer>x</answer>",
        ]
        batch = rewards.RewardBatch([p] * 3, texts, np.array([True] * 3), None, None, None)
        fn = rewards.make_reward("0.8*task + 0.2*think_answer", task)
        np.testing.assert_allclose(fn(batch), [1.0, 0.8, 0.2], rtol=1e-6)
        with pytest.raises(ValueError, match="think_answer"):
            rewards.make_reward("thinkanswer", task)


# ------------------------------------------------------------------------------ module:attr tasks
MODULE = """
import jaxrl

def _generate(rng):
    s = "".join(rng.choice(list("ab"), size=2))
    return jaxrl.Problem(prompt=s + ">", answer=s[::-1], solution=s[::-1])

flip = jaxrl.Task(name="flip", tokenizer=jaxrl.CharTokenizer("ab>"), generate=_generate,
                  reward=lambda p, t: float(t == p.answer), max_new_tokens=3, num_heldout=3)

def make_flip():
    return flip
"""


def test_module_attr_task_survives_config_json(tmp_path, monkeypatch):
    from jaxrl.runtime import configs

    (tmp_path / "my_grpo_tasks.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)  # found in the current directory, as the CLI would
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "my_grpo_tasks", raising=False)
    task = tasks.make_task("my_grpo_tasks:flip")
    assert task.name == "flip" and tasks.make_task("my_grpo_tasks:make_flip") is task
    d = configs.to_dict(grpo_config.Config(task=task))
    assert d["task"] in ("my_grpo_tasks:flip", "my_grpo_tasks:make_flip") and configs.is_rerunnable(d)
    assert tasks.make_task(configs.from_dict(grpo_config.Config, d).task) is task
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        tasks.make_task("my_grpo_tasks:nope")
    with pytest.raises(ValueError, match="cannot import|no module"):
        tasks.make_task("no_such_module_xyz:flip")
