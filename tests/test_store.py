"""retrieval.store and retrieval.sparse: the library, with the real packaged MiniLM and Chroma in a temp dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.sparse import BM25Index, s_stem, tokenize
from retrieval.store import BookStore, collection_name
from vignette.errors import VignetteError
from vignette.settings import Settings

TINY_BOOK = """The Lamplighter's Daughter

by Imogen Farrow

CHAPTER I. The Red Lantern

Mara Quill lived at the top of the lighthouse on Corran Head with her father, Silas, who kept the great lamp burning. She was fourteen, with grey eyes, a crooked front tooth and a brown braid that reached her waist. Every evening at dusk she carried a small red lantern up the spiral stair of one hundred and twelve steps, and from the gallery she signalled to the fishing boats that the light was lit.

Her father trimmed the wicks and polished the brass, and he told her that a lamplighter must never sleep before the last boat is home.

CHAPTER II. The Storm

In the first week of November a storm came in from the west. The waves broke over the gallery rail and the wind howled in the chimney. Near midnight the schooner Kestrel struck the rocks below the Head. Mara tied a rope around her waist, rowed the little dinghy out through the surf, and pulled three half-drowned sailors from the black water. The youngest of them was a sailor called Tobias Wren, who had red hair and a scar across his chin.

By morning the Kestrel had broken apart and its cargo of timber floated in the cove.

CHAPTER III. The Violin Case

Among the wreckage Mara found a black violin case washed up on the shingle. There was no violin inside. Instead there was a letter sealed with green wax and addressed to her mother, Anna Quill, who had vanished from Corran Head ten years before. Mara did not open the letter. She hid it under a loose board in the lamp room and told nobody, not even her father.

That night she could not sleep, and she watched the beam of the lighthouse sweep across the dark sea until dawn.

CHAPTER IV. The Orchard Wedding

In the spring Tobias Wren married Elsie Dunn, the baker's daughter from the village, under the apple trees of the old orchard. The blossom fell like snow on the guests. Mara wore a yellow dress and played the fiddle, and her father danced for the first time in ten years. When the dancing was over, Mara gave him the letter with the green seal, and together they broke it open in the lamp room.

Inside was a map of the northern islands, and a single line in her mother's hand: I am waiting where the gannets nest.
"""

OTHER_BOOK = """The Clockmaker

CHAPTER I. Gears

Otto Brand repaired clocks in a narrow shop on Wheel Street. His hands were steady and his eyes were weak, and he wore two pairs of spectacles at once when he worked on the smallest movements. Customers came from three towns away to have their watches mended by him.
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def tiny_book(folder: Path) -> Path:
    """A four-chapter book whose facts the tests can check (written for these tests)."""
    return write(folder / "lamplighter.txt", TINY_BOOK)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: to prove something was left untouched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stored_collection(settings: Settings, book_id: str) -> str:
    """The Chroma collection the book's manifest names (a re-index builds a new one beside the old)."""
    return json.loads((settings.books_dir / book_id / "manifest.json").read_text())["collection"]


def reopen(settings: Settings) -> BookStore:
    """A new store over the same folders, with Chroma's in-process cache dropped so it really reopens."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    return BookStore(settings)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A store holding the tiny book, built once for the read-only tests of this module."""
    root = tmp_path_factory.mktemp("library")
    settings = Settings.from_env(env={}, data_dir=root / "data")
    store = BookStore(settings)
    report = store.ingest(tiny_book(root), book_id="lamplighter")
    return settings, store, report


# --- sparse ------------------------------------------------------------------------------------------
def test_tokenize_drops_stopwords_and_folds_plurals():
    assert tokenize("The Ladies' letters, and THE lanterns of 1811!") == ["lady", "letter", "lantern", "1811"]
    assert s_stem("glass") == "glass" and s_stem("stories") == "story"


def test_bm25_ranks_saves_and_filters(tmp_path):
    index = BM25Index.build(["a", "b", "c"], ["A letter arrived at the lighthouse.",
                                              "Two letters and a letter more, all about letters.",
                                              "The orchard was in blossom."])
    assert [pid for pid, _ in index.search("letters", 5)] == ["b", "a"]
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.search("letters", 5) == index.search("letters", 5)
    assert [pid for pid, _ in loaded.search("letters", 5, allowed_ids={"a", "c"})] == ["a"]
    assert loaded.search("the of and", 5) == []  # stopwords only: no evidence at all


# --- ingest and read ---------------------------------------------------------------------------------
def test_ingest_reports_the_book(library):
    settings, store, report = library
    assert report.book_id == "lamplighter"
    assert report.title == "The Lamplighter's Daughter" and report.author == "Imogen Farrow"
    assert report.chapters == 4
    assert report.passages == report.added == len(store.passages("lamplighter")) >= 4
    info = store.books()
    assert [(b.book_id, b.chapters, b.passages) for b in info] == [("lamplighter", 4, report.passages)]


