"""Sentences and passages: bounds, the token budget measured with the real MiniLM tokenizer, overlap,
coverage, and ids that stay the same when a book is cut again."""

from __future__ import annotations


import pytest

from retrieval.loading import load_book
from retrieval.passages import passage_id, split_passages
from retrieval.text import normalise_whitespace, slugify, split_sentences
from tests.conftest import SAMPLE_NOVEL
from vignette.documents import Book, Chapter


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path))


def _count(tokenizer, texts):
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]]


def _sentences(text, start=0, end=None):
    return [text[s:e] for s, e in split_sentences(text, start, end)]


# ---------------------------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------------------------


def test_sentences_of_dialogue_and_abbreviations():
    text = (
        "“My dear Mr. Bennet,” said his lady to him one day, “have you heard that\n"
        "Netherfield Park is let at last?”\n\n"
        "Mr. Bennet replied that he had not. “Oh dear!” said Alice. “I shall be late!” She ran to St. Paul’s "
        "with Dr. Watson and J. H. Smith. “Is it you?” ‘Yes.’ It was Dec. 11th, 17—. Well... I think so... "
        "Then it ended. He said, “Go.” And she went."
    )
    assert _sentences(text) == [
        "“My dear Mr. Bennet,” said his lady to him one day, “have you heard that\n"
        "Netherfield Park is let at last?”",
        "Mr. Bennet replied that he had not.",
        "“Oh dear!” said Alice.",
        "“I shall be late!”",
        "She ran to St. Paul’s with Dr. Watson and J. H. Smith.",
        "“Is it you?”",
        "‘Yes.’",
        "It was Dec. 11th, 17—.",
        "Well... I think so...",
        "Then it ended.",
        "He said, “Go.”",
        "And she went.",
    ]


def test_a_blank_line_always_ends_a_sentence():
    text = (
        "CHAPTER I.\nDown the Rabbit-Hole\n\n\nAlice was beginning to get very tired\nby her sister\n\nand so"
    )
    assert _sentences(text) == [
        "CHAPTER I.",
        "Down the Rabbit-Hole",
        "Alice was beginning to get very tired\nby her sister",
        "and so",
    ]


def test_sentence_offsets_cover_the_range_exactly():
    text = "  Intro.  One sentence here. Another one!\n\nA new paragraph? Yes.  "
    spans = split_sentences(text, 9, len(text))
    assert [text[s:e] for s, e in spans] == ["One sentence here.", "Another one!", "A new paragraph?", "Yes."]
    assert all(9 <= s < e <= len(text) for s, e in spans)
    covered = "".join(text[s:e] for s, e in spans)
    assert covered.replace(" ", "") == text[9:].replace(" ", "").replace("\n", "")


def test_sentences_of_a_whole_novel(shared_data):
    text = (shared_data / "novels" / "pg1342_pride_and_prejudice.txt").read_text(encoding="utf-8")
    spans = split_sentences(text)
    assert 5000 < len(spans) < 8000
    first = "It is a truth universally acknowledged, that a single man in possession\nof a good fortune"
    assert first + " must be in want of a wife." in [text[s:e] for s, e in spans]


def test_text_helpers():
    assert normalise_whitespace("  a\n\n b\tc ") == "a b c"
    assert slugify("Alice’s Adventures in Wonderland") == "alices-adventures-in-wonderland"
    assert slugify("Les Misérables") == "les-miserables"
    assert slugify("???") == "book"


# ---------------------------------------------------------------------------------------------------------
# Passages
# ---------------------------------------------------------------------------------------------------------


