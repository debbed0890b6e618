"""Hybrid retrieval: BM25 + dense + sentence windows + single sentences, fused, then re-ranked.

Four retrievers look at a question from different sides:

- **BM25** (Robertson & Zaragoza 2009) finds passages that share its rare words (names, objects);
- **dense** (a bi-encoder, Karpukhin et al. 2020): the cosine of the question with each whole passage,
  from the book's Chroma collection;
- **sentence windows**: every run of ``window_sentences`` consecutive sentences of a passage; a passage
  scores its best window, so a fact in the last lines of a long passage is not lost in one truncated,
  averaged embedding (the "small-to-big" / sentence-window retrieval of LlamaIndex). A window's vector is
  the normalised mean of its sentences' vectors (:mod:`retrieval.sentences`), not a second encoding;
- **sentences**: the same with windows of one sentence, the sharpest view of a one-line fact. The
  sentences are encoded once per book, at ingest (a stored book) or on first use (cached in memory).

Two fusions (``settings.fusion``):

- ``"score"`` (default): each retriever's scores are standardised over the candidate pool (the union of
  every retriever's top ``candidates``; z-scores, so BM25's unbounded scores and cosines add up) and
  summed with weights; the poly-encoder (:mod:`retrieval.poly_encoder`), when configured, scores the whole
  pool and joins the sum as one more view. On FairytaleQA val this beats RRF by ~5 points R@1: ranks
  throw away how far ahead the best passage is, and in a story of 20 sections that gap is the signal.
- ``"rrf"``: reciprocal rank fusion (Cormack, Clarke and Büttcher 2009),
  ``score(p) = sum_r w_r / (k + rank_r(p))``, which needs no score calibration between retrievers; the
  poly-encoder then re-ranks the fused top N.

The spoiler limit (``max_chapter``) is applied inside every retriever (BM25's allowed ids, Chroma's
``where`` filter, the windows' mask, the re-ranker only ever sees allowed candidates) and checked once more
on the way out: a later passage can never come back.

The fusion runs over a :class:`PassageSource`: :class:`StoreSource` is a stored book (Chroma + its BM25
index); :class:`MemorySource` is a list of passages held in memory (the FairytaleQA evaluation indexes each
story's sections this way), so the evaluation measures the code the product runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from vignette.documents import Candidate, Passage
from vignette.errors import VignetteError
from vignette.settings import Settings

RETRIEVERS = ("bm25", "dense", "window", "sentence")
FUSIONS = ("score", "rrf")
RERANK_DEPTH = 20  # RRF only: fused candidates the poly-encoder re-orders (its cost is an N x m attention)
# Weights tuned on FairytaleQA val only (never train), with the fine-tuned bi-encoder and the poly-encoder
# trained from it: R@1 71.1 / R@5 92.8 / MRR 80.2. Two-fold cross-validation over val's stories (weights
# tuned on one half, measured on the other) gives 70.7 / 92.4 / 80.1, so this is not an overfit. Whole-
# passage vectors are the weakest view and mostly repeat the windows'; 0.25 keeps Chroma's view in the sum
# (0 scored 70.6 / 93.1 / 80.1 with the other weights at their first guess).
SCORE_WEIGHTS = {"bm25": 1.0, "dense": 0.25, "window": 1.5, "sentence": 1.0, "poly": 1.0}
# RRF: at weight 1 the whole-passage vectors pulled R@1 from 60.0 (BM25 + windows) to 54.6, at 0.3 to 57.9;
# the poly-encoder at 0.5 beat 1.0 (R@5 90.0 vs 89.7 over BM25 + windows); sentences did not help.
RRF_WEIGHTS = {"bm25": 1.0, "window": 1.0, "dense": 0.3, "sentence": 0.0, "poly": 0.5}


PASSAGE_VECTORS = ("sentence-mean", "encode")


def check_passage_vectors(mode: str) -> str:
    if mode not in PASSAGE_VECTORS:
        raise VignetteError(f"Unknown passage vectors {mode!r}; choose one of {', '.join(PASSAGE_VECTORS)}.",
                            hint="Set VIGNETTE_PASSAGE_VECTORS.")
    return mode


def default_weights(fusion: str) -> dict[str, float]:
    return dict(SCORE_WEIGHTS if fusion == "score" else RRF_WEIGHTS)


# ------------------------------------------------------------------------------------------------ fusion
def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[str]], k: int = 60,
                           weights: Mapping[str, float] | None = None) -> list[tuple[str, float]]:
    """Reciprocal rank fusion (Cormack et al. 2009): ``sum_r w_r / (k + rank)`` with ranks from 1.

    ``rankings`` maps a retriever's name to its ids, best first. Returns ``(id, fused score)`` best first;
    ties go to the id with the better best rank, then to the id seen first.
    """
    fused: dict[str, float] = {}
    best_rank: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for name, ids in rankings.items():
        w = 1.0 if weights is None else float(weights.get(name, 1.0))
        for rank, pid in enumerate(ids, start=1):
            fused[pid] = fused.get(pid, 0.0) + w / (k + rank)
            best_rank[pid] = min(best_rank.get(pid, rank), rank)
            first_seen.setdefault(pid, len(first_seen))
    return sorted(fused.items(), key=lambda item: (-item[1], best_rank[item[0]], first_seen[item[0]]))


def score_fusion(scores: Mapping[str, Mapping[str, float]], pool: Sequence[str],
                 weights: Mapping[str, float] | None = None,
                 floors: Mapping[str, float] | None = None) -> list[tuple[str, float]]:
    """Weighted sum of each retriever's scores, standardised (z-scores) over ``pool``.

    ``scores[name]`` maps ids to that retriever's raw score; an id of the pool it did not score gets
    ``floors[name]`` (default: the lowest score it gave: it ranked below all of them). A retriever whose
    scores are all equal adds nothing. Returns ``(id, fused score)`` best first, ties in pool order.
    """
    pool = list(pool)
    fused = np.zeros(len(pool), dtype=np.float64)
    for name, given in scores.items():
        w = 1.0 if weights is None else float(weights.get(name, 1.0))
        if not w or not given:
            continue
        floor = (floors or {}).get(name, min(given.values()))
        x = np.array([given.get(pid, floor) for pid in pool], dtype=np.float64)
        sd = x.std()
        if sd > 1e-9:
            fused += w * (x - x.mean()) / sd
    order = np.argsort(-fused, kind="stable")
    return [(pool[i], float(fused[i])) for i in order]


def best_window_scores(window_scores: np.ndarray, owners: np.ndarray, n_passages: int) -> np.ndarray:
    """The best window score of each passage (``-inf`` for a passage without windows)."""
    best = np.full(n_passages, -np.inf, dtype=np.float32)
    np.maximum.at(best, owners, window_scores.astype(np.float32))
    return best


def sentence_windows(text: str, size: int = 3) -> list[tuple[int, int]]:
    """Offsets of every run of ``size`` consecutive sentences of ``text`` (stride one sentence); a passage
    of ``size`` sentences or fewer is one window."""
    from retrieval.text import split_sentences

    spans = split_sentences(text)
    if len(spans) <= size:
        return [(spans[0][0], spans[-1][1])] if spans else ([(0, len(text))] if text.strip() else [])
    return [(spans[i][0], spans[i + size - 1][1]) for i in range(len(spans) - size + 1)]


# ------------------------------------------------------------------------------------------------ sources
class PassageSource(Protocol):
    """What fusion needs from a book: its passages, BM25 and dense search, and a folder for caches."""

    key: str  # identifies the passages (book id, or story id) for in-process caches
    passages: list[Passage]  # reading order
    cache_dir: Path | None

    def sentence_table(self): ...  # retrieval.sentences.SentenceTable with vectors

    def bm25_search(self, question: str, k: int, allowed_ids: set[str] | None) -> list[tuple[str, float]]: ...

    def dense_search(self, vector: np.ndarray, k: int, max_chapter: int | None) -> list[tuple[str, float]]: ...


class StoreSource:
    """A stored book: BM25 from its index, dense search from its Chroma collection."""

    def __init__(self, store, book_id: str):
        self.store = store
        self.book_id = book_id
        self.key = f"book:{book_id}"
        self.passages = store.passages(book_id)
        self.cache_dir = store.book_dir(book_id)

    def bm25_search(self, question, k, allowed_ids):
        return self.store.bm25(self.book_id).search(question, k, allowed_ids=allowed_ids)

    def dense_search(self, vector, k, max_chapter):
        return [(p.passage_id, s) for p, s in self.store.dense_search(self.book_id, vector, k, max_chapter=max_chapter)]

    def sentence_table(self):
        """The book's sentences and their vectors, computed at ingest (:meth:`BookStore.sentences`)."""
        return self.store.sentences(self.book_id)