def test_passages_are_in_book_order_and_cite_the_text(library):
    _, store, _ = library
    book = store.get_book("lamplighter")
    passages = store.passages("lamplighter")
    assert [p.start for p in passages] == sorted(p.start for p in passages)
    assert [p.chapter for p in passages] == sorted(p.chapter for p in passages)
    for p in passages:
        assert book.text[p.start:p.end] == p.text
        assert book.chapter(p.chapter).start <= p.start < p.end <= book.chapter(p.chapter).end
    assert [c.title for c in book.chapters][1].endswith("The Storm")


def test_a_new_store_reopens_the_same_passages(library):
    settings, store, _ = library
    before = [(p.passage_id, p.text) for p in store.passages("lamplighter")]
    fresh = reopen(settings)
    assert [(p.passage_id, p.text) for p in fresh.passages("lamplighter")] == before
    collection = fresh.client.get_collection(collection_name("lamplighter"))  # no embedding function given
    assert sorted(collection.get(include=[])["ids"]) == sorted(pid for pid, _ in before)
    top, score = fresh.dense_search("lamplighter", "Who pulled the sailors out of the sea?", k=1)[0]
    assert top.chapter == 2 and "sailors" in top.text and 0 < score <= 1


def test_dense_search_takes_text_or_a_vector(library):
    _, store, _ = library
    question = "What was sealed with green wax?"
    by_text = store.dense_search("lamplighter", question, k=3)
    by_vector = store.dense_search("lamplighter", store.encode([question])[0], k=3)
    assert [p.passage_id for p, _ in by_text] == [p.passage_id for p, _ in by_vector]
    assert [s for _, s in by_text] == sorted((s for _, s in by_text), reverse=True)
    assert by_text[0][0].chapter == 3


def test_spoiler_limit_in_dense_search_and_bm25(library):
    _, store, _ = library
    question = "the violin case with the letter sealed in green wax"
    assert store.dense_search("lamplighter", question, k=1)[0][0].chapter == 3
    limited = store.dense_search("lamplighter", question, k=10, max_chapter=2)
    assert limited and all(p.chapter <= 2 for p, _ in limited)

    bm25 = store.bm25("lamplighter")
    chapter_of = {p.passage_id: p.chapter for p in store.passages("lamplighter")}
    assert chapter_of[bm25.search("violin", 1)[0][0]] == 3
    early = [p.passage_id for p in store.passages("lamplighter") if p.chapter <= 2]
    assert bm25.search("violin", 5, allowed_ids=early) == []
    assert all(chapter_of[pid] <= 2 for pid, _ in bm25.search("sailors lantern", 5, allowed_ids=early))


def test_unknown_book_lists_the_known_ones(library):
    _, store, _ = library
    with pytest.raises(VignetteError, match="no book 'dracula'") as err:
        store.passages("dracula")
    assert "lamplighter (The Lamplighter's Daughter)" in str(err.value)


def test_reingest_adds_nothing_without_encoding(library, monkeypatch):
    settings, store, report = library
    fresh = reopen(settings)
    monkeypatch.setattr(BookStore, "encode", lambda self, texts: pytest.fail("re-ingest encoded passages"))
    folder = settings.books_dir / "lamplighter"
    before = snapshot(folder)
    again = fresh.ingest(folder.parent.parent.parent / "lamplighter.txt", book_id="lamplighter")
    assert again.added == 0 and again.passages == report.passages
    assert snapshot(folder) == before
    assert fresh.client.get_collection(stored_collection(settings, "lamplighter")).count() == report.passages


def test_same_id_with_other_content_is_refused_and_nothing_changes(library, tmp_path):
    settings, store, report = library
    folder = settings.books_dir / "lamplighter"
    before = snapshot(folder)
    with pytest.raises(VignetteError, match="already stored as 'lamplighter'") as err:
        store.ingest(write(tmp_path / "clock.txt", OTHER_BOOK), book_id="lamplighter")
    assert "--book-id" in str(err.value) and "remove" in str(err.value)
    assert snapshot(folder) == before
    assert store.client.get_collection(stored_collection(settings, "lamplighter")).count() == report.passages
    assert [b.book_id for b in store.books()] == ["lamplighter"]


def test_bad_input_writes_nothing(settings, tmp_path):
    store = BookStore(settings)
    with pytest.raises(VignetteError):
        store.ingest(write(tmp_path / "empty.txt", ""))
    with pytest.raises(VignetteError, match="cannot be used as a book id"):
        store.ingest(tiny_book(tmp_path), book_id="../escape")
    assert not Path(settings.data_dir).exists()


