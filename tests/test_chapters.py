"""Chapter detection: the four shared novels, the sample novel, and the heading styles novels use."""

from __future__ import annotations


import pytest

from retrieval.chapters import SECTION_WORDS, find_chapters, parse_number
from retrieval.loading import load_book
from tests.conftest import SAMPLE_NOVEL

BODY = (
    "The rain came down on the harbour all night, and the boats knocked against the quay. Mr. Brown "
    "watched it from the window of the inn while Mrs. Pike brought him tea. He did not drink it, because "
    "he was thinking of the letter in his pocket and of the woman who had written it, long ago."
)


def _assert_well_formed(text, chapters):
    """Numbered 1..n in book order, non-overlapping, each starting at its heading and holding text."""
    assert [c.number for c in chapters] == list(range(1, len(chapters) + 1))
    for a, b in zip(chapters, chapters[1:]):
        assert a.start < a.end <= b.start
    for c in chapters:
        assert not text[c.start].isspace() and not text[c.end - 1].isspace()


# ---------------------------------------------------------------------------------------------------------
# The shared novels (each has a table of contents that repeats the headings)
# ---------------------------------------------------------------------------------------------------------


def _load(shared_data, name):
    book = load_book(shared_data / "novels" / name)
    _assert_well_formed(book.text, book.chapters)
    return book


def test_pride_and_prejudice_has_61_chapters(shared_data):
    book = _load(shared_data, "pg1342_pride_and_prejudice.txt")
    assert len(book.chapters) == 61
    assert [c.title for c in book.chapters[:3]] == ["Chapter 1", "Chapter 2", "Chapter 3"]
    assert book.chapters[-1].title == "Chapter 61"
    # Chapter I's heading hides in an illustration caption ("[Illustration: ... Chapter I.]").
    first = book.text[book.chapters[0].start : book.chapters[0].end]
    assert first.startswith("Chapter I.")
    assert "It is a truth universally acknowledged" in first[:200]
    # The preface and the list of illustrations come before it and belong to no chapter.
    assert book.text.index("GEORGE SAINTSBURY") < book.chapters[0].start


def test_alice_has_12_chapters_after_its_contents(shared_data):
    book = _load(shared_data, "pg11_alice_in_wonderland.txt")
    titles = [c.title for c in book.chapters]
    assert len(titles) == 12
    assert titles[0] == "Chapter 1: Down the Rabbit-Hole"
    assert titles[6] == "Chapter 7: A Mad Tea-Party"
    assert titles[-1] == "Chapter 12: Alice’s Evidence"
    assert book.chapters[0].start > book.text.index("Contents")
    assert (
        "Alice was beginning to get very tired"
        in book.text[book.chapters[0].start : book.chapters[0].start + 200]
    )


def test_frankenstein_has_4_letters_and_24_chapters(shared_data):
    book = _load(shared_data, "pg84_frankenstein.txt")
    titles = [c.title for c in book.chapters]
    assert titles == [f"Letter {i}" for i in range(1, 5)] + [f"Chapter {i}" for i in range(1, 25)]
    assert book.chapter(5).title == "Chapter 1"
    assert "I am by birth a Genevese" in book.text[book.chapter(5).start : book.chapter(5).end]


def test_sherlock_holmes_has_12_stories_not_their_numbered_sections(shared_data):
    book = _load(shared_data, "pg1661_adventures_of_sherlock_holmes.txt")
    titles = [c.title for c in book.chapters]
    assert len(titles) == 12
    assert titles[0] == "A Scandal in Bohemia"
    assert titles[1] == "The Red-Headed League"
    assert titles[8] == "The Adventure of the Engineer’s Thumb"
    assert titles[-1] == "The Adventure of the Copper Beeches"
    # Each story's "I." / "II." sections stay inside the story.
    story = book.text[book.chapters[0].start : book.chapters[0].end]
    assert "\nII.\n" in story and "To Sherlock Holmes she is always" in story


@pytest.mark.parametrize(
    "name, chapters",
    [("pg1342_pride_and_prejudice.pg2015.txt", 61), ("pg84_frankenstein.pg_raw.utf8.txt", 28)],
)
def test_gutenberg_header_versions_have_the_same_chapters(shared_data, name, chapters):
    book = load_book(shared_data / "novels" / "with_gutenberg_header" / name)
    assert len(book.chapters) == chapters
    _assert_well_formed(book.text, book.chapters)
    assert "Gutenberg" not in book.text[book.chapters[-1].start :]


def test_sample_novel_has_eight_titled_chapters():
    book = load_book(SAMPLE_NOVEL, book_id="sample")
    assert len(book.chapters) == 8
    _assert_well_formed(book.text, book.chapters)
    for c in book.chapters:
        assert c.title.startswith(f"Chapter {c.number}: ") and len(c.title) > len(f"Chapter {c.number}: ") + 2
        assert book.text[c.start :].startswith("CHAPTER ")


# ---------------------------------------------------------------------------------------------------------
# Heading styles
# ---------------------------------------------------------------------------------------------------------


def _book(*parts: str) -> str:
    return "\n\n".join(parts) + "\n"


def test_heading_styles_and_titles():
    text = _book(
        "A Book of Many Styles", "by Nobody",
        "Chapter One", BODY,
        "CHAPTER 2: The Letter", BODY,
        "CHAPTER III.\nTHE GARDEN", BODY,  # title on the next line, in capitals
        "Chapter the Fourth", BODY,
        "chapter 5 is not a heading when it starts in lower case", BODY,
        "Chapter XIV. The Storm at Sea", BODY,
        "Chapter Twenty-One — A Long Way Home", BODY,
    )  # fmt: skip
    chapters = find_chapters(text)
    assert [c.title for c in chapters] == [
        "Chapter 1",
        "Chapter 2: The Letter",
        "Chapter 3: The Garden",
        "Chapter 4",
        "Chapter 14: The Storm at Sea",
        "Chapter 21: A Long Way Home",
    ]
    _assert_well_formed(text, chapters)


