"""eval.reader_checks on a tiny SQuAD-format file: the number check measured on and off."""

from __future__ import annotations

import json

from eval.reader_checks import main


def test_the_number_check_is_measured_on_and_off(tmp_path, minilm_path, monkeypatch):
    monkeypatch.setenv("VIGNETTE_DATA_DIR", str(tmp_path / "data"))
    paragraphs = [
        ("Old Amos kept the light on Gullstone Rock for forty-seven years. He loved the grey sea.",
         [("q1", "How many years did Amos keep the light on Gullstone Rock?", ["forty-seven years"])]),
        ("Wren climbed the tower stairs with a lantern in her hand. The wind howled around the tower all night.",
         [("q2", "How many lanterns did the wind blow out in the tower?", []),
          ("q3", "Why did Wren climb the tower stairs?", [])]),
    ]
    data = {"data": [{"title": "Gullstone", "paragraphs": [
        {"context": text, "qas": [{"id": qid, "question": q, "is_impossible": not answers,
                                   "answers": [{"text": a, "answer_start": text.index(a)} for a in answers]}
                                  for qid, q, answers in qas]} for text, qas in paragraphs]}]}
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps(data))
    out = tmp_path / "checks"
    assert main(["--squad", str(squad), "--passages", "1", "--out", str(out)]) == 0
    results = json.loads((out / "checks.json").read_text())["results"]["SQuAD 2.0 dev"]
    assert results["questions"] == {"all": 3, "checked": 2}  # the why-question is no number question
    off, on = results["no check"]["checked"], results["number check (the product)"]["checked"]
    assert off["answerable"] == on["answerable"] == 1 and off["unanswerable"] == on["unanswerable"] == 1
    assert off["hit"] == on["hit"] == 100.0  # the sentence with "forty-seven years" answers either way
    assert off["abstained_unanswerable"] == 0.0  # without the check a sentence with no number answers...
    assert on["abstained_unanswerable"] == 100.0  # ...with it the reader abstains
    assert "| number check (the product) | checked |" in (out / "checks.md").read_text()
    assert main(["--out", str(out)]) == 2  # nothing to measure: a clear error
