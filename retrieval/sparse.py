"""Lexical retrieval: Okapi BM25 (Robertson & Zaragoza 2009) over a book's passages, with bm25s.

bm25s (Lù 2024) precomputes every token's per-document score into a sparse matrix, so a query is a sum
of a few rows. Tokens: lower-cased words, English stopwords removed (bm25s' list) and plurals folded by
Harman's S-stemmer (1991), so "letters" finds "letter" without a stemming dependency.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Sequence

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN

_WORD = re.compile(r"[^\W_]+")
STOPWORDS = frozenset(STOPWORDS_EN)  # English stopwords (bm25s' list): left out of BM25 and of word checks
_IDS_FILE = "ids.json"


def s_stem(word: str) -> str:
    """Harman's S-stemmer: fold the commonest English plurals ("ladies" -> "lady", "letters" -> "letter")."""
    if len(word) <= 3:
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without stopwords or single letters, plurals folded."""
    text = text.lower().replace("\u2019", "'")
    return [
        s_stem(w)
        for w in _WORD.findall(text)
        if w not in STOPWORDS and (len(w) > 1 or w.isdigit())
    ]


class BM25Index:
    """BM25 over passages identified by id; :meth:`search` returns ``(id, score)`` best first."""

    def __init__(self, ids: Sequence[str] = (), model: bm25s.BM25 | None = None):
        self.ids = list(ids)
        self._model = model
        self._position = {pid: i for i, pid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, ids: Sequence[str], texts: Sequence[str]) -> "BM25Index":
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
        model = bm25s.BM25()
        if ids:
            model.index([tokenize(t) for t in texts], show_progress=False)
        return cls(ids, model if ids else None)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self._model is not None:
            self._model.save(str(directory), show_progress=False)
        (directory / _IDS_FILE).write_text(json.dumps(self.ids), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> "BM25Index":
        directory = Path(directory)
        ids = json.loads((directory / _IDS_FILE).read_text(encoding="utf-8"))
        model = bm25s.BM25.load(str(directory), load_corpus=False) if ids else None
        return cls(ids, model)

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every passage for ``query`` (0 where no query word occurs)."""
        if self._model is None:
            return np.zeros(len(self.ids), dtype=np.float32)
        token_ids = self._model.get_tokens_ids(tokenize(query))
        if not token_ids:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._model.get_scores_from_ids(token_ids), dtype=np.float32)

    def search(self, query: str, k: int, allowed_ids: Iterable[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` best passages for ``query``, best first; only ``allowed_ids`` when given (the spoiler
        limit: passages up to a chapter). Passages sharing no word with the query are not returned."""
        scores = self.scores(query)
        if allowed_ids is not None:
            mask = np.zeros(len(self.ids), dtype=bool)
            for pid in allowed_ids:
                i = self._position.get(pid)
                if i is not None:
                    mask[i] = True
            scores = np.where(mask, scores, 0.0)
        hits = np.flatnonzero(scores > 0)
        if k <= 0 or hits.size == 0:
            return []
        order = hits[np.argsort(-scores[hits], kind="stable")][:k]
        return [(self.ids[i], float(scores[i])) for i in order]