class MemorySource:
    """Passages held in memory (no Chroma): BM25 built on the fly, dense by a matrix product over the
    whole-passage embeddings (exact search, as Chroma's is for a book-sized collection)."""

    def __init__(self, passages: Sequence[Passage], encode: Callable[[list[str]], np.ndarray], key: str = "memory",
                 cache_dir: str | Path | None = None, fingerprint: str = "", passage_vectors: str | None = None,
                 tokenizer=None):
        from retrieval.sparse import BM25Index

        self.key = key
        self.passages = list(passages)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.fingerprint = fingerprint  # the encoder's; with the texts it keys the cached passage vectors
        # "encode": whole passages encoded; "sentence-mean": derived from the sentences (settings.passage_vectors)
        self.passage_mode = check_passage_vectors(passage_vectors or Settings.passage_vectors)
        self._encode = encode
        self.tokenizer = tokenizer  # the encoder's: sentence lengths weight the derived means (else equal weights)
        self._bm25 = BM25Index.build([p.passage_id for p in self.passages], [p.text for p in self.passages])
        self._vectors: np.ndarray | None = None
        self._table = None

    def bm25_search(self, question, k, allowed_ids):
        return self._bm25.search(question, k, allowed_ids=allowed_ids)

    def sentence_table(self):
        """The passages' sentences (:mod:`retrieval.sentences`), encoded once and cached in ``cache_dir``."""
        if self._table is None:
            from retrieval.sentences import sentence_units, units_digest

            from retrieval.sentences import count_tokens

            table = sentence_units(self.passages)
            digest = units_digest(self.fingerprint, self.passages)
            table.vectors = cached_vectors(self.cache_dir, "sentences", digest, table.texts, self._encode)
            if self.tokenizer is not None:
                table.weights = count_tokens(self.tokenizer, table.texts)
            self._table = table
        return self._table

    def passage_vectors(self) -> np.ndarray:
        if self._vectors is None and self.passage_mode == "sentence-mean":
            from retrieval.sentences import passage_means

            self._vectors = passage_means(self.sentence_table())
        if self._vectors is None:
            texts = [p.text for p in self.passages]
            digest = hashlib.sha1(self.fingerprint.encode())
            for p in self.passages:
                digest.update(f"{p.passage_id}\x00{p.text}\x01".encode())
            self._vectors = cached_vectors(self.cache_dir, "passages", digest.hexdigest()[:16], texts, self._encode)
        return self._vectors

    def dense_search(self, vector, k, max_chapter):
        scores = self.passage_vectors() @ np.asarray(vector, dtype=np.float32)
        rows = [i for i, p in enumerate(self.passages) if max_chapter is None or p.chapter <= max_chapter]
        rows.sort(key=lambda i: -scores[i])
        return [(self.passages[i].passage_id, float(scores[i])) for i in rows[:k]]


