"""Every book of the shared development corpus (``../shared/data/books``) against its hand-checked truth
(``books.json``): chapter numbers as printed, titles, parts, where each chapter starts, and no front or back
matter taken for a chapter. Parsing only, no embedding."""

from __future__ import annotations

import json
import re

import pytest

from eval.chapters import normalise, score_book
from retrieval.loading import load_book
from tests.conftest import SHARED

BOOKS = SHARED / "books"
_TRUTH = json.loads((BOOKS / "books.json").read_text(encoding="utf-8")) if (BOOKS / "books.json").is_file() else []


@pytest.fixture(scope="module")
def corpus():
    if not (BOOKS / "books.json").is_file():
        pytest.skip(f"the development corpus is not here ({BOOKS}); it is present in CI")
    return BOOKS


@pytest.mark.parametrize("entry", _TRUTH or [None], ids=[t["file"] for t in _TRUTH] or ["corpus-absent"])
def test_book_structure_matches_the_truth(corpus, entry):
    book = load_book(corpus / entry["file"])
    numbered = [c for c in book.chapters if c.kind not in ("unnumbered", "section")]
    expected = entry["chapters"]

    # 1. Count, numbers and titles exactly, in order (numbers restart where the book restarts them).
    assert len(numbered) == len(expected), f"{entry['file']}: {len(numbered)} chapters, expected {len(expected)}"
    assert [c.printed for c in numbered] == [t["number"] for t in expected]
    assert [normalise(c.name) for c in numbered] == [normalise(t["title"]) for t in expected]

    # 2. Each chapter opens with its first words: no front matter inside, no contents line taken for it.
    for c, t in zip(numbered, expected):
        opening = normalise(book.text[c.start:c.end][:900])
        assert normalise(t["first_words"]) in opening, f"{c.title} does not open with {t['first_words']!r}"

    # 3. Parts begin where the book's parts begin, and everything agrees with the scorer.
    score = score_book(entry, book)
    assert score.whole, score.wrong

    # 4. No front or back matter as a chapter: nothing before chapter 1's text, and the Gutenberg licence
    #    never inside the last chapter.
    if numbered:
        last = book.text[book.chapters[-1].start:book.chapters[-1].end]
        assert not re.search(r"Project Gutenberg|END OF TH(?:E|IS) PROJECT", last)


def test_a_book_without_headings_gets_sections_named_as_sections(corpus):
    book = load_book(corpus / "pg11231_bartleby_the_scrivener.txt")
    assert {c.kind for c in book.chapters} == {"section"}
    assert [c.title for c in book.chapters] == [f"Section {i}" for i in range(1, len(book.chapters) + 1)]
    assert book.structure == "sections"


def test_both_moby_dick_epubs_use_their_navigation_and_agree(corpus):
    three = load_book(corpus / "pg2701_moby_dick_epub3.epub")
    two = load_book(corpus / "pg2701_moby_dick_epub2.epub")
    assert (three.structure, two.structure) == ("epub-nav", "epub-ncx")
    assert [(c.printed, c.name) for c in three.chapters] == [(c.printed, c.name) for c in two.chapters]
    assert three.chapters[-1].kind == "unnumbered" and three.chapters[-1].label == "Epilogue"
