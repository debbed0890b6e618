"""The reader's position in the book's own terms, the starter questions, and the app's background start
and status words (bot.reading, bot.startup): on the sample novel, on Gutenberg novels from the shared data
(loaded with the real loader) and on small texts written here."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bot.reading import chapter_names, coverage_note, limit_chip, reading_choices, reading_value, starter_questions
from bot.startup import Startup, about_text, plural, status_line, time_left
from vignette.documents import Book, Chapter

ROOT = Path(__file__).resolve().parents[1]


def _book(titles: list[str], text: str = "") -> Book:
    chapters, pos = [], 0
    for i, title in enumerate(titles, 1):
        chapters.append(Chapter(i, title, pos, pos + 100))
        pos += 100
    return Book("b", "A Book", None, text or "x" * pos, chapters)


def test_chapter_names_follow_the_books_own_headings():
    cases = {
        "Chapter 3: The Letter in the Lantern Room": ("Ch. 3", "Chapter 3 \u2014 The Letter in the Lantern Room"),
        "CHAPTER XXIV. The Wedding": ("Ch. XXIV", "CHAPTER XXIV \u2014 The Wedding"),
        "Letter 4": ("Letter 4", "Letter 4"),
        "Prologue": ("Prologue", "Prologue"),
        "A Scandal in Bohemia": ("Ch. 2", "Chapter 2 \u2014 A Scandal in Bohemia"),
        "": ("Ch. 2", "Chapter 2"),
    }
    for title, (short, full) in cases.items():
        name = chapter_names(Chapter(2, title, 0, 1))
        assert (name.short, name.full, name.position) == (short, full, 2), title


def test_a_chapter_record_with_its_own_label_is_used_as_it_is():
    class Labelled:  # a richer chapter record: the book's own label beside the title
        number, title, label = 5, "Chapter XXIV: The Wedding", "Chapter XXIV"

    name = chapter_names(Labelled())
    assert (name.position, name.short, name.full) == (5, "Ch. XXIV", "Chapter XXIV \u2014 The Wedding")


def test_the_reading_picker_names_every_chapter_and_the_whole_book():
    book = _book(["Chapter 1: Dawn", "Chapter 2: Noon", "Chapter 3: Dusk"])
    assert reading_choices(book) == [("Chapter 1 \u2014 Dawn", 1), ("Chapter 2 \u2014 Noon", 2),
                                     ("Chapter 3 \u2014 Dusk (the whole book)", 3)]
    assert [reading_value(book, v) for v in (None, 0, 1, 2, 3, 9)] == [3, 3, 1, 2, 3, 3]
    assert [limit_chip(book, v) for v in (None, 2, 3)] == ["", "up to Ch. 2", ""]
    assert coverage_note(book) == ""
    one = _book(["Chapter 1: All of it"])
    assert len(reading_choices(one)) == 1 and "one chapter" in coverage_note(one)
    bare = Book("b", "Bare", None, "Just a text.", [])
    assert reading_choices(bare) == [("The whole book", 1)] and "no chapter headings" in coverage_note(bare)


def test_starter_questions_come_from_the_book_and_keep_to_the_limit(shared_data):
    from illustration.characters import build_character_sheets
    from retrieval.loading import load_book

    sample = load_book(ROOT / "data" / "sample-novel.txt")
    sheets = build_character_sheets(sample)
    questions = starter_questions(sample, sheets)
    assert len(questions) == 3 and all(q.endswith("?") for q in questions)
    named = [s.name for s in sheets.characters]
    assert any(name in questions[0] for name in named)  # about a person of the book
    # within a limit, no one the reader has not met yet
    early = starter_questions(sample, sheets, limit=1)
    first = sample.chapter(1)
    for question in early:
        subject = question.split(" is ", 1)[-1].split(" look", 1)[0].rstrip("?").removeprefix("What does ")
        assert subject.split()[-1] in sample.text[first.start:first.end], question

    path = shared_data / "novels" / "pg84_frankenstein.txt"
    if not path.exists():
        pytest.skip("no Frankenstein in the shared data")
    novel = load_book(path)
    asked = starter_questions(novel, build_character_sheets(novel), limit=2)
    assert asked and all("?" in q for q in asked)
    end = novel.chapter(2).end
    for question in asked:
        name = question.removeprefix("Who is ").removeprefix("What does ").split(" look")[0].rstrip("?")
        assert name.split()[-1] in novel.text[:end], question  # named by chapter 2 already


def test_a_short_text_still_gets_a_question_from_its_full_names():
    text = ("The Orchard\n\nChapter 1\n\nThe gardener was a tall woman called Ada Finch. Later the orchard "
            "was sold to Jonas Whitby, and Ada Finch moved to the town.\n")
    book = Book("o", "The Orchard", None, text, [Chapter(1, "Chapter 1", text.index("Chapter 1"), len(text))])
    assert starter_questions(book, None) == ["Who is Ada Finch?", "Who is Jonas Whitby?"]


def test_status_words_are_plain_and_the_details_go_to_about():
    status = {"answers": {"reader": "sentence:all-MiniLM-L6-v2", "reader_fallback": True,
                          "reader_notice": "the model is not on this computer", "retriever": "hybrid",
                          "encoder": "all-MiniLM-L6-v2"},
              "followups": "offline resolver",
              "images": {"available": False, "message": "Can't draw: no weights", "hint": "set VIGNETTE_IMAGE_MODELS"}}
    line = status_line(status)
    assert line == "Offline \u00b7 answers quoted from the book (closest sentences) \u00b7 pictures: not installed"
    assert status_line(None, "Loading the answer models\u2026").startswith("Loading the answer models")
    about = about_text(status, ["point VIGNETTE_READER at a reader folder"])
    assert "all-MiniLM-L6-v2" in about and "VIGNETTE_READER" in about and "VIGNETTE_IMAGE_MODELS" in about
    assert about.count("**Set-up**") == 1
    assert [plural(1, "chapter"), plural(3, "chapter"), plural(1200, "passage")] == \
        ["1 chapter", "3 chapters", "1,200 passages"]
    assert [time_left(None), time_left(0.2), time_left(42), time_left(600)] == \
        ["", "about 1 s left", "about 42 s left", "about 10 min left"]


def test_startup_serves_first_and_says_loading_until_ready():
    release = threading.Event()
    asked, completed = [], []

    class Store:  # the library: storing the sample waits until released
        def ensure_sample(self):
            release.wait(30)
            return None

        def outdated(self):  # a book stored by an older version: its views are built here, not on a question
            return ["old-book"]

        def complete(self, book_id):
            completed.append(book_id)

    class Pipeline:
        def ask(self, book_id, question):
            asked.append((book_id, question))

    class Parts:
        store, pipeline = Store(), Pipeline()

    startup = Startup(Parts(), "sample", on_message=lambda text: None).start()
    assert not startup.library.is_set() and startup.stage.startswith("Loading")
    release.set()
    assert startup.wait(30) and startup.error is None and startup.stage == ""
    assert asked == [("sample", "Who is the keeper of the lighthouse?")] and completed == ["old-book"]


def test_startup_keeps_the_reason_when_warming_fails():
    from vignette.errors import VignetteError

    class Parts:
        class store:  # noqa: N801
            @staticmethod
            def ensure_sample():
                return None

            @staticmethod
            def outdated():
                return []

        class pipeline:  # noqa: N801
            @staticmethod
            def ask(book_id, question):
                raise VignetteError("The reader folder is damaged.")

    startup = Startup(Parts(), on_message=lambda text: None).start()
    assert startup.wait(30) and startup.error == "The reader folder is damaged."
