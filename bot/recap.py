"""The story so far: an extractive recap of chapters 1..N, every sentence the book's own and cited.

::

    recap = build_recap(book, store.encode, upto_chapter=5, cache_dir=store.book_dir(book_id))
    recap.to_text()     # "Chapter 1: ..." then the chosen sentences, each marked with its chapter
    recap.to_dict()     # JSON for `python -m bot recap --json` and the app's /recap endpoint

How sentences are chosen (``method``):

* ``"mmr"`` (the default): each chapter's sentences are embedded with the book's encoder (MiniLM); a
  sentence's *centrality* is its cosine to the chapter's centroid (the mean of its unit vectors, which is
  also its mean similarity to every other sentence: the degree centrality of LexRank, Erkan & Radev 2004,
  without the threshold). Sentences are then picked by maximal marginal relevance (Carbonell & Goldstein
  1998): ``lambda * centrality - (1 - lambda) * max cosine to the sentences already picked``, so the
  recap does not say the same thing twice. Optionally a sentence that opens with a pronoun ("She
  looked at...") loses ``dangling_penalty`` of its centrality (off by default: it measured no better on
  held-out books). The picked sentences are shown in the book's order.
* ``"centroid"``: centrality alone (MMR with lambda 1).
* ``"lead"``: the first sentences of each chapter (the classic news baseline).
* ``"random"``: a seeded random choice (the floor).

``eval/recap_quality.py`` measures them against each other (see the README). Only chapters 1..N are read:
nothing after the limit is split, embedded or shown. A chat model (``settings.chat_model``) may rewrite
each chapter's sentences into prose (:func:`rewrite_recap`); its text keeps the chapter citation and is
used only when its words come from the chapter's sentences, otherwise the extractive recap stands.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vignette.documents import Book, Chapter
from vignette.errors import VignetteError

log = logging.getLogger(__name__)

METHODS = ("mmr", "centroid", "lead", "random")
DEFAULT_SENTENCES = 3  # per chapter: enough for the chapter's events, short enough to read at a glance
DEFAULT_LAMBDA = 0.7  # MMR's weight of centrality against redundancy (see the README's recap table)
DEFAULT_DANGLING = 0.0  # centrality taken off a sentence that opens with a pronoun (see dangling()); 0.1 measured no better on held-out books (README)
MIN_WORDS = 6  # shorter sentences ("Yes," said Wren.) carry no event of their own
MAX_WORDS = 80  # a very long sentence is a paragraph of its own; it would crowd the recap out
CACHE_DIR = "recap"


@dataclass
class RecapSentence:
    text: str  # verbatim from the book (white space collapsed)
    chapter: int
    chapter_title: str
    start: int  # offsets in Book.text
    end: int
    score: float  # its centrality (mmr, centroid), or 0 for lead/random

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChapterRecap:
    chapter: int
    title: str
    sentences: list[RecapSentence]
    prose: str | None = None  # a chat model's rewrite of the sentences, when one was asked for and kept

    def to_dict(self) -> dict[str, Any]:
        return {"chapter": self.chapter, "title": self.title, "prose": self.prose,
                "sentences": [s.to_dict() for s in self.sentences]}


@dataclass
class Recap:
    book_id: str
    title: str
    upto_chapter: int  # the last chapter read (the whole book when no limit was given)
    method: str
    chapters: list[ChapterRecap]
    writer: str = "extractive"  # "extractive" or "chat:<model>"
    notes: list[str] = field(default_factory=list)

    def sentences(self) -> list[RecapSentence]:
        return [s for c in self.chapters for s in c.sentences]

    def to_dict(self) -> dict[str, Any]:
        return {"book_id": self.book_id, "title": self.title, "upto_chapter": self.upto_chapter,
                "method": self.method, "writer": self.writer, "notes": list(self.notes),
                "chapters": [c.to_dict() for c in self.chapters]}

    def to_text(self) -> str:
        """Plain text: a heading per chapter, then its sentences (or prose), each cited with its chapter."""
        from bot.agent import chapter_label

        lines = [f"The story so far: \u201c{self.title}\u201d, chapters 1\u2013{self.upto_chapter}", ""]
        for c in self.chapters:
            label = chapter_label({"chapter": c.chapter, "chapter_title": c.title})
            lines.append(label)
            if c.prose:
                lines.append(f"{c.prose} [ch. {c.chapter}]")
            else:
                lines.extend(f"\u2022 {s.text} [ch. {s.chapter}]" for s in c.sentences)
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------------------
# Choosing sentences
# --------------------------------------------------------------------------------------------------------


def chapter_limit(book: Book, upto_chapter: int | None) -> int:
    """The last chapter a recap may read: ``upto_chapter`` checked against the book (None: all of it)."""
    from retrieval.pipeline import check_chapter_limit

    if not book.chapters:
        raise VignetteError(f"{book.title!r} has no chapters to recap.")
    limit = check_chapter_limit(upto_chapter, book)
    return limit if limit is not None else max(c.number for c in book.chapters)


def candidate_sentences(book: Book, chapter: Chapter) -> list[tuple[int, int]]:
    """The chapter's sentences that can stand in a recap: not its heading, not too short or too long."""
    from retrieval.text import split_sentences

    heading = " ".join(chapter.title.split()).lower()
    out = []
    for s, e in split_sentences(book.text, chapter.start, chapter.end):
        text = " ".join(book.text[s:e].split())
        words = len(text.split())
        if s == chapter.start or text.lower() == heading or heading.endswith(text.lower()):
            continue
        if MIN_WORDS <= words <= MAX_WORDS:
            out.append((s, e))
    return out


