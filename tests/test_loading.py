"""Loading a novel: formats, encodings, the Project Gutenberg clean-up, title and author, bad input."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from retrieval.loading import load_book
from vignette.errors import VignetteError

CHAPTER_BODY = (
    "The rain came down on the harbour all night. Mr. Brown watched it from the window of the inn, "
    "and Mrs. Pike brought him tea twice. He did not drink it.\n\n"
    "In the morning the boats were gone. “Where are they?” asked the boy. Nobody answered him."
)


# ---------------------------------------------------------------------------------------------------------
# The shared Gutenberg novels
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, title, author, chapters",
    [
        ("pg1342_pride_and_prejudice.pg2015.txt", "Pride and Prejudice", "Jane Austen", 61),
        ("pg84_frankenstein.pg_raw.utf8.txt", "Frankenstein; or, The Modern Prometheus",
         "Mary Wollstonecraft (Godwin) Shelley", 28),
    ],
)  # fmt: skip
def test_gutenberg_header_footer_and_bom_are_removed(shared_data, name, title, author, chapters):
    book = load_book(shared_data / "novels" / "with_gutenberg_header" / name)
    assert book.title == title
    assert book.author == author
    assert len(book.chapters) == chapters
    assert "gutenberg" not in book.text.lower()
    assert "*** START" not in book.text and "*** END" not in book.text
    assert "\ufeff" not in book.text and "\r" not in book.text
    assert not book.text.startswith(("Produced by", "?", " ", "\n"))
    assert book.text.rstrip().endswith(("uniting them.", "darkness and distance."))


def test_older_gutenberg_variants_are_removed(tmp_path):
    path = tmp_path / "old.txt"
    path.write_text(
        "The Project Gutenberg Etext of The Old Mill, by Ann Other\n\n"
        "**Welcome To The World of Free Plain Vanilla Electronic Texts**\n\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK THE OLD MILL ***\n\nlegal small print, many lines\n\n"
        "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n"
        "Produced by A. Volunteer\nand the Online Distributed\nProofreading Team\n\n\n"
        f"THE OLD MILL\n\nChapter 1\n\n{CHAPTER_BODY}\n\nChapter 2\n\n{CHAPTER_BODY}\n\n"
        "End of Project Gutenberg's The Old Mill, by Ann Other\n\nmore licence\n"
    )
    book = load_book(path)
    assert book.text.startswith("THE OLD MILL\n\nChapter 1")
    assert book.text.endswith("Nobody answered him.")
    assert (book.title, book.author) == ("The Old Mill", "Ann Other")
    assert len(book.chapters) == 2


def test_gutenberg_versions_match_the_clean_ones(shared_data):
    """The with-header Frankenstein is the clean copy's text once the loader has cut the licence (the two
    releases differ in a word and some trailing spaces, nothing more)."""
    novels = shared_data / "novels"
    raw = load_book(novels / "with_gutenberg_header" / "pg84_frankenstein.pg_raw.utf8.txt")
    clean = load_book(novels / "pg84_frankenstein.txt")
    raw_words, clean_words = raw.text.split(), clean.text.split()
    assert len(raw_words) == len(clean_words)
    assert sum(a != b for a, b in zip(raw_words, clean_words)) <= 2
    assert [c.title for c in raw.chapters] == [c.title for c in clean.chapters]


@pytest.mark.parametrize(
    "name, title, author, book_id",
    [
        ("pg1342_pride_and_prejudice.txt", "Pride and Prejudice", "Jane Austen", "pride-and-prejudice"),
        (
            "pg11_alice_in_wonderland.txt",
            "Alice’s Adventures in Wonderland",
            "Lewis Carroll",
            "alices-adventures-in-wonderland",
        ),
        (
            "pg84_frankenstein.txt",
            "Frankenstein; or, the Modern Prometheus",
            "Mary Wollstonecraft (Godwin) Shelley",
            "frankenstein-or-the-modern-prometheus",
        ),
        (
            "pg1661_adventures_of_sherlock_holmes.txt",
            "The Adventures of Sherlock Holmes",
            "Arthur Conan Doyle",
            "the-adventures-of-sherlock-holmes",
        ),
    ],
)
def test_title_and_author_from_the_title_page(shared_data, name, title, author, book_id):
    book = load_book(shared_data / "novels" / name)
    assert (book.title, book.author, book.book_id) == (title, author, book_id)
    assert book.source == name


def test_explicit_book_id_wins(tmp_path):
    path = tmp_path / "novel.txt"
    path.write_text(f"A Title\n\nby Someone\n\nChapter 1\n\n{CHAPTER_BODY}\n\nChapter 2\n\n{CHAPTER_BODY}\n")
    assert load_book(path, book_id="mine").book_id == "mine"
    assert load_book(path).book_id == "a-title"


# ---------------------------------------------------------------------------------------------------------
# Encodings
# ---------------------------------------------------------------------------------------------------------

ACCENTED = "“Café,” said Zoë, “is naïve—déjà vu.” It’s 5 £ and ½ a crêpe…"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "utf-16"])
def test_text_in_common_encodings_decodes_right(tmp_path, encoding):
    path = tmp_path / f"book-{encoding}.txt"
    path.write_bytes(
        f"The Café Book\r\nby Zoë Brontë\r\n\r\nChapter 1\r\n\r\n{ACCENTED}\r\n".encode(encoding)
    )
    book = load_book(path)
    assert ACCENTED in book.text
    assert "\ufeff" not in book.text and "\r" not in book.text
    assert book.title == "The Café Book" and book.author == "Zoë Brontë"


def test_latin1_with_bytes_cp1252_leaves_undefined(tmp_path):
    text = "Ça, c'est égal: à bientôt, Müller. \x81"  # 0x81 is undefined in cp1252: only latin-1 decodes it
    path = tmp_path / "latin.txt"
    path.write_bytes(("Le Livre\n\nChapter 1\n\n" + text + "\n").encode("latin-1"))
    book = load_book(path)
    assert "Ça, c'est égal: à bientôt, Müller." in book.text


def test_stray_byte_order_marks_and_old_mac_newlines(tmp_path):
    path = tmp_path / "odd.txt"
    path.write_bytes("\ufeffThe Book\r\rChapter 1\r\r\ufeffFirst line.\rSecond line.\r".encode("utf-8"))
    book = load_book(path)
    assert book.text == "The Book\n\nChapter 1\n\nFirst line.\nSecond line."


# ---------------------------------------------------------------------------------------------------------
# Markdown, HTML, EPUB
# ---------------------------------------------------------------------------------------------------------


def test_markdown_markup_is_stripped(tmp_path):
    path = tmp_path / "storm.md"
    path.write_text(
        '---\ntitle: "The Storm Book"\nauthor: Jane Doe\n---\n\n# The Storm Book\n\n'
        "A [preface](http://example.org) with ![a map](map.png) and `code`.\n\n"
        "## Chapter 1: The Storm\n\nIt was a **dark** and _stormy_ night. Mr. Brown said so.\n\n"
        "> A letter, quoted.\n\n- a list item\n\n***\n\nAn escaped \\*star\\*.\n\n"
        "Chapter 2: The Calm\n-------------------\n\nAll was *quiet* again.\n",
        encoding="utf-8",
    )
    book = load_book(path)
    assert (book.title, book.author) == ("The Storm Book", "Jane Doe")
    assert [c.title for c in book.chapters] == ["Chapter 1: The Storm", "Chapter 2: The Calm"]
    first = book.text[book.chapters[0].start : book.chapters[0].end]
    assert "It was a dark and stormy night. Mr. Brown said so." in first
    assert "A letter, quoted." in first and "a list item" in first and "An escaped *star*." in first
    for markup in ("**", "](", "![", "#", "`", "---"):
        assert markup not in book.text
    assert "A preface with  and code." in book.text


def test_markdown_headings_without_keywords_become_chapters(tmp_path):
    path = tmp_path / "tales.markdown"
    path.write_text(
        "# Three Tales\n\n## The Fox\n\n" + CHAPTER_BODY + "\n\n## The Crow\n\n" + CHAPTER_BODY
        + "\n\n## The Wolf\n\n" + CHAPTER_BODY + "\n"
    )  # fmt: skip
    book = load_book(path)
    assert book.title == "Three Tales"
    assert [c.title for c in book.chapters] == ["The Fox", "The Crow", "The Wolf"]
    assert book.text[book.chapters[1].start :].startswith("The Crow\n\nThe rain came down")


HTML_BOOK = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>The Project Gutenberg eBook of The Lantern, by A. Writer</title>
<style>p { color: red; }</style><script>var secret = "do not read";</script></head>
<body>
<h1>THE LANTERN</h1>
<p class="toc"><a href="#c1">CHAPTER I. The Dark</a><br><a href="#c2">CHAPTER II. The Light</a></p>
<h2 id="c1">CHAPTER I.<br>The Dark</h2>
<p>It was dark &amp; cold&mdash;very
   cold. Mr. Lamb lit the <i>lantern</i>.</p>
<p>“Is it out?” she asked.<br>Nobody knew.</p>
<div><p>The oil was low.</p></div>
<h2 id="c2">CHAPTER II.<br>The Light</h2>
<p>Morning came at last, grey and slow, over the roofs of the town and the masts of the ships.</p>
</body></html>"""