def _check_passages(book, passages, tokenizer, max_tokens):
    # Text is exactly the book's, and within its chapter.
    for p in passages:
        assert p.text == book.text[p.start : p.end]
        ch = book.chapter(p.chapter)
        assert p.chapter_title == ch.title and p.book_id == book.book_id
        assert ch.start <= p.start < p.end <= ch.end
    # Nothing over the budget, measured by the tokenizer itself.
    assert max(_count(tokenizer, [p.text for p in passages])) <= max_tokens
    # Every sentence of every chapter is in some passage.
    covered = bytearray(len(book.text))
    for p in passages:
        covered[p.start : p.end] = b"\x01" * (p.end - p.start)
    for ch in book.chapters:
        for s, e in split_sentences(book.text, ch.start, ch.end):
            if 0 not in covered[s:e]:
                continue
            missing = [i for i in range(s, e) if not covered[i] and not book.text[i].isspace()]
            assert not missing, f"sentence not in any passage: {book.text[s:e]!r}"
    # Ids are unique.
    assert len({p.passage_id for p in passages}) == len(passages)


def test_sample_novel_passages(tokenizer):
    book = load_book(SAMPLE_NOVEL, book_id="sample")
    passages = split_passages(book, tokenizer, max_tokens=200, overlap_sentences=1)
    _check_passages(book, passages, tokenizer, 200)
    assert {p.chapter for p in passages} == set(range(1, 9))
    assert all(p.passage_id.startswith("sample-") for p in passages)
    # Passages end where sentences end and start where sentences start (no sentence is that long here).
    starts = {s for ch in book.chapters for s, _ in split_sentences(book.text, ch.start, ch.end)}
    ends = {e for ch in book.chapters for _, e in split_sentences(book.text, ch.start, ch.end)}
    assert all(p.start in starts and p.end in ends for p in passages)
    # Neighbours in a chapter share one sentence.
    pairs = [(a, b) for a, b in zip(passages, passages[1:]) if a.chapter == b.chapter]
    assert pairs and all(b.start < a.end for a, b in pairs)
    # Cutting again gives the same passages: ids are content-derived.
    again = split_passages(load_book(SAMPLE_NOVEL, book_id="sample"), tokenizer)
    assert [p.passage_id for p in again] == [p.passage_id for p in passages]


def test_pride_and_prejudice_passages_fit(shared_data, tokenizer):
    book = load_book(shared_data / "novels" / "pg1342_pride_and_prejudice.txt")
    passages = split_passages(book, tokenizer, max_tokens=200)
    _check_passages(book, passages, tokenizer, 200)
    # Nothing from the preface: passages start at chapter 1.
    assert passages[0].chapter == 1 and passages[0].start == book.chapters[0].start
    assert not any("Saintsbury" in p.text or "SAINTSBURY" in p.text for p in passages)
    # Well filled: most passages use more than half the budget.
    assert sum(n > 100 for n in _count(tokenizer, [p.text for p in passages])) > 0.8 * len(passages)
    assert passage_id(book.book_id, passages[0].text) == passages[0].passage_id


def _one_chapter_book(body: str, book_id: str = "tiny") -> Book:
    text = "Chapter 1\n\n" + body
    return Book(book_id, "Tiny", None, text, [Chapter(1, "Chapter 1", 0, len(text))])


def test_an_over_long_sentence_is_cut_at_words_not_truncated(tokenizer):
    long_sentence = " ".join(f"ship{i}" for i in range(400)) + "."
    book = _one_chapter_book(f"A short start. {long_sentence} A short end.")
    passages = split_passages(book, tokenizer, max_tokens=50, overlap_sentences=1)
    _check_passages(book, passages, tokenizer, 50)
    pieces = [p for p in passages if "ship" in p.text]
    assert len(pieces) >= 8
    words = " ".join(p.text for p in pieces).split()
    assert [w for w in words if w.startswith("ship")] == long_sentence.split()  # every word kept, in order
    assert all(
        p.text[:1] != " " and p.text.split()[0] == book.text[p.start : p.end].split()[0] for p in pieces
    )


def test_a_word_longer_than_a_passage_is_cut_too(tokenizer):
    book = _one_chapter_book("Before. " + "x" * 3000 + " after.")
    passages = split_passages(book, tokenizer, max_tokens=40)
    _check_passages(book, passages, tokenizer, 40)
    assert "".join(p.text for p in passages if "x" in p.text).count("x") == 3000


