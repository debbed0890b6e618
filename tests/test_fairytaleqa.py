"""The FairytaleQA harness on a two-story slice of the shared validation data."""

from __future__ import annotations

import json

import pytest

from eval.fairytaleqa import main


@pytest.fixture
def slice_files(shared_data, tmp_path):
    """The first two validation stories and their first questions (some explicit, some implicit)."""
    root = shared_data / "fairytaleqa"
    stories = [json.loads(line) for line in (root / "stories.jsonl").read_text().splitlines() if line.strip()]
    val = [s for s in stories if s["split"] == "val"][:2]
    ids = {s["story_id"] for s in val}
    questions = [json.loads(line) for line in (root / "val.jsonl").read_text().splitlines() if line.strip()]
    picked = []
    for sid in sorted(ids):
        mine = [q for q in questions if q["story_id"] == sid]
        picked += [q for q in mine if q["explicit"]][:5] + [q for q in mine if not q["explicit"]][:3]
    (tmp_path / "stories.jsonl").write_text("".join(json.dumps(s) + "\n" for s in val))
    (tmp_path / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in picked))
    return tmp_path / "stories.jsonl", tmp_path / "questions.jsonl", val, picked


def test_bm25_metrics_match_a_direct_computation(slice_files, tmp_path):
    from retrieval.sparse import BM25Index

    stories_path, questions_path, stories, questions = slice_files
    out = tmp_path / "bm25"
    assert main(["--stories", str(stories_path), "--questions", str(questions_path), "--retriever", "bm25",
                 "--reader", "none", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # The same numbers by hand: one BM25 index per story, r@1 = gold section first.
    hits = 0
    for q in questions:
        story = next(s for s in stories if s["story_id"] == q["story_id"])
        index = BM25Index.build([str(s["id"]) for s in story["sections"]], [s["text"] for s in story["sections"]])
        top = index.search(q["question"], 1)
        hits += bool(top) and int(top[0][0]) in q["section_ids"]
    assert metrics["overall"]["r@1"] == pytest.approx(100 * hits / len(questions), abs=0.01)
    assert metrics["overall"]["n"] == len(questions)
    assert metrics["explicit"]["n"] + metrics["implicit"]["n"] == len(questions)
    assert "f1" not in metrics["overall"] and metrics["config"]["reader"] is None  # --reader none: retrieval only
    assert metrics["config"]["index"] == "per story"


def test_hybrid_with_reader_writes_every_key(slice_files, tmp_path, settings, monkeypatch):
    stories_path, questions_path, _, questions = slice_files
    monkeypatch.setenv("VIGNETTE_DATA_DIR", str(settings.data_dir))
    out = tmp_path / "hybrid"
    assert main(["--stories", str(stories_path), "--questions", str(questions_path), "--retriever", "hybrid",
                 "--reader", "sentence", "--pooled", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for group in ("overall", "explicit", "implicit"):
        for key in ("r@1", "r@3", "r@5", "mrr", "f1", "rouge_l", "abstain_rate"):
            assert key in metrics[group], (group, key)
            assert 0.0 <= metrics[group][key] <= 100.0
        assert metrics[group]["r@1"] <= metrics[group]["r@3"] <= metrics[group]["r@5"]
    assert metrics["overall"]["r@5"] >= 50.0  # two stories, ~30 sections: far better than chance (~17%)
    assert metrics["config"]["index"] == "pooled"
    assert "| overall |" in (out / "metrics.md").read_text()
    rankings = [json.loads(line) for line in (out / "rankings.jsonl").read_text().splitlines()]
    assert len(rankings) == len(questions)
    assert all(r["answer"] is not None for r in rankings)


def test_without_reader_flag_the_product_default_reader_answers(slice_files, tmp_path, settings, monkeypatch):
    """No --reader: the reader the bot would use (VIGNETTE_READER through load_reader), here one whose model
    is not on the machine, so the bot's own fallback answers and the figures are the user's."""
    from retrieval.reader import load_reader
    from vignette.settings import Settings

    stories_path, questions_path, _, questions = slice_files
    monkeypatch.setenv("VIGNETTE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("VIGNETTE_READER", str(tmp_path / "no-such-reader"))
    out = tmp_path / "default"
    assert main(["--stories", str(stories_path), "--questions", str(questions_path), "--retriever", "bm25",
                 "--limit", "3", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["reader"] == load_reader(Settings.from_env()).name
    assert metrics["config"]["reader"].startswith("sentence:")
    assert "rouge_l" in metrics["overall"] and metrics["overall"]["n"] == 3
    rankings = [json.loads(line) for line in (out / "rankings.jsonl").read_text().splitlines()]
    assert [r["qid"] for r in rankings] == [q["qid"] for q in questions[:3]] and all("answer" in r for r in rankings)


def test_the_reader_re_ranks_as_the_pipeline_does(slice_files, tmp_path, settings, monkeypatch):
    """--reader-rerank N: the shipped reader judges the top N sections and re-orders them (a pipeline step),
    then answers from them; the sections past N keep their places."""
    stories_path, questions_path, _, questions = slice_files
    monkeypatch.setenv("VIGNETTE_DATA_DIR", str(settings.data_dir))
    common = ["--stories", str(stories_path), "--questions", str(questions_path), "--retriever", "bm25",
              "--cache-dir", str(tmp_path / "cache")]
    assert main([*common, "--reader", "none", "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--reader-rerank", "3", "--out", str(tmp_path / "rerank")]) == 0
    plain, rerank = ([json.loads(line) for line in (tmp_path / name / "rankings.jsonl").read_text().splitlines()]
                     for name in ("plain", "rerank"))
    assert len(rerank) == len(questions) and all("answer" in r for r in rerank)
    for a, b in zip(plain, rerank):
        assert sorted(a["ranked"][:3]) == sorted(b["ranked"][:3]) and a["ranked"][3:] == b["ranked"][3:]
    assert any(a["ranked"][:3] != b["ranked"][:3] for a, b in zip(plain, rerank))  # the reader moved some
    metrics = json.loads((tmp_path / "rerank" / "metrics.json").read_text())
    assert metrics["config"]["reader_rerank"]["depth"] == 3
