"""The library: every ingested book, its passages, their embeddings in Chroma and a BM25 index beside them.

Layout under ``settings.data_dir``::

    chroma/                      Chroma's embedded store (unless a server is configured)
    books/<book_id>/book.json    title, author, source, cleaned text, chapters
    books/<book_id>/passages.jsonl   the passages in book order
    books/<book_id>/bm25/        the BM25 index (retrieval.sparse)
    books/<book_id>/manifest.json    written last: a book without it is incomplete and never listed

One Chroma collection per book (cosine space, unit-length embeddings, metadata from
``Passage.metadata()``), its embedding function registered with Chroma so it reopens on its own.

Crash safety: the book's files are written to ``books/.incoming-<id>/`` and renamed into place only after
every passage is in Chroma, with the manifest inside. Passages go to Chroma in steps, keyed by their
content ids (upsert is idempotent), so an ingest killed midway leaves the earlier books untouched, the
killed book unlisted, and a re-run encodes only the passages Chroma is missing.
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
STORE_FORMAT = 1  # bump when the layout changes; older books are then re-ingested

_BOOK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")  # \Z: "$" would let a final newline through

Progress = Callable[[int, int, str], None]  # (done, total, stage)


@dataclass
class IngestReport:
    book_id: str
    title: str
    author: str | None
    chapters: int
    passages: int
    added: int  # passages newly embedded and added; 0 when the book was already stored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BookInfo:
    book_id: str
    title: str
    author: str | None
    chapters: int
    passages: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collection_name(book_id: str) -> str:
    """A Chroma collection name for ``book_id`` (3-512 of [A-Za-z0-9._-], alphanumeric at both ends, no
    '..'): a readable slug plus a hash, so two ids that slug alike stay apart."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", book_id)[:48].strip("-_")
    digest = hashlib.sha1(book_id.encode("utf-8")).hexdigest()[:10]
    return f"vignette-{slug}-{digest}" if slug else f"vignette-{digest}"


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
            infos.append(BookInfo(manifest["book_id"], manifest["title"], manifest.get("author"),
                                  int(manifest["chapters"]), int(manifest["passages"])))
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
        if manifest["embedding_model"] != self.settings.embedding_model:
            raise VignetteError(
                f"{book_id!r} was indexed with the embedding model {manifest['embedding_model']!r}, but Vignette is "
                f"set to use {self.settings.embedding_model!r}.",
                hint=f"Re-ingest the book to index it again, or set VIGNETTE_EMBEDDING_MODEL={manifest['embedding_model']}.",
            )
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
        """Store an already loaded :class:`Book` (``ingest`` without the loading)."""
        report = lambda added, n: IngestReport(book.book_id, book.title, book.author, len(book.chapters), n, added)  # noqa: E731
        notify = progress or (lambda done, total, stage: None)
        # 1. Check inputs.
        book_id = check_book_id(book.book_id)
        if not book.text.strip():
            raise VignetteError(f"{book.source or book_id!r} holds no text to index.")
        digest = text_hash(book.text)
        params = self._index_params()
        final = self.settings.books_dir / book_id
        manifest = self._manifest(book_id)

        # 2. The id is taken: the same text is a no-op (or a repair), other text is refused.
        if manifest is not None:
            if manifest["text_sha256"] != digest:
                raise VignetteError(
                    f"A different book is already stored as {book_id!r} ({manifest['title']!r}); nothing was changed.",
                    hint=f"Give this one another id with --book-id, or remove the stored one first "
                    f"(`python -m bot remove {book_id}`).",
                )
            if all(manifest.get(key) == value for key, value in params.items()) and self._is_intact(book_id, manifest):
                return report(0, int(manifest["passages"]))
            # Same text, other settings (or a damaged index): re-index it below.

        # 3. Split into passages measured with the encoder's own tokenizer (after connecting to Chroma, so
        #    an unreachable server fails before anything is written).
        self.client  # noqa: B018
        from retrieval.passages import split_passages

        notify(0, 1, "splitting")
        found_chapters = book.chapters  # book.json keeps them as found; the reader's corrections apply on top
        from retrieval.corrections import CORRECTIONS_FILE, apply_corrections, load_corrections

        corrections = load_corrections(final) if final.is_dir() else []
        if corrections:
            book = replace(book, chapters=apply_corrections(book.text, book.chapters, corrections)[0])
        passages = _unique(split_passages(book, self.encoder.tokenizer, self.settings.passage_tokens,
                                          self.settings.passage_overlap_sentences))
        if not passages:
            raise VignetteError(f"{book.source or book_id!r} holds no text to index.")
        notify(1, 1, "splitting")

        # 4. Stage the book's files beside the library; they move into place only when complete.
        self._sweep()
        staging = self.settings.books_dir / f".incoming-{book_id}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
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
        from retrieval.sparse import BM25Index

        BM25Index.build([p.passage_id for p in passages], [p.text for p in passages]).save(staging / BM25_DIR)

        # 5. Chroma: keep what an interrupted run already added, drop what no longer belongs. A stored
        #    book being re-indexed is unlisted first, so a crash leaves it incomplete, never wrongly complete.
        (final / MANIFEST).unlink(missing_ok=True)
        self._forget(book_id)
        collection = self._open_for_writing(book_id)
        wanted = {p.passage_id for p in passages}
        present = set(collection.get(include=[])["ids"])
        stale = sorted(present - wanted)
        if stale:
            collection.delete(ids=stale)
        todo = [p for p in passages if p.passage_id not in present]

        # 6. Encode once, longest first (as SentenceTransformer.encode orders its batches), and add each
        #    step with its embeddings so Chroma never embeds anything itself.
        todo.sort(key=lambda p: -len(p.text))
        done, total = len(passages) - len(todo), len(passages)
        notify(done, total, "embedding")
        batch = max(1, int(self.settings.encode_batch_size))
        step = max(batch, -(-int(self.settings.ingest_batch_size) // batch) * batch)  # whole encoder batches
        for i in range(0, len(todo), step):
            chunk = todo[i:i + step]
            vectors = self.encode([p.text for p in chunk])
            collection.upsert(ids=[p.passage_id for p in chunk], embeddings=vectors,
                              documents=[p.text for p in chunk], metadatas=[p.metadata() for p in chunk])
            done += len(chunk)
            notify(done, total, "embedding")

        # 7. The manifest, then one rename: from here on the book is listed.
        _write_json(staging / MANIFEST, {
            "format": STORE_FORMAT, "book_id": book_id, "title": book.title, "author": book.author,
            "source": book.source, "chapters": len(book.chapters), "passages": len(passages),
            "text_sha256": digest, "collection": collection_name(book_id),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **params,
        })
        _fsync_dir(staging)
        trash = self.settings.books_dir / f".trash-{book_id}-{uuid.uuid4().hex[:8]}"
        if final.exists():
            os.replace(final, trash)
        os.replace(staging, final)
        shutil.rmtree(trash, ignore_errors=True)
        self._forget(book_id)
        notify(total, total, "done")
        return report(len(todo), len(passages))

    def remove(self, book_id: str) -> None:
        """Delete a book: its Chroma collection and its folder (complete or interrupted)."""
        folder = self.settings.books_dir / book_id if _BOOK_ID.match(book_id or "") else None
        known = folder is not None and (folder.exists() or book_id in self.incomplete())
        if folder is not None and not known:  # perhaps only a collection is left of an interrupted ingest
            try:
                self.client.get_collection(collection_name(book_id))
                known = True
            except VignetteError:
                raise
            except Exception:
                pass
        if not known:
            self._require(book_id)  # raises, listing the books
        # Unlist first: if this is interrupted the book is incomplete, never half-listed.
        (folder / MANIFEST).unlink(missing_ok=True)
        self._forget(book_id)
        try:
            self.client.delete_collection(collection_name(book_id))
        except Exception as err:  # NotFoundError; its class differs between client types
            if "does not exist" not in str(err) and "not found" not in str(err).lower():
                raise
        self._collections.pop(book_id, None)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(self.settings.books_dir / f".incoming-{book_id}", ignore_errors=True)

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
        return {
            "embedding_model": self.settings.embedding_model,
            "passage_tokens": int(self.settings.passage_tokens),
            "passage_overlap_sentences": int(self.settings.passage_overlap_sentences),
            "format": STORE_FORMAT,
        }

    def _manifest(self, book_id: str) -> dict[str, Any] | None:
        path = self.settings.books_dir / book_id / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if data.get("book_id") == book_id else None

    def _manifests(self) -> list[dict[str, Any]]:
        books_dir = self.settings.books_dir
        if not books_dir.is_dir():
            return []
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
        if hit is not None:
            return hit
        with self._lock:
            return self._open_collection(book_id)

    def _open_collection(self, book_id: str):
        if book_id not in self._collections:
            try:
                # No embedding function passed: Chroma rebuilds the registered one from the stored config.
                self._collections[book_id] = self.client.get_collection(collection_name(book_id))
            except VignetteError:
                raise
            except Exception as err:
                raise VignetteError(
                    f"The search index of {book_id!r} is missing from the vector store.",
                    hint=f"Re-ingest the book (`python -m bot ingest PATH --book-id {book_id}`) to rebuild it.",
                ) from err
        return self._collections[book_id]

    def _open_for_writing(self, book_id: str):
        """The book's collection, created if needed; dropped first if it was built with another model."""
        name = collection_name(book_id)
        self._collections.pop(book_id, None)
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
        self._collections[book_id] = existing
        return existing

    def _is_intact(self, book_id: str, manifest: dict[str, Any]) -> bool:
        folder = self.settings.books_dir / book_id
        if not all((folder / name).exists() for name in (BOOK_FILE, PASSAGES_FILE, BM25_DIR)):
            return False
        try:
            return self._collection(book_id).count() == int(manifest["passages"])
        except VignetteError:
            return False

    def _sweep(self) -> None:
        """Remove what an interrupted rename left behind."""
        books_dir = self.settings.books_dir
        books_dir.mkdir(parents=True, exist_ok=True)
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
