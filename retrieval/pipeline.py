"""Question -> answer with its evidence: check the question, retrieve, re-rank, read.

:class:`AnswerPipeline` is the one way the CLI, the chat bot and the app ask a book a question. Its
constructor is cheap; the retriever (:class:`retrieval.hybrid.HybridRetriever`) and the reader
(:func:`retrieval.reader.load_reader`) are built on the first question and kept. Every input is checked
at the boundary and refused with a :class:`~vignette.errors.VignetteError` a reader of novels
understands; asking never changes the library.
"""

from __future__ import annotations

import re
import time
import unicodedata
from pathlib import Path
from typing import Any

from retrieval.reader_protocol import PassageJudge, Reader, rerank_by_reader
from vignette.documents import Answer, Book
from vignette.errors import VignetteError
from vignette.settings import Settings

__all__ = ["AnswerPipeline", "check_question", "guess_language"]


# --------------------------------------------------------------------------------------------------------
# Is the question in English? A cheap guess: the script, then function words.
# --------------------------------------------------------------------------------------------------------

_ENGLISH = frozenset(
    """the a an is are was were be been being am who whom whose what which when where why how did do does
    done has have had of to in on at by for with from and or not no nor but he she it they his her hers its
    their them him we you i me my your our that this these those there here after before about into upon
    than then can could would should will shall may might must ever never any some all many much more most
    very said say says tell told happen happened happens does whom whose else also only just like""".split()
)
# Function words of other languages that books' readers might ask in; words that are also English
# ("die", "was", "war", "hat", "also", "come", "dove", "den", "per", "con", "as", "do", "no", "o", "e")
# are left out so they never count against an English question.
_FOREIGN = {
    "French": """le la les des du une est et qui que quoi pourquoi comment où quand avec pour dans sur pas ne
        il elle ils elles sont était étaient c'est qu'est-ce quel quelle quels au aux mais ou leur sa ses son
        cette ces lui fait pendant après avant chez""",
    "German": """der das und ist nicht wer wie warum wann ein eine einen einem einer mit von zu dem des sie
        er ich sind hatte wurde wird welche welcher welches wieso weshalb auf für dass nach über""",
    "Spanish": """el los las un una es y que qué quién quien quiénes por porqué cómo donde dónde cuándo cuando
        para del está estaba fue era su sus pero muy cuál cuántos cuántas hace""",
    "Italian": """il lo gli di che chi è perché dove quando della dello delle sono non una cosa cosa
        chi quale quali ha hanno era erano nel nella""",
    "Portuguese": """os um uma é que quem porque como onde quando com para da dos das não foi era são qual
        quais está estava isso""",
    "Dutch": """het een en wie wat waarom hoe waar wanneer met van niet zijn heeft hebben wordt werd""",
}
_FOREIGN_WORDS = {lang: frozenset(words.split()) - _ENGLISH for lang, words in _FOREIGN.items()}
_WORDS = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


def guess_language(text: str) -> str | None:
    """None when ``text`` may well be English; else the name of the language or script it seems to be in.

    Two cheap signals: the share of letters outside the Latin script (Cyrillic, Greek, CJK, Arabic...),
    and function words of English against those of six European languages. Short English questions
    ("Why?", "Darcy?") pass: a question is only refused on positive evidence of another language.
    """
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return None
    scripts: dict[str, int] = {}
    for c in letters:
        name = unicodedata.name(c, "UNKNOWN").split(" ")[0]
        scripts[name] = scripts.get(name, 0) + 1
    latin = scripts.get("LATIN", 0)
    if latin < 0.5 * len(letters):
        other = max((s for s in scripts if s != "LATIN"), key=lambda s: scripts[s])
        return {"CJK": "Chinese or Japanese", "HIRAGANA": "Japanese", "KATAKANA": "Japanese",
                "HANGUL": "Korean"}.get(other, other.title() + " script")
    words = [w.lower().replace("’", "'") for w in _WORDS.findall(text)]
    english = sum(w in _ENGLISH for w in words)
    counts = {lang: sum(w in vocab for w in words) for lang, vocab in _FOREIGN_WORDS.items()}
    lang, foreign = max(counts.items(), key=lambda kv: kv[1])
    if text.lstrip().startswith(("¿", "¡")):
        return "Spanish"
    if foreign >= 2 and foreign > english:
        return lang
    if foreign >= 1 and english == 0:
        return lang
    return None