def test_overlap_and_no_overlap(tokenizer):
    body = " ".join(f"Sentence number {i} is here." for i in range(60))
    book = _one_chapter_book(body)
    with_overlap = split_passages(book, tokenizer, max_tokens=40, overlap_sentences=2)
    without = split_passages(book, tokenizer, max_tokens=40, overlap_sentences=0)
    _check_passages(book, with_overlap, tokenizer, 40)
    _check_passages(book, without, tokenizer, 40)
    for a, b in zip(with_overlap, with_overlap[1:]):
        shared = book.text[b.start : a.end]
        assert len(split_sentences(shared)) == 2
    assert all(b.start > a.end for a, b in zip(without, without[1:]))
    assert len(with_overlap) > len(without)


def test_paragraph_bounds_are_preferred(tokenizer):
    para = " ".join(f"Line {i} of a paragraph." for i in range(6))  # about 42 word pieces
    book = _one_chapter_book("\n\n".join([para] * 6))
    passages = split_passages(book, tokenizer, max_tokens=100, overlap_sentences=0)
    _check_passages(book, passages, tokenizer, 100)
    # Two whole paragraphs fit; a third does not, so each passage ends at a paragraph end.
    assert all(p.text.endswith("Line 5 of a paragraph.") for p in passages)


def test_repeated_text_gets_distinct_stable_ids(tokenizer):
    refrain = "The bells rang out over the harbour."
    body = "\n\n* * *\n\n".join([refrain] * 3)
    book = _one_chapter_book(body, book_id="bells")
    first = split_passages(book, tokenizer, max_tokens=9, overlap_sentences=0)  # the refrain is 8 pieces
    second = split_passages(book, tokenizer, max_tokens=9, overlap_sentences=0)
    refrains = [p for p in first if p.text == refrain]
    assert len(refrains) == 3 and len({p.passage_id for p in refrains}) == 3
    assert [p.passage_id for p in first] == [p.passage_id for p in second]
    assert refrains[0].passage_id == passage_id("bells", refrain)


class _MergingTokenizer:
    """A stand-in for a byte-pair tokenizer whose count of a joined text exceeds the sum of its parts:
    one piece per word, plus five for every blank line."""

    def __call__(self, texts, **kwargs):
        return {"input_ids": [[0] * (len(t.split()) + 5 * t.count("\n\n")) for t in texts]}


def test_wordpiece_counts_add_up_so_packing_needs_no_second_pass(tokenizer):
    from retrieval.passages import _TokenCounter

    assert _TokenCounter(tokenizer).additive
    assert not _TokenCounter(_MergingTokenizer()).additive
    a, b = (
        "Mr. Bennet replied that he had not.",
        "“But it is,” returned she;\n\n“for Mrs. Long has been here.”",
    )
    assert _count(tokenizer, [a + "\n\n" + b]) == [sum(_count(tokenizer, [a, b]))]


def test_passages_are_checked_with_the_tokenizer_after_packing():
    paras = ["one two three four five six seven eight nine ten."] * 8
    book = _one_chapter_book("\n\n".join(paras))
    tok = _MergingTokenizer()
    passages = split_passages(book, tok, max_tokens=30, overlap_sentences=0)
    assert max(len(tok([p.text])["input_ids"][0]) for p in passages) <= 30
    assert sum(p.text.count("ten.") for p in passages) == 8


def test_front_matter_is_left_out_and_books_without_chapters_give_none(tokenizer):
    text = "A Title\n\nA preface about the book.\n\nChapter 1\n\nThe story begins. It ends."
    book = Book("t", "A Title", None, text, [Chapter(1, "Chapter 1", text.index("Chapter 1"), len(text))])
    passages = split_passages(book, tokenizer)
    assert len(passages) == 1 and passages[0].text == "Chapter 1\n\nThe story begins. It ends."
    assert split_passages(Book("e", "E", None, "", []), tokenizer) == []
