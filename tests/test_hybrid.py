"""Hybrid retrieval: score fusion and RRF arithmetic on hand-made scores and rankings, sentence windows,
and on the real sample novel (ingested into a real BookStore in a temp dir with the packaged MiniLM) the
spoiler limit, the window cache and that the right chapter comes first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from retrieval.hybrid import (
    HybridRetriever,
    MemorySource,
    StoreSource,
    best_window_scores,
    reciprocal_rank_fusion,
    score_fusion,
    sentence_windows,
)
from vignette.documents import Passage
from vignette.errors import VignetteError

ROOT = Path(__file__).resolve().parents[1]
FACTS = ROOT / "data" / "sample-novel.facts.yaml"


# ------------------------------------------------------------------------------------------------ fusion math
def test_rrf_adds_reciprocal_ranks():
    fused = reciprocal_rank_fusion({"bm25": ["a", "b", "c"], "dense": ["b", "c", "d"]}, k=60)
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 61)
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 62)
    assert scores["d"] == pytest.approx(1 / 63)
    assert [pid for pid, _ in fused] == ["b", "c", "a", "d"]


def test_rrf_small_k_rewards_the_top_and_weights_scale():
    # With k=0, first place in one list (1/1) beats second place in two lists (1/2 + 1/2 = 1) only on ties;
    # with k=1: 1/2 vs 1/3 + 1/3 = 0.667, so agreement wins.
    rankings = {"x": ["a", "b"], "y": ["c", "b"]}
    assert reciprocal_rank_fusion(rankings, k=1)[0][0] == "b"
    weighted = reciprocal_rank_fusion(rankings, k=1, weights={"x": 3.0})
    assert weighted[0][0] == "a" and dict(weighted)["a"] == pytest.approx(3 / 2)


def test_rrf_ties_break_by_best_rank_then_first_seen():
    fused = reciprocal_rank_fusion({"x": ["a", "b"], "y": ["b", "a"]}, k=60)
    assert [pid for pid, _ in fused] == ["a", "b"]  # equal sums, equal best ranks: first seen wins
    fused = reciprocal_rank_fusion({"x": ["a"], "y": ["q", "r", "s", "t"], "z": ["s"]}, k=60)
    assert fused[0][0] == "s"  # 1/63 + 1/61 beats a single 1/61


def test_score_fusion_sums_weighted_z_scores():
    scores = {"bm25": {"a": 9.0, "b": 1.0, "c": 1.0}, "dense": {"a": 0.50, "b": 0.80, "c": 0.20}}
    fused = dict(score_fusion(scores, ["a", "b", "c"]))
    z_bm25 = (np.array([9.0, 1.0, 1.0]) - 11 / 3) / np.std([9.0, 1.0, 1.0])
    z_dense = (np.array([0.5, 0.8, 0.2]) - 0.5) / np.std([0.5, 0.8, 0.2])
    assert [fused[x] for x in "abc"] == pytest.approx(list(z_bm25 + z_dense))
    # Scale does not matter, only how far ahead a passage is: BM25 x 100 changes nothing.
    scaled = {"bm25": {k: 100 * v for k, v in scores["bm25"].items()}, "dense": scores["dense"]}
    assert dict(score_fusion(scaled, ["a", "b", "c"])) == pytest.approx(fused)
    # "a" is far ahead in BM25 (z 1.41) while "b" leads dense by less (z 1.22 vs a's 0): "a" wins;
    # weigh dense x3 and "b" does.
    assert score_fusion(scores, ["a", "b", "c"])[0][0] == "a"
    assert score_fusion(scores, ["a", "b", "c"], weights={"dense": 3.0})[0][0] == "b"


def test_score_fusion_floors_unscored_ids_and_ignores_flat_views():
    scores = {"bm25": {"a": 3.0, "b": 1.0}, "flat": {"a": 0.5, "b": 0.5, "c": 0.5}}
    fused = score_fusion(scores, ["a", "b", "c"], floors={"bm25": 0.0})
    assert [pid for pid, _ in fused] == ["a", "b", "c"]  # c: no BM25 word in common -> 0, below b
    default_floor = dict(score_fusion(scores, ["a", "b", "c"]))  # c gets b's 1.0: tied with b
    assert default_floor["b"] == pytest.approx(default_floor["c"])
    assert dict(score_fusion({"flat": scores["flat"]}, ["a", "b", "c"])) == {"a": 0.0, "b": 0.0, "c": 0.0}
    assert score_fusion({}, []) == []


def test_best_window_score_is_the_max_per_passage():
    scores = np.array([0.1, 0.9, 0.3, 0.5, 0.2], dtype=np.float32)
    owners = np.array([0, 0, 1, 1, 3])
    best = best_window_scores(scores, owners, 4)
    assert best[0] == pytest.approx(0.9) and best[1] == pytest.approx(0.5) and best[3] == pytest.approx(0.2)
    assert best[2] == -np.inf  # a passage without windows never wins


def test_sentence_windows_overlap_by_all_but_one_sentence():
    text = "One fish. Two fish. Red fish. Blue fish. Old fish."
    windows = [text[s:e] for s, e in sentence_windows(text, 3)]
    assert windows == ["One fish. Two fish. Red fish.", "Two fish. Red fish. Blue fish.",
                       "Red fish. Blue fish. Old fish."]
    short = "Just one sentence here."
    assert [short[s:e] for s, e in sentence_windows(short, 3)] == [short]


MILL = [
    "The miller had three sons. The eldest was strong, the second was clever. The youngest was kind.",
    "A fox lived in the wood beyond the mill. It stole a hen every night. Nobody could catch it.",
    "One winter the river froze. The mill wheel stopped turning. The family grew hungry.",
    "The youngest son set a trap of honey by the henhouse. In the morning the fox was caught. "
    "He let it go when it promised to leave the hens alone.",
]


@pytest.mark.parametrize("fusion", ["score", "rrf"])
def test_memory_source_fuses_all_retrievers(settings, minilm_path, fusion):
    passages = [Passage(f"s#{i}", "s", 1 + i // 2, f"Chapter {1 + i // 2}", 0, len(t), t) for i, t in enumerate(MILL)]
    retriever = HybridRetriever(None, settings.replace(fusion=fusion))
    assert set(retriever.retrievers) == ({"bm25", "dense", "window", "sentence"} if fusion == "score"
                                         else {"bm25", "dense", "window"})  # weight 0: not run
    source = MemorySource(passages, retriever.encode, key="mill")
    candidates = retriever.retrieve_from(source, "How did the youngest son catch the fox?", top_k=4)
    assert candidates[0].passage.passage_id == "s#3"
    assert set(retriever.retrievers) | {"fused"} <= set(candidates[0].scores)
    assert [c.score for c in candidates] == sorted((c.score for c in candidates), reverse=True)
    limited = retriever.retrieve_from(source, "How did the youngest son catch the fox?", top_k=4, max_chapter=1)
    assert {c.passage.passage_id for c in limited} == {"s#0", "s#1"}


class _FavouriteReranker:
    """A stand-in poly-encoder that scores one passage far above the rest and records what it saw."""

    def __init__(self, favourite):
        self.favourite, self.seen = favourite, []

    def candidate_vectors(self, ids, texts, cache_dir):
        return {pid: i for i, pid in enumerate(ids)}, None

    def rerank_scores(self, question, candidate_ids, index, vectors):
        self.seen.append(list(candidate_ids))
        return {pid: (10.0 if pid == self.favourite else 0.0) for pid in candidate_ids}


@pytest.mark.parametrize("fusion", ["score", "rrf"])
def test_the_poly_encoder_joins_the_fusion_within_the_spoiler_limit(settings, minilm_path, fusion):
    passages = [Passage(f"s#{i}", "s", 1 + i // 2, f"Chapter {1 + i // 2}", 0, len(t), t) for i, t in enumerate(MILL)]
    question = "How did the youngest son catch the fox?"
    plain = HybridRetriever(None, settings.replace(fusion=fusion))
    source = MemorySource(passages, plain.encode, key="mill")
    before = [c.passage.passage_id for c in plain.retrieve_from(source, question, top_k=4)]
    assert before[0] == "s#3" and before[-1] != "s#3"
    favourite = before[-1]
    reranker = _FavouriteReranker(favourite)
    boosted = HybridRetriever(None, settings.replace(fusion=fusion), reranker=reranker,
                              weights={"poly": 500.0})  # RRF: ranks, so only a huge weight outvotes four retrievers
    after = boosted.retrieve_from(source, question, top_k=4)
    assert after[0].passage.passage_id == favourite and "poly" in after[0].scores
    # Under a spoiler limit the re-ranker only ever sees allowed passages.
    limited = boosted.retrieve_from(source, question, top_k=4, max_chapter=1)
    assert set(reranker.seen[-1]) <= {"s#0", "s#1"}
    assert {c.passage.passage_id for c in limited} <= {"s#0", "s#1"}


def test_unknown_fusion_is_a_clear_error(settings):
    with pytest.raises(VignetteError, match="fusion"):
        HybridRetriever(None, settings.replace(fusion="average"))


# ------------------------------------------------------------------------------------------------ a real book
@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    from retrieval.store import BookStore
    from vignette.settings import Settings

    settings = Settings.from_env(env={}, data_dir=tmp_path_factory.mktemp("hybrid") / "data")
    store = BookStore(settings)
    store.ensure_sample()
    return store


@pytest.fixture(scope="module")
def facts():
    return [f for f in yaml.safe_load(FACTS.read_text()) if f.get("chapter") and f.get("answerable", True)]


def test_spoiler_limit_never_returns_a_later_passage(sample_store, facts):
    retriever = HybridRetriever(sample_store, sample_store.settings)
    late = [f for f in facts if f["chapter"] >= 5][:8]
    assert len(late) >= 5
    n_early = sum(p.chapter <= 2 for p in sample_store.passages("sample"))
    for fact in late:
        # Every passage the reader has read, and none beyond.
        candidates = retriever.retrieve("sample", fact["question"], top_k=1000, max_chapter=2)
        assert candidates, fact["question"]
        assert max(c.passage.chapter for c in candidates) <= 2, fact["question"]
        assert len(candidates) == n_early
        # Without the limit, later chapters (where the answer is) do come back: the limit is what removes them.
        free = retriever.retrieve("sample", fact["question"], top_k=10)
        assert any(c.passage.chapter > 2 for c in free), fact["question"]
    # Each retriever filters on its own, not only the fusion: BM25, Chroma and the windows.
    source = StoreSource(sample_store, "sample")
    allowed = {p.passage_id for p in source.passages if p.chapter <= 2}
    hits = source.bm25_search(late[0]["question"], 50, allowed)
    assert hits and all(pid in allowed for pid, _ in hits)
    dense = source.dense_search(sample_store.encode([late[0]["question"]])[0], 50, 2)
    assert dense and all(pid in allowed for pid, _ in dense)


def test_the_right_chapter_comes_first(sample_store, facts):
    retriever = HybridRetriever(sample_store, sample_store.settings)
    # Measured with MiniLM: 38 of 78 first, 72 of 78 in the top 5 (many questions name people and
    # things that recur in every chapter, so the first hit is often a neighbouring chapter).
    top1 = top5 = 0
    for f in facts:
        chapters = [c.passage.chapter for c in retriever.retrieve("sample", f["question"], top_k=5)]
        top1 += chapters[0] == f["chapter"]
        top5 += f["chapter"] in chapters
    assert top1 >= 0.4 * len(facts), (top1, len(facts))
    assert top5 >= 0.85 * len(facts), (top5, len(facts))


def test_the_first_question_encodes_nothing_but_itself(sample_store):
    """Ingest built every view: the first question (retrieval, grounding, the sentence reader) sends only
    single texts (itself, a word it asks about) through the encoder, and writes nothing in the book's folder."""
    from sentence_transformers import SentenceTransformer

    from retrieval.pipeline import AnswerPipeline

    folder = sample_store.book_dir("sample")
    before = sorted(p.name for p in folder.iterdir())
    assert {"sentences.npz", "vocabulary.npy"} <= set(before)
    calls = []
    real = SentenceTransformer.encode

    def counting(self, sentences, *args, **kwargs):
        calls.append(1 if isinstance(sentences, str) else len(sentences))
        return real(self, sentences, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SentenceTransformer, "encode", counting)
        pipeline = AnswerPipeline(sample_store, sample_store.settings.replace(reader="sentence"))
        answer = pipeline.ask("sample", "Who was the mayor of the harbour town?")  # grounding looks for a near word
        answer = pipeline.ask("sample", "Who is the keeper of Gullstone Rock?")
    assert answer.evidence and calls and all(n == 1 for n in calls) and len(calls) <= 5
    assert sorted(p.name for p in folder.iterdir()) == before


