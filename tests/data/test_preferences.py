"""Preference JSONL loading: valid files load, each kind of bad line is reported with its line number."""

import json

import numpy as np
import pytest

from jaxrl.data import preferences as prefs
from jaxrl.data.preferences import PreferenceDataError, PreferencePair


def _encode(s: str) -> list[int]:
    """A toy character tokenizer over digits, '+', '=' (raises on anything else)."""
    vocab = "0123456789+="
    return [vocab.index(c) + 1 for c in s]  # 0 is the pad id


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
    pairs = prefs.load_jsonl(_write(tmp_path, GOOD), encode=_encode, max_len=8)
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
        # 5 + 5 = 10 tokens > max_len 8
        (
            '{"prompt": "123+4=", "chosen": "3", "rejected": "99999"}',
            r"line 4: prompt \+ rejected is 11 tokens",
        ),
        ('{"prompt": "1+2=", "chosen": "three", "rejected": "4"}', r"line 4: cannot tokenize"),
    ],
)
def test_bad_line_is_named(tmp_path, bad, message):
    path = _write(tmp_path, GOOD + [bad])  # the bad record is on line 4
    with pytest.raises(PreferenceDataError, match=message) as err:
        prefs.load_jsonl(path, encode=_encode, max_len=8)
    assert str(path) in str(err.value)


def test_over_long_only_checked_with_max_len(tmp_path):
    path = _write(tmp_path, [json.dumps({"prompt": "123+4=", "chosen": "127", "rejected": "99999"})])
    assert len(prefs.load_jsonl(path, encode=_encode)) == 1
    with pytest.raises(
        PreferenceDataError,
        match="line 1: prompt . rejected is 11 tokens, longer than the model's max length 10",
    ):
        prefs.load_jsonl(path, encode=_encode, max_len=10)


def test_missing_and_empty_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prefs.load_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(PreferenceDataError, match="no preference pairs"):
        prefs.load_jsonl(_write(tmp_path, ["", "  "]))


def test_tokenize_pairs_pads_and_counts():
    pairs = [PreferencePair("1+2=", "3", "40"), PreferencePair("10+5=", "15", "6")]
    tok = prefs.tokenize_pairs(pairs, _encode, max_len=8, pad_id=0)
    assert tok.chosen.shape == (2, 8) and tok.chosen.dtype == np.int32
    # "1+2=3" -> ids 2,11,3,12,4 ; length 5, then padding
    np.testing.assert_array_equal(tok.chosen[0], [2, 11, 3, 12, 4, 0, 0, 0])
    np.testing.assert_array_equal(tok.chosen_len, [5, 7])
    np.testing.assert_array_equal(tok.rejected_len, [6, 6])
    with pytest.raises(PreferenceDataError, match="longer than max length 6"):
        prefs.tokenize_pairs(pairs, _encode, max_len=6, pad_id=0)
