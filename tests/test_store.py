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
    assert fresh.client.get_collection(collection_name("lamplighter")).count() == report.passages


def test_same_id_with_other_content_is_refused_and_nothing_changes(library, tmp_path):
    settings, store, report = library
    folder = settings.books_dir / "lamplighter"
    before = snapshot(folder)
    with pytest.raises(VignetteError, match="already stored as 'lamplighter'") as err:
        store.ingest(write(tmp_path / "clock.txt", OTHER_BOOK), book_id="lamplighter")
    assert "--book-id" in str(err.value) and "remove" in str(err.value)
    assert snapshot(folder) == before
    assert store.client.get_collection(collection_name("lamplighter")).count() == report.passages
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
    assert collection_name("clock") not in [c.name for c in store.client.list_collections()]
    with pytest.raises(VignetteError, match="The library is empty"):
        store.remove("clock")


def test_interrupted_ingest_is_unlisted_then_resumes(settings, tmp_path):
    settings = settings.replace(ingest_batch_size=1, encode_batch_size=2)  # one small step per two passages
    store = BookStore(settings)
    path = tiny_book(tmp_path)

    class Interrupted(Exception):
        pass

    def stop_after_first_step(done, total, stage):
        if stage == "embedding" and done >= 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        store.ingest(path, book_id="lamplighter", progress=stop_after_first_step)
    assert store.books() == [] and store.incomplete() == ["lamplighter"]
    with pytest.raises(VignetteError):
        store.dense_search("lamplighter", "storm", k=1)
    partial = store.client.get_collection(collection_name("lamplighter")).count()
    assert partial == 2

    resumed = reopen(settings).ingest(path, book_id="lamplighter")
    assert resumed.added == resumed.passages - partial
    fresh = reopen(settings)
    assert [b.book_id for b in fresh.books()] == ["lamplighter"] and fresh.incomplete() == []
    assert fresh.client.get_collection(collection_name("lamplighter")).count() == resumed.passages
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
