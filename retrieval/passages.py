"""Cut a book into passages that fit the bi-encoder's window, along sentence and paragraph bounds.

Sentence-window chunking as used by retrieval-augmented readers (e.g. the sentence splitter of
LlamaIndex and Haystack 2.x's ``DocumentSplitter(split_by="sentence")``), measured in the encoder's own
word pieces so that nothing is silently truncated:

1. Split each chapter into sentences (:func:`retrieval.text.split_sentences`) and count each sentence's
   word pieces once, with one batched call to the tokenizer (``add_special_tokens=False``).
2. Pack whole sentences greedily until the next would exceed ``max_tokens``. At a paragraph break, a
   passage that is already half full ends there rather than taking part of the next paragraph.
3. A sentence longer than ``max_tokens`` is cut at word bounds into pieces that fit.
4. The last ``overlap_sentences`` sentences of a passage open the next one, so a fact stated across a
   boundary is whole in at least one passage.
5. Unless the tokenizer splits on white space first (WordPiece, as in BERT and MiniLM, where a passage
   counts exactly the sum of its sentences), check every passage with the tokenizer (one more batched
   call); one that a merging tokenizer (byte-level BPE) counts longer is split again.

Text before the first chapter (title page, contents, preface) is not cut into passages: questions are
about the story. ``Passage.text`` is exactly ``book.text[start:end]``.

Passage ids are ``f"{book_id}-{sha1(book_id + text)[:16]}"``: re-ingesting the same book yields the same
ids (so adds nothing). The rare passage whose text repeats earlier in the same book (a refrain, a line of
asterisks) gets its occurrence number mixed into the hash, deterministically.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from retrieval.text import split_sentences
from vignette.documents import Book, Passage
from vignette.errors import VignetteError

__all__ = ["split_passages", "passage_id"]

_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")
_WORD = re.compile(r"\S+")
_SPACE = re.compile(r"\s+")


def passage_id(book_id: str, text: str, occurrence: int = 1) -> str:
    """Content-derived id; ``occurrence`` > 1 disambiguates a text repeated within one book."""
    key = book_id + text if occurrence == 1 else f"{book_id}{text}\x00{occurrence}"
    return f"{book_id}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:16]}"


def split_passages(
    book: Book, tokenizer: Any, max_tokens: int = 200, overlap_sentences: int = 1
) -> list[Passage]:
    """Passages of every chapter of ``book``, in book order; each at most ``max_tokens`` word pieces by
    ``tokenizer`` (any Hugging Face tokenizer; special tokens not counted)."""
    # 1. Check inputs.
    if max_tokens < 8:
        raise VignetteError(
            f"max_tokens={max_tokens} is too small for a passage; use at least 8 word pieces."
        )
    if overlap_sentences < 0:
        raise VignetteError(f"overlap_sentences={overlap_sentences} cannot be negative.")
    counter = _TokenCounter(tokenizer)

    # 2. Sentences of every chapter, counted in one batch.
    chapter_sentences = [split_sentences(book.text, ch.start, ch.end) for ch in book.chapters]
    flat = [book.text[s:e] for sents in chapter_sentences for s, e in sents]
    counts = iter(counter.count(flat))

    # 3. Pack each chapter.
    spans: list[tuple[int, int, int]] = []  # (chapter index, start, end)
    for ci, sents in enumerate(chapter_sentences):
        tokens = [next(counts) for _ in sents]
        for s, e in _pack(book.text, sents, tokens, max_tokens, overlap_sentences, counter):
            spans.append((ci, s, e))

    # 4. Verify with the tokenizer; re-split anything a merging tokenizer counts longer. A tokenizer that
    #    splits on white space before anything else (WordPiece: BERT, MiniLM) counts a passage exactly as
    #    the sum of its sentences, so the second pass is skipped for it.
    checked: list[tuple[int, int, int]] = spans
    if not counter.additive:
        lengths = counter.count([book.text[s:e] for _, s, e in spans])
        checked = []
        for (ci, s, e), n in zip(spans, lengths):
            if n <= max_tokens:
                checked.append((ci, s, e))
            else:
                checked.extend((ci, a, b) for a, b in _fit(book.text, s, e, max_tokens, counter))

    # 5. Passages with content-derived ids.
    seen: dict[str, int] = {}
    passages = []
    for ci, s, e in checked:
        ch = book.chapters[ci]
        text = book.text[s:e]
        seen[text] = seen.get(text, 0) + 1
        passages.append(
            Passage(
                passage_id=passage_id(book.book_id, text, seen[text]),
                book_id=book.book_id,
                chapter=ch.number,
                chapter_title=ch.title,
                start=s,
                end=e,
                text=text,
            )
        )
    return passages


class _TokenCounter:
    """Counts word pieces with any Hugging Face tokenizer, batched, without special tokens."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.additive = _splits_on_whitespace_first(tokenizer)

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        enc = self.tokenizer(
            texts,
            add_special_tokens=False,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,  # long sentences are counted on purpose; no "longer than max length" warning
        )
        return [len(ids) for ids in enc["input_ids"]]


