"""Scores: pass@k against hand-computed values, edit distance against the textbook DP."""

from __future__ import annotations

import math
import random

import pytest

from tailor.stages.evaluate.scores import (
    LossResult,
    bootstrap_ci,
    code_tokens,
    edit_similarity,
    exact_match,
    levenshtein,
    pass_at_k,
    token_match,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
        (10, 3, 1, 0.3),  # pass@1 is c/n
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 1, 10, 1.0),  # one correct among 10, all 10 drawn
        (20, 5, 10, 1 - 3003 / 184756),  # 1 - C(15,10)/C(20,10)
        (4, 0, 2, 0.0),
        (6, 5, 2, 1.0),  # n - c < k: every draw of 2 holds a correct one
    ],
)
def test_pass_at_k_matches_hand_computed_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_stable_for_large_n() -> None:
    # C(200, 100) overflows a float; the product form does not.
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)
    assert 0.0 < pass_at_k(1000, 3, 10) < 1.0


def test_pass_at_k_rejects_k_above_n() -> None:
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(5, 1, 10)


def _dp_levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_levenshtein_agrees_with_the_textbook_dynamic_programme() -> None:
    rng = random.Random(7)
    for _ in range(300):
        a = "".join(rng.choice("ab c\n_x") for _ in range(rng.randint(0, 40)))
        b = "".join(rng.choice("ab c\n_x") for _ in range(rng.randint(0, 40)))
        assert levenshtein(a, b) == _dp_levenshtein(a, b), (a, b)


def test_levenshtein_handles_long_strings_beyond_one_machine_word() -> None:
    a = "def handler(ctx):\n    return ctx.value\n" * 20
    b = a.replace("value", "payload")
    assert levenshtein(a, b) == _dp_levenshtein(a, b)


def test_edit_similarity_is_one_for_equal_and_scaled_by_the_longer_string() -> None:
    assert edit_similarity("return x", "return x") == 1.0
    assert edit_similarity("", "") == 1.0
    assert edit_similarity("abcd", "abcf") == pytest.approx(0.75)
    assert edit_similarity("", "abc") == 0.0


def test_exact_match_ignores_trailing_whitespace_only() -> None:
    assert exact_match("return x  \n", "return x")
    assert not exact_match(" return x", "return x")


def test_code_tokens_split_identifiers_strings_and_operators() -> None:
    assert code_tokens('x == "a b" + y_1') == ["x", "==", '"a b"', "+", "y_1"]


def test_token_match_is_one_for_identical_code_and_zero_for_unrelated_code() -> None:
    ref = "return QuillResult.ok(ctx, value=value)"
    assert token_match(ref, ref) == pytest.approx(1.0)
    assert token_match("while True: pass", ref) == 0.0


def test_token_match_penalises_a_short_prediction() -> None:
    ref = "value = payload.get('order', default)"
    full = token_match(ref, ref)
    short = token_match("value = payload", ref)
    assert 0.0 < short < full


def test_keyword_weighting_rewards_matching_keywords_more() -> None:
    ref = "if value is None: return fail"
    keywords_right = "if other is None: return x"
    names_right = "when value be Nothing: give fail"
    plain = token_match(keywords_right, ref, max_n=1), token_match(names_right, ref, max_n=1)
    weighted = (
        token_match(keywords_right, ref, max_n=1, keyword_weight=5.0),
        token_match(names_right, ref, max_n=1, keyword_weight=5.0),
    )
    assert weighted[0] > plain[0]
    assert weighted[1] < plain[1]


def test_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3)
    assert high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_bootstrap_interval_brackets_the_mean_and_repeats_for_a_seed() -> None:
    values = [float(i % 3 == 0) for i in range(60)]
    low, high = bootstrap_ci(values, seed=3)
    assert low < sum(values) / len(values) < high
    assert bootstrap_ci(values, seed=3) == (low, high)


def test_perplexity_is_the_exponential_of_the_loss() -> None:
    assert LossResult(loss=math.log(12.0), tokens=5).perplexity == pytest.approx(12.0)