def test_windows_are_length_weighted_means_of_the_sentences(sample_store):
    """A window's vector is the normalised, length-weighted mean of its sentences' vectors."""
    from retrieval.sentences import derive_windows

    table = sample_store.sentences("sample")
    vectors, owners = derive_windows(table, 3)
    rows = table.rows_of(int(owners[0]))[:3]
    expected = (table.vectors[rows] * table.weights[rows][:, None]).sum(axis=0)
    assert np.allclose(vectors[0], expected / np.linalg.norm(expected), atol=1e-5)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    single, owners1 = derive_windows(table, 1)
    assert len(single) == len(table.members) and np.array_equal(single[0], table.vectors[table.members[0]])
    assert set(owners1) == set(range(len(sample_store.passages("sample"))))


@pytest.mark.parametrize("size", [2, 3, 5, 9])
def test_every_window_is_the_weighted_mean_of_its_own_sentences(sample_store, size):
    """Short windows (summed row by row) and long ones (prefix sums) agree with the definition, window by
    window, including passages with fewer sentences than the window."""
    from retrieval.sentences import derive_windows

    table = sample_store.sentences("sample")
    vectors, owners = derive_windows(table, size)
    at = 0
    for passage in range(len(table.offsets) - 1):
        rows = table.rows_of(passage)
        runs = [rows[i:i + size] for i in range(max(1, len(rows) - size + 1))] if len(rows) else []
        for run in runs:
            expected = (table.vectors[run].astype(np.float64) * table.weights[run][:, None]).sum(axis=0)
            assert owners[at] == passage
            assert np.allclose(vectors[at], expected / np.linalg.norm(expected), atol=1e-5)
            at += 1
    assert at == len(vectors)


