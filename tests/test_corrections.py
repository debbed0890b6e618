"""A reader's corrections to the chapters (retrieval.corrections): stored with the book, applied without
re-embedding, honoured by the spoiler limit, and kept through a re-ingest. Real MiniLM, Chroma in a temp dir."""

from __future__ import annotations

import json

import pytest

from retrieval.corrections import CORRECTIONS_FILE, make_correction, correct_book
from retrieval.sparse import BM25Index
from retrieval.store import BookStore
from vignette.errors import VignetteError

PARA = ("Mara carried the red lantern up the spiral stair of the lighthouse every evening at dusk, and from the "
        "gallery she signalled to the fishing boats that the light was lit and the harbour was safe.")
BOOK = "\n\n".join([
    "THE LAMP AT CORRAN HEAD", "by Imogen Farrow",
    "PREFACE", "This preface was written by the editor, who met the keeper's daughter in 1890 and heard the story "
    "from her own lips. The gannets were nesting on the northern islands that year.",
    "CHAPTER I", "THE RED LANTERN", PARA,
    "CHAPTER II", "THE STORM", "The schooner Kestrel struck the rocks below the Head near midnight. " + PARA,
    "CHAPTER III", "THE VIOLIN CASE", "A black violin case washed up on the shingle with a letter inside. " + PARA,
    "THE SECOND NIGHT", "Tobias Wren climbed the stair with a candle and found the letter under the board. " + PARA,
    "CHAPTER IV", "THE WEDDING", "Tobias married Elsie Dunn under the apple trees of the old orchard. " + PARA,
]) + "\n"


@pytest.fixture
def stored(settings, tmp_path):
    path = tmp_path / "lamp.txt"
    path.write_text(BOOK, encoding="utf-8")
    store = BookStore(settings)
    store.ingest(path, book_id="lamp")
    return store, path


def _no_encoding(monkeypatch):
    def refuse(self, texts):
        raise AssertionError("a correction must not embed anything")

    monkeypatch.setattr(BookStore, "encode", refuse)


def test_corrections_relabel_passages_without_re_embedding(stored, monkeypatch):
    store, _ = stored
    book = store.get_book("lamp")
    assert [c.title for c in book.chapters] == ["Chapter 1: The Red Lantern", "Chapter 2: The Storm",
                                                "Chapter 3: The Violin Case", "Chapter 4: The Wedding"]
    wedding_vector = store.encode(["Who married Elsie Dunn under the apple trees?"])[0]
    letter_vector = store.encode(["Who found the letter under the board with a candle?"])[0]
    _no_encoding(monkeypatch)

    # 1. Split chapter 3 at a line: the second night becomes chapter 4, the wedding chapter 5.
    fix = make_correction(book, "split", 3, title="The Second Night", line="THE SECOND NIGHT")
    book = correct_book(store, "lamp", [fix])
    assert [c.title for c in book.chapters][2:] == ["Chapter 3: The Violin Case", "The Second Night",
                                                    "Chapter 4: The Wedding"]
    night = store.passages("lamp")
    assert {p.chapter for p in night if "Tobias Wren climbed" in p.text} == {4}
    # The spoiler limit follows: up to chapter 3 no longer reaches the second night.
    hits = store.dense_search("lamp", letter_vector, k=10, max_chapter=3)
    assert hits and all("Tobias Wren climbed" not in p.text for p, _ in hits)
    assert "Tobias Wren climbed" in store.dense_search("lamp", letter_vector, k=1, max_chapter=4)[0][0].text

    # 2. Rename, then merge: citations take the new title; a merged chapter's passages join the one before.
    book = correct_book(store, "lamp", [make_correction(book, "rename", 5, title="The Orchard Wedding")])
    top = store.dense_search("lamp", wedding_vector, k=1)[0][0]
    assert (top.chapter, top.chapter_title) == (5, "Chapter 4: The Orchard Wedding")
    book = correct_book(store, "lamp", [make_correction(book, "merge", 4)])
    assert len(book.chapters) == 4 and book.chapters[2].title == "Chapter 3: The Violin Case"
    assert {p.chapter for p in store.passages("lamp") if "Tobias Wren climbed" in p.text} == {3}

    # 3. Front matter: chapter 1 leaves the index (vectors and BM25), the rest renumber from 1.
    book = correct_book(store, "lamp", [make_correction(book, "front", 1)])
    assert [c.title for c in book.chapters][0] == "Chapter 2: The Storm" and book.chapters[0].number == 1
    passages = store.passages("lamp")
    assert passages and not any("THE RED LANTERN" in p.text for p in passages)
    assert set(BM25Index.load(store.settings.books_dir / "lamp" / "bm25").ids) == {p.passage_id for p in passages}
    manifest = json.loads((store.settings.books_dir / "lamp" / "manifest.json").read_text())
    assert (manifest["chapters"], manifest["passages"]) == (3, len(passages))
    assert len(json.loads((store.settings.books_dir / "lamp" / CORRECTIONS_FILE).read_text())["corrections"]) == 4