_DANGLING = frozenset("he she it they him her his hers its their them this that these those then there".split())


def dangling(text: str) -> bool:
    """Whether a sentence opens with a pronoun or a pointer back ("She looked at...", "Then..."): out of
    its paragraph, a reader cannot tell who or what it is about."""
    m = re.match(r"[\"'\u201c\u2018(\s]*([A-Za-z]+)", text)
    return bool(m) and m.group(1).lower() in _DANGLING


def select(vectors: np.ndarray, k: int, method: str = "mmr", lam: float = DEFAULT_LAMBDA,
           seed: int = 0, penalty: np.ndarray | None = None) -> list[tuple[int, float]]:
    """Indices of the ``k`` sentences to keep (with their centrality), best first; see the module docstring.
    ``penalty`` (one value per sentence) is taken off the centrality before choosing."""
    n = len(vectors)
    k = min(k, n)
    if k <= 0:
        return []
    if method == "lead":
        return [(i, 0.0) for i in range(k)]
    if method == "random":
        return [(i, 0.0) for i in random.Random(seed).sample(range(n), k)]
    if method not in ("mmr", "centroid"):
        raise VignetteError(f"Unknown recap method {method!r}.", hint=f"Choose one of: {', '.join(METHODS)}.")
    centroid = vectors.mean(axis=0)
    norm = float(np.linalg.norm(centroid)) or 1.0
    centrality = vectors @ (centroid / norm)
    wanted = centrality - penalty if penalty is not None else centrality
    if method == "centroid":
        lam = 1.0
    chosen: list[int] = []
    best_sim = np.full(n, -np.inf)
    for _ in range(k):
        redundancy = np.where(np.isfinite(best_sim), best_sim, 0.0)
        score = lam * wanted - (1.0 - lam) * redundancy
        score[chosen] = -np.inf
        i = int(np.argmax(score))
        chosen.append(i)
        sims = vectors @ vectors[i]
        best_sim = np.maximum(best_sim, sims)
    return [(i, float(centrality[i])) for i in chosen]


def _encode_cached(encode: Callable[[Sequence[str]], np.ndarray], texts: list[str], cache: Path | None,
                   key: str) -> np.ndarray:
    """Sentence vectors, kept in the book's folder (one file per chapter) so a second recap is instant."""
    digest = hashlib.sha1(("\n".join(texts) + "\0" + key).encode("utf-8")).hexdigest()[:16]
    path = cache / f"{digest}.npy" if cache is not None else None
    if path is not None and path.is_file():
        try:
            vectors = np.load(path)
            if vectors.shape[0] == len(texts):
                return vectors
        except (OSError, ValueError):
            pass
    vectors = np.asarray(encode(texts), dtype=np.float32) if texts else np.zeros((0, 1), np.float32)
    if path is not None and len(texts):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp.npy")
            np.save(tmp, vectors)
            tmp.replace(path)
        except OSError as err:  # a read-only data dir: the recap still works, only slower next time
            log.warning("could not cache recap vectors: %s", err)
    return vectors


def build_recap(book: Book, encode: Callable[[Sequence[str]], np.ndarray] | None, upto_chapter: int | None = None,
                *, sentences: int = DEFAULT_SENTENCES, method: str = "mmr", lam: float = DEFAULT_LAMBDA,
                cache_dir: str | Path | None = None, model_key: str = "", seed: int = 0,
                dangling_penalty: float = DEFAULT_DANGLING) -> Recap:
    """The recap of chapters 1..``upto_chapter`` of ``book`` (see the module docstring).

    ``encode(texts) -> unit vectors`` is the book's encoder (``BookStore.encode``); ``lead`` and ``random``
    need none. ``sentences`` per chapter (a chapter with fewer keeps them all).
    """
    # 1. Check inputs
    if method not in METHODS:
        raise VignetteError(f"Unknown recap method {method!r}.", hint=f"Choose one of: {', '.join(METHODS)}.")
    if not isinstance(sentences, int) or sentences < 1 or sentences > 50:
        raise VignetteError(f"The number of sentences per chapter must be between 1 and 50, not {sentences!r}.")
    if not 0.0 <= float(lam) <= 1.0:
        raise VignetteError(f"The MMR weight must be between 0 and 1, not {lam!r}.")
    limit = chapter_limit(book, upto_chapter)
    if method in ("mmr", "centroid") and encode is None:
        raise VignetteError("This recap method needs the sentence encoder.")
    cache = Path(cache_dir) / CACHE_DIR if cache_dir is not None else None

    # 2. Each chapter up to the limit: its candidate sentences, embedded, then chosen
    chapters = []
    for chapter in (c for c in book.chapters if c.number <= limit):
        spans = candidate_sentences(book, chapter)
        texts = [" ".join(book.text[s:e].split()) for s, e in spans]
        if method in ("mmr", "centroid") and texts:
            vectors = _encode_cached(encode, texts, cache, model_key)
        else:
            vectors = np.zeros((len(texts), 1), np.float32)
        penalty = np.array([dangling_penalty * dangling(t) for t in texts], dtype=np.float32)
        picked = select(vectors, sentences, method, lam, seed=seed + chapter.number, penalty=penalty)
        chosen = [RecapSentence(texts[i], chapter.number, chapter.title, spans[i][0], spans[i][1], round(c, 4))
                  for i, c in sorted(picked)]  # in the book's order
        chapters.append(ChapterRecap(chapter.number, chapter.title, chosen))
    recap = Recap(book.book_id, book.title, limit, method, chapters)
    # 3. A defence that costs nothing: no sentence may come from after the limit
    end = max(c.end for c in book.chapters if c.number <= limit)
    assert all(s.chapter <= limit and s.end <= end for s in recap.sentences())
    return recap