def test_prepare_loads_the_views_the_first_question_needs(sample_store):
    from retrieval.pipeline import AnswerPipeline
    from retrieval.sentences import derive_windows as real_derive

    pipeline = AnswerPipeline(sample_store, sample_store.settings.replace(reader="sentence"))
    pipeline.prepare("sample")
    assert len(pipeline.retriever._window_memo) == 2  # the 3-sentence windows and the sentences
    assert "sample" in pipeline._vocabularies
    derived = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("retrieval.sentences.derive_windows", lambda *a, **k: derived.append(1) or real_derive(*a, **k))
        answer = pipeline.ask("sample", "Who is the keeper of Gullstone Rock?")
    assert answer.evidence and not derived  # nothing was left for the first question to build
    with pytest.raises(VignetteError):
        pipeline.prepare("no-such-book")


def test_changed_passages_are_never_scored_with_old_windows(settings, minilm_path):
    retriever = HybridRetriever(None, settings)
    one = [Passage(f"s#{i}", "s", 1, "Chapter 1", 0, len(t), t) for i, t in enumerate(MILL)]
    first = retriever.window_index(MemorySource(one, retriever.encode, key="mill"))
    assert retriever.window_index(MemorySource(one, retriever.encode, key="mill")) is first  # memoised
    edited = MILL[:3] + ["The youngest son caught the fox with a trap of honey. Then he let it go free again."]
    two = [Passage(f"s#{i}", "s", 1, "Chapter 1", 0, len(t), t) for i, t in enumerate(edited)]
    second = retriever.window_index(MemorySource(two, retriever.encode, key="mill"))  # same key and ids
    assert second is not first and not np.array_equal(second.vectors[-1], first.vectors[-1])


def test_bad_input_is_a_clear_message(sample_store):
    retriever = HybridRetriever(sample_store, sample_store.settings)
    with pytest.raises(VignetteError, match="empty"):
        retriever.retrieve("sample", "   ")
    with pytest.raises(VignetteError, match="characters long"):
        retriever.retrieve("sample", "why " * 2000)
    last = max(p.chapter for p in sample_store.passages("sample"))
    with pytest.raises(VignetteError, match=f"has {last} chapters"):
        retriever.retrieve("sample", "Who is Wren?", max_chapter=last + 5)
    with pytest.raises(VignetteError):
        retriever.retrieve("no-such-book", "Who is Wren?")