def check_question(question: Any, settings: Settings) -> str:
    """The question, trimmed; or a VignetteError that says what is wrong with it."""
    if not isinstance(question, str) or not question.strip():
        raise VignetteError("Please ask a question: it was empty.")
    question = question.strip()
    if len(question) > settings.max_question_chars:
        raise VignetteError(
            f"That question is {len(question):,} characters long; please keep it under "
            f"{settings.max_question_chars:,} characters.",
            hint="Ask about one thing at a time, e.g. \"Why does Elizabeth refuse Mr Darcy?\"",
        )
    if not any(c.isalnum() for c in question):
        raise VignetteError(f"{question!r} is not a question in words; please ask in words.")
    language = guess_language(question)
    if language:
        raise VignetteError(
            f"Your question seems not to be in English (it reads like {language}). The books here are in "
            "English and the reader understands English questions only.",
            hint="Please ask it again in English.",
        )
    return question


def check_chapter_limit(upto_chapter: Any, book: Book) -> int | None:
    """None (no limit) or a chapter number within the book; otherwise a VignetteError."""
    if upto_chapter is None:
        return None
    try:
        limit = int(upto_chapter)
        if isinstance(upto_chapter, float) and upto_chapter != limit:
            raise ValueError
    except (TypeError, ValueError):
        raise VignetteError(f"The chapter limit must be a whole number, not {upto_chapter!r}.") from None
    last = max((c.number for c in book.chapters), default=0)
    if limit < 1:
        raise VignetteError(f"The chapter limit must be 1 or more, not {limit}.",
                            hint="Leave it out to ask about the whole book.")
    if limit > last:
        raise VignetteError(
            f"{book.title!r} has {last} chapter{'s' if last != 1 else ''}, so there is no chapter {limit} to read up to.",
            hint=f"Give a chapter between 1 and {last}, or leave the limit out to ask about the whole book.",
        )
    return limit


# --------------------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------------------


class _torch_threads:
    """Run a block with ``n`` torch intra-op threads, then restore the previous number.

    Answering one question is a handful of small matrix products: on the shared 2-core machine one
    thread used 3-5x less CPU than two (measured: question encoding 15 vs 75 ms of CPU, reading five
    windows 340 vs 1,100 ms), because two threads mostly wait for each other.
    """

    def __init__(self, n: int | None):
        self.n = n
        self.before: int | None = None

    def __enter__(self) -> None:
        if self.n:
            import torch

            self.before = torch.get_num_threads()
            if self.before != self.n:
                torch.set_num_threads(int(self.n))

    def __exit__(self, *exc: Any) -> None:
        if self.before is not None and self.n and self.before != self.n:
            import torch

            torch.set_num_threads(self.before)


def _reader_label(reader_name: str, fallback: bool, model_path: Any) -> str:
    """The reader in words for the About panel: the shipped one by what it is, any other by its name."""
    from retrieval.reader import SHIPPED_READER

    if not fallback and model_path and Path(str(model_path)).resolve() == SHIPPED_READER:
        return "Vignette's own reader (MiniLM-L6 fine-tuned for extractive question answering, models/reader)"
    return reader_name


