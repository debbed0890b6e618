"""A book's sentences, embedded once: the units of the sentence and window views and of the sentence reader.

Every passage is split into sentences (:func:`retrieval.text.split_sentences`, as the sentence view always
did); a sentence shared by two overlapping passages is one unit, kept once. Each unit is encoded once, at
ingest. Everything else that used to be a pass of its own over the book is derived from these vectors:

- the **sentence view** scores a passage by its best sentence: the vectors themselves;
- the **window view** scores a passage by its best run of ``size`` consecutive sentences: the normalised
  mean of their vectors (``derive_windows``), instead of encoding each run again (a sentence sat in three
  3-sentence windows, so that view alone cost three passes over the text);
- the **whole-passage vectors** in Chroma, with ``settings.passage_vectors = "sentence-mean"``: the
  normalised mean of the passage's sentences;
- the **sentence reader** (:class:`retrieval.reader.SentenceReader`) reads the same vectors.

On FairytaleQA val the derived views score as the encoded ones did (README, Results). A sentence is short,
so one pass over the sentences costs about what one pass over the passages does.

On disk (``sentences.npz`` in the book's folder): ``vectors`` (S, d) float16, ``spans`` (S, 2) book offsets
sorted by start, and for passage ``r`` (reading order) its sentence rows ``members[offsets[r]:offsets[r+1]]``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vignette.documents import Passage

SENTENCES_FILE = "sentences.npz"


@dataclass
class SentenceTable:
    spans: np.ndarray  # (S, 2) int64: book offsets of each unit, sorted by start
    members: np.ndarray  # (M,) int32: sentence rows of every passage, passage after passage
    offsets: np.ndarray  # (P + 1,) int64: passage r's rows are members[offsets[r]:offsets[r + 1]]
    vectors: np.ndarray | None = None  # (S, d) float32 unit vectors; None until encoded
    texts: list[str] | None = None  # each unit's text, when built from passages (not stored)
    weights: np.ndarray | None = None  # (S,) each unit's length in word pieces: the weight of its vector in a mean

    def __len__(self) -> int:
        return int(len(self.spans))

    def rows_of(self, passage_row: int) -> np.ndarray:
        return self.members[self.offsets[passage_row]:self.offsets[passage_row + 1]]


def sentence_units(passages: Sequence[Passage]) -> SentenceTable:
    """The sentences of every passage (book offsets), each distinct span once; no vectors yet."""
    from retrieval.text import split_sentences

    # A unit is its offsets and its text: passages held in memory need not carry distinct offsets.
    per_passage: list[list[tuple[int, int, str]]] = []
    for p in passages:
        spans = split_sentences(p.text)
        if not spans and p.text.strip():  # nothing a splitter calls a sentence: the passage is one unit
            spans = [(0, len(p.text))]
        per_passage.append([(p.start + s, p.start + e, p.text[s:e]) for s, e in spans])
    unique = sorted({unit for units in per_passage for unit in units})
    row = {unit: i for i, unit in enumerate(unique)}
    members = np.asarray([row[unit] for units in per_passage for unit in units], dtype=np.int32)
    offsets = np.zeros(len(passages) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(units) for units in per_passage])
    return SentenceTable(np.asarray([(a, b) for a, b, _ in unique], dtype=np.int64).reshape(-1, 2), members,
                         offsets, texts=[t for _, _, t in unique])


def units_digest(fingerprint: str, passages: Sequence[Passage]) -> str:
    """Identifies the units of ``passages`` under an encoder: stored vectors are reused only while it matches."""
    digest = hashlib.sha1(fingerprint.encode())
    for p in passages:
        digest.update(f"{p.passage_id}\x00{p.start}\x00{len(p.text)}\x01".encode())
    return digest.hexdigest()[:16]


def normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def count_tokens(tokenizer, texts: Sequence[str]) -> np.ndarray:
    """Each text's length in the encoder's word pieces (no special tokens), in one batched call."""
    if not texts:
        return np.zeros(0, dtype=np.int32)
    ids = tokenizer(list(texts), add_special_tokens=False, truncation=False, return_attention_mask=False,
                    return_token_type_ids=False, verbose=False)["input_ids"]
    return np.asarray([max(1, len(x)) for x in ids], dtype=np.int32)


def derive_windows(table: SentenceTable, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, owners): every run of ``size`` consecutive sentences of each passage (stride one; a
    passage of ``size`` sentences or fewer is one run), as the normalised mean of their vectors weighted by
    their lengths in word pieces (the encoder mean-pools over word pieces, so a long sentence weighs more in
    the encoding of a window than a short one), and the passage row each run belongs to. ``size`` 1 gives
    the sentences themselves. On FairytaleQA val the product's fusion scored R@1 62.1 / R@5 89.8 with these
    windows, 60.7 / 88.7 with a plain mean, and 62.0 / 89.8 with encoded windows."""
    if table.vectors is None:
        raise ValueError("the sentence table has no vectors yet")
    size = max(1, int(size))
    # Every window as a range [start, end) of member rows, passage after passage (vectorised: a novel has
    # thousands of passages, and this runs on the first question).
    counts = np.diff(table.offsets)
    n_windows = np.where(counts > size, counts - size + 1, np.minimum(counts, 1))
    owners = np.repeat(np.arange(len(counts), dtype=np.int64), n_windows)
    within = np.arange(int(n_windows.sum()), dtype=np.int64) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    starts_a = table.offsets[:-1][owners] + within
    ends_a = np.where(counts[owners] > size, starts_a + size, table.offsets[1:][owners])
    dim = table.vectors.shape[1] if table.vectors.ndim == 2 else 0
    if size == 1:
        vectors = table.vectors[table.members[starts_a]].astype(np.float32) if len(starts_a) else \
            np.zeros((0, dim), np.float32)
        return vectors, owners
    weights = np.asarray(table.weights if table.weights is not None else np.ones(len(table.vectors)), np.float32)
    longest = int((ends_a - starts_a).max()) if len(starts_a) else 0
    if longest <= 8:  # short windows: a few weighted gathers, in float32
        sums = np.zeros((len(starts_a), dim), np.float32)
        for k in range(longest):
            rows = starts_a + k
            inside = rows < ends_a
            members = table.members[rows[inside]]
            sums[inside] += table.vectors[members].astype(np.float32) * weights[members][:, None]
        return normalise(sums), owners
    # long runs (a passage's mean): prefix sums in float64, so differences keep their precision
    member_vectors = table.vectors[table.members].astype(np.float64) * weights[table.members][:, None]
    csum = np.zeros((len(member_vectors) + 1, dim))
    if len(member_vectors):
        csum[1:] = np.cumsum(member_vectors, axis=0)
    vectors = normalise(csum[ends_a] - csum[starts_a])
    return vectors, owners


