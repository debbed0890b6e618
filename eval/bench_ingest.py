"""`python -m eval.bench ingest PATH`: the whole job of adding a book (ingest, then the first question)
against one bare SentenceTransformer.encode of the same passages.

In one process: the encoder and the reader are loaded and warmed once (so their load time biases neither
side), then
1. a bare ``SentenceTransformer.encode`` of the book's passage texts (same model, same batch size) is timed;
2. the whole ingest into a fresh data dir is timed: load, clean, chapters, passages, the sentences' vectors,
   the passages' vectors into Chroma, BM25, the grounding vocabulary and the book's files, and the book
   made ready for questions as the app does after an upload (``AnswerPipeline.prepare``); then the first
   question about the book (``AnswerPipeline.ask``, end to end), then ``--n`` more questions made from the
   book (as ``eval.bench query`` makes them);
3. the bare encode is timed again; its time is the mean of 1 and 3 (A-B-A: a machine whose load drifts
   biases neither side).
``ratio = (ingest + first question) / bare encode`` (target <= 1.5): the whole job over the one pass over the
book that any encoder-based index must make. Also: the first question's latency against the p50 of the
questions after it, and the book's size on disk (its folder, and Chroma's).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from vignette.errors import VignetteError
from vignette.settings import Settings


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "ingest", help="time a whole ingest against a bare encode of the same passages",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", help="a novel (e.g. ../shared/data/novels/pg1342_pride_and_prejudice.txt)")
    parser.add_argument("--n", type=int, default=20, help="questions timed after the first (default 20)")
    parser.add_argument("--json", action="store_true", help='print {"passages", "ratio", "first_question_ms", '
                        '"question_p50_ms", "folder_bytes", "chroma_bytes", ...}')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not Path(args.path).is_file():
        raise VignetteError(f"{args.path} is not a file.")
    parent = getattr(args, "data_dir", None)
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="vignette-bench-", dir=parent))
    settings = settings.replace(data_dir=data_dir, chroma_host=None)
    try:
        return _measure(args, settings)
    finally:
        if not parent:  # a temporary library: nothing to keep
            shutil.rmtree(data_dir, ignore_errors=True)


def _measure(args: argparse.Namespace, settings: Settings) -> int:
    from eval.bench_query import make_questions, percentile
    from retrieval.loading import load_book
    from retrieval.passages import split_passages
    from retrieval.pipeline import AnswerPipeline
    from retrieval.store import BookStore, _folder_bytes
    from retrieval.text import split_sentences

    store = BookStore(settings)
    pipeline = AnswerPipeline(store, settings)

    # 0. Load and warm the models once, outside every timing; split the passages for the bare encode.
    model = store.encoder
    model.encode(["A warm-up sentence, so no timing pays for the first call."], show_progress_bar=False)
    reader = pipeline.reader
    if hasattr(reader, "warm_up"):
        reader.warm_up()
    book = load_book(args.path, max_bytes=settings.max_file_bytes)
    texts = [p.text for p in split_passages(book, model.tokenizer, settings.passage_tokens,
                                            settings.passage_overlap_sentences)]
    questions = make_questions(book.text, split_sentences(book.text), max(1, args.n) + 1, seed=7)

    # 1-3. Bare encode; whole ingest, the first question, more questions; bare encode.
    bare_before = _bare_encode(model, texts, settings.encode_batch_size)
    wall, cpu = time.perf_counter(), time.process_time()
    report = store.ingest(args.path)
    pipeline.prepare(report.book_id)  # what the app does after an upload: the book's views loaded
    ingest_s, ingest_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall = time.perf_counter()
    pipeline.ask(report.book_id, questions[0])
    first_s = time.perf_counter() - wall
    later = []
    for question in questions[1:]:
        wall = time.perf_counter()
        pipeline.ask(report.book_id, question)
        later.append((time.perf_counter() - wall) * 1000.0)
    if [p.text for p in store.passages(report.book_id)] != texts:
        raise VignetteError("The ingest stored other passages than the bare encode measured.")
    bare_after = _bare_encode(model, texts, settings.encode_batch_size)

    encode_s = (bare_before[0] + bare_after[0]) / 2
    encode_cpu = (bare_before[1] + bare_after[1]) / 2
    ratio = (ingest_s + first_s) / encode_s
    info = next(b for b in store.books() if b.book_id == report.book_id)
    chroma = _folder_bytes(settings.chroma_dir)
    result = {"passages": report.passages, "encoded": report.encoded, "ingest_s": round(ingest_s, 2),
              "first_question_ms": round(first_s * 1000.0, 1), "question_p50_ms": round(percentile(later, 50), 1),
              "bare_encode_s": round(encode_s, 2), "ratio": round(ratio, 3),
              "ingest_only_ratio": round(ingest_s / encode_s, 3), "folder_bytes": info.size_bytes,
              "vectors_bytes": info.vectors_bytes, "chroma_bytes": chroma, "reader": getattr(reader, "name", None),
              "passage_vectors": settings.passage_vectors}
    if args.json:
        print(json.dumps(result))
        return 0
    mb = 2 ** 20
    print(f"book: {report.title!r} ({report.chapters} chapters) from {args.path}")
    print(f"model: {settings.embedding_model} on {store.device}, batch {settings.encode_batch_size}; reader "
          f"{result['reader']}; loaded and warmed before all timings")
    print(f"passages:         {report.passages}  (texts encoded by the ingest: {report.encoded}; passage vectors: "
          f"{settings.passage_vectors})")
    print(f"whole ingest:     {ingest_s:8.2f} s  ({ingest_cpu:.1f} s CPU)")
    print(f"first question:   {first_s * 1000:8.1f} ms (the {len(later)} after it: p50 {result['question_p50_ms']:.1f} ms)")
    print(f"bare encode:      {encode_s:8.2f} s  ({report.passages / encode_s:.1f} passages/s; {encode_cpu:.1f} s CPU; "
          f"before/after: {bare_before[0]:.2f} s / {bare_after[0]:.2f} s)")
    print(f"ratio:            {ratio:8.3f}  ((ingest + first question) / bare encode, wall clock; target <= 1.5)")
    print(f"CPU-time ratio:   {ingest_cpu / encode_cpu:8.3f}  (ingest alone; less sensitive to other work)")
    print(f"on disk:          book folder {info.size_bytes / mb:.1f} MB (vectors {info.vectors_bytes / mb:.1f} MB, "
          f"float16), Chroma {chroma / mb:.1f} MB")
    return 0


def _bare_encode(model, texts: list[str], batch_size: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a plain SentenceTransformer.encode of ``texts``."""
    wall, cpu = time.perf_counter(), time.process_time()
    model.encode(texts, batch_size=batch_size, show_progress_bar=False)
    return time.perf_counter() - wall, time.process_time() - cpu