class _TimedReranker:
    """Wraps a re-ranker to measure the time it spends, so a query's cost can be split by stage."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        return timed


class AnswerPipeline:
    """``ask(book_id, question, upto_chapter=None) -> Answer``: retrieval, re-ranking and reading.

    ``retriever`` and ``reader`` may be given (tests, the evaluation); by default they are a
    :class:`~retrieval.hybrid.HybridRetriever` over ``store`` and :func:`~retrieval.reader.load_reader`
    of ``settings``, built on first use. ``last_timings`` holds the latest question's milliseconds per
    stage (``retrieve``, ``rerank``, ``read``).
    """

    def __init__(self, store: Any, settings: Settings, retriever: Any = None, reader: Reader | None = None):
        self.store = store
        self.settings = settings
        self._retriever = retriever
        self._reader = reader
        self._vocabularies: dict[str, tuple[tuple, Any]] = {}
        self.last_timings: dict[str, float] = {}

    # --- parts, built on first use -------------------------------------------------------------------
    @property
    def retriever(self) -> Any:
        if self._retriever is None:
            from retrieval.hybrid import HybridRetriever

            self._retriever = HybridRetriever(self.store, self.settings)
        return self._retriever

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            from retrieval.reader import load_reader

            encoder = (lambda: self.store.encoder) if self.store is not None else None
            cache_dir = self.store.book_dir if self.store is not None else None
            stored = self.store.reader_sentences if self.store is not None else None
            self._reader = load_reader(self.settings, encoder=encoder, cache_dir=cache_dir, stored_sentences=stored)
        return self._reader

    def vocabulary(self, book_id: str) -> Any:
        """The book's :class:`~retrieval.grounding.BookVocabulary` (rebuilt when the book changes)."""
        from retrieval.grounding import BookVocabulary

        passages = self.store.passages(book_id)
        key = (len(passages), passages[0].passage_id if passages else "", passages[-1].passage_id if passages else "")
        hit = self._vocabularies.get(book_id)
        if hit is None or hit[0] != key:
            # Saved with the book at ingest; a book stored before that is read word by word.
            vocab = BookVocabulary.load(self.store.book_dir(book_id), self.store.encode,
                                        fingerprint=self.settings.embedding_model)
            if vocab is None:
                vocab = BookVocabulary(passages, self.store.encode, cache_dir=self.store.book_dir(book_id),
                                       fingerprint=self.settings.embedding_model)
            self._vocabularies[book_id] = hit = (key, vocab)
        return hit[1]

    def prepare(self, book_id: str) -> None:
        """Get a stored book ready for questions (retrieval views and the grounding vocabulary in memory), so
        its first question is as fast as the rest; run after adding a book, before the reader asks."""
        prepare = getattr(self.retriever, "prepare", None)
        if prepare is not None:
            prepare(book_id)
        if self.settings.grounding_threshold is not None and self.store is not None:
            self.vocabulary(book_id)

    def warm_up(self) -> None:
        """Build the retriever and load the reader now rather than on the first question."""
        reader = self.reader
        if hasattr(reader, "warm_up"):
            reader.warm_up()
        cross = getattr(self.retriever, "cross", None)
        if cross is not None:
            cross.warm_up()

    def status(self) -> dict[str, Any]:
        """What answers questions: the reader (and whether it is the fallback), re-ranker and encoder.

        Decides from settings and files only; nothing is loaded.
        """
        from retrieval.reader import resolve_reader

        if self._reader is not None:
            reader_name = getattr(self._reader, "name", type(self._reader).__name__)
            fallback = bool(getattr(self._reader, "is_fallback", False))
            notice = getattr(self._reader, "reason", None) or getattr(self._reader, "notice", None)
            model_path = getattr(self._reader, "model_name_or_path", None)
        else:
            choice = resolve_reader(self.settings)
            fallback = choice.kind == "sentence"
            reader_name = (f"extractive:{choice.model}" if not fallback
                           else f"sentence:{self.settings.embedding_model}")
            notice = choice.reason
            model_path = choice.model
        threshold: Any = self.settings.abstain_threshold
        if threshold is None:
            threshold = "the reader's calibrated margin (0 when it has none)"
            if self._reader is not None and getattr(self._reader, "loaded", False):
                threshold = self._reader.abstain_threshold
        reranker = self.settings.reranker
        if self._retriever is not None and getattr(self._retriever, "reranker", None) is None:
            reranker = None
        return {
            "reader": reader_name,
            "reader_label": _reader_label(reader_name, fallback, model_path),
            "reader_fallback": fallback,
            "reader_notice": notice,
            "configured_reader": self.settings.reader,
            "reranker": reranker,
            "cross_encoder": self.settings.cross_encoder,
            "encoder": self.settings.embedding_model,
            "retriever": "hybrid: bm25 + dense + sentence windows + sentences, "
                         + ("reciprocal rank fusion" if self.settings.fusion == "rrf" else "weighted z-score fusion"),
            "top_k": self.settings.top_k,
            "abstain_threshold": threshold,
        }

    # --- asking --------------------------------------------------------------------------------------
    def ask(self, book_id: str, question: str, upto_chapter: int | None = None, top_k: int | None = None) -> Answer:
        """Answer ``question`` from book ``book_id``, reading no further than ``upto_chapter``."""
        # 1. Check inputs (nothing is loaded or changed before they pass).
        question = check_question(question, self.settings)
        book = self.store.get_book(book_id)  # unknown id -> VignetteError listing the stored books
        limit = check_chapter_limit(upto_chapter, book)
        top_k = self.settings.top_k if top_k is None else int(top_k)
        if top_k < 1:
            raise VignetteError(f"The number of passages to read must be 1 or more, not {top_k}.")

        with _torch_threads(self.settings.query_threads):
            return self._answer(book, book_id, question, limit, top_k)

    def _answer(self, book: Book, book_id: str, question: str, limit: int | None, top_k: int) -> Answer:
        # 2. Does the book (up to the limit) mention what the question asks about? If not, no passage
        # can answer it, however close the best one looks (retrieval/grounding.py).
        t = time.perf_counter()
        if self.settings.grounding_threshold is not None and self.store is not None:
            from retrieval.grounding import explain

            missing = self.vocabulary(book_id).unmentioned(question, limit, self.settings.grounding_threshold)
            if missing:
                self.last_timings = {"check": (time.perf_counter() - t) * 1000.0, "retrieve": 0.0, "rerank": 0.0,
                                     "read": 0.0}
                return Answer(question=question, answer="", abstained=True, evidence=[], reader="grounding",
                              why=explain(missing, limit))
        check_ms = (time.perf_counter() - t) * 1000.0

        # 3. Retrieve (and re-rank): the spoiler limit is applied inside the retriever.
        retriever = self.retriever
        timers = []
        for attr in ("reranker", "cross"):  # the poly-encoder and the cross-encoder: the "rerank" stage
            if getattr(retriever, attr, None) is not None:
                if not isinstance(getattr(retriever, attr), _TimedReranker):
                    setattr(retriever, attr, _TimedReranker(getattr(retriever, attr)))
                timers.append(getattr(retriever, attr))
                timers[-1].seconds = 0.0
        t0 = time.perf_counter()
        reader = self.reader
        depth = self.settings.reader_rerank_depth if isinstance(reader, PassageJudge) else 0
        candidates = retriever.retrieve(book_id, question, top_k=max(top_k, depth), max_chapter=limit)
        rerank_s = sum(timer.seconds for timer in timers)
        if depth > 0:  # the reader re-ranks the best `reader_rerank_depth` by its confidence, then reads them
            t = time.perf_counter()
            candidates = rerank_by_reader(reader, question, candidates, depth=depth,
                                          weight=self.settings.reader_rerank_weight)[:depth]
            rerank_s += time.perf_counter() - t
        t1 = time.perf_counter()

        # 4. Read: a QA reader reads its best `max_passages` (each costs a forward pass); the sentence
        # fallback's sentence vectors are cached per book, so it looks at all of them.
        most = getattr(reader, "max_passages", None)
        answer = reader.read(question, candidates[: max(1, most)] if most and depth <= 0 else candidates, book)
        t2 = time.perf_counter()
        self.last_timings = {
            "check": check_ms,
            "retrieve": (t1 - t0 - rerank_s) * 1000.0,
            "rerank": rerank_s * 1000.0,
            "read": (t2 - t1) * 1000.0,
        }
        if limit is not None and any(e.chapter > limit for e in answer.evidence):  # pragma: no cover - defence
            raise VignetteError("Internal error: an answer came from beyond the chapter limit; it was withheld.")
        return answer
