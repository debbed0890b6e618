"""The poly-encoder: shapes, that training lowers its loss, that it reloads to the same scores, that it
starts as the bi-encoder it was initialised from, and that train_poly resumes to the same model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from retrieval.poly_encoder import PolyEncoder, PolyEncoderConfig, PolyEncoderReranker

QUESTIONS = ["Who cracked the bell?", "Where was the new bell cast?", "What did the keeper find in the lantern?"]
PASSAGES = [
    "The seventh bell cracked in the winter of the great frost and never rang again.",
    "The new bell was cast in the foundries of Port Ember, far away to the south.",
    "In the lantern room the keeper found a letter folded into the brass housing.",
    "Wren ran down to the harbour where the fishing boats rocked on the grey water.",
]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, minilm_path):
    """A tiny random BERT with MiniLM's tokenizer, saved like a real checkpoint."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    path = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(minilm_path).save_pretrained(path)
    return path


def tiny_poly(base, codes=4) -> PolyEncoder:
    torch.manual_seed(1)
    return PolyEncoder.from_base(base, codes=codes, max_candidate_tokens=64)


def test_shapes(tiny_base):
    model = tiny_poly(tiny_base, codes=4)
    assert model.forward(QUESTIONS, PASSAGES).shape == (3, 4)
    q = model.tokenize(QUESTIONS, 32)
    assert model.embed_context(q["input_ids"], q["attention_mask"]).shape == (3, 4, 32)
    vectors = model.encode_candidates(PASSAGES, batch_size=3)
    assert vectors.shape == (4, 32)
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(4), atol=1e-5)  # unit candidate vectors
    scores = model.score(QUESTIONS[0], vectors)
    assert scores.shape == (4,)
    assert scores.abs().max() <= model.config.scale + 1e-4  # a scaled cosine
    # Scoring from cached vectors equals scoring the texts.
    model.eval()
    with torch.inference_mode():
        direct = model.forward(QUESTIONS[:1], PASSAGES)[0]
    assert torch.allclose(direct, scores, atol=1e-5)


def test_untrained_codes_pool_like_the_bi_encoder(tiny_base):
    """Near-zero codes attend uniformly: every code vector is the mean of the question's token outputs."""
    model = tiny_poly(tiny_base).eval()
    q = model.tokenize(QUESTIONS[:1], 32)
    with torch.inference_mode():
        context = model.embed_context(q["input_ids"], q["attention_mask"])[0]
        hidden = model.context_encoder(**q).last_hidden_state[0]
    assert torch.allclose(context, hidden.mean(0).expand_as(context), atol=5e-3)


def train_briefly(model, lr: float, steps: int) -> tuple[list[float], float]:
    """A few AdamW steps of a (questions x passages) scorer on QUESTIONS[i] -> PASSAGES[i]: the training
    losses, and the loss after them in eval mode."""
    from retrieval.train_poly import multi_positive_loss

    model.train()
    gold = [[0], [1], [2]]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    torch.manual_seed(2)
    losses = []
    for _ in range(steps):
        loss = multi_positive_loss(model(QUESTIONS, PASSAGES), gold)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.inference_mode():
        return losses, multi_positive_loss(model(QUESTIONS, PASSAGES), gold).item()


def test_training_steps_lower_the_loss(tiny_base):
    losses, final = train_briefly(tiny_poly(tiny_base), lr=1e-3, steps=8)
    assert final < losses[0] * 0.7, (losses, final)


def test_multi_positive_loss_counts_every_gold_column():
    from retrieval.train_poly import multi_positive_loss

    scores = torch.tensor([[2.0, 2.0, 0.0]])
    both = multi_positive_loss(scores, [[0, 1]]).item()
    one = multi_positive_loss(scores, [[0]]).item()
    assert both == pytest.approx(-np.log(2 * np.e**2 / (2 * np.e**2 + 1)), rel=1e-5)
    assert both < one


def test_save_and_load_give_the_same_scores(tiny_base, tmp_path):
    model = tiny_poly(tiny_base, codes=4)
    with torch.no_grad():
        model.codes.normal_()  # as after training: codes far from their initial value
    model.eval()
    vectors = model.encode_candidates(PASSAGES)
    before = model.score(QUESTIONS[1], vectors)
    model.save_pretrained(tmp_path / "poly")
    assert json.loads((tmp_path / "poly" / "poly_encoder.json").read_text())["codes"] == 4
    again = PolyEncoder.from_pretrained(tmp_path / "poly")
    assert torch.equal(again.encode_candidates(PASSAGES), vectors)
    assert torch.equal(again.score(QUESTIONS[1], vectors), before)
    assert again.fingerprint() == model.fingerprint()


def test_missing_model_is_a_clear_error(tmp_path):
    from vignette.errors import VignetteError

    with pytest.raises(VignetteError, match="No poly-encoder"):
        PolyEncoder.from_pretrained(tmp_path)


