"""`python -m eval.bench ingest PATH`: Vignette's whole ingest against a bare SentenceTransformer.encode.

In one process: the model is loaded and warmed once (so its load time biases neither side), then
1. a bare ``SentenceTransformer.encode`` of the book's passage texts (same model, same batch size) is timed;
2. the whole ingest into a fresh data dir is timed: load, clean, chapters, passages, embedding, Chroma,
   BM25 and the book's files;
3. the bare encode is timed again; its time is the mean of 1 and 3 (A-B-A: a machine whose load drifts
   biases neither side).
``ratio = ingest / bare encode``: Vignette's own overhead over the encoder (target <= 1.15).
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
    parser.add_argument("--json", action="store_true", help='print {"passages", "passages_per_s", "ratio"}')
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
    from retrieval.loading import load_book
    from retrieval.passages import split_passages
    from retrieval.store import BookStore

    store = BookStore(settings)

    # 0. Load and warm the model once, outside every timing; split the passages for the bare encode.
    model = store.encoder
    model.encode(["A warm-up sentence, so no timing pays for the first call."], show_progress_bar=False)
    book = load_book(args.path, max_bytes=settings.max_file_bytes)
    texts = [p.text for p in split_passages(book, model.tokenizer, settings.passage_tokens,
                                            settings.passage_overlap_sentences)]

    # 1-3. Bare encode, whole ingest, bare encode.
    bare_before = _bare_encode(model, texts, settings.encode_batch_size)
    wall, cpu = time.perf_counter(), time.process_time()
    report = store.ingest(args.path)
    ingest_s, ingest_cpu = time.perf_counter() - wall, time.process_time() - cpu
    if [p.text for p in store.passages(report.book_id)] != texts:
        raise VignetteError("The ingest stored other passages than the bare encode measured.")
    bare_after = _bare_encode(model, texts, settings.encode_batch_size)

    encode_s = (bare_before[0] + bare_after[0]) / 2
    encode_cpu = (bare_before[1] + bare_after[1]) / 2
    ratio = ingest_s / encode_s
    result = {"passages": report.passages, "passages_per_s": round(report.passages / ingest_s, 2),
              "ratio": round(ratio, 3)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"book: {report.title!r} ({report.chapters} chapters) from {args.path}")
    print(f"model: {settings.embedding_model} on {store.device}, batch {settings.encode_batch_size}; "
          "loaded and warmed before all timings")
    print(f"passages:         {report.passages}")
    print(f"whole ingest:     {ingest_s:8.2f} s  ({result['passages_per_s']:.1f} passages/s; {ingest_cpu:.1f} s CPU)")
    print(f"bare encode:      {encode_s:8.2f} s  ({report.passages / encode_s:.1f} passages/s; {encode_cpu:.1f} s CPU; "
          f"before/after the ingest: {bare_before[0]:.2f} s / {bare_after[0]:.2f} s)")
    print(f"ratio:            {ratio:8.3f}  (ingest / bare encode, wall clock; target <= 1.15)")
    print(f"CPU-time ratio:   {ingest_cpu / encode_cpu:8.3f}  (less sensitive to other work on the machine)")
    return 0


def _bare_encode(model, texts: list[str], batch_size: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a plain SentenceTransformer.encode of ``texts``."""
    wall, cpu = time.perf_counter(), time.process_time()
    model.encode(texts, batch_size=batch_size, show_progress_bar=False)
    return time.perf_counter() - wall, time.process_time() - cpu