def test_a_first_sentence_under_a_heading_is_not_its_title():
    text = _book(
        "CHAPTER I\nIt was a cold night in the village.", BODY, "CHAPTER II\n“Come in,” she said,", BODY
    )
    assert [c.title for c in find_chapters(text)] == ["Chapter 1", "Chapter 2"]


def test_a_mention_of_a_chapter_in_prose_is_not_a_heading():
    text = _book(
        "Chapter 1",
        BODY + "\nChapter 3 of his diary, he said, was lost in the fire\nand never found.",
        "Chapter 2", BODY,
    )  # fmt: skip
    assert [c.title for c in find_chapters(text)] == ["Chapter 1", "Chapter 2"]


def test_contents_page_is_skipped_and_parts_are_kept_as_parts():
    text = _book(
        "THE LONG VOYAGE",
        "CONTENTS\n\nPART I. THE SHORE\n  Chapter 1. Departure\n  Chapter 2. The Storm\n"
        "PART II. THE SEA\n  Chapter 3. Landfall",
        "PART I. THE SHORE",
        "Chapter 1. Departure", BODY,
        "Chapter 2. The Storm", BODY,
        "PART II. THE SEA",
        "Chapter 3. Landfall", BODY,
    )  # fmt: skip
    chapters = find_chapters(text)
    assert [(c.title, c.part) for c in chapters] == [
        ("Chapter 1: Departure", "Part 1: The Shore"),
        ("Chapter 2: The Storm", "Part 1: The Shore"),
        ("Chapter 3: Landfall", "Part 2: The Sea"),
    ]
    assert chapters[0].start > text.index("PART I. THE SHORE\n\nChapter 1")
    # A chapter ends before the next part heading.
    assert "PART II" not in text[chapters[1].start : chapters[1].end]


def test_books_without_chapters_use_their_parts():
    text = _book("BOOK ONE", BODY, "BOOK TWO", BODY, "BOOK THREE", BODY)
    assert [c.title for c in find_chapters(text)] == ["Book 1", "Book 2", "Book 3"]


def test_letters_and_a_prologue():
    text = _book("PROLOGUE", BODY, "LETTER I", BODY, "LETTER II", BODY, "Epilogue", BODY)
    assert [c.title for c in find_chapters(text)] == ["Prologue", "Letter 1", "Letter 2", "Epilogue"]


def test_stories_of_a_collection_with_inner_sections():
    text = _book(
        "Contents\n\n   I.     The Red Door\n   II.    A Case of Salt",
        "I. THE RED DOOR", "I.", BODY, "II.", BODY,
        "II. A CASE OF SALT", "I.", BODY, "II.", BODY,
    )  # fmt: skip
    chapters = find_chapters(text)
    assert [c.title for c in chapters] == ["The Red Door", "A Case of Salt"]
    assert chapters[0].start == text.index("I. THE RED DOOR")


def test_bare_numerals_as_headings():
    text = _book("I.", BODY, "II.", BODY, "III.", BODY)
    assert [c.title for c in find_chapters(text)] == ["Chapter 1", "Chapter 2", "Chapter 3"]


def test_a_book_without_headings_gets_fixed_size_sections():
    paragraph = " ".join(["word"] * 97) + " end."  # 98 words
    text = "\n\n".join([paragraph] * 100)  # 9,800 words
    chapters = find_chapters(text)
    assert [c.title for c in chapters] == [f"Section {i}" for i in range(1, len(chapters) + 1)]
    assert len(chapters) == 3  # three full sections; the short tail joins the last one
    for c in chapters:
        chunk = text[c.start : c.end]
        assert chunk.startswith("word") and chunk.endswith("end.")  # cut at paragraph bounds
        assert len(chunk.split()) >= SECTION_WORDS
    assert chapters[0].start == 0 and chapters[-1].end == len(text)


def test_short_text_is_one_section_and_empty_text_none():
    assert [c.title for c in find_chapters("Just a few words here.")] == ["Section 1"]
    assert find_chapters("") == []


def test_parse_number():
    assert [parse_number(t) for t in ("12", "XIV", "iv", "One", "the first", "Twenty-One", "Fortieth")] == [
        12, 14, 4, 1, None, 21, 40,
    ]  # fmt: skip
    assert parse_number("and") is None and parse_number("Mix") is None


def test_finding_chapters_in_a_whole_novel(shared_data):
    text = (shared_data / "novels" / "pg1342_pride_and_prejudice.txt").read_text(encoding="utf-8")
    assert len(find_chapters(text)) == 61


def test_the_shared_novels_keep_their_units_numbered_as_printed(shared_data):
    novels = shared_data / "novels"
    pride = load_book(novels / "pg1342_pride_and_prejudice.txt")
    assert [(c.kind, c.printed) for c in pride.chapters] == [("chapter", i) for i in range(1, 62)]
    alice = load_book(novels / "pg11_alice_in_wonderland.txt")
    assert [c.printed for c in alice.chapters] == list(range(1, 13)) and alice.chapters[0].name == "Down the Rabbit-Hole"
    frank = load_book(novels / "pg84_frankenstein.txt")
    assert [(c.kind, c.printed) for c in frank.chapters] == (
        [("letter", i) for i in range(1, 5)] + [("chapter", i) for i in range(1, 25)]
    )
    holmes = load_book(novels / "pg1661_adventures_of_sherlock_holmes.txt")
    assert [(c.kind, c.printed) for c in holmes.chapters] == [("story", i) for i in range(1, 13)]
