"""Does the book mention what the question asks about? An abstain check that needs no QA model.

"Who was the mayor of Saltmarrow?" - if no passage (up to the reader's spoiler limit) ever uses the word
*mayor*, nor a word close to it, the book cannot say who the mayor was, however similar its best sentence
looks. Passage retrieval always returns something and a sentence reader always has a best sentence; this
check is what lets them say "the book doesn't say" and why.

A question word counts only when it is:

- a **content word** of a **factoid question** (who / what / which / where / when / how many ...); "why"
  and "how did she feel" questions are answered by inference, in words the book need not use;
- used as a **noun**: after a determiner or a possessive ("the mayor", "Dunmore's wife", "for
  breakfast"), one word after them when the question has no do-support ("Mrs Vane's favourite song"; in
  "what did the Queen shout" the word after the subject is a verb), or a capitalised name ("the March
  Hare" before chapter 7);
- **absent** from the book up to the limit in every simple form (plural, -ed, -ing; a hyphenated word
  counts when each part is there), and
- **far from every word the book does use**: its cosine with the nearest one (the bi-encoder's
  embeddings of single words) is below ``threshold``, so "neighbors" finds "neighbour" and "start" finds
  "begin".

On FairytaleQA val (1,025 questions, all answerable) it wrongly flags 1.3% at the default threshold 0.7
(``python -m eval.fairytaleqa ... --grounding``); on the scripted conversations it catches 7 of the 11
unanswerable turns by itself.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from retrieval.sparse import STOPWORDS, s_stem
from vignette.documents import Passage

DEFAULT_THRESHOLD = 0.7
_DETERMINERS = frozenset("the a an his her its their my your our this that these those for of any some no many much".split())
_DO_AUX = frozenset("do does did will would can could should shall may might must to".split())
_BE_HAVE = frozenset("is are was were be been being am has have had having done".split())
# Words that frame a question rather than name what it is about.
_GENERIC = frozenset("""person people thing things kind sort type way time times place name names reason first
second third last one ones someone something anything everything anyone everyone somebody story book chapter
end beginning start part""".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*")
_TEXT_WORD = re.compile(r"[A-Za-z]+")
_NOT_FACTOID = re.compile(r"^\s*(?:and\s+|so\s+|but\s+)?(?:why\b|what\s+(?:happened|will\s+happen|would\s+happen)\b"
                          r"|how\b(?!\s+(?:many|much|old|long|far|tall|high|often)\b))", re.IGNORECASE)


@dataclass(frozen=True)
class Unmentioned:
    word: str  # as the question has it, lower case
    nearest: str  # the book's closest word (up to the limit)
    similarity: float  # their cosine


def _forms(key: str) -> set[str]:
    """Simple inflections of a folded word and of its base: plural, past and -ing forms, with doubled
    consonants ("painting" -> paint, painted; "stopped" -> stop, stopping)."""
    bases = {key}
    if key.endswith("ing") and len(key) > 5:
        bases |= {key[:-3], key[:-3] + "e", key[:-4]}
    if key.endswith("ed") and len(key) > 4:
        bases |= {key[:-2], key[:-1], key[:-3]}
    forms = set()
    for b in bases:
        forms |= {b, b + "s", b + "e", b + "es", b + "ed", b + "d", b + "ing", b[:-1] + "ing",
                  b + b[-1:] + "ed", b + b[-1:] + "ing"}
    return forms


def _possessive(word: str) -> bool:
    return word.lower().endswith(("'s", "\u2019s", "s'", "s\u2019"))


def candidate_nouns(question: str) -> list[str]:
    """The question's content words used as nouns (lower case, possessives stripped), for a factoid
    question; [] for why / how / what-happened questions."""
    if _NOT_FACTOID.match(question):
        return []
    words = _WORD.findall(question)
    out: list[str] = []
    for i, raw in enumerate(words):
        if "n't" in raw or "n\u2019t" in raw:
            continue
        core = re.sub(r"['\u2019]s?$", "", raw)
        w = core.lower()
        if len(w) < 3 or w in STOPWORDS or w in _GENERIC or w in _DO_AUX or w in _BE_HAVE or w in _DETERMINERS:
            continue
        prev = words[i - 1] if i > 0 else ""
        prev2 = words[i - 2] if i > 1 else ""
        noun = (i > 0 and raw[0].isupper()) or prev.lower() in _DETERMINERS or _possessive(prev)
        if not noun and (prev2.lower() in _DETERMINERS or _possessive(prev2)) and prev.lower() not in STOPWORDS:
            noun = not any(x.lower() in _DO_AUX for x in words[:i])
        if noun:
            out.append(w)
    return out


class BookVocabulary:
    """Every word of a book with the first chapter it appears in; word vectors on demand (cached)."""

    def __init__(self, passages: Sequence[Passage], encode: Callable[[list[str]], np.ndarray],
                 cache_dir: str | Path | None = None, fingerprint: str = ""):
        self._encode = encode
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.fingerprint = fingerprint
        first: dict[str, int] = {}
        surface: dict[str, str] = {}
        for p in passages:
            for raw in _TEXT_WORD.findall(p.text):
                w = raw.lower()
                if len(w) < 3 or w in STOPWORDS:
                    continue
                key = s_stem(w)
                if key not in first or p.chapter < first[key]:
                    first[key] = p.chapter
                surface.setdefault(key, w)
        self._index(first, surface)

    def _index(self, first: dict[str, int], surface: dict[str, str]) -> None:
        self.first = first
        self.keys = sorted(first)
        self._surface = surface
        self._chapters = np.asarray([first[k] for k in self.keys], dtype=np.int32)
        self._vectors: np.ndarray | None = None

    @classmethod
    def load(cls, folder: str | Path, encode: Callable[[list[str]], np.ndarray],
             fingerprint: str = "") -> "BookVocabulary | None":
        """The vocabulary a store saved with the book at ingest (``save_vectors``), without reading the book's
        words again; None when there is none for this encoder."""
        import json

        try:
            meta = json.loads((Path(folder) / "vocabulary.json").read_text(encoding="utf-8"))
            keys, first, surface = meta["keys"], meta["first"], meta["surface"]
        except (OSError, ValueError, KeyError):
            return None
        vocab = cls.__new__(cls)
        vocab._encode, vocab.cache_dir, vocab.fingerprint = encode, Path(folder), fingerprint
        vocab._index(dict(zip(keys, first)), dict(zip(keys, surface)))
        return vocab if vocab._digest() == meta.get("hash") else None

    def __len__(self) -> int:
        return len(self.keys)

    def mentions(self, word: str, max_chapter: int | None = None) -> bool:
        """Whether the book (up to ``max_chapter``) uses ``word`` in some simple form."""
        parts = [s_stem(x) for x in word.lower().split("-") if len(x) >= 3 and x not in STOPWORDS]
        if not parts:
            return True

        def seen(key: str) -> bool:
            return any(f in self.first and (max_chapter is None or self.first[f] <= max_chapter) for f in _forms(key))

        return all(seen(k) for k in parts)

    def words(self) -> list[str]:
        """The words whose vectors :meth:`nearest` compares (one surface form per folded word)."""
        return [self._surface[k] for k in self.keys]

    def _digest(self) -> str:
        digest = hashlib.sha1(self.fingerprint.encode())
        digest.update("\x00".join(self.words()).encode())
        return digest.hexdigest()[:16]

    def vectors(self) -> np.ndarray:
        """The words' vectors: stored with the book at ingest (``vocabulary.npy``), else encoded now and
        kept in ``cache_dir``."""
        if self._vectors is None:
            from retrieval.hybrid import cached_vectors

            self._vectors = cached_vectors(self.cache_dir, "vocabulary", self._digest(), self.words(), self._encode)
        return self._vectors

    def save_vectors(self, folder: str | Path, vectors: np.ndarray) -> None:
        """Keep ``vectors`` (of :meth:`words`, float16 on disk) in ``folder`` where :meth:`vectors` finds them."""
        from retrieval.hybrid import save_vectors

        save_vectors(Path(folder), "vocabulary", self._digest(), vectors, np.float16,
                     extra={"keys": self.keys, "first": [self.first[k] for k in self.keys],
                            "surface": self.words()})

    def nearest(self, word: str, max_chapter: int | None = None) -> tuple[str, float]:
        """The book's word closest to ``word`` (cosine of the bi-encoder's vectors), up to the limit."""
        if not self.keys:
            return "", 0.0
        sims = self.vectors() @ np.asarray(self._encode([word])[0], dtype=np.float32)
        if max_chapter is not None:
            sims = np.where(self._chapters <= max_chapter, sims, -np.inf)
        j = int(np.argmax(sims))
        if not np.isfinite(sims[j]):
            return "", 0.0
        return self._surface[self.keys[j]], float(sims[j])

    def unmentioned(self, question: str, max_chapter: int | None = None,
                    threshold: float = DEFAULT_THRESHOLD) -> list[Unmentioned]:
        """What the question asks about that the book (up to ``max_chapter``) never mentions."""
        out = []
        for word in candidate_nouns(question):
            if self.mentions(word, max_chapter):
                continue
            nearest, sim = self.nearest(word, max_chapter)
            if sim < threshold:
                out.append(Unmentioned(word, nearest, round(sim, 3)))
        return out


def explain(missing: Sequence[Unmentioned], max_chapter: int | None = None) -> str:
    """"The book never mentions “mayor”." (in chapters 1-N under a spoiler limit)."""
    words = ", ".join(f"\u201c{m.word}\u201d" for m in missing)
    if max_chapter:
        return f"Chapters 1\u2013{max_chapter} never mention {words}."
    return f"The book never mentions {words}."
