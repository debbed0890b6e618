"""The reading companion's surfaces and their spoiler safety: the recap (bot/recap.py), the people
(bot/people.py), a citation opened in context (bot/passage_view.py), "not yet" versus "not in the book"
(bot/spoilers.py) and the Markdown export (bot/export.py).

Spoiler safety is checked on the shared Gutenberg novels (skipped where ../shared is absent), by chapter and
by text: whatever a surface shows for chapter N must come from chapters 1..N, and no run of eight words of
it may occur only after chapter N.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bot.export import export_markdown, md_escape
from bot.people import book_upto, people_as_of
from bot.passage_view import open_passage, page
from bot.recap import build_recap, select
from retrieval.loading import load_book

from tests.sample_library import copy_sample_to
from vignette.errors import VignetteError

SAMPLE_NOVEL = Path(__file__).resolve().parents[1] / "data" / "sample-novel.txt"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def assert_nothing_after(book, limit: int, shown: str) -> None:
    """No eight-word run of ``shown`` occurs only after chapter ``limit`` of ``book``."""
    end = max(c.end for c in book.chapters if c.number <= limit)
    before, after = _shingles(book.text[:end]), _shingles(book.text[end:])
    leaked = [s for s in _shingles(shown) if s in after and s not in before]
    assert not leaked, f"text from after chapter {limit}: {' '.join(leaked[0])}"


@pytest.fixture(scope="module")
def minilm_encode(minilm_path):
    from retrieval.embedding import encode, load_encoder

    model = load_encoder(str(minilm_path), "cpu")
    return lambda texts: encode(model, list(texts), 32)


# --- the recap ---------------------------------------------------------------------------------------------


def test_mmr_prefers_central_sentences_and_skips_repeats():
    # three copies of the chapter's main thread, and three sentences about other things
    vecs = np.array([[1, 0.1, 0, 0], [1, 0.1, 0, 0], [1, 0.1, 0, 0], [1, -0.8, 0, 0], [0.3, 0, 0, 1],
                     [0.3, 0, 1, 0]], float)
    vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    centroid_only = [i for i, _ in select(vecs, 2, "centroid")]
    mmr = [i for i, _ in select(vecs, 2, "mmr", lam=0.5)]
    assert set(centroid_only) <= {0, 1, 2}  # centrality alone picks two copies of the same thing
    assert mmr[0] in (0, 1, 2) and mmr[1] not in (0, 1, 2)  # MMR's second pick says something else
    assert [i for i, _ in select(vecs, 3, "lead")] == [0, 1, 2]
    with pytest.raises(VignetteError, match="Unknown recap method"):
        select(vecs, 2, "best")


def test_recap_of_the_sample_cites_each_chapter_and_stops_at_the_limit(tmp_path, minilm_encode):
    book = load_book(SAMPLE_NOVEL)
    recap = build_recap(book, minilm_encode, 3, sentences=2, cache_dir=tmp_path)
    assert [c.chapter for c in recap.chapters] == [1, 2, 3]
    for c in recap.chapters:
        assert len(c.sentences) == 2
        chapter = book.chapter(c.chapter)
        for s in c.sentences:
            assert chapter.start <= s.start < s.end <= chapter.end
            assert " ".join(book.text[s.start:s.end].split()) == s.text  # the book's own words
    assert_nothing_after(book, 3, recap.to_text())
    again = build_recap(book, minilm_encode, 3, sentences=2, cache_dir=tmp_path)  # from the cache
    assert [s.text for s in again.sentences()] == [s.text for s in recap.sentences()]
    assert list((tmp_path / "recap").glob("*.npy"))
    with pytest.raises(VignetteError, match="no chapter 9"):
        build_recap(book, minilm_encode, 9)
    with pytest.raises(VignetteError, match="between 1 and 50"):
        build_recap(book, minilm_encode, 2, sentences=0)


@pytest.mark.slow
@pytest.mark.parametrize("name,limit", [("pg11_alice_in_wonderland.txt", 4), ("pg84_frankenstein.txt", 9)])
def test_recap_of_a_shared_novel_is_spoiler_safe(shared_data, minilm_encode, tmp_path, name, limit):
    book = load_book(shared_data / "novels" / name)
    recap = build_recap(book, minilm_encode, limit, cache_dir=tmp_path)
    assert max(s.chapter for s in recap.sentences()) == limit
    assert {c.chapter for c in recap.chapters} == {c.number for c in book.chapters if c.number <= limit}
    later_titles = [c.title for c in book.chapters if c.number > limit and len(c.title) > 12]
    text = recap.to_text()
    assert not any(t in text for t in later_titles)
    assert_nothing_after(book, limit, text)


# --- the people --------------------------------------------------------------------------------------------


def test_people_of_the_sample_as_of_chapter_1_know_nothing_of_later_chapters():
    book = load_book(SAMPLE_NOVEL)
    early, whole = people_as_of(book, 1), people_as_of(book, None)
    assert whole.get("Captain Dunmore") is not None and whole.get("Captain Dunmore").first_chapter == 6
    assert early.get("Dunmore") is None  # he first appears in chapter 6
    wren = early.get("Wren")
    assert wren.first_chapter == 1 and len(wren.appearances) == 1 and wren.appearances[0] == wren.mentions
    assert "copper-red hair" in wren.description and "red wool scarf" in wren.description
    assert 2 <= len(wren.passages) <= 3 and all(p.chapter == 1 for p in wren.passages)
    pilot = people_as_of(book, 2).get("Pilot")
    assert pilot.first_chapter == 2 and pilot.appearances[0] == 0 and "dog" in pilot.description
    with pytest.raises(VignetteError):
        people_as_of(book, 0)


@pytest.mark.slow
@pytest.mark.parametrize("name,limit", [("pg11_alice_in_wonderland.txt", 3), ("pg1342_pride_and_prejudice.txt", 5),
                                        ("pg84_frankenstein.txt", 6)])
def test_people_of_a_shared_novel_are_spoiler_safe(shared_data, name, limit):
    book = load_book(shared_data / "novels" / name)
    cast = people_as_of(book, limit)
    assert cast.people
    cut = book_upto(book, limit)
    for person in cast.people:
        assert person.first_chapter <= limit and len(person.appearances) == len(cast.chapters)
        assert any(re.search(r"(?<![A-Za-z])" + re.escape(a) + r"(?![A-Za-z])", cut.text) for a in person.aliases)
        assert all(p.chapter <= limit and p.end <= cut.chapters[-1].end for p in person.passages)
    assert_nothing_after(book, limit, cast.to_text())
    # someone the whole book knows, who first appears after the limit, is not listed
    later = [p for p in people_as_of(book, None).people if p.first_chapter > limit]
    for p in later:
        assert cast.get(p.name) is None


# --- a citation opened in context -----------------------------------------------------------------------------


def test_a_quote_opens_in_its_chapter_marked_with_its_neighbours():
    book = load_book(SAMPLE_NOVEL)
    quote = "The fishermen of Saltmarrow had saved for nine years to buy a new bell."
    start = book.text.index(quote)
    view = open_passage(book, start, start + len(quote), upto_chapter=2)
    assert view.chapter == 1 and view.chapter_title.endswith("The Seven Bells of Saltmarrow")
    marked = [p.text[a:b] for p in view.paragraphs for a, b in p.marks]
    assert marked == [quote]
    assert 3 <= len(view.paragraphs) <= 5 and "\u00bb" + quote + "\u00ab" in view.to_text()
    assert view.previous is not None and view.next is not None
    # walking "next" never leaves chapters 1..2
    where, seen = view, set()
    for _ in range(200):
        seen.add(where.chapter)
        if where.next is None:
            break
        where = page(book, where.next[0], upto_chapter=2)
    assert seen == {1, 2} and where.next is None
    later = book.text.index("Captain Dunmore")
    with pytest.raises(VignetteError, match="spoiler limit"):
        open_passage(book, later, later + 15, upto_chapter=2)
    with pytest.raises(VignetteError, match="no passage"):
        open_passage(book, len(book.text) + 5, None)


@pytest.mark.slow
def test_walking_a_shared_novel_stops_at_the_limit(shared_data):
    book = load_book(shared_data / "novels" / "pg1661_adventures_of_sherlock_holmes.txt")
    first = book.chapter(1)
    where, pages = page(book, first.start + 200, upto_chapter=2), 0
    shown = []
    while where.next is not None and pages < 2000:
        shown.append(" ".join(p.text for p in where.paragraphs))
        where, pages = page(book, where.next[0], upto_chapter=2), pages + 1
    assert where.chapter == 2 and pages > 10
    assert_nothing_after(book, 2, "\n".join(shown))


# --- "not yet" versus "not in the book" ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def alice_companion(shared_data, tmp_path_factory):
    from bot.companion import Companion
    from vignette.settings import Settings

    settings = Settings.from_env(env={}, data_dir=tmp_path_factory.mktemp("alice") / "data", reader="sentence")
    companion = Companion(settings)
    companion.store.ingest(shared_data / "novels" / "pg11_alice_in_wonderland.txt", book_id="alice")
    yield companion
    companion.close()


@pytest.mark.slow
@pytest.mark.parametrize("question,limit", [("Who is the Mock Turtle?", 3), ("What did the Gryphon say?", 4),
                                            ("Who is the Queen of Hearts?", 2)])
def test_an_answer_after_the_limit_is_not_yet_and_reveals_nothing(alice_companion, question, limit):
    book = alice_companion.book("alice")
    turn = alice_companion.reply(f"notyet-{limit}", "alice", question, upto_chapter=limit)
    assert turn.later and turn.reply.startswith(f"The book tells you later, after chapter {limit}.")
    assert "doesn't say" not in turn.reply
    assert set(re.findall(r"\d+", turn.reply)) == {str(limit)}  # no other chapter is named
    assert_nothing_after(book, limit, turn.reply)
    assert all(e["chapter"] <= limit for e in turn.to_dict()["evidence"])
    later_titles = [c.title for c in book.chapters if c.number > limit]
    assert not any(t in turn.reply for t in later_titles)


@pytest.mark.slow
@pytest.mark.parametrize("question", ["What is the capital of Peru?", "Who was the mayor of the town?"])
def test_a_question_the_book_never_answers_is_not_in_the_book(alice_companion, question):
    turn = alice_companion.reply("never", "alice", question, upto_chapter=3)
    assert not turn.later and turn.reply.startswith("The book doesn't say")
    assert "later" not in turn.reply


def test_not_yet_is_told_apart_on_the_sample(tmp_path, settings):
    from bot.companion import Companion

    copy_sample_to(settings.data_dir)
    companion = Companion(settings)
    later = companion.reply("s", "sample", "Who is Captain Dunmore?", upto_chapter=2)
    assert later.later and later.reply.startswith("The book tells you later, after chapter 2.")
    assert "Marigold" not in later.reply and "6" not in later.reply
    drawn = companion.reply("s", "sample", "show me who found the letter")  # found in chapter 3
    assert drawn.intent == "both" and drawn.later and drawn.image is None and drawn.scene_prompt is None
    assert "later in the book" in drawn.reply and "lantern" not in drawn.reply.lower() and "3" not in drawn.reply
    never = companion.reply("s", "sample", "Who was the mayor of Saltmarrow?")
    assert not never.later and never.reply.startswith("The book doesn't say")
    answered = companion.reply("s", "sample", "How old is Toby?")
    assert not answered.later and "sixteen" in answered.reply
    companion.close()


# --- the export --------------------------------------------------------------------------------------------


def test_export_writes_questions_answers_quotes_and_pictures(tmp_path):
    png = tmp_path / "scene.png"
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 30, 30)).save(png)
    records = [
        {"user": "How old is Toby?", "question": "How old is Toby?", "answer": "sixteen", "abstained": False,
         "evidence": [{"quote": "Toby was sixteen, and he was the tallest boy in Saltmarrow.", "chapter": 1,
                       "chapter_title": "CHAPTER I. The Seven Bells of Saltmarrow"}], "reply": "sixteen ...",
         "upto_chapter": 2},
        {"user": "draw it", "intent": "illustrate", "reply": "Here is the scene. Picture: " + str(png),
         "image": str(png), "scene_prompt": "a tall thin boy with black curly hair, storybook style"},
        {"user": "<script>alert(1)</script> [x](http://evil)", "reply": "The book doesn't say.",
         "abstained": True},
    ]
    text = export_markdown(records, "The Keeper's Promise", "evening", author="Rosalind Ashdown")
    assert text.startswith("# The Keeper's Promise")
    assert "**Answer:** sixteen" in text and "> Toby was sixteen" in text and "CHAPTER I" in text
    assert "*Read up to chapter 2.*" in text
    assert "data:image/png;base64," in text and "storybook style" in text
    assert str(png) not in text  # the picture is in the file, not a path on this machine
    assert "<script>" not in text and "\\[x\\]\\(http://evil\\)" in text
    linked = export_markdown(records, "T", "evening", images="link")
    assert str(png.resolve()) in linked and "base64" not in linked
    assert md_escape("*a* #b") == "\\*a\\* \\#b"
