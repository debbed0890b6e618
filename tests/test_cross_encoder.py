"""The cross-encoder re-ranker: shapes, that pair scores match the all-pairs matrix, that training lowers its
loss, that a saved model reloads to the same scores, that train_cross resumes to the same model, and that
in the retriever it re-orders only the fused head, within the spoiler limit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from retrieval.cross_encoder import CrossEncoder, CrossEncoderReranker
from vignette.documents import Candidate, Passage
from vignette.errors import VignetteError

from .test_poly_encoder import PASSAGES, QUESTIONS, _squad, tiny_base, train_briefly  # noqa: F401  (tiny_base: a tiny random BERT)


def tiny_cross(base) -> CrossEncoder:
    torch.manual_seed(1)
    return CrossEncoder.from_base(base, max_tokens=64)


def test_all_pairs_and_pair_scores_agree(tiny_base):
    model = tiny_cross(tiny_base).eval()
    with torch.inference_mode():
        matrix = model(QUESTIONS, PASSAGES)
    assert matrix.shape == (3, 4)
    pairs = model.score_pairs([QUESTIONS[1]] * 4, PASSAGES, batch_size=3)  # batched by length, returned in order
    assert pairs.shape == (4,)
    assert np.allclose(pairs, matrix[1].numpy(), atol=1e-5)
    with pytest.raises(ValueError):
        model.score_pairs(QUESTIONS, PASSAGES)


def test_training_steps_lower_the_loss(tiny_base):
    # a random tiny model needs a push to leave ln(4)
    losses, final = train_briefly(tiny_cross(tiny_base), lr=1e-2, steps=12)
    assert final < losses[0] * 0.7, (losses, final)


def test_save_and_load_give_the_same_scores(tiny_base, tmp_path):
    model = tiny_cross(tiny_base).eval()
    before = model.score_pairs([QUESTIONS[0]] * 4, PASSAGES)
    model.save_pretrained(tmp_path / "cross")
    assert json.loads((tmp_path / "cross" / "vignette_cross_encoder.json").read_text())["max_tokens"] == 64
    again = CrossEncoder.from_pretrained(tmp_path / "cross")
    assert np.array_equal(again.score_pairs([QUESTIONS[0]] * 4, PASSAGES), before)


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(VignetteError, match="No cross-encoder"):
        CrossEncoder.from_pretrained(tmp_path)
    with pytest.raises(VignetteError, match="2 passages or more"):
        CrossEncoderReranker(tmp_path, depth=1)


def test_train_cross_resume_matches_an_uninterrupted_run(tiny_base, tmp_path):
    from retrieval.train_cross import main

    pairs = _squad(tmp_path)
    common = ["--pairs", str(pairs), "--init", str(tiny_base), "--batch-size", "3", "--max-candidates", "3",
              "--epochs", "1", "--seed", "3", "--max-tokens", "48", "--hard-negatives", "1"]
    assert main(common + ["--out", str(tmp_path / "full")]) == 0
    total = json.loads((tmp_path / "full" / "training.json").read_text())["total_steps"]
    assert total >= 4
    assert main(common + ["--out", str(tmp_path / "split"), "--max-steps", "2", "--checkpoint-every", "1"]) == 0
    assert main(common + ["--out", str(tmp_path / "split"), "--resume"]) == 0
    full = CrossEncoder.from_pretrained(tmp_path / "full")
    split = CrossEncoder.from_pretrained(tmp_path / "split")
    for (name, a), (_, b) in zip(full.state_dict().items(), split.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name


class _Favourite:
    """A stand-in cross-encoder model: scores pairs by whether the passage holds a word."""

    def __init__(self, word):
        self.word, self.seen = word, []

    def score_pairs(self, questions, passages, batch_size=16):
        self.seen.append(list(passages))
        return np.array([5.0 if self.word in p else 0.0 for p in passages], dtype=np.float32)


def _candidates(n):
    texts = [f"passage {i} " + ("with the honey trap" if i == n - 2 else "about the mill") for i in range(n)]
    return [Candidate(Passage(f"s#{i}", "s", 1 + i, f"Chapter {1 + i}", 0, len(t), t), score=float(n - i),
                      scores={"fused": float(n - i)}) for i, t in enumerate(texts)]


def test_reranker_reorders_only_the_head_and_keeps_the_fused_view(tmp_path):
    reranker = CrossEncoderReranker(tmp_path, depth=4, weight=5.0)
    reranker._model = _Favourite("honey")
    head = _candidates(4)  # the favourite is last but one of the head
    out = reranker.rerank("How was the fox caught?", head + _candidates(6)[4:])
    assert out[0].passage.passage_id == "s#2" and out[0].scores["cross"] == 5.0
    assert [c.passage.passage_id for c in out[4:]] == ["s#4", "s#5"]  # below the head: untouched
    assert len(reranker._model.seen[-1]) == 4
    # A small weight leaves a clear fused order alone.
    gentle = CrossEncoderReranker(tmp_path, depth=4, weight=0.1)
    gentle._model = _Favourite("honey")
    assert [c.passage.passage_id for c in gentle.rerank("q", head)] == ["s#0", "s#1", "s#2", "s#3"]


def test_the_retriever_applies_it_within_the_spoiler_limit(settings, minilm_path):
    from retrieval.hybrid import HybridRetriever, MemorySource

    from .test_hybrid import MILL

    passages = [Passage(f"s#{i}", "s", 1 + i // 2, f"Chapter {1 + i // 2}", 0, len(t), t) for i, t in enumerate(MILL)]
    question = "How did the youngest son catch the fox?"
    retriever = HybridRetriever(None, settings.replace(cross_encoder="unused", cross_depth=4, cross_weight=10.0))
    retriever.cross._model = _Favourite("river")  # the frozen-river passage, s#2, is not the answer
    source = MemorySource(passages, retriever.encode, key="mill")
    top = retriever.retrieve_from(source, question, top_k=2)
    assert len(top) == 2 and top[0].passage.passage_id == "s#2" and "cross" in top[0].scores
    limited = retriever.retrieve_from(source, question, top_k=2, max_chapter=1)
    assert {c.passage.passage_id for c in limited} <= {"s#0", "s#1"}
    assert all("river" not in p for p in retriever.cross._model.seen[-1])