_WHITESPACE_PRE_TOKENIZERS = ("BertPreTokenizer", "Whitespace", "WhitespaceSplit")


def _splits_on_whitespace_first(tokenizer: Any) -> bool:
    """Whether the (fast) tokenizer cuts text at white space before it splits words into pieces, so the
    count of "a b" is the count of "a" plus the count of "b". False when unsure (then passages are
    checked after packing)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    if pre is None:
        return False
    name = type(pre).__name__
    if name == "Sequence":
        first = re.match(r"Sequence\(pretokenizers=\[(\w+)", repr(pre))
        name = first.group(1) if first else ""
    return name in _WHITESPACE_PRE_TOKENIZERS


def _pack(
    text: str,
    sents: list[tuple[int, int]],
    tokens: list[int],
    max_tokens: int,
    overlap: int,
    counter: _TokenCounter,
) -> list[tuple[int, int]]:
    """Greedy packing of one chapter's sentences (module docstring, steps 2-4)."""
    n = len(sents)
    # A sentence starts a paragraph when a blank line separates it from the one before.
    para_start = [
        i == 0 or bool(_PARAGRAPH_BREAK.search(text, sents[i - 1][1], sents[i][0])) for i in range(n)
    ]
    out: list[tuple[int, int]] = []
    pos = 0  # first sentence not yet in any passage
    prev_begin = -1  # first sentence of the previous passage; -1 when the next one may not overlap
    while pos < n:
        # Overlap: carry up to `overlap` sentences from the previous passage, as many as fit.
        begin = pos
        if prev_begin >= 0 and overlap:
            begin = max(pos - overlap, prev_begin + 1)
            while begin < pos and sum(tokens[begin:pos]) + tokens[pos] > max_tokens:
                begin += 1
        if tokens[pos] > max_tokens:
            # A sentence too long for any passage: cut at word bounds; no overlap into or out of it.
            out.extend(_split_long(text, sents[pos], max_tokens, counter))
            pos += 1
            prev_begin = -1
            continue
        total = sum(tokens[begin:pos])
        j = pos
        while j < n and total + tokens[j] <= max_tokens:
            if j > pos and para_start[j] and total >= max_tokens // 2:
                # Prefer to end at a paragraph break when the whole next paragraph will not fit.
                k = j + 1
                while k < n and not para_start[k]:
                    k += 1
                if total + sum(tokens[j:k]) > max_tokens:
                    break
            total += tokens[j]
            j += 1
        out.append((sents[begin][0], sents[j - 1][1]))
        prev_begin = begin
        pos = j
    return out


def _split_long(
    text: str, span: tuple[int, int], max_tokens: int, counter: _TokenCounter
) -> list[tuple[int, int]]:
    """Cut one over-long sentence at word bounds into pieces of at most ``max_tokens`` word pieces."""
    s, e = span
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, s, e)]
    counts = counter.count([text[a:b] for a, b in words])
    pieces: list[tuple[int, int]] = []
    cur_start, cur_end, total = None, None, 0
    for (a, b), n in zip(words, counts):
        if n > max_tokens:
            # One "word" longer than a passage (a run of symbols): flush, then cut it by characters.
            if cur_start is not None:
                pieces.append((cur_start, cur_end))
                cur_start, total = None, 0
            pieces.extend(_fit(text, a, b, max_tokens, counter))
            continue
        if cur_start is not None and total + n > max_tokens:
            pieces.append((cur_start, cur_end))
            cur_start, total = None, 0
        if cur_start is None:
            cur_start = a
        cur_end, total = b, total + n
    if cur_start is not None:
        pieces.append((cur_start, cur_end))
    return pieces


def _fit(text: str, s: int, e: int, max_tokens: int, counter: _TokenCounter) -> list[tuple[int, int]]:
    """Halve ``text[s:e]`` until every piece fits: at the white space nearest the middle, else mid-word."""
    if counter.count([text[s:e]])[0] <= max_tokens or e - s <= 1:
        return [(s, e)]
    mid = (s + e) // 2
    gaps = [m.start() for m in _SPACE.finditer(text, s + 1, e - 1)]
    cut = min(gaps, key=lambda c: abs(c - mid)) if gaps else mid
    a_end = cut
    while a_end > s and text[a_end - 1].isspace():
        a_end -= 1
    b_start = cut
    while b_start < e and text[b_start].isspace():
        b_start += 1
    if a_end <= s or b_start >= e:  # nothing but white space on one side: cut mid-word
        a_end = b_start = mid
    return _fit(text, s, a_end, max_tokens, counter) + _fit(text, b_start, e, max_tokens, counter)