# --- remove, resume, re-index ------------------------------------------------------------------------
def test_remove_deletes_the_book_and_its_collection(settings, tmp_path):
    store = BookStore(settings)
    store.ingest(write(tmp_path / "clock.txt", OTHER_BOOK), book_id="clock")
    assert [b.book_id for b in store.books()] == ["clock"]
    store.remove("clock")
    assert store.books() == []
    assert not (settings.books_dir / "clock").exists()
    assert not [c.name for c in store.client.list_collections() if c.name.startswith(collection_name("clock"))]
    with pytest.raises(VignetteError, match="The library is empty"):
        store.remove("clock")


def test_interrupted_ingest_is_unlisted_then_resumes_without_redoing_finished_steps(settings, tmp_path):
    """A resumed ingest does not encode again the steps an interrupted one finished."""
    settings = settings.replace(ingest_batch_size=4, encode_batch_size=2)  # steps of four sentences
    store = BookStore(settings)
    path = tiny_book(tmp_path)

    class Interrupted(Exception):
        pass

    seen = []

    def stop_after_two_steps(done, total, stage):
        seen.append((done, total, stage))
        if stage == "embedding sentences" and done >= 8:
            raise Interrupted

    with pytest.raises(Interrupted):
        store.ingest(path, book_id="lamplighter", progress=stop_after_two_steps)
    assert store.books() == [] and store.incomplete() == ["lamplighter"]
    with pytest.raises(VignetteError):
        store.dense_search("lamplighter", "storm", k=1)
    sentences = seen[-1][1]

    encoded = []
    fresh = reopen(settings)
    original = BookStore.encode
    fresh.encode = lambda texts: (encoded.append(list(texts)), original(fresh, texts))[1]
    resumed = fresh.ingest(path, book_id="lamplighter")
    # The first two steps (the 8 longest sentences: steps go longest first) are reused, the rest encoded.
    from retrieval.sentences import sentence_units

    units = sentence_units(fresh.passages("lamplighter")).texts
    assert len(units) == sentences
    flat = [t for batch in encoded for t in batch]
    first_steps = set(sorted(units, key=len, reverse=True)[:8])
    assert not first_steps & set(flat)
    assert sum(t in set(units) for t in flat) == sentences - 8
    assert resumed.encoded == len(flat)
    fresh = reopen(settings)
    assert [b.book_id for b in fresh.books()] == ["lamplighter"] and fresh.incomplete() == []
    assert fresh.client.get_collection(stored_collection(settings, "lamplighter")).count() == resumed.passages
    assert list(settings.books_dir.iterdir()) == [settings.books_dir / "lamplighter"]


def test_another_embedding_model_reindexes_the_same_book(settings, tmp_path, minilm_path):
    path = write(tmp_path / "clock.txt", OTHER_BOOK)
    first = BookStore(settings).ingest(path, book_id="clock")
    other = settings.replace(embedding_model=str(minilm_path))  # same weights, another name: a different index
    store = BookStore(other)
    with pytest.raises(VignetteError, match="indexed with the embedding model"):
        store.dense_search("clock", "spectacles", k=1)
    again = store.ingest(path, book_id="clock")
    assert again.added == again.passages == first.passages
    manifest = json.loads((settings.books_dir / "clock" / "manifest.json").read_text())
    assert manifest["embedding_model"] == str(minilm_path)
    assert "spectacles" in store.dense_search("clock", "Who wore two pairs of glasses?", k=1)[0][0].text


def test_ensure_sample_ingests_the_bundled_novel_once(settings):
    from retrieval.store import SAMPLE_PATH

    if not SAMPLE_PATH.is_file():
        pytest.skip("data/sample-novel.txt is not written yet")
    store = BookStore(settings)
    report = store.ensure_sample()
    assert report is not None and report.book_id == "sample" and report.chapters >= 6
    assert store.ensure_sample() is None
    top = store.dense_search("sample", "How many bells hang in the belfry of the clock tower?", k=3)
    assert any("seven bells" in p.text for p, _ in top)


# --- bad input and failures during ingest --------------------------------------------------------------
@pytest.mark.parametrize("text", ["A I. O a I.\n\nI a. O I a!\n", "I a. A I, O a.\n\n\u2665 \u2666 \u2663. \u2605 \u2606 I!\n"])
def test_a_book_without_indexable_words_is_refused_before_anything_is_written(settings, tmp_path, text):
    """A text in which BM25 finds no word is refused with a clear message, leaving no staging folder."""
    store = BookStore(settings)
    with pytest.raises(VignetteError, match="no words Vignette can index"):
        store.ingest(write(tmp_path / "letters.txt", text), book_id="letters")
    assert store.books() == [] and store.incomplete() == []
    assert not settings.books_dir.exists() or not list(settings.books_dir.iterdir())


