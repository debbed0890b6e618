"""Retrieval and reading metrics on hand-made cases."""

from __future__ import annotations

import pytest

from eval.metrics import (
    aggregate,
    markdown_table,
    max_over_gold,
    normalize_answer,
    recall_at_k,
    reciprocal_rank,
    rouge_l,
    token_f1,
)


def test_recall_at_k():
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, {"c"}, 1) == 0.0
    assert recall_at_k(ranked, {"c"}, 3) == 1.0
    assert recall_at_k(ranked, {"x", "b"}, 2) == 1.0  # any gold passage counts
    assert recall_at_k(ranked, {"x"}, 10) == 0.0
    assert recall_at_k([], {"a"}, 5) == 0.0


def test_reciprocal_rank_uses_the_first_gold():
    assert reciprocal_rank(["a", "b", "c"], {"a"}) == 1.0
    assert reciprocal_rank(["a", "b", "c"], {"c", "b"}) == 0.5
    assert reciprocal_rank(["a", "b", "c"], {"z"}) == 0.0


def test_squad_normalisation():
    assert normalize_answer("The  Old, cracked BELL!") == "old cracked bell"
    assert normalize_answer("an apple a day") == "apple day"


def test_token_f1():
    assert token_f1("the seven bells", "Seven bells.") == 1.0
    # prediction "seven old bells" vs gold "seven bells": precision 2/3, recall 1 -> 0.8
    assert token_f1("seven old bells", "seven bells") == pytest.approx(0.8)
    assert token_f1("a fox", "the wolf") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("", "wolf") == 0.0
    # repeated tokens count once per occurrence (bag of tokens)
    assert token_f1("bell bell", "bell") == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_rouge_l_is_order_aware():
    # same tokens, reversed order: F1 is 1 but the longest common subsequence is 1 of 3 tokens
    assert token_f1("rang bell cracked", "cracked bell rang") == 1.0
    assert rouge_l("rang bell cracked", "cracked bell rang") == pytest.approx(1 / 3)
    # LCS "keeper found letter" (3) of prediction 5 tokens and gold 3 tokens: P 3/5, R 1 -> 0.75
    assert rouge_l("keeper quickly found old letter", "keeper found letter") == pytest.approx(0.75)
    assert rouge_l("wolf", "fox") == 0.0


def test_max_over_gold_answers():
    golds = ["a well-to-do farmer", "the farmer"]
    assert max_over_gold(token_f1, "farmer", golds) == 1.0
    # "rich farmer" vs "farmer": P 1/2, R 1 -> 2/3 (better than against "well-to-do farmer")
    assert max_over_gold(rouge_l, "a rich farmer", golds) == pytest.approx(2 / 3)
    assert max_over_gold(token_f1, "farmer", []) == 0.0


def test_aggregate_splits_by_explicit_and_implicit():
    rows = [
        {"explicit": "explicit", "r@1": 1.0, "mrr": 1.0, "abstain_rate": 0.0},
        {"explicit": "explicit", "r@1": 0.0, "mrr": 0.5, "abstain_rate": 1.0},
        {"explicit": "implicit", "r@1": 0.0, "mrr": 0.25, "abstain_rate": 0.0},
    ]
    result = aggregate(rows, ["r@1", "mrr", "abstain_rate"], group_key="explicit")
    assert result["overall"] == {"n": 3, "r@1": pytest.approx(33.33, abs=0.01), "mrr": pytest.approx(58.33, abs=0.01),
                                 "abstain_rate": pytest.approx(33.33, abs=0.01)}
    assert result["explicit"]["n"] == 2 and result["explicit"]["r@1"] == 50.0 and result["explicit"]["mrr"] == 75.0
    assert result["implicit"] == {"n": 1, "r@1": 0.0, "mrr": 25.0, "abstain_rate": 0.0}
    table = markdown_table(result, ["r@1", "mrr", "f1"])
    assert "| overall | 3 | 33.3 | 58.3 |" in table
    assert "f1" not in table  # a metric nobody measured gets no column
