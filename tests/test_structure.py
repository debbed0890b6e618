"""Book structure on the layouts novels come in (written for these tests, after Project Gutenberg's
conventions): front and back matter, contents pages, titles on the next line, parts that restart the
numbering, EPUB navigation documents (and broken ones), the reading limit, warnings and the CLI."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from retrieval.chapter_report import chapter_rows, limit_position, resolve_reading_limit, structure_warnings
from retrieval.chapters import find_chapters
from retrieval.loading import load_book
from vignette.errors import VignetteError

PARA = (
    "The rain came down on the harbour all night, and the boats knocked against the quay. Mr. Brown "
    "watched it from the window of the inn while Mrs. Pike brought him tea. He did not drink it, because "
    "he was thinking of the letter in his pocket and of the woman who had written it, long ago."
)
NAMES = ["The Cyclone", "The Council with the Munchkins", "How Dorothy Saved the Scarecrow",
         "The Road Through the Forest", "The Rescue of the Tin Woodman"]


def _txt(*blocks: str) -> str:
    return "\n\n".join(blocks) + "\n"


# ---------------------------------------------------------------------------------------------------------
# HTML: a by-line, an introduction and a line of capitals are not chapters
# ---------------------------------------------------------------------------------------------------------


def test_html_front_matter_and_capitals_inside_a_chapter_are_not_chapters(tmp_path):
    contents = "".join(f'<p><a href="#chap{i}">{i}. {n}</a></p>' for i, n in enumerate(NAMES, 1))
    chapters = ""
    for i, name in enumerate(NAMES, 1):
        inner = "<h3>A NOTICE TO ALL MUNCHKINS</h3><p>WANTED: A GOOD WITCH</p>" if i == 2 else ""
        chapters += f'<h2 id="chap{i}">{i}. {name}</h2><p>{PARA}</p>{inner}<p>{PARA}</p>'
    html = (f"<html><head><title>The Storm Country</title></head><body><h1>The Storm Country</h1>"
            f"<h2>by Lyman Frost</h2><h2>Introduction</h2><p>{PARA}</p><h2>Contents</h2>{contents}"
            f"{chapters}</body></html>")
    book = load_book(_write(tmp_path / "storm.html", html))
    assert [(c.printed, c.name) for c in book.chapters] == list(enumerate(NAMES, 1))
    assert [c.title for c in book.chapters][:2] == ["Chapter 1: The Cyclone", "Chapter 2: The Council with the Munchkins"]
    assert "A NOTICE TO ALL MUNCHKINS" in book.text[book.chapters[1].start:book.chapters[1].end]
    assert book.text.index("Introduction") < book.chapters[0].start
    assert book.structure == "headings+html-toc"  # the contents links land on every chapter


# ---------------------------------------------------------------------------------------------------------
# Plain text: the contents page is never a chapter; adverts after THE END are not story text
# ---------------------------------------------------------------------------------------------------------


def test_plain_text_contents_page_and_adverts_after_the_end():
    romans = ["I", "II", "III", "IV"]
    contents = "CONTENTS\n\n" + "\n".join(f"CHAPTER {r}. {n.upper()}" for r, n in zip(romans, NAMES))
    illustrations = "ILLUSTRATIONS\n\n" + "\n".join(f"{PARA[:60]} ... {k}" for k in range(8))
    body = [f"CHAPTER {r}.\n\n{n.upper()}\n\n{PARA}\n\n{PARA}" for r, n in zip(romans, NAMES)]
    adverts = "THE END\n\n\n\nBOOKS BY THE SAME AUTHOR\n\nThe Tin Forest. Cloth, $1.25. " + PARA
    text = _txt("THE STORM COUNTRY", "by Lyman Frost", contents, illustrations, *body, adverts)
    chapters = find_chapters(text)
    assert [(c.printed, c.name) for c in chapters] == [(i, n) for i, n in enumerate(NAMES[:4], 1)]
    assert chapters[0].start > text.index("ILLUSTRATIONS")
    last = text[chapters[-1].start:chapters[-1].end]
    assert last.endswith(PARA) and "Cloth" not in last and "THE END" not in last


def test_titles_on_the_line_after_a_bare_number():
    text = _txt("THE STORM COUNTRY", *[f"{i}\n\n{n}\n\n{PARA}\n\n{PARA}" for i, n in enumerate(NAMES, 1)])
    chapters = find_chapters(text)
    assert [(c.printed, c.name, c.title) for c in chapters][:2] == [
        (1, "The Cyclone", "Chapter 1: The Cyclone"),
        (2, "The Council with the Munchkins", "Chapter 2: The Council with the Munchkins"),
    ]
    assert len(chapters) == 5 and text[chapters[4].start:].startswith("5\n\nThe Rescue")


def test_a_heading_is_a_heading_not_a_line_of_capitals_inside_a_chapter():
    body = f"{PARA}\n\nHE WAS GONE.\n\n{PARA}"
    text = _txt(*[f"CHAPTER {r}\n\n{body}" for r in ("I", "II", "III")])
    assert [c.title for c in find_chapters(text)] == ["Chapter 1", "Chapter 2", "Chapter 3"]


# ---------------------------------------------------------------------------------------------------------
# Parts that restart the numbering, and the reading limit
# ---------------------------------------------------------------------------------------------------------


def _two_books() -> str:
    return _txt("BOOK I. THE SHORE", "CHAPTER I", PARA, "CHAPTER II", PARA,
                "BOOK II. THE SEA", "CHAPTER I", PARA, "CHAPTER II", PARA, "CHAPTER III", PARA)


def test_numbering_that_restarts_in_each_part_is_cited_with_the_part():
    chapters = find_chapters(_two_books())
    assert [(c.part, c.printed) for c in chapters] == [
        ("Book 1: The Shore", 1), ("Book 1: The Shore", 2),
        ("Book 2: The Sea", 1), ("Book 2: The Sea", 2), ("Book 2: The Sea", 3),
    ]
    assert chapters[3].title == "Book 2, Chapter 2"


def test_read_up_to_chapter_n_names_the_part_or_asks_which():
    from vignette.documents import Book

    text = _two_books()
    book = Book("sea", "The Sea", None, text, find_chapters(text))
    asked = resolve_reading_limit(book, 2, "I've read up to chapter 2")
    assert asked.position is None and "Book 1, Chapter 2" in asked.question and "Book 2, Chapter 2" in asked.question
    named = resolve_reading_limit(book, 1, "I've read up to book 2, chapter 1")
    assert named.position == 3 and named.chapter.title == "Book 2, Chapter 1"
    unique = resolve_reading_limit(book, 3, "I'm on chapter 3")  # only Book II has a chapter 3
    assert unique.position == 5
    # The command line's --upto-chapter takes the same words, and refuses an ambiguous number.
    assert limit_position(book, "book 2 chapter 1") == 3 and limit_position(book, "3") == 5
    with pytest.raises(VignetteError, match="Which one"):
        limit_position(book, "2")
    assert limit_position(book, "9") == 9  # past the end: left to the pipeline's own message


def test_read_up_to_chapter_n_skips_letters_that_come_first():
    from vignette.documents import Book

    text = _txt("LETTER I", PARA, "LETTER II", PARA, "CHAPTER I", PARA, "CHAPTER II", PARA, "CHAPTER III", PARA)
    book = Book("f", "Letters", None, text, find_chapters(text))
    limit = resolve_reading_limit(book, 2, "I've read up to chapter 2")
    assert (limit.position, limit.chapter.title) == (4, "Chapter 2")


# ---------------------------------------------------------------------------------------------------------
# EPUB: the navigation document first; a broken one falls back to the spine and says so
# ---------------------------------------------------------------------------------------------------------


def _epub(path: Path, nav: str | None, docs: dict[str, str]) -> Path:
    items = "".join(f'<item id="d{i}" href="{n}" media-type="application/xhtml+xml"/>' for i, n in enumerate(docs))
    if nav is not None:
        items += '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
    spine = "".join(f'<itemref idref="d{i}"/>' for i in range(len(docs)))
    opf = ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
           '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>The Glass Sea</dc:title></metadata>'
           f"<manifest>{items}</manifest><spine>{spine}</spine></package>")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip")
        zf.writestr("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:'
                    'names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" '
                    'media-type="application/oebps-package+xml"/></rootfiles></container>')
        zf.writestr("OEBPS/content.opf", opf)
        if nav is not None:
            zf.writestr("OEBPS/nav.xhtml", nav)
        for name, body in docs.items():
            zf.writestr(f"OEBPS/{name}", f'<html xmlns="http://www.w3.org/1999/xhtml"><body>{body}</body></html>')
    return path


def _styled_docs() -> dict[str, str]:
    # A publisher's EPUB: headings are styled paragraphs, not <h1>-<h6>; two chapters share a document.
    both = "".join(f'<p class="ct" id="c{i}">{w}</p><p class="cst">{n}</p><p>{PARA}</p><p>{PARA}</p>'
                   for i, w, n in ((2, "Two", NAMES[1]), (3, "Three", NAMES[2])))
    return {
        "title.xhtml": '<p class="title">The Glass Sea</p><p>Dedicated to the sea.</p>',
        "ch1.xhtml": f'<p class="ct" id="c1">One</p><p class="cst">{NAMES[0]}</p><p>{PARA}</p><p>{PARA}</p>',
        "ch2.xhtml": both,
    }


def _nav(entries: list[tuple[str, str]]) -> str:
    lis = "".join(f'<li><a href="{h}">{t}</a></li>' for h, t in entries)
    return ('<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml" '
            'xmlns:epub="http://www.idpf.org/2007/ops"><body>'
            f'<nav epub:type="toc"><ol>{lis}</ol></nav></body></html>')


def test_epub_chapters_come_from_its_navigation_document(tmp_path):
    nav = _nav([("title.xhtml", "Title Page"), ("ch1.xhtml#c1", f"Chapter 1. {NAMES[0]}"),
                ("ch2.xhtml#c2", f"Chapter 2. {NAMES[1]}"), ("ch2.xhtml#c3", f"Chapter 3. {NAMES[2]}")])
    book = load_book(_epub(tmp_path / "glass.epub", nav, _styled_docs()))
    assert book.structure == "epub-nav"
    assert [(c.printed, c.name) for c in book.chapters] == list(enumerate(NAMES[:3], 1))
    assert book.text[book.chapters[1].start:].startswith("Two")  # cut where the nav's link lands
    assert "Dedicated" not in book.text[book.chapters[0].start:book.chapters[-1].end]


def test_a_broken_navigation_document_falls_back_to_the_spine_and_says_so(tmp_path):
    docs = {f"c{i}.xhtml": f"<h2>Chapter {i}</h2><h3>{n}</h3><p>{PARA}</p>" for i, n in enumerate(NAMES[:3], 1)}
    book = load_book(_epub(tmp_path / "broken.epub", "<html><body><nav><ol><li>", docs))
    assert book.structure == "spine"
    assert [(c.printed, c.name) for c in book.chapters] == list(enumerate(NAMES[:3], 1))
    assert any("navigation document is unreadable" in n for n in book.structure_notes)
    assert any("unreadable" in w for w in structure_warnings(book))


def test_without_nav_or_one_chapter_per_document_the_headings_decide(tmp_path):
    docs = {"all.xhtml": "".join(f"<h2>Chapter {i}</h2><p>{PARA}</p>" for i in range(1, 4))}
    book = load_book(_epub(tmp_path / "one.epub", None, docs))
    assert book.structure == "headings" and [c.printed for c in book.chapters] == [1, 2, 3]
    assert any("no navigation document" in n for n in book.structure_notes)


# ---------------------------------------------------------------------------------------------------------
# Warnings, the listing, and the command
# ---------------------------------------------------------------------------------------------------------


def test_warnings_on_gaps_repeats_tiny_chapters_and_one_huge_chapter():
    from vignette.documents import Book

    text = _txt("CHAPTER I", PARA, "CHAPTER II", PARA, "CHAPTER II", PARA * 30, "CHAPTER IV", "Short.")
    warnings = structure_warnings(Book("w", "W", None, text, find_chapters(text)))
    assert any("jumps from 2 to 4" in w for w in warnings)
    assert any("a second time" in w for w in warnings)
    assert any("Chapter 4 holds only" in w for w in warnings)
    assert any("% of the book" in w for w in warnings)
    clean = _two_books()
    assert structure_warnings(Book("c", "C", None, clean, find_chapters(clean))) == []


def test_chapter_rows_give_label_title_first_words_and_length():
    from vignette.documents import Book

    text = _txt("CHAPTER I.\n\nTHE STORM", PARA, "CHAPTER II.", PARA)
    rows = chapter_rows(Book("r", "R", None, text, find_chapters(text)))
    assert [(r["number"], r["label"], r["title"]) for r in rows] == [(1, "Chapter 1", "The Storm"), (2, "Chapter 2", None)]
    assert rows[0]["first_words"] == "The rain came down on the harbour all"
    assert rows[1]["words"] == len(("CHAPTER II. " + PARA).split())


def test_chapters_command_lists_a_file_as_json(tmp_path, capsys):
    from bot.cli import main

    path = _write(tmp_path / "sea.txt", _two_books())
    assert main(["--data-dir", str(tmp_path / "data"), "chapters", "--file", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(c["part"], c["printed"], c["cited_as"]) for c in out["chapters"]][3] == (
        "Book 2: The Sea", 2, "Book 2, Chapter 2")
    assert out["structure"] == "headings" and out["warnings"] == []


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_citations_keep_the_books_own_numbering():
    from bot.agent import chapter_label

    # Position 7 in reading order, but the book calls it Stave 1 / Book 2, Chapter 3 / Finale.
    for title in ("Stave 1: Marley's Ghost", "Book 2, Chapter 3: The Period", "Finale", "Act 2"):
        assert chapter_label({"chapter": 7, "chapter_title": title}) == title


def test_a_nav_of_titles_alone_confirms_numbered_headings(tmp_path):
    docs = {"cover.xhtml": "<p>Cover</p>", "copyright.xhtml": "<p>Copyright 1890 by the author.</p>"}
    docs.update({f"ch{i}.xhtml": f"<h1>Chapter {i}</h1><h2>{n}</h2><p>{PARA}</p>" for i, n in enumerate(NAMES[:3], 1)})
    docs["about.xhtml"] = f"<h1>About the Author</h1><p>{PARA}</p>"
    nav = _nav([("cover.xhtml", "Cover"), ("copyright.xhtml", "Copyright")]
               + [(f"ch{i}.xhtml", n) for i, n in enumerate(NAMES[:3], 1)] + [("about.xhtml", "About the Author")])
    book = load_book(_epub(tmp_path / "titles.epub", nav, docs))
    assert book.structure == "headings+epub-nav"
    assert [(c.printed, c.name) for c in book.chapters] == list(enumerate(NAMES[:3], 1))
    assert "About the Author" not in book.text[book.chapters[-1].start:book.chapters[-1].end]


def test_a_reader_can_name_the_part_or_the_letter_in_a_conversation():
    from bot.agent import _resolve_limit
    from bot.intents import classify
    from vignette.documents import Book

    text = _two_books()
    book = Book("sea", "The Sea", None, text, find_chapters(text))
    said = "I've read up to chapter 1 of book 2, who is the stranger?"
    intent = classify(said)
    assert (intent.kind, intent.chapter, intent.text) == ("spoiler", 1, "Who is the stranger?")
    assert _resolve_limit(book, intent.chapter, said).position == 3
    assert _resolve_limit(book, 1, "I'm on chapter 1").question  # which part?
    letters = _txt("LETTER I", PARA, "LETTER II", PARA, "CHAPTER I", PARA, "CHAPTER II", PARA)
    book = Book("f", "F", None, letters, find_chapters(letters))
    assert _resolve_limit(book, 2, "I've read up to letter 2").position == 2
    assert _resolve_limit(book, 2, "I've read up to chapter 2").position == 4


def test_html_stories_with_numbered_sections_are_stories(tmp_path):
    stories = ["A Scandal in the Square", "The Red-Headed Clerk", "The Copper Gate"]
    body = "".join(f"<h2>{t}</h2><h3>I.</h3><p>{PARA}</p><h3>II.</h3><p>{PARA}</p>" for t in stories)
    book = load_book(_write(tmp_path / "cases.html", f"<html><body><h1>Cases</h1>{body}</body></html>"))
    assert [(c.kind, c.printed, c.title) for c in book.chapters] == [("story", i, t) for i, t in enumerate(stories, 1)]
    assert book.text[book.chapters[0].start:book.chapters[0].end].count("II.") == 1  # its sections stay inside


def test_numbered_sections_below_numbered_chapters_stay_inside(tmp_path):
    body = "".join(f"<h2>CHAPTER {r}.</h2><h3>I.</h3><p>{PARA}</p><h3>II.</h3><p>{PARA}</p>" for r in ("I", "II", "III"))
    book = load_book(_write(tmp_path / "inner.html", f"<html><body><h1>Inner</h1>{body}</body></html>"))
    assert [c.title for c in book.chapters] == ["Chapter 1", "Chapter 2", "Chapter 3"]
    docs = {f"c{i}.xhtml": f"<h2>Chapter {i}</h2><h3 id='s1'>1</h3><p>{PARA}</p><h3 id='s2'>2</h3><p>{PARA}</p>"
            for i in range(1, 4)}
    flat = []
    for i in range(1, 4):
        flat += [(f"c{i}.xhtml", f"Chapter {i}"), (f"c{i}.xhtml#s1", "1"), (f"c{i}.xhtml#s2", "2")]
    book = load_book(_epub(tmp_path / "flat.epub", _nav(flat), docs))
    assert [c.printed for c in book.chapters] == [1, 2, 3] and book.structure == "epub-nav"
    inner = "".join(f'<li><a href="c{i}.xhtml">Chapter {i}</a><ol><li><a href="c{i}.xhtml#s1">1</a></li>'
                    f'<li><a href="c{i}.xhtml#s2">2</a></li></ol></li>' for i in range(1, 4))
    nested = _nav([]).replace("<ol></ol>", f"<ol>{inner}</ol>")
    book = load_book(_epub(tmp_path / "nested.epub", nested, docs))
    assert [c.printed for c in book.chapters] == [1, 2, 3] and book.structure == "epub-nav"


def test_a_plain_text_contents_page_confirms_or_questions_the_chapters():
    from retrieval.chapters import find_structure

    body = [f"CHAPTER {r}.\n\n{n.upper()}\n\n{PARA}\n\n{PARA}" for r, n in zip(("I", "II", "III"), NAMES)]
    agrees = "CONTENTS\n\n" + "\n".join(f"{r}. {n}" for r, n in zip(("I", "II", "III"), NAMES))
    found = find_structure(_txt("THE STORM COUNTRY", agrees, *body))
    assert found.source == "headings+contents" and found.note is None
    differs = "CONTENTS\n\n" + "\n".join(f"{r}. {n}" for r, n in zip(("I", "II"), ("A Quiet Farm", "The Wind")))
    found = find_structure(_txt("THE STORM COUNTRY", differs, *body))
    assert [c.printed for c in found.chapters] == [1, 2, 3]  # the headings decide, never the contents
    assert found.source == "headings" and "lists 0 of the 3 chapters" in found.note


def test_the_chapter_scorer_catches_a_wrong_title_a_missing_chapter_and_a_wrong_part():
    from eval.chapters import score_book
    from vignette.documents import Book

    text = _two_books()
    book = Book("sea", "The Sea", None, text, find_chapters(text))
    first = PARA.split()[:8]
    truth = [{"number": n, "label": f"CHAPTER {n}", "title": None, "part": p, "first_words": " ".join(first)}
             for p, n in (("BOOK I", 1), ("BOOK I", 2), ("BOOK II", 1), ("BOOK II", 2), ("BOOK II", 3))]
    entry = {"file": "sea.txt", "chapters": truth}
    assert score_book(entry, book).whole
    wrong = [dict(t) for t in truth]
    wrong[1]["title"] = "The Storm"  # a title the finder did not find
    wrong[3]["part"] = "BOOK I"  # the part would begin one chapter later
    score = score_book({"file": "sea.txt", "chapters": wrong + [dict(truth[-1], number=4)]}, book)
    assert not score.whole and (score.right, score.missing, score.extra) == (2, 1, 0)


def test_an_epilogue_with_chapters_sits_beside_the_books():
    text = _txt("BOOK ONE", "CHAPTER I", PARA, "CHAPTER II", PARA, "BOOK TWO", "CHAPTER I", PARA,
                "FIRST EPILOGUE", "CHAPTER I", PARA, "CHAPTER II", PARA)
    chapters = find_chapters(text)
    assert [(c.volume, c.part, c.printed) for c in chapters] == [
        (None, "Book 1", 1), (None, "Book 1", 2), (None, "Book 2", 1), (None, "Epilogue 1", 1), (None, "Epilogue 1", 2)]
    assert chapters[-1].title == "Epilogue 1, Chapter 2"


def test_a_volume_heading_above_a_preface_is_kept():
    preface = "\n".join(["So long as there shall exist, by virtue of law and custom, decrees of damnation"] * 14)
    text = _txt("VOLUME I.--FANTINE.", "PREFACE", preface, "BOOK FIRST--A JUST MAN", "CHAPTER I--M. MYRIEL", PARA,
                "CHAPTER II--THE BISHOP", PARA, "VOLUME II.--COSETTE.", "BOOK FIRST--WATERLOO", "CHAPTER I--THE ROAD",
                PARA)
    chapters = find_chapters(text)
    assert [(c.volume, c.part, c.printed) for c in chapters] == [
        ("Volume 1: Fantine", "Book 1: A Just Man", 1), ("Volume 1: Fantine", "Book 1: A Just Man", 2),
        ("Volume 2: Cosette", "Book 1: Waterloo", 1)]
    assert chapters[0].title == "Volume 1, Book 1, Chapter 1: M. Myriel"


def test_a_rule_near_the_end_is_a_scene_break_unless_an_advert_follows():
    story = _txt("CHAPTER I", PARA, "CHAPTER II", PARA * 3, "-------", "Next morning the sun rose over the quay.")
    last = find_chapters(story)[-1]
    assert story[last.start:last.end].endswith("Next morning the sun rose over the quay.")
    advert = _txt("CHAPTER I", PARA, "CHAPTER II", PARA * 3, "-------",
                  "Here ends the story. Its sequel, THE TIN FOREST, is now ready. Cloth, $1.25.")
    last = find_chapters(advert)[-1]
    assert advert[last.start:last.end].endswith(PARA)