def test_html_blocks_become_paragraphs_and_headings_chapters(tmp_path):
    path = tmp_path / "lantern.html"
    path.write_text(HTML_BOOK, encoding="utf-8")
    book = load_book(path)
    assert book.title == "The Lantern"
    assert [c.title for c in book.chapters] == ["Chapter 1: The Dark", "Chapter 2: The Light"]
    ch1 = book.text[book.chapters[0].start : book.chapters[0].end]
    assert (
        "It was dark & cold—very cold. Mr. Lamb lit the lantern.\n\n“Is it out?” she asked.\nNobody knew."
        in ch1
    )
    assert ch1.endswith("The oil was low.")
    assert "secret" not in book.text and "color" not in book.text and "<" not in book.text


XHTML = (
    '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
    "<head><title>x</title></head><body>{body}</body></html>"
)


def test_gutenberg_html_with_volumes(tmp_path):
    para = "<p>" + CHAPTER_BODY.replace("\n\n", "</p><p>") + "</p>"
    path = tmp_path / "emma.htm"
    path.write_text(
        "<html><head><title>The Project Gutenberg eBook of Emma, by Jane Austen</title></head><body>"
        '<section class="pg-boilerplate"><h2>The Project Gutenberg eBook of Emma</h2>'
        "<p><strong>Title</strong>: Emma</p><p><strong>Author</strong>: Jane Austen</p>"
        "<div><span>*** START OF THE PROJECT GUTENBERG EBOOK EMMA ***</span></div></section>"
        f"<h1>EMMA</h1><h2>VOLUME I</h2><h2>CHAPTER I</h2>{para}<h2>CHAPTER II</h2>{para}"
        f"<h2>VOLUME II</h2><h2>CHAPTER I</h2>{para}"
        "<section><div>*** END OF THE PROJECT GUTENBERG EBOOK EMMA ***</div><p>licence</p></section>"
        "</body></html>",
        encoding="utf-8",
    )
    book = load_book(path)
    assert (book.title, book.author, book.book_id) == ("Emma", "Jane Austen", "emma")
    # Numbering restarts in each volume, so a chapter is cited with its volume.
    assert [(c.title, c.part, c.printed) for c in book.chapters] == [
        ("Volume 1, Chapter 1", "Volume 1", 1),
        ("Volume 1, Chapter 2", "Volume 1", 2),
        ("Volume 2, Chapter 1", "Volume 2", 1),
    ]
    assert book.text.startswith("EMMA\n\nVOLUME I\n\nCHAPTER I\n\nThe rain came down")
    assert "licence" not in book.text and "Gutenberg" not in book.text