def test_reranker_caches_candidate_vectors_per_book(tiny_base, tmp_path):
    tiny_poly(tiny_base).save_pretrained(tmp_path / "poly")
    reranker = PolyEncoderReranker(tmp_path / "poly")
    ids = [f"p{i}" for i in range(len(PASSAGES))]
    index, vectors = reranker.candidate_vectors(ids, PASSAGES, tmp_path / "book")
    cached = list((tmp_path / "book").glob("poly-*.npy"))
    assert len(cached) == 1
    # A fresh reranker reads the cache (the texts are not even looked at).
    fresh = PolyEncoderReranker(tmp_path / "poly")
    _, again = fresh.candidate_vectors(ids, ["ignored"] * len(ids), tmp_path / "book")
    assert torch.equal(again, vectors)
    # Other passage ids (a re-ingested book): not reused.
    _, other = fresh.candidate_vectors(["x", "y"], PASSAGES[:2], tmp_path / "book")
    assert other.shape == (2, vectors.shape[1])
    scores = fresh.rerank_scores(QUESTIONS[1], ["p3", "p1"], index, vectors)
    assert set(scores) == {"p3", "p1"}


def _squad(tmp_path):
    data = {"data": [
        {"title": f"story{s}", "paragraphs": [
            {"context": PASSAGES[(s + i) % 4], "qas": [{"id": f"{s}-{i}-{j}", "question": QUESTIONS[(i + j) % 3]}
                                                        for j in range(3)]}
            for i in range(3)]}
        for s in range(3)]}
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data))
    return path


def test_train_poly_resume_matches_an_uninterrupted_run(tiny_base, tmp_path):
    from retrieval.train_poly import main

    pairs = _squad(tmp_path)
    common = ["--pairs", str(pairs), "--init", str(tiny_base), "--codes", "4", "--batch-size", "6",
              "--max-candidates", "6", "--epochs", "1", "--seed", "3", "--max-candidate-tokens", "48"]
    assert main(common + ["--out", str(tmp_path / "full")]) == 0
    total = json.loads((tmp_path / "full" / "training.json").read_text())["total_steps"]
    assert total >= 4
    assert main(common + ["--out", str(tmp_path / "split"), "--max-steps", "2", "--checkpoint-every", "1"]) == 0
    assert json.loads((tmp_path / "split" / "training.json").read_text())["step"] == 2
    assert main(common + ["--out", str(tmp_path / "split"), "--resume"]) == 0
    full = PolyEncoder.from_pretrained(tmp_path / "full")
    split = PolyEncoder.from_pretrained(tmp_path / "split")
    for (name, a), (_, b) in zip(full.state_dict().items(), split.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name
    history = json.loads((tmp_path / "full" / "training.json").read_text())
    assert history["step"] == total


def test_frozen_candidate_training_keeps_the_candidate_encoder(tiny_base, tmp_path):
    from retrieval.train_poly import main

    pairs = _squad(tmp_path)
    assert main(["--pairs", str(pairs), "--init", str(tiny_base), "--codes", "4", "--batch-size", "6",
                 "--max-candidates", "6", "--max-steps", "2", "--freeze-candidates", "--max-candidate-tokens", "48",
                 "--out", str(tmp_path / "frozen")]) == 0
    trained = PolyEncoder.from_pretrained(tmp_path / "frozen")
    base = PolyEncoder.from_base(tiny_base, codes=4)
    for (name, a), (_, b) in zip(trained.candidate_encoder.state_dict().items(),
                                 base.candidate_encoder.state_dict().items()):
        assert torch.equal(a, b), name
    assert not torch.allclose(trained.codes, torch.zeros_like(trained.codes), atol=1e-3)


def test_inverse_cloze_removes_the_query_sentence_from_its_positive():
    from retrieval.train_poly import add_hard_negatives, inverse_cloze
    from vignette.documents import Passage

    texts = [
        "The lamp was lit at dusk every evening. Amos climbed the stair with the oil can. "
        "The wind rattled every pane of the lantern room. Below, the sea broke white on the rocks.",
        "Wren counted the bells in the tower one by one. The seventh bell was cracked and silent. "
        "Nobody had rung it for thirty-one years. The fishermen were saving for a new one.",
        "Mrs Vane arrived in a green coat on a grey morning. She offered Amos money for the Rock. "
        "He refused and shut the door. She smiled as if she had expected it.",
    ]
    passages = [Passage(f"b#{i}", "b", 1, "Chapter 1", 0, len(t), t) for i, t in enumerate(texts)]
    data = inverse_cloze(passages, seed=0, per_passage=2, keep_rate=0.0)
    assert len(data.examples) == 6
    for ex in data.examples:
        positive = data.passages[ex.gold[0]]
        source = ex.gold[0].split("@")[0]
        assert ex.question not in positive  # the sentence was taken out ...
        assert len(positive) < len(data.passages[source])  # ... of its own passage
    add_hard_negatives(data, per_question=2)
    for ex in data.examples:
        assert ex.gold[0].split("@")[0] not in ex.hard  # its own passage is never a negative