def test_a_full_disk_is_a_clear_message_and_the_rerun_completes(settings, tmp_path, monkeypatch):
    """A write failing with ENOSPC midway: a message, the library as it was, and a re-run that completes."""
    import errno

    import numpy as np

    store = BookStore(settings.replace(ingest_batch_size=4, encode_batch_size=2))
    store.ingest(write(tmp_path / "clock.txt", OTHER_BOOK), book_id="clock")
    before = snapshot(settings.books_dir / "clock")
    real_save, calls = np.save, []

    def failing_save(file, arr, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(file, arr, *args, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(VignetteError, match="No space left on device") as err:
        store.ingest(tiny_book(tmp_path), book_id="lamplighter")
    assert "run the same command again" in str(err.value)
    assert [b.book_id for b in store.books()] == ["clock"] and snapshot(settings.books_dir / "clock") == before
    monkeypatch.setattr(np, "save", real_save)
    report = reopen(settings).ingest(tiny_book(tmp_path), book_id="lamplighter")
    assert report.passages >= 4 and sorted(b.book_id for b in reopen(settings).books()) == ["clock", "lamplighter"]


def test_a_reindex_interrupted_while_storing_or_swapping_never_loses_the_book(settings, tmp_path, monkeypatch):
    """Re-index with other settings, interrupted while storing vectors, then between the two renames of
    the swap: the old book stays listed and answerable, then the new one is listed whole."""
    path = tiny_book(tmp_path)
    old = BookStore(settings).ingest(path, book_id="lamplighter")
    shorter = settings.replace(passage_tokens=60, ingest_batch_size=2)

    class Interrupted(Exception):
        pass

    def stop_while_storing(done, total, stage):
        if stage == "storing vectors" and 0 < done < total:
            raise Interrupted

    with pytest.raises(Interrupted):
        BookStore(shorter).ingest(path, book_id="lamplighter", progress=stop_while_storing)
    store = reopen(settings)
    assert [(b.book_id, b.passages) for b in store.books()] == [("lamplighter", old.passages)]
    assert "Kestrel" in store.dense_search("lamplighter", "Which ship struck the rocks?", k=1)[0][0].text

    # A crash right after the old folder was set aside: the complete new book is rolled forward.
    import os

    real_replace = os.replace

    def crash_on_second_rename(src, dst):
        if Path(src).name.startswith(".incoming-"):
            raise Interrupted
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second_rename)
    with pytest.raises(Interrupted):
        BookStore(shorter).ingest(path, book_id="lamplighter")
    monkeypatch.setattr(os, "replace", real_replace)
    assert not (settings.books_dir / "lamplighter").exists()  # the moment of the crash
    store = reopen(shorter)
    books = store.books()
    assert [b.book_id for b in books] == ["lamplighter"] and books[0].passages > old.passages
    assert "Kestrel" in store.dense_search("lamplighter", "Which ship struck the rocks?", k=1)[0][0].text
    again = store.ingest(path, book_id="lamplighter")
    assert again.added == 0 and again.encoded == 0
    assert [c.name for c in store.client.list_collections()] == [stored_collection(settings, "lamplighter")]


@pytest.mark.slow
def test_a_book_on_one_long_line_without_sentence_ends(settings, tmp_path):
    """A book whose one "sentence" is the whole text (one line, no full stop): stored, its sentence units
    no longer than a passage, and answerable."""
    import random

    rng = random.Random(3)
    words = ["harbour", "lantern", "orchard", "ferry", "ledger", "silver", "bottle", "chapel", "tower", "market",
             "rope", "sail", "mill", "clock", "horse", "map", "key", "bell", "letter", "voyage"]
    text = " ".join(rng.choice(words) for _ in range(12000)) + " and the keeper named Oswin Thrale lit the lamp"
    store = BookStore(settings)
    report = store.ingest(write(tmp_path / "line.txt", "The Long Line\n\n" + text + "\n"), book_id="line")
    passages = store.passages("line")
    table = store.sentences("line")
    assert report.passages == len(passages) >= 40 and len(table) <= report.passages + 1
    assert max(int(b - a) for a, b in table.spans) <= max(len(p.text) for p in passages)
    from retrieval.pipeline import AnswerPipeline

    answer = AnswerPipeline(store, settings.replace(reader="sentence")).ask("line", "Who lit the lamp?")
    assert any("Oswin Thrale" in e.quote for e in answer.evidence) or "Oswin Thrale" in answer.answer
