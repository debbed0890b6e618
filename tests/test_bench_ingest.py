"""eval.bench ingest: the whole job (ingest, then the first question) against a bare encode, in one run."""

from __future__ import annotations

import json

from eval.bench import main
from tests.test_store import tiny_book


def test_bench_ingest_reports_the_whole_job_and_the_sizes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VIGNETTE_READER", "sentence")
    assert main(["--data-dir", str(tmp_path / "bench"), "ingest", str(tiny_book(tmp_path)), "--n", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passages"] >= 4 and result["encoded"] > result["passages"]  # sentences and words
    assert result["ratio"] > result["ingest_only_ratio"] > 0  # the first question is part of the job
    assert result["first_question_ms"] > 0 and result["question_p50_ms"] > 0
    assert 0 < result["vectors_bytes"] < result["folder_bytes"] and result["chroma_bytes"] > 0
    assert result["passage_vectors"] == "sentence-mean"