def passage_means(table: SentenceTable) -> np.ndarray:
    """Each passage's vector as the normalised mean of its sentences' (one row per passage)."""
    vectors, owners = derive_windows(table, size=1 << 30)
    out = np.zeros((len(table.offsets) - 1, table.vectors.shape[1]), dtype=np.float32)
    out[owners] = vectors
    return out


def save_table(path: Path, table: SentenceTable) -> None:
    """Write ``table`` (vectors as float16) to ``path`` atomically."""
    tmp = path.with_name(path.name + ".tmp.npz")
    with open(tmp, "wb") as fh:
        np.savez(fh, spans=table.spans, members=table.members, offsets=table.offsets,
                 vectors=np.asarray(table.vectors, dtype=np.float16),
                 weights=np.asarray(table.weights if table.weights is not None else np.ones(len(table.spans)),
                                    dtype=np.int32))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_table(path: Path) -> SentenceTable:
    with np.load(path) as data:
        return SentenceTable(spans=data["spans"], members=data["members"], offsets=data["offsets"],
                             vectors=data["vectors"].astype(np.float32), weights=data["weights"])


def encode_in_parts(texts: Sequence[str], encode: Callable[[list[str]], np.ndarray], folder: Path, step: int,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """``encode(texts)`` in steps of ``step`` texts, each step kept in ``folder`` as it finishes, so a run
    killed midway resumes after its last finished step (the folder must be specific to these texts).
    Longest texts first within the whole job (as SentenceTransformer.encode orders its batches), so each
    step pads little. Returns float32 rows in the order of ``texts``."""
    folder.mkdir(parents=True, exist_ok=True)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    step = max(1, int(step))
    parts = []
    done = 0
    for n, i in enumerate(range(0, len(order), step)):
        chunk = order[i:i + step]
        part = folder / f"part-{n:05d}.npy"
        vectors = None
        if part.is_file():
            try:
                vectors = np.load(part)
                if len(vectors) != len(chunk):
                    vectors = None
            except (OSError, ValueError):
                vectors = None
        if vectors is None:
            vectors = np.asarray(encode([texts[j] for j in chunk]), dtype=np.float16)
            tmp = folder / f".part-{n:05d}.tmp.npy"
            with open(tmp, "wb") as fh:
                np.save(fh, vectors)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, part)
        parts.append(vectors)
        done += len(chunk)
        if progress is not None:
            progress(done, len(texts))
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    stacked = np.concatenate(parts).astype(np.float32)
    out = np.empty_like(stacked)
    out[np.asarray(order)] = stacked
    return out


def part_count(folder: Path) -> int:
    """How many finished steps ``folder`` holds (to report a resumed ingest)."""
    return len(list(folder.glob("part-*.npy"))) if folder.is_dir() else 0
