"""The library: every ingested book, its passages, their embeddings in Chroma and a BM25 index beside them.

Layout under ``settings.data_dir``::

    chroma/                      Chroma's embedded store (unless a server is configured)
    books/<book_id>/book.json    title, author, source, cleaned text, chapters
    books/<book_id>/passages.jsonl   the passages in book order
    books/<book_id>/bm25/        the BM25 index (retrieval.sparse)
    books/<book_id>/sentences.npz    the passages' sentences and their vectors, float16 (retrieval.sentences)
    books/<book_id>/vocabulary.npy   the book's words' vectors for the grounding check, float16 (+ .json)
    books/<book_id>/manifest.json    written last: a book without it is incomplete and never listed

One Chroma collection per book (cosine space, unit-length embeddings, metadata from
``Passage.metadata()``), its embedding function registered with Chroma so it reopens on its own; the
manifest names it.

Ingest does all the encoder work a question needs, in one pass over the sentences: the window and (by
default) the whole-passage vectors are derived from the sentence vectors, so the first question encodes
only itself. Progress is reported per stage (``STAGES``).

Crash safety: the book's files are written to ``books/.incoming-<id>/`` and renamed into place only after
every passage is in Chroma, with the manifest inside. The encoder's work is kept step by step in that
folder, so a run killed midway resumes after its last finished step; Chroma rows are keyed by content ids
(upsert is idempotent). A kill leaves the earlier books untouched and the killed book unlisted. Re-indexing
a stored book (other settings) builds the new files and a new collection beside the stored ones, which stay
listed and answerable until the swap; a kill between the swap's two renames is finished by ``_recover``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import logging

import numpy as np

from vignette.documents import Book, Chapter, Passage
from vignette.errors import VignetteError
from vignette.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PATH = ROOT / "data" / "sample-novel.txt"
SAMPLE_ID = "sample"

MANIFEST = "manifest.json"
BOOK_FILE = "book.json"
PASSAGES_FILE = "passages.jsonl"
BM25_DIR = "bm25"
SENTENCES_FILE = "sentences.npz"  # retrieval.sentences: the sentence units and their vectors (float16)
VOCABULARY_FILE = "vocabulary.npy"  # retrieval.grounding: the book's words' vectors (float16), hash beside it
JOB_FILE = "job.json"  # in a staging folder: what it is being built for (a re-run of the same job resumes)
# 2: the sentences' vectors and the grounding vocabulary are built at ingest; a book of format 1 gets them
# built once (``complete``), with progress, and keeps its Chroma vectors.
STORE_FORMAT = 2
PARTS = {"sentences": SENTENCES_FILE, "vocabulary": VOCABULARY_FILE}
# Progress stage names, as the CLI's bar and the app's upload show them.
STAGES = {"sentences": "embedding sentences", "passages": "embedding passages", "storing": "storing vectors",
          "vocabulary": "embedding words"}

log = logging.getLogger(__name__)

_BOOK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")  # \Z: "$" would let a final newline through

Progress = Callable[[int, int, str], None]  # (done, total, stage)


@dataclass
class IngestReport:
    book_id: str
    title: str
    author: str | None
    chapters: int
    passages: int
    added: int  # passages newly added to the vector store; 0 when the book was already stored
    encoded: int = 0  # texts (sentences, passages, words) this run sent through the encoder; a resumed run
    # skips what an interrupted one finished

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BookInfo:
    book_id: str
    title: str
    author: str | None
    chapters: int
    passages: int
    size_bytes: int = 0  # the book's folder on disk (Chroma's own files not included)
    vectors_bytes: int = 0  # of which vectors (sentences and words, float16)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collection_name(book_id: str, generation: str | None = None) -> str:
    """A Chroma collection name for ``book_id`` (3-512 of [A-Za-z0-9._-], alphanumeric at both ends, no
    '..'): a readable slug plus a hash, so two ids that slug alike stay apart; ``generation`` tells two
    indexes of the same book apart (a re-index is built beside the stored one)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", book_id)[:48].strip("-_")
    digest = hashlib.sha1(book_id.encode("utf-8")).hexdigest()[:10]
    base = f"vignette-{slug}-{digest}" if slug else f"vignette-{digest}"
    return f"{base}-g{generation}" if generation else base


def _generation(job: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(job, sort_keys=True).encode()).hexdigest()[:8]


