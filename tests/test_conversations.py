"""Scripted evaluation conversations: the bundled files are well formed and big enough, and the runner
scores a conversation through the real Companion and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from eval.conversations import EXPECTATIONS, check_turn, load_conversation, main, summarise
from tests.sample_library import copy_sample_to
from vignette.errors import VignetteError

FOLDER = Path(__file__).resolve().parents[1] / "eval" / "conversations"


def all_conversations():
    return [load_conversation(p) for p in sorted(FOLDER.glob("*.yaml"))]


def test_bundled_conversations_are_well_formed_and_long_enough():
    convs = all_conversations()
    sample = [c for c in convs if c.book == "sample"]
    gutenberg = [c for c in convs if c.book.endswith(".txt")]
    assert sum(len(c.turns) for c in sample) >= 30
    assert any(len(c.turns) >= 20 for c in gutenberg)
    for group in (sample, gutenberg):
        expects = [t["expect"] for c in group for t in c.turns]
        assert sum("standalone" in e for e in expects) >= 5  # follow-ups that need memory
        assert sum(e.get("abstains") is True for e in expects) >= 3  # questions the book does not answer
        assert any(e.get("intent") == "spoiler" for e in expects)  # spoiler limits
    for conv in convs:
        for turn in conv.turns:
            assert set(turn["expect"]) <= set(EXPECTATIONS)


def test_follow_up_facts_agree_with_the_facts_file():
    """Every expectation that the facts file also states names the same chapter."""
    facts_path = FOLDER.parents[1] / "data" / "sample-novel.facts.yaml"
    facts = {f["question"]: f for f in yaml.safe_load(facts_path.read_text(encoding="utf-8"))}
    checked = 0
    for conv in all_conversations():
        for turn in conv.turns:
            fact = facts.get(turn["expect"].get("standalone") or turn["user"])
            if fact and "cites_chapter" in turn["expect"] and fact.get("chapter"):
                assert turn["expect"]["cites_chapter"] == fact["chapter"], turn
                checked += 1
    assert checked >= 10


def test_unknown_expectations_are_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("book: sample\nturns:\n  - user: hi\n    expect: {answer_contains: [x]}\n")
    with pytest.raises(VignetteError, match="unknown expectations"):
        load_conversation(path)


def test_runner_scores_a_conversation_and_writes_the_report(settings, tmp_path, monkeypatch):
    copy_sample_to(settings.data_dir)
    conv = tmp_path / "mini.yaml"
    conv.write_text(
        "title: mini\nbook: sample\nturns:\n"
        "  - user: hello\n    expect: {intent: smalltalk}\n"
        "  - user: How old is Toby?\n    expect: {intent: ask, answer_contains_any: [sixteen], cites_chapter: 1}\n"
        "  - user: and his sister?\n"
        "    expect: {standalone: 'How old is Wren?', question_contains: [Toby's sister], answer_contains_any: [twelve]}\n"
        "  - user: What is the capital of Peru?\n    expect: {abstains: true}\n",
        encoding="utf-8")
    missing = tmp_path / "missing.yaml"
    missing.write_text("book: no/such/novel.txt\nturns:\n  - user: hello\n", encoding="utf-8")
    out = tmp_path / "report"
    assert main([str(conv), str(missing), "--out", str(out), "--data-dir", str(settings.data_dir),
                 "--reader", "sentence"]) == 0

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["meta"]["reader"].startswith("sentence:")
    assert "sentence reader was asked for" in json.dumps(report["meta"]["status"])  # --reader reached the bot
    summary = report["summary"]
    assert summary["skipped"][0]["reason"].startswith("the book 'no/such/novel.txt' is not ingested")
    turns = report["conversations"][0]["turns"]
    assert [t["intent"] for t in turns] == ["smalltalk", "ask", "ask", "ask"]
    assert turns[2]["question"] == "How old is Toby's sister Wren?" and turns[2]["standalone"]["rerun"]
    assert turns[2]["standalone"]["question"] == "How old is Wren?"
    assert summary["standalone_unchanged"] == {"passed": 2, "total": 2, "rate": 1.0}
    assert summary["followups"]["count"] == 1
    assert summary["abstain_on_unanswerable"]["total"] == 1
    answerable = [t for t in turns if t["expect"].get("abstains") is False]
    assert summary["answer_on_all_answerable"]["total"] == len(answerable)
    assert set(summary["pass_rate_by_expectation"]) >= {"intent", "answer_contains_any", "cites_chapter",
                                                         "question_contains", "abstains", "unchanged"}
    assert summary["pass_rate_by_expectation"]["question_contains"]["rate"] == 1.0
    import sqlite3

    with sqlite3.connect(settings.memory_path) as conn:  # the evaluation leaves no conversations behind
        assert conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| 3 | and his sister? | ask | How old is Toby's sister Wren? |" in md
    assert "Follow-ups and their standalone forms" in md and "**Skipped**" in md


def test_scoring_rules():
    from bot.companion import Turn
    from vignette.documents import Answer, Evidence

    ev = Evidence(quote="Toby was sixteen.", chapter=1, chapter_title="Chapter 1", start=0, end=17,
                  passage_id="p", score=1.0)
    turn = Turn(session="s", book_id="sample", text="How old is Toby?", intent="ask", reply="",
                question="How old is Toby?", answer=Answer("How old is Toby?", "Toby was sixteen.", False, [ev], "r"))
    checks = {c["kind"]: c["passed"] for c in check_turn(
        {"answer_contains_any": ["Sixteen"], "cites_chapter": 2, "abstains": False}, turn)}
    assert checks == {"answer_contains_any": True, "cites_chapter": False, "abstains": True, "unchanged": True}
    results = [{"file": "f.yaml", "turns": [{"n": 1, "user": "x", "question": "x", "abstained": True, "correct": True,
                                            "checks": [], "expect": {"abstains": True}}]}]
    assert summarise(results)["abstain_on_unanswerable"]["rate"] == 1.0
    results[0]["turns"].append({"n": 2, "user": "y", "question": "y", "abstained": True, "correct": False,
                                "checks": [], "expect": {"abstains": False}})
    assert summarise(results)["answer_on_all_answerable"] == {
        "answered": 0, "total": 1, "rate": 0.0,
        "note": "every turn the book answers, including those the standalone path abstains on"}


def test_right_words_and_chapter_counts_right_and_wrong_answers():
    def turn(n, abstained, words, chapter):
        checks = [{"kind": "answer_contains_any", "passed": words}, {"kind": "abstains", "passed": not abstained}]
        if chapter is not None:
            checks.append({"kind": "cites_chapter", "passed": chapter})
        return {"n": n, "user": "q", "question": "q", "abstained": abstained, "correct": None, "checks": checks,
                "expect": {"abstains": False, "answer_contains_any": ["x"]}}

    results = [{"file": "f.yaml", "turns": [turn(1, False, True, True), turn(2, False, True, False),
                                            turn(3, False, False, False), turn(4, True, False, False),
                                            turn(5, False, True, None)]}]
    got = summarise(results)["right_words_and_chapter"]
    assert (got["right"], got["wrong"], got["total"]) == (2, 1, 5)