def _write_epub(
    path: Path,
    docs: dict[str, str],
    spine: list[str],
    *,
    title: str = "The Glass Sea",
    creator: str = "M. Quill",
    container: bool = True,
    opf_dir: str = "OEBPS",
    leave_out: tuple[str, ...] | set[str] = (),
) -> Path:
    """A real EPUB 3 container: mimetype, META-INF/container.xml, an OPF package with spine, XHTML docs."""
    manifest = "\n".join(
        f'<item id="{n.split(".")[0]}" href="{n}" media-type="application/xhtml+xml"/>' for n in docs
    )
    itemrefs = "\n".join(f'<itemref idref="{n.split(".")[0]}"/>' for n in spine)
    opf = f"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:title>{title}</dc:title><dc:creator>{creator}</dc:creator><dc:identifier id="id">x</dc:identifier>
  </metadata>
  <manifest>{manifest}</manifest>
  <spine>{itemrefs}</spine>
</package>"""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        if container:
            zf.writestr(
                "META-INF/container.xml",
                '<?xml version="1.0"?><container version="1.0" '
                'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
                f'<rootfile full-path="{opf_dir}/content.opf" media-type="application/oebps-package+xml"/>'
                "</rootfiles></container>",
            )
        zf.writestr(f"{opf_dir}/content.opf", opf)
        for name, body in docs.items():
            if name in leave_out:
                continue
            zf.writestr(f"{opf_dir}/{name}", XHTML.format(body=body))
    return path


def _epub_docs() -> dict[str, str]:
    return {
        "toc.xhtml": "<h1>Contents</h1><ol><li>Chapter 1: The Shore</li><li>Chapter 2: The Wave</li></ol>",
        "c2.xhtml": "<h2>Chapter 2: The Wave</h2><p>The wave rose higher than the church. Everyone ran.</p>",
        "c1.xhtml": "<h2>Chapter 1: The Shore</h2>"
        "<p>The sea was glass that morning. Nell walked out on it.</p><p>She was not afraid.</p>",
    }


def test_epub_is_read_in_spine_order(tmp_path):
    path = _write_epub(tmp_path / "glass.epub", _epub_docs(), ["toc.xhtml", "c1.xhtml", "c2.xhtml"])
    book = load_book(path)
    assert (book.title, book.author, book.book_id) == ("The Glass Sea", "M. Quill", "the-glass-sea")
    assert [c.title for c in book.chapters] == ["Chapter 1: The Shore", "Chapter 2: The Wave"]
    ch1 = book.text[book.chapters[0].start : book.chapters[0].end]
    shore = "Chapter 1: The Shore\n\nThe sea was glass that morning. Nell walked out on it."
    assert ch1 == shore + "\n\nShe was not afraid."
    # Spine order, not archive order.
    assert book.text.index("The sea was glass") < book.text.index("The wave rose")


def test_epub_heading_split_over_two_heading_tags(tmp_path):
    docs = {
        f"c{i}.xhtml": f"<h2>Chapter {i}</h2><h3>{name}</h3><p>{CHAPTER_BODY}</p>"
        for i, name in ((1, "The Shore"), (2, "The Wave"), (3, "The Deep"))
    }
    book = load_book(_write_epub(tmp_path / "split.epub", docs, list(docs)))
    assert [c.title for c in book.chapters] == [
        "Chapter 1: The Shore",
        "Chapter 2: The Wave",
        "Chapter 3: The Deep",
    ]


def test_epub_without_container_falls_back_to_the_package_file(tmp_path):
    path = _write_epub(tmp_path / "glass.epub", _epub_docs(), ["c1.xhtml", "c2.xhtml"], container=False)
    assert len(load_book(path).chapters) == 2


# ---------------------------------------------------------------------------------------------------------
# Bad input: one error type, a message that names the file and says what to do
# ---------------------------------------------------------------------------------------------------------


def _error(path, **kwargs) -> str:
    with pytest.raises(VignetteError) as info:
        load_book(path, **kwargs)
    return str(info.value)


def test_missing_file(tmp_path):
    message = _error(tmp_path / "nowhere.txt")
    assert "Cannot find" in message and "nowhere.txt" in message


def test_empty_and_blank_files(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    assert "empty.txt" in _error(tmp_path / "empty.txt") and "empty" in _error(tmp_path / "empty.txt")
    (tmp_path / "blank.md").write_text("\n\n   \n*** ***\n")
    assert "no readable text" in _error(tmp_path / "blank.md")
    (tmp_path / "only-licence.txt").write_text(
        "The Project Gutenberg EBook of Nothing\n\n*** START OF THIS PROJECT GUTENBERG EBOOK NOTHING ***\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK NOTHING ***\nlicence text\n"
    )
    assert "no readable text" in _error(tmp_path / "only-licence.txt")


def test_binary_content(tmp_path):
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    assert "PNG image" in _error(tmp_path / "image.txt")
    (tmp_path / "data.txt").write_bytes(b"Chapter 1\n\nwords\x00\x01\x02" * 100)
    message = _error(tmp_path / "data.txt")
    assert "data.txt" in message and "not a text file" in message


def test_unsupported_extension_lists_the_supported_ones(tmp_path):
    (tmp_path / "novel.pdf").write_bytes(b"%PDF-1.4 ...")
    message = _error(tmp_path / "novel.pdf")
    assert "'.pdf'" in message and "novel.pdf" in message
    for ext in (".txt", ".epub", ".md", ".html"):
        assert ext in message


def test_file_over_the_size_limit_names_the_limit(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("word " * 100_000)
    message = _error(path, max_bytes=200 * 1024)
    assert "big.txt" in message and "too large" in message and "0.2 MiB" in message and "0.5 MiB" in message
    assert load_book(path, max_bytes=1_000_000).chapters  # under the limit it loads


def test_broken_epubs(tmp_path):
    (tmp_path / "notzip.epub").write_text("this is not a zip archive at all")
    assert "not a readable EPUB" in _error(tmp_path / "notzip.epub")

    truncated = _write_epub(tmp_path / "full.epub", _epub_docs(), ["c1.xhtml"]).read_bytes()
    (tmp_path / "truncated.epub").write_bytes(truncated[: len(truncated) // 2])
    assert "truncated.epub" in _error(tmp_path / "truncated.epub")

    missing = _write_epub(
        tmp_path / "missing.epub", _epub_docs(), ["c1.xhtml", "c2.xhtml"], leave_out={"c2.xhtml"}
    )
    assert "OEBPS/c2.xhtml" in _error(missing) and "missing" in _error(missing)

    path = tmp_path / "nospine.epub"
    _write_epub(path, {}, [])
    assert "spine" in _error(path)

    garbled = tmp_path / "garbled.epub"
    with zipfile.ZipFile(garbled, "w") as zf:
        zf.writestr("META-INF/container.xml", "<container><rootfiles><rootfile")
    assert "container.xml" in _error(garbled)

    empty_zip = tmp_path / "emptyzip.epub"
    with zipfile.ZipFile(empty_zip, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert "no META-INF/container.xml" in _error(empty_zip)


def test_a_folder_is_not_a_book(tmp_path):
    (tmp_path / "shelf.txt").mkdir()
    assert "folder" in _error(tmp_path / "shelf.txt")


def test_no_title_page_falls_back_to_the_file_name(tmp_path):
    path = tmp_path / "the_quiet_harbour.txt"
    opening = "By the time the boats came in, the rain had stopped."
    path.write_text(f"CHAPTER I\n\n{opening}\n\n{CHAPTER_BODY}\n\nCHAPTER II\n\n{CHAPTER_BODY}\n")
    book = load_book(path)
    assert (book.title, book.author, book.book_id) == ("The quiet harbour", None, "the-quiet-harbour")
    assert len(book.chapters) == 2