def check_indexable(passages: Sequence[Passage], name: str) -> None:
    """Refuse a book in which the keyword index would find no words (before anything is written)."""
    from retrieval.sparse import tokenize

    if not any(tokenize(p.text) for p in passages):
        raise VignetteError(
            f"{name!r} has no words Vignette can index: no word of two or more letters (or digits) outside "
            "common English words like 'the' and 'and'. Nothing was stored.",
            hint="Vignette reads books of prose; if the text looks garbled, the file may be in an encoding "
                 "Vignette did not recognise (save it as UTF-8).",
        )


def check_book_id(book_id: str) -> str:
    if not isinstance(book_id, str) or not _BOOK_ID.match(book_id) or ".." in book_id:
        raise VignetteError(
            f"{book_id!r} cannot be used as a book id.",
            hint="Choose one with --book-id: 1-100 letters, digits, '-', '_' or '.', starting with a letter or "
            "digit (e.g. pride-and-prejudice).",
        )
    return book_id


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class BookStore:
    """Every stored book. Cheap to construct: Chroma and the encoder load on first use."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._client = None
        self._collections: dict[str, Any] = {}
        self._cache: dict[tuple[str, str], tuple[int, Any]] = {}  # (kind, book_id) -> (manifest mtime, value)
        # The app answers several conversations at once: Chroma's client and collection handles are made
        # once, under this lock (two threads opening the same store at once made one of them fail).
        self._lock = threading.RLock()

    # --- parts, loaded lazily ------------------------------------------------------------------------
    @property
    def client(self):
        """The Chroma client: a server when ``settings.chroma_host`` is set, else the embedded store."""
        if self._client is not None:
            return self._client
        with self._lock:
            return self._open_client()

    def _open_client(self):
        if self._client is None:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            import retrieval.embedding  # noqa: F401 - registers Vignette's embedding function with Chroma

            chroma_settings = ChromaSettings(anonymized_telemetry=False)
            if self.settings.chroma_host:
                host, port = self.settings.chroma_host, int(self.settings.chroma_port)
                try:
                    self._client = chromadb.HttpClient(host=host, port=port, settings=chroma_settings)
                    self._client.heartbeat()
                except Exception as err:  # connection refused, wrong host, not a Chroma server
                    self._client = None
                    raise VignetteError(
                        f"Cannot reach the Chroma server at {host}:{port} ({err.__class__.__name__}).",
                        hint="Start it with `chroma run --path DIR --host 127.0.0.1 --port PORT`, or unset "
                        "VIGNETTE_CHROMA_HOST to use the built-in store.",
                    ) from err
            else:
                self.settings.chroma_dir.mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=str(self.settings.chroma_dir), settings=chroma_settings)
        return self._client

    @property
    def device(self) -> str:
        if self.settings.device != "auto":
            return self.settings.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def encoder(self):
        """The bi-encoder (a SentenceTransformer), loaded once per process."""
        from retrieval.embedding import load_encoder

        return load_encoder(self.settings.embedding_model, self.device)

    def embedding_function(self):
        from retrieval.embedding import VignetteEmbeddingFunction

        return VignetteEmbeddingFunction(self.settings.embedding_model, batch_size=self.settings.encode_batch_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 embeddings of ``texts`` (one row each)."""
        from retrieval.embedding import encode

        return encode(self.encoder, list(texts), self.settings.encode_batch_size)

    # --- reading the library -------------------------------------------------------------------------
    def books(self) -> list[BookInfo]:
        """Every completely ingested book, by id."""
        infos = []
        for manifest in self._manifests():
            folder = self.settings.books_dir / manifest["book_id"]
            infos.append(BookInfo(manifest["book_id"], manifest["title"], manifest.get("author"),
                                  int(manifest["chapters"]), int(manifest["passages"]),
                                  size_bytes=_folder_bytes(folder),
                                  vectors_bytes=sum(_folder_bytes(folder / name) for name in PARTS.values())))
        return sorted(infos, key=lambda b: b.book_id)

    def incomplete(self) -> list[str]:
        """Ids of books whose ingest was interrupted (re-run ``ingest`` to resume, or ``remove``)."""
        found = set()
        books_dir = self.settings.books_dir
        if books_dir.is_dir():
            for entry in books_dir.iterdir():
                if entry.name.startswith(".incoming-"):
                    found.add(entry.name[len(".incoming-"):])
                elif entry.is_dir() and not entry.name.startswith(".") and self._manifest(entry.name) is None:
                    found.add(entry.name)
        return sorted(found - {b.book_id for b in self.books()})

    def has_book(self, book_id: str) -> bool:
        return _BOOK_ID.match(book_id or "") is not None and self._manifest(book_id) is not None

    def book_dir(self, book_id: str) -> Path:
        """The folder of a stored book; other stages keep their per-book caches here (they are dropped
        when the book is removed or re-indexed)."""
        self._require(book_id)
        return self.settings.books_dir / book_id

    def get_book(self, book_id: str, corrected: bool = True) -> Book:
        """The stored book; its chapters as the reader corrected them (see retrieval.corrections) unless
        ``corrected`` is False."""
        def load(folder: Path) -> Book:
            data = json.loads((folder / BOOK_FILE).read_text(encoding="utf-8"))
            chapters = [Chapter(**c) for c in data["chapters"]]
            book = Book(book_id=data["book_id"], title=data["title"], author=data.get("author"), text=data["text"],
                        chapters=chapters, source=data.get("source", ""), structure=data.get("structure", ""),
                        structure_notes=data.get("structure_notes", []))
            if corrected:
                from retrieval.corrections import apply_corrections, load_corrections

                book.chapters, skipped = apply_corrections(book.text, book.chapters, load_corrections(folder))
                book.structure_notes = list(book.structure_notes) + skipped
            return book

        return self._cached("book" if corrected else "book-as-found", book_id, load)

    def passages(self, book_id: str) -> list[Passage]:
        """The book's passages in reading order."""
        def load(folder: Path) -> list[Passage]:
            with open(folder / PASSAGES_FILE, encoding="utf-8") as fh:
                return [Passage(**json.loads(line)) for line in fh if line.strip()]

        return self._cached("passages", book_id, load)

    def bm25(self, book_id: str):
        """The book's BM25 index (:class:`retrieval.sparse.BM25Index`)."""
        from retrieval.sparse import BM25Index

        return self._cached("bm25", book_id, lambda folder: BM25Index.load(folder / BM25_DIR))

    def dense_search(self, book_id: str, query: str | Sequence[float] | np.ndarray, k: int,
                     max_chapter: int | None = None) -> list[tuple[Passage, float]]:
        """The ``k`` passages nearest to ``query`` (text or an embedding) by cosine similarity, best first;
        only chapters ``<= max_chapter`` when given (the spoiler limit)."""
        manifest = self._require(book_id)
        self._check_model(book_id, manifest)
        if k <= 0:
            return []
        vector = self.encode([query])[0] if isinstance(query, str) else np.asarray(query, dtype=np.float32).reshape(-1)
        collection = self._collection(book_id)
        where = {"chapter": {"$lte": int(max_chapter)}} if max_chapter is not None else None
        result = collection.query(query_embeddings=[vector], n_results=min(int(k), int(manifest["passages"])),
                                  where=where, include=["documents", "metadatas", "distances"])
        hits = []
        for pid, text, meta, distance in zip(result["ids"][0], result["documents"][0], result["metadatas"][0],
                                             result["distances"][0]):
            hits.append((Passage.from_metadata(pid, text, meta), 1.0 - float(distance)))
        return hits

    def sentences(self, book_id: str):
        """The book's sentences and their vectors (:class:`retrieval.sentences.SentenceTable`), built at
        ingest. A book stored by an older version gets them built now, once (``complete``; the CLI and the
        app do that before the first question, with progress)."""
        from retrieval.sentences import load_table

        self._check_model(book_id, self._require(book_id))
        if "sentences" in self.missing_parts(book_id):
            log.warning("%s was stored by an older version: building its sentence vectors now (once).", book_id)
            self.complete(book_id)
        return self._cached("sentences", book_id, lambda folder: load_table(folder / SENTENCES_FILE))

    def reader_sentences(self, book: Book):
        """(sentence spans, vectors) of a stored book for the sentence reader, or None when ``book`` is not
        the stored text (the reader then encodes its own)."""
        manifest = self._manifest(book.book_id)
        if manifest is None or manifest.get("embedding_model") != self.settings.embedding_model:
            return None
        if manifest["text_sha256"] != text_hash(book.text):
            return None
        table = self.sentences(book.book_id)
        return [(int(a), int(b)) for a, b in table.spans], table.vectors

    def missing_parts(self, book_id: str) -> list[str]:
        """What a stored book lacks of what questions need (a book stored by an older version)."""
        folder = self.settings.books_dir / book_id
        return [part for part, name in PARTS.items() if not (folder / name).is_file()]

    def complete(self, book_id: str, progress: Progress | None = None) -> list[str]:
        """Build what a stored book lacks (``missing_parts``), with progress; returns what was built. Each
        part is written beside the book and renamed in, so a kill leaves the book as it was."""
        notify = progress or (lambda done, total, stage: None)
        manifest = self._require(book_id)
        self._check_model(book_id, manifest)
        missing = self.missing_parts(book_id)
        if not missing:
            return []
        folder = self.settings.books_dir / book_id
        work = self.settings.books_dir / f".parts-{book_id}"
        job = {"text_sha256": manifest["text_sha256"], "embedding_model": manifest["embedding_model"],
               "collection": manifest.get("collection")}
        if _read_json(work / JOB_FILE) != job:  # steps kept by an interrupted run for this very book only
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        _write_json(work / JOB_FILE, job)
        passages = self.passages(book_id)
        counter = _EncodeCounter(self.encode)
        if "sentences" in missing:
            self._build_sentences(passages, work, counter, notify)
        if "vocabulary" in missing:
            self._build_vocabulary(passages, work, counter, notify)
        for part in missing:
            name = PARTS[part]
            if part == "vocabulary":
                os.replace(work / Path(name).with_suffix(".json").name, folder / Path(name).with_suffix(".json").name)
            os.replace(work / name, folder / name)
        shutil.rmtree(work, ignore_errors=True)
        updated = dict(manifest, format=STORE_FORMAT, parts=list(PARTS))
        tmp = folder / f".{MANIFEST}.tmp"
        _write_json(tmp, updated)
        os.replace(tmp, folder / MANIFEST)
        self._forget(book_id)
        notify(1, 1, "done")
        return missing

    def outdated(self) -> list[str]:
        """Ids of stored books that lack parts questions need (stored by an older version)."""
        return [b.book_id for b in self.books() if self.missing_parts(b.book_id)]

    # --- changing the library ------------------------------------------------------------------------
    def ingest(self, path: str | Path, book_id: str | None = None, progress: Progress | None = None) -> IngestReport:
        """Load the book at ``path`` (see retrieval.loading.load_book), split it into passages, embed them
        into Chroma and index them with BM25. Re-ingesting the same book adds nothing; an id that is
        already taken by another text is refused, and nothing changes."""
        # 1. Check inputs: nothing is written before the book has loaded cleanly.
        if book_id is not None:
            check_book_id(book_id)
        from retrieval.loading import load_book

        book = load_book(path, book_id=book_id, max_bytes=self.settings.max_file_bytes)
        return self.add_book(book, progress=progress)

    def add_book(self, book: Book, progress: Progress | None = None) -> IngestReport:
        """Store an already loaded :class:`Book` (``ingest`` without the loading): passages, BM25, the
        sentences' vectors, the passages' vectors in Chroma and the grounding vocabulary, everything a
        question needs, so the first question costs what any other does."""
        try:
            return self._add_book(book, progress)
        except OSError as err:  # a full disk, a read-only folder: what was stored is untouched
            raise VignetteError(
                f"Could not write {book.title!r} into the library ({err.strerror or err}); nothing stored "
                "was changed.",
                hint=f"Free some disk space (or check that {self.settings.data_dir} is writable), then run the "
                     "same command again: it resumes where it stopped.",
            ) from err

    def _add_book(self, book: Book, progress: Progress | None = None) -> IngestReport:
        notify = progress or (lambda done, total, stage: None)
        # 1. Check inputs.
        book_id = check_book_id(book.book_id)
        if not book.text.strip():
            raise VignetteError(f"{book.source or book_id!r} holds no text to index.")
        digest = text_hash(book.text)
        params = self._index_params()
        manifest = self._manifest(book_id)

        # 2. The id is taken: the same text is a no-op (or a repair), other text is refused.
        if manifest is not None:
            if manifest["text_sha256"] != digest:
                raise VignetteError(
                    f"A different book is already stored as {book_id!r} ({manifest['title']!r}); nothing was changed.",
                    hint=f"Give this one another id with --book-id, or remove the stored one first "
                    f"(`python -m bot remove {book_id}`).",
                )
            if self._same_index(manifest, params) and self._is_intact(book_id, manifest):
                if self.missing_parts(book_id):  # stored by an older version: build what it lacks, once
                    self.complete(book_id, progress)
                self._drop_other_collections(book_id)  # an old index whose swap a kill interrupted
                self._sweep()
                return self._report(book, int(manifest["passages"]), 0, 0)
            # Same text, other settings (or a damaged index): a new index is built beside the old one,
            # which stays listed and answerable until the new one replaces it in one rename.

        # 3. Split into passages measured with the encoder's own tokenizer (after connecting to Chroma, so
        #    an unreachable server fails before anything is written), and make sure BM25 has words to index.
        self.client  # noqa: B018
        from retrieval.passages import split_passages

        notify(0, 1, "splitting")
        found_chapters = book.chapters  # book.json keeps them as found; the reader's corrections apply on top
        from retrieval.corrections import CORRECTIONS_FILE, apply_corrections, load_corrections

        final = self.settings.books_dir / book_id  # the stored book (when re-indexing), whose corrections carry over
        corrections = load_corrections(final) if final.is_dir() else []
        if corrections:
            book = replace(book, chapters=apply_corrections(book.text, book.chapters, corrections)[0])
        passages = _unique(split_passages(book, self.encoder.tokenizer, self.settings.passage_tokens,
                                          self.settings.passage_overlap_sentences))
        if not passages:
            raise VignetteError(f"{book.source or book_id!r} holds no text to index.")
        check_indexable(passages, book.source or book_id)
        notify(1, 1, "splitting")

        # 4. Stage the book's files beside the library; they move into place only when complete. A staging
        #    folder left by an interrupted run of the same job is kept: its finished encoder steps are reused.
        self._sweep()
        staging = self.settings.books_dir / f".incoming-{book_id}"
        job = {"text_sha256": digest, **params}
        if _read_json(staging / JOB_FILE) != job:
            shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True, exist_ok=True)
        _write_json(staging / JOB_FILE, job)
        _write_json(staging / BOOK_FILE, {
            "book_id": book_id, "title": book.title, "author": book.author, "source": book.source,
            "chapters": [c.to_dict() for c in found_chapters], "text": book.text,
            "structure": book.structure, "structure_notes": book.structure_notes,
        })
        if corrections:
            shutil.copy2(final / CORRECTIONS_FILE, staging / CORRECTIONS_FILE)
        with open(staging / PASSAGES_FILE, "w", encoding="utf-8") as fh:
            for p in passages:
                fh.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        from retrieval.sparse import BM25Index

        BM25Index.build([p.passage_id for p in passages], [p.text for p in passages]).save(staging / BM25_DIR)

        # 5. The encoder's work: the sentences (and the passages themselves, unless their vectors are the
        #    means of their sentences), then the book's words for the grounding check.
        counter = _EncodeCounter(self.encode)
        table = self._build_sentences(passages, staging, counter, notify)
        if params["passage_vectors"] == "sentence-mean":
            from retrieval.sentences import passage_means

            passage_vectors = passage_means(table)
        else:
            from retrieval.sentences import encode_in_parts

            passage_vectors = encode_in_parts([p.text for p in passages], counter, staging / "parts-passages",
                                              self._step(), lambda d, t: notify(d, t, STAGES["passages"]))
        self._build_vocabulary(passages, staging, counter, notify)

        # 6. Chroma: a collection of this job's own, so a stored book being re-indexed keeps its own until
        #    the swap (a new book's is named by its id alone; a re-index's also by a hash of the text and
        #    settings). Rows an interrupted run of the same job added stay.
        name = collection_name(book_id)
        if manifest is not None and manifest.get("collection", name) == name:
            name = collection_name(book_id, _generation(job))
        collection = self._open_for_writing(name, book_id)
        present = set(collection.get(include=[])["ids"])
        wanted = {p.passage_id for p in passages}
        stale = sorted(present - wanted)
        if stale:
            collection.delete(ids=stale)
        rows = [i for i, p in enumerate(passages) if p.passage_id not in present]
        done, total = len(passages) - len(rows), len(passages)
        notify(done, total, STAGES["storing"])
        step = max(1, int(self.settings.ingest_batch_size))
        for i in range(0, len(rows), step):
            chunk = rows[i:i + step]
            collection.upsert(ids=[passages[r].passage_id for r in chunk], embeddings=passage_vectors[chunk],
                              documents=[passages[r].text for r in chunk],
                              metadatas=[passages[r].metadata() for r in chunk])
            done += len(chunk)
            notify(done, total, STAGES["storing"])

        # 7. The manifest, then the swap: from here on the new book is listed (and the old one, if any, gone).
        for leftover in staging.glob("parts-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        (staging / JOB_FILE).unlink(missing_ok=True)
        _write_json(staging / MANIFEST, {
            "format": STORE_FORMAT, "book_id": book_id, "title": book.title, "author": book.author,
            "source": book.source, "chapters": len(book.chapters), "passages": len(passages),
            "text_sha256": digest, "collection": name, "parts": list(PARTS),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **params,
        })
        _fsync_dir(staging)
        self._swap_in(book_id, staging)  # drops the old index's collection too
        self._forget(book_id)
        notify(total, total, "done")
        return self._report(book, len(passages), len(rows), counter.count)

    def remove(self, book_id: str) -> None:
        """Delete a book: its Chroma collection and its folder (complete or interrupted)."""
        folder = self.settings.books_dir / book_id if _BOOK_ID.match(book_id or "") else None
        known = folder is not None and (folder.exists() or book_id in self.incomplete())
        if folder is not None and not known:  # perhaps only a collection is left of an interrupted ingest
            known = bool(self._book_collections(book_id))
        if not known:
            self._require(book_id)  # raises, listing the books
        # Unlist first: if this is interrupted the book is incomplete, never half-listed.
        (folder / MANIFEST).unlink(missing_ok=True)
        self._forget(book_id)
        for name in self._book_collections(book_id):
            self._drop_collection(name)
        shutil.rmtree(folder, ignore_errors=True)
        for leftover in (f".incoming-{book_id}", f".parts-{book_id}"):
            shutil.rmtree(self.settings.books_dir / leftover, ignore_errors=True)

    def ensure_sample(self) -> IngestReport | None:
        """Ingest the bundled sample novel as book ``sample`` unless it is stored; None when it was."""
        if self.has_book(SAMPLE_ID):
            return None
        if not SAMPLE_PATH.is_file():
            raise VignetteError(f"The bundled sample novel is missing ({SAMPLE_PATH}).")
        return self.ingest(SAMPLE_PATH, book_id=SAMPLE_ID)

    # --- internals -----------------------------------------------------------------------------------
    def _index_params(self) -> dict[str, Any]:
        """What the stored index depends on besides the text: change one and the book is re-indexed."""
        from retrieval.hybrid import check_passage_vectors

        return {
            "embedding_model": self.settings.embedding_model,
            "passage_tokens": int(self.settings.passage_tokens),
            "passage_overlap_sentences": int(self.settings.passage_overlap_sentences),
            "passage_vectors": check_passage_vectors(self.settings.passage_vectors),
        }

    @staticmethod
    def _same_index(manifest: dict[str, Any], params: dict[str, Any]) -> bool:
        """Whether a stored book was indexed as ``params`` asks (format 1 books encoded their passages)."""
        stored = dict(manifest)
        stored.setdefault("passage_vectors", "encode")
        return all(stored.get(key) == value for key, value in params.items())

    def _check_model(self, book_id: str, manifest: dict[str, Any]) -> None:
        if manifest["embedding_model"] != self.settings.embedding_model:
            raise VignetteError(
                f"{book_id!r} was indexed with the embedding model {manifest['embedding_model']!r}, but Vignette is "
                f"set to use {self.settings.embedding_model!r}.",
                hint=f"Re-ingest the book to index it again, or set VIGNETTE_EMBEDDING_MODEL={manifest['embedding_model']}.",
            )

    def _report(self, book: Book, passages: int, added: int, encoded: int) -> IngestReport:
        return IngestReport(book.book_id, book.title, book.author, len(book.chapters), passages, added, encoded)

    def _step(self) -> int:
        """Texts per encoder step (whole encoder batches): a killed ingest resumes after its last step."""
        batch = max(1, int(self.settings.encode_batch_size))
        return max(batch, -(-int(self.settings.ingest_batch_size) // batch) * batch)

    def _build_sentences(self, passages: Sequence[Passage], folder: Path, counter: "_EncodeCounter",
                         notify: Progress):
        """Encode the passages' sentences (resumable steps under ``folder``) and save the table there."""
        from retrieval.sentences import count_tokens, encode_in_parts, save_table, sentence_units

        table = sentence_units(passages)
        table.weights = count_tokens(self.encoder.tokenizer, table.texts)
        table.vectors = encode_in_parts(table.texts, counter, folder / "parts-sentences", self._step(),
                                        lambda d, t: notify(d, t, STAGES["sentences"]))
        save_table(folder / SENTENCES_FILE, table)
        return table

    def _build_vocabulary(self, passages: Sequence[Passage], folder: Path, counter: "_EncodeCounter",
                          notify: Progress) -> None:
        """Encode the book's words for the grounding check (resumable steps) and save them there, where
        :class:`retrieval.grounding.BookVocabulary` finds them."""
        from retrieval.grounding import BookVocabulary
        from retrieval.sentences import encode_in_parts

        vocab = BookVocabulary(passages, self.encode, fingerprint=self.settings.embedding_model)
        words = vocab.words()
        vectors = encode_in_parts(words, counter, folder / "parts-vocabulary", self._step(),
                                  lambda d, t: notify(d, t, STAGES["vocabulary"]))
        if not words:
            vectors = np.zeros((0, self.encoder.get_sentence_embedding_dimension() or 0), dtype=np.float32)
        vocab.save_vectors(folder, vectors)

    def _manifest(self, book_id: str) -> dict[str, Any] | None:
        path = self.settings.books_dir / book_id / MANIFEST
        if not path.parent.exists():
            self._recover()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if data.get("book_id") == book_id else None

    def _manifests(self) -> list[dict[str, Any]]:
        books_dir = self.settings.books_dir
        if not books_dir.is_dir():
            return []
        self._recover()
        found = []
        for entry in books_dir.iterdir():
            if entry.is_dir() and not entry.name.startswith("."):
                manifest = self._manifest(entry.name)
                if manifest is not None:
                    found.append(manifest)
        return found

    def _require(self, book_id: str) -> dict[str, Any]:
        manifest = self._manifest(book_id) if isinstance(book_id, str) and _BOOK_ID.match(book_id) else None
        if manifest is not None:
            return manifest
        known = self.books()
        if known:
            listing = ", ".join(f"{b.book_id} ({b.title})" for b in known)
            hint = f"Stored books: {listing}."
        else:
            hint = "The library is empty: add a book with `python -m bot ingest PATH`."
        raise VignetteError(f"There is no book {book_id!r} in the library.", hint=hint)

    def _cached(self, kind: str, book_id: str, load: Callable[[Path], Any]) -> Any:
        self._require(book_id)
        folder = self.settings.books_dir / book_id
        stamp = (folder / MANIFEST).stat().st_mtime_ns
        hit = self._cache.get((kind, book_id))
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = load(folder)
        self._cache[(kind, book_id)] = (stamp, value)
        return value

    def _forget(self, book_id: str) -> None:
        for key in [key for key in self._cache if key[1] == book_id]:
            del self._cache[key]

    def _collection(self, book_id: str):
        hit = self._collections.get(book_id)
        if hit is not None and getattr(hit, "name", None) == self._require(book_id).get("collection", hit.name):
            return hit
        with self._lock:
            return self._open_collection(book_id)

    def _open_collection(self, book_id: str):
        name = self._require(book_id).get("collection") or collection_name(book_id)
        hit = self._collections.get(book_id)
        if hit is not None and getattr(hit, "name", name) != name:  # re-indexed by another process
            self._collections.pop(book_id, None)
        if book_id not in self._collections:
            try:
                # No embedding function passed: Chroma rebuilds the registered one from the stored config.
                self._collections[book_id] = self.client.get_collection(name)
            except VignetteError:
                raise
            except Exception as err:
                raise VignetteError(
                    f"The search index of {book_id!r} is missing from the vector store.",
                    hint=f"Re-ingest the book (`python -m bot ingest PATH --book-id {book_id}`) to rebuild it.",
                ) from err
        return self._collections[book_id]

    def _open_for_writing(self, name: str, book_id: str):
        """The collection ``name``, created if needed; dropped first if it was built with another model."""
        try:
            existing = self.client.get_collection(name)
        except VignetteError:
            raise
        except Exception:
            existing = None
        if existing is not None:
            ef = (existing.configuration or {}).get("embedding_function")
            if getattr(ef, "model_name", None) != self.settings.embedding_model:
                self.client.delete_collection(name)
                existing = None
        if existing is None:
            existing = self.client.create_collection(
                name, embedding_function=self.embedding_function(),
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"book_id": book_id, "embedding_model": self.settings.embedding_model},
            )
        return existing

    def _book_collections(self, book_id: str) -> list[str]:
        """Every collection of ``book_id``: the listed one, one being built, one left by a kill."""
        base = collection_name(book_id)
        names = [getattr(c, "name", c) for c in self.client.list_collections()]
        return [n for n in names if n == base or n.startswith(base + "-g")]

    def _drop_collection(self, name: str) -> None:
        try:
            self.client.delete_collection(name)
        except Exception as err:  # NotFoundError; its class differs between client types
            if "does not exist" not in str(err) and "not found" not in str(err).lower():
                raise
        for key in [key for key, c in self._collections.items() if getattr(c, "name", None) == name]:
            del self._collections[key]

    def _swap_in(self, book_id: str, staging: Path) -> None:
        """Replace the book's folder by ``staging`` (complete, with its manifest). Two renames: a kill
        between them leaves the new book staged and complete, and ``_recover`` finishes the swap."""
        final = self.settings.books_dir / book_id
        trash = self.settings.books_dir / f".trash-{book_id}-{uuid.uuid4().hex[:8]}"
        if final.exists():
            os.replace(final, trash)
        os.replace(staging, final)
        _fsync_dir(self.settings.books_dir)
        shutil.rmtree(trash, ignore_errors=True)
        self._collections.pop(book_id, None)
        self._drop_other_collections(book_id)  # the old index, and any a killed run left

    def _drop_other_collections(self, book_id: str) -> None:
        """Drop every collection of ``book_id`` but the one its manifest names."""
        keep = _read_json(self.settings.books_dir / book_id / MANIFEST).get("collection")
        if not keep:
            return
        for name in self._book_collections(book_id):
            if name != keep:
                self._drop_collection(name)

    def _recover(self) -> None:
        """Finish a swap a kill interrupted: a complete staged book whose folder is gone moves into place;
        else the old folder (set aside for the swap) comes back."""
        books_dir = self.settings.books_dir
        if not books_dir.is_dir():
            return
        for entry in sorted(books_dir.iterdir()):
            name = entry.name
            if name.startswith(".incoming-"):
                book_id = name[len(".incoming-"):]
            elif name.startswith(".trash-") and len(name) > len(".trash-") + 9:
                book_id = name[len(".trash-"):-9]
            else:
                continue
            final = books_dir / book_id
            if final.exists() or not _BOOK_ID.match(book_id) or not (entry / MANIFEST).is_file():
                continue
            try:
                os.replace(entry, final)
            except OSError:  # another process got there first
                pass

    def _is_intact(self, book_id: str, manifest: dict[str, Any]) -> bool:
        folder = self.settings.books_dir / book_id
        if not all((folder / name).exists() for name in (BOOK_FILE, PASSAGES_FILE, BM25_DIR)):
            return False
        if any(part in self.missing_parts(book_id) for part in manifest.get("parts", [])):
            return False
        try:
            return self._collection(book_id).count() == int(manifest["passages"])
        except VignetteError:
            return False

    def _sweep(self) -> None:
        """Remove what an interrupted rename left behind."""
        books_dir = self.settings.books_dir
        books_dir.mkdir(parents=True, exist_ok=True)
        self._recover()
        for entry in books_dir.glob(".trash-*"):
            shutil.rmtree(entry, ignore_errors=True)


def _unique(passages: list[Passage]) -> list[Passage]:
    """Drop repeats of an id (a passage whose text recurs verbatim): Chroma keys rows by id."""
    seen: set[str] = set()
    unique = []
    for p in passages:
        if p.passage_id not in seen:
            seen.add(p.passage_id)
            unique.append(p)
    return unique


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _EncodeCounter:
    """``encode`` that counts the texts it was given (what an ingest really sent through the encoder)."""

    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray]):
        self._encode = encode
        self.count = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.count += len(texts)
        return self._encode(texts)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