def test_corrections_survive_a_re_ingest(stored):
    store, path = stored
    book = store.get_book("lamp")
    correct_book(store, "lamp", [make_correction(book, "rename", 2, title="The Great Storm")])
    # The same book with other passage settings is indexed again from the file: the rename stays.
    again = BookStore(store.settings.replace(passage_tokens=120))
    again.ingest(path, book_id="lamp")
    manifest = json.loads((store.settings.books_dir / "lamp" / "manifest.json").read_text())
    assert manifest["passage_tokens"] == 120  # indexed again, not skipped
    book = again.get_book("lamp")
    assert book.chapters[1].title == "Chapter 2: The Great Storm"
    assert {p.chapter_title for p in again.passages("lamp") if "Kestrel" in p.text} == {"Chapter 2: The Great Storm"}
    assert again.get_book("lamp", corrected=False).chapters[1].title == "Chapter 2: The Storm"


def test_bad_corrections_are_refused_and_change_nothing(stored):
    store, _ = stored
    folder = store.settings.books_dir / "lamp"
    before = (folder / "passages.jsonl").read_bytes()
    book = store.get_book("lamp")
    with pytest.raises(VignetteError, match="no chapter 9"):
        make_correction(book, "rename", 9, title="X")
    with pytest.raises(VignetteError, match="No line starting"):
        make_correction(book, "split", 2, line="NOT IN THE BOOK")
    with pytest.raises(VignetteError, match="Chapter 1 has no chapter before it"):
        make_correction(book, "merge", 1)
    fronts = [make_correction(book, "front", n) for n in range(1, 5)]
    with pytest.raises(VignetteError, match="without chapters"):
        correct_book(store, "lamp", fronts)
    assert (folder / "passages.jsonl").read_bytes() == before and not (folder / CORRECTIONS_FILE).exists()


def test_chapters_command_corrects_a_stored_book(stored, capsys):
    from bot.cli import main

    store, _ = stored
    data_dir = str(store.settings.data_dir)
    assert main(["--data-dir", data_dir, "chapters", "--book", "lamp", "--rename", "1", "The Lantern"]) == 0
    out = capsys.readouterr().out
    assert "The Lantern" in out and "WORDS" in out
    assert main(["--data-dir", data_dir, "chapters", "--book", "lamp", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [c["cited_as"] for c in listing["chapters"]][0] == "Chapter 1: The Lantern"
    assert listing["chapters"][1]["first_words"].startswith("The schooner Kestrel struck")
    assert main(["--data-dir", data_dir, "chapters", "--book", "lamp", "--merge", "1"]) == 2
    assert "no chapter before it" in capsys.readouterr().err


def test_an_oddly_built_book_changes_nothing_already_stored(stored, tmp_path):
    from retrieval.chapter_report import structure_warnings

    store, _ = stored
    folder = store.settings.books_dir / "lamp"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    odd = tmp_path / "odd.txt"
    odd.write_text("\n\n".join(["CHAPTER I", PARA, "CHAPTER II", PARA, "CHAPTER II", PARA * 3, "CHAPTER IV", PARA])
                   + "\n",
                   encoding="utf-8")
    store.ingest(odd, book_id="odd")
    warnings = structure_warnings(store.get_book("odd"))
    assert any("jumps from 2 to 4" in w for w in warnings) and any("a second time" in w for w in warnings)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert [c.title for c in store.get_book("lamp").chapters][0] == "Chapter 1: The Red Lantern"