def cached_vectors(cache_dir: Path | None, name: str, digest: str, texts: list[str],
                   encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """``encode(texts)``, kept as ``<cache_dir>/<name>.npy`` and reused while ``digest`` (a hash of the
    model and the texts, stored beside it) matches."""
    npy = Path(cache_dir) / f"{name}.npy" if cache_dir is not None else None
    if npy is not None and npy.is_file() and npy.with_suffix(".json").is_file():
        try:
            if json.loads(npy.with_suffix(".json").read_text()).get("hash") == digest:
                vectors = np.load(npy)
                if len(vectors) == len(texts):
                    return np.asarray(vectors, dtype=np.float32)  # a book's are kept as float16
        except (OSError, ValueError):
            pass
    vectors = np.asarray(encode(texts), dtype=np.float32)
    if npy is not None:
        save_vectors(Path(cache_dir), name, digest, vectors)
    return vectors


def save_vectors(folder: Path, name: str, digest: str, vectors: np.ndarray, dtype=np.float32,
                 extra: dict | None = None) -> None:
    """Write ``<folder>/<name>.npy`` (as ``dtype``) and its hash (and ``extra``) beside it, each by an atomic
    rename."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp.npy"
    np.save(tmp, np.asarray(vectors, dtype=dtype))
    os.replace(tmp, folder / f"{name}.npy")
    meta = folder / f".{name}.tmp.json"
    meta.write_text(json.dumps({"hash": digest, "rows": int(len(vectors)), **(extra or {})}, ensure_ascii=False),
                    encoding="utf-8")
    os.replace(meta, folder / f"{name}.json")


@dataclass
class WindowIndex:
    vectors: np.ndarray  # (W, d) unit vectors of every window
    owners: np.ndarray  # (W,) the row of each window's passage in source.passages


# ------------------------------------------------------------------------------------------------ retriever
class HybridRetriever:
    """BM25 + dense + sentence windows + sentences, fused by scores (or RRF), with the poly-encoder.

    Cheap to construct. ``retrieve`` works on a stored book; ``retrieve_from`` on any
    :class:`PassageSource` (the evaluation's in-memory stories).
    """

    def __init__(self, store, settings: Settings, reranker=None, *, retrievers: Sequence[str] = RETRIEVERS,
                 weights: Mapping[str, float] | None = None, window_sentences: int = 3,
                 rerank_depth: int = RERANK_DEPTH, rerank_mode: str = "fuse"):
        unknown = set(retrievers) - set(RETRIEVERS)
        if unknown or not retrievers:
            raise ValueError(f"retrievers must be a non-empty subset of {RETRIEVERS}, not {list(retrievers)}")
        if rerank_mode not in {"fuse", "replace"}:
            raise ValueError(f"rerank_mode must be 'fuse' or 'replace', not {rerank_mode!r}")
        if settings.fusion not in FUSIONS:
            raise VignetteError(f"Unknown fusion {settings.fusion!r}; choose one of {', '.join(FUSIONS)}.")
        self.store = store
        self.settings = settings
        self.fusion = settings.fusion
        self.weights = default_weights(self.fusion) if weights is None else dict(weights)
        # A retriever weighed 0 would add nothing: it is not run (one retriever alone always is).
        active = tuple(r for r in retrievers if self.weights.get(r, 1.0)) if len(retrievers) > 1 else tuple(retrievers)
        self.retrievers = active or tuple(retrievers)
        self.window_sentences = window_sentences
        self.rerank_depth = rerank_depth
        self.rerank_mode = rerank_mode  # "fuse": the poly rank joins the RRF; "replace": poly order alone
        if reranker is None and settings.reranker:
            from retrieval.poly_encoder import PolyEncoderReranker

            reranker = PolyEncoderReranker(settings.reranker)
        self.reranker = reranker
        self.cross = None  # the cross-encoder: re-scores the fused head (retrieval/cross_encoder.py)
        if settings.cross_encoder:
            from retrieval.cross_encoder import CrossEncoderReranker

            self.cross = CrossEncoderReranker(settings.cross_encoder, settings.cross_depth, settings.cross_weight)
        self._window_memo: dict[tuple, WindowIndex] = {}
        self._fingerprint: str | None = None

    # --- encoding ------------------------------------------------------------------------------------
    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors from the bi-encoder the book was indexed with."""
        if self.store is not None:
            return self.store.encode(texts)
        from retrieval.embedding import encode, load_encoder

        return encode(load_encoder(self.settings.embedding_model), texts, self.settings.encode_batch_size)

    @property
    def tokenizer(self):
        """The bi-encoder's tokenizer (sentence lengths weight the derived window vectors)."""
        if self.store is not None:
            return self.store.encoder.tokenizer
        from retrieval.embedding import load_encoder

        return load_encoder(self.settings.embedding_model).tokenizer

    def model_fingerprint(self) -> str:
        """Identifies the bi-encoder's weights, so cached windows are never read by another model."""
        if self._fingerprint is None:
            self._fingerprint = self._model_fingerprint()
        return self._fingerprint

    def _model_fingerprint(self) -> str:
        from retrieval.embedding import resolve_model

        try:
            location = Path(resolve_model(self.settings.embedding_model))
        except VignetteError:
            location = Path(self.settings.embedding_model)
        parts = [self.settings.embedding_model, str(location)]
        for name in ("model.safetensors", "pytorch_model.bin"):
            f = location / name
            if f.is_file():
                st = f.stat()
                parts.append(f"{name}:{st.st_size}:{int(st.st_mtime)}")
        return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]

    def window_index(self, source: PassageSource, size: int | None = None) -> WindowIndex:
        """Every passage's windows of ``size`` sentences (default ``window_sentences``): the normalised
        means of the sentence vectors the source holds (:mod:`retrieval.sentences`)."""
        from retrieval.sentences import derive_windows

        size = self.window_sentences if size is None else int(size)
        # Seen in this process: deriving is cheap, but not free on a novel (and the table may load from disk).
        seen = (source.key, size, hash(tuple((p.passage_id, len(p.text)) for p in source.passages)))
        if seen in self._window_memo:
            return self._window_memo[seen]
        vectors, owners = derive_windows(source.sentence_table(), size)
        index = WindowIndex(vectors, owners)
        self._window_memo[seen] = index
        return index

    # --- retrieval -----------------------------------------------------------------------------------
    def prepare(self, book_id: str) -> None:
        """Load what a question on a stored book needs (its BM25 index, sentence and window views, Chroma
        collection) by retrieving once for its title, so that the first question costs no more than the
        rest (on Pride and Prejudice the first retrieval took 136 ms against 19 ms for the next)."""
        if self.store is None:
            raise ValueError("this retriever has no store")
        book = self.store.get_book(book_id)
        self.retrieve(book_id, book.title or book_id, top_k=1)

    def retrieve(self, book_id: str, question: str, top_k: int | None = None,
                 max_chapter: int | None = None) -> list[Candidate]:
        """The ``top_k`` passages of a stored book for ``question``, best first, none after ``max_chapter``."""
        if self.store is None:
            raise ValueError("this retriever has no store; use retrieve_from(source, ...)")
        return self.retrieve_from(StoreSource(self.store, book_id), question, top_k, max_chapter)

    def retrieve_from(self, source: PassageSource, question: str, top_k: int | None = None,
                      max_chapter: int | None = None, question_vector: np.ndarray | None = None) -> list[Candidate]:
        """``retrieve`` over any :class:`PassageSource`; ``question_vector``: the question's bi-encoder
        vector when the caller encoded many questions in one batch (the evaluation does)."""
        # 1. Check inputs.
        question = (question or "").strip()
        if not question:
            raise VignetteError("Please ask a question: it was empty.")
        if len(question) > self.settings.max_question_chars:
            raise VignetteError(
                f"That question is {len(question):,} characters long; please keep it under "
                f"{self.settings.max_question_chars:,}.")
        top_k = self.settings.top_k if top_k is None else int(top_k)
        if top_k <= 0:
            return []
        passages = source.passages
        if max_chapter is not None:
            last = max((p.chapter for p in passages), default=0)
            if max_chapter < 1:
                raise VignetteError(f"The chapter limit must be 1 or more, not {max_chapter}.")
            if max_chapter > last:
                raise VignetteError(f"This book has {last} chapters, so it cannot be read up to chapter {max_chapter}.",
                                    hint=f"Give a chapter between 1 and {last}, or no limit.")
        allowed_rows = [i for i, p in enumerate(passages) if max_chapter is None or p.chapter <= max_chapter]
        if not allowed_rows:
            return []
        allowed = {passages[i].passage_id for i in allowed_rows}
        limit_ids = allowed if max_chapter is not None else None
        by_id = {p.passage_id: p for p in passages}
        depth = max(self.settings.candidates, top_k)

        # 2. Each retriever's ranking, the spoiler limit applied inside each.
        rankings: dict[str, list[str]] = {}
        scores: dict[str, dict[str, float]] = {}
        floors: dict[str, float] = {}
        full: dict[str, np.ndarray] = {}  # window views score every passage: the pool gets exact scores
        vector = None
        if {"dense", "window", "sentence"} & set(self.retrievers):
            vector = self.encode([question])[0] if question_vector is None else np.asarray(question_vector, np.float32)
        if "bm25" in self.retrievers:
            hits = [(pid, s) for pid, s in source.bm25_search(question, depth, limit_ids) if pid in allowed]
            rankings["bm25"] = [pid for pid, _ in hits]
            scores["bm25"] = dict(hits)
            # Passages sharing no word with the question are not returned: their score is 0. With a full
            # list, the unreturned ones scored at most the last.
            floors["bm25"] = hits[-1][1] if len(hits) >= depth else 0.0
        if "dense" in self.retrievers:
            hits = [(pid, s) for pid, s in source.dense_search(vector, depth, max_chapter) if pid in allowed]
            rankings["dense"] = [pid for pid, _ in hits]
            scores["dense"] = dict(hits)
        rows = np.asarray(allowed_rows)
        for name, size in (("window", self.window_sentences), ("sentence", 1)):
            if name not in self.retrievers:
                continue
            windows = self.window_index(source, size)
            best = best_window_scores(windows.vectors @ vector, windows.owners, len(passages))
            order = rows[np.argsort(-best[rows], kind="stable")][:depth]
            order = [i for i in order if np.isfinite(best[i])]
            rankings[name] = [passages[i].passage_id for i in order]
            scores[name] = {passages[i].passage_id: float(best[i]) for i in order}
            full[name] = best

        # 3. Fuse, with the poly-encoder as one more view (score fusion) or re-ordering the head (RRF).
        row_of = {p.passage_id: i for i, p in enumerate(passages)}
        pool = list(dict.fromkeys(pid for ranking in rankings.values() for pid in ranking))
        for name, best in full.items():  # exact window scores for every pooled passage
            for pid in pool:
                if np.isfinite(best[row_of[pid]]):
                    scores[name].setdefault(pid, float(best[row_of[pid]]))
        def fuse() -> list[tuple[str, float]]:
            if self.fusion == "score":
                return score_fusion(scores, pool, self.weights, floors)
            return reciprocal_rank_fusion(rankings, k=self.settings.rrf_k, weights=self.weights)

        poly: dict[str, float] = {}
        poly_joins = self.fusion == "score" and self.rerank_mode == "fuse"  # else it re-orders the fused head
        fused = None if poly_joins or self.reranker is None else fuse()
        if self.reranker is not None and pool:
            ids = [p.passage_id for p in passages]
            index, vectors = self.reranker.candidate_vectors(ids, [p.text for p in passages], source.cache_dir)
            scored = pool if poly_joins else [pid for pid, _ in fused[: max(self.rerank_depth, top_k)]]
            poly = self.reranker.rerank_scores(question, scored, index, vectors)
            if poly_joins:
                scores["poly"] = poly
        if fused is None:
            fused = fuse()
        fused_score = dict(fused)
        ranked = [pid for pid, _ in fused]
        if poly and (self.fusion == "rrf" or self.rerank_mode == "replace"):
            head = [pid for pid in ranked if pid in poly]
            poly_order = sorted(head, key=lambda pid: -poly[pid])
            scores["poly"] = poly
            if self.rerank_mode == "replace":
                new_head = poly_order
            else:
                head_rankings = {name: [pid for pid in r if pid in poly] for name, r in rankings.items()}
                head_rankings["poly"] = poly_order
                refused = reciprocal_rank_fusion(head_rankings, k=self.settings.rrf_k, weights=self.weights)
                new_head = [pid for pid, _ in refused]
                fused_score.update(refused)
            ranked = new_head + [pid for pid in ranked if pid not in poly]

        # 4. Candidates, best first; the spoiler limit checked once more on the way out. The cross-encoder,
        # when configured, re-scores the head.
        wanted = max(top_k, self.cross.depth) if self.cross is not None else top_k
        out = []
        for pid in ranked:
            p = by_id[pid]
            if max_chapter is not None and p.chapter > max_chapter:
                continue  # unreachable: every retriever filtered already; kept as the last line of defence
            per = {name: s[pid] for name, s in scores.items() if pid in s}
            per["fused"] = fused_score[pid]
            score = per["poly"] if self.rerank_mode == "replace" and "poly" in per else per["fused"]
            out.append(Candidate(passage=p, score=float(score), scores=per))
            if len(out) == wanted:
                break
        if self.cross is not None:
            out = self.cross.rerank(question, out)
        return out[:top_k]