# --------------------------------------------------------------------------------------------------------
# Optional prose, by a chat model
# --------------------------------------------------------------------------------------------------------

REWRITE_SYSTEM = ("You retell a chapter of a novel in two or three plain sentences of prose, using only the "
                  "sentences given. Do not add names, events or facts that are not in them. Answer with the "
                  "retelling only.")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*")
_FUNCTION = set("""a an the and or but of to in on at by for with from as is was were be been being it its he
she they them his her their him we you i me my our your that this these those there here then than so not no
had has have did do does who whom which what when where why how into onto upon over under up down out off
all any some one two both each also very just only again still after before while because if though""".split())


def _grounded(prose: str, source: str, min_share: float = 0.8) -> bool:
    """Most of the prose's content words must come from the chapter's sentences: a guard against a model
    that invents (or brings in what it knows of later chapters)."""
    vocab = {w.lower() for w in _WORD_RE.findall(source)}
    words = [w.lower() for w in _WORD_RE.findall(prose) if w.lower() not in _FUNCTION]
    if not words:
        return False
    return sum(w in vocab or w.rstrip("s") in vocab for w in words) / len(words) >= min_share


def rewrite_recap(recap: Recap, model: Any, spec: str = "") -> Recap:
    """Ask ``model`` (a LangChain chat model) to retell each chapter's sentences as prose; a chapter keeps
    its sentences when the model fails or strays from them. The citations stay: each prose paragraph is
    its chapter's."""
    from langchain_core.messages import HumanMessage, SystemMessage

    kept = 0
    for c in recap.chapters:
        if not c.sentences:
            continue
        source = " ".join(s.text for s in c.sentences)
        try:
            message = model.invoke([SystemMessage(REWRITE_SYSTEM), HumanMessage(source)])
            raw = message.content if hasattr(message, "content") else str(message)
            if isinstance(raw, list):
                raw = " ".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in raw)
        except Exception as err:  # noqa: BLE001 - a server that is down: the extractive recap stands
            recap.notes.append(f"The chat model failed ({type(err).__name__}); the recap is the book's own sentences.")
            break
        prose = " ".join(str(raw).split())
        if prose and len(prose) <= 2 * len(source) + 200 and _grounded(prose, source):
            c.prose = prose
            kept += 1
    if kept:
        recap.writer = f"chat:{spec or type(model).__name__}"
    if kept < sum(1 for c in recap.chapters if c.sentences):
        recap.notes.append(f"{kept} chapter(s) retold as prose; the others keep the book's own sentences "
                           "(the model's text strayed from them or failed).")
    return recap


def recap_for(companion: Any, book_id: str, upto_chapter: int | None, *, sentences: int = DEFAULT_SENTENCES,
              method: str = "mmr", prose: bool = False) -> Recap:
    """The recap through a :class:`~bot.companion.Companion` (its store's encoder and cache folder); with
    ``prose`` and a configured chat model, retold as prose."""
    store = companion.store
    book = companion.book(book_id)
    recap = build_recap(book, store.encode, upto_chapter, sentences=sentences, method=method,
                        cache_dir=store.book_dir(book_id), model_key=companion.settings.embedding_model)
    if prose:
        spec = companion.settings.chat_model
        if not spec:
            recap.notes.append("No chat model is configured (VIGNETTE_CHAT_MODEL), so the recap is the book's "
                               "own sentences.")
            return recap
        from bot.followups import load_chat_model

        try:
            model = companion._chat_model or load_chat_model(spec)
        except VignetteError as err:
            recap.notes.append(f"The chat model is unavailable ({err.message}); the recap is the book's own "
                               "sentences.")
            return recap
        rewrite_recap(recap, model, spec)
    return recap


def recap_json(recap: Recap) -> str:
    return json.dumps(recap.to_dict(), ensure_ascii=False)
