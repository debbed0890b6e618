"""`python -m eval.bench query BOOK_ID [--json] [--n 50]`: how long one question takes, split by stage.

``BOOK_ID`` is a stored book (in ``--data-dir``, default ``$VIGNETTE_DATA_DIR``) or a path to a novel,
which is then ingested into a temporary library first (not timed). The questions are made from the book
itself, seeded: ``n`` sentences drawn at random, each turned into a wh-question from its words
("Who <words 2-9 of the sentence>?"), so they touch every part of the book the way a reader's would.
Three warm-up questions load the models and caches (window vectors, the sentence fallback's vectors)
and are not counted. Each question is timed end to end through :meth:`AnswerPipeline.ask`, and per stage
(retrieve, rerank, read), in wall time and in this process's CPU time (a busy machine inflates the first,
not the second). ``--json`` prints ``{"p50_ms", "p95_ms", "stages": {stage: {"p50_ms", "p95_ms"}},
"cpu_p50_ms", "cpu_p95_ms", "reader", "n", ...}``. Targets on Pride and Prejudice with MiniLM-size models on 2 CPU cores:
p50 <= 150 ms, p95 <= 300 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from vignette.errors import VignetteError
from vignette.settings import Settings

STAGES = ("check", "retrieve", "rerank", "read")
_WH = ("Who", "What", "Why", "Where", "When", "How")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "query", help="latency of one question (p50/p95), split into retrieve, re-rank and read",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("book", metavar="BOOK_ID", help="a stored book's id, or a path to a novel to ingest first")
    parser.add_argument("--n", type=int, default=50, help="questions to time (default 50)")
    parser.add_argument("--seed", type=int, default=7, help="seed for drawing the questions")
    parser.add_argument("--reader", help="QA model folder / hub id, or 'sentence' (default: $VIGNETTE_READER)")
    parser.add_argument("--top-k", type=int, help="passages retrieved (default: $VIGNETTE_TOP_K)")
    parser.add_argument("--reader-passages", type=int, help="of those, passages the QA reader reads "
                        "(default: $VIGNETTE_READER_PASSAGES)")
    parser.add_argument("--int8", action="store_true", default=None, help="int8-quantised reader ($VIGNETTE_READER_INT8)")
    parser.add_argument("--json", action="store_true", help='print {"p50_ms", "p95_ms", "stages", "reader", "n"}')
    parser.set_defaults(func=run)


def make_questions(text: str, sentences: list[tuple[int, int]], n: int, seed: int) -> list[str]:
    """``n`` wh-questions built from random sentences of the book (seeded, so runs compare)."""
    rng = random.Random(seed)
    pool = [(a, b) for a, b in sentences if len(text[a:b].split()) >= 8]
    if not pool:
        raise VignetteError("The book has no sentence long enough to make questions from.")
    questions = []
    for _ in range(n):
        a, b = rng.choice(pool)
        words = re.findall(r"[\w'’-]+", text[a:b])[1:9]
        questions.append(f"{rng.choice(_WH)} {' '.join(words)}?")
    return questions


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _load_average() -> float:
    try:
        import os

        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return float("nan")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.n < 1:
        raise VignetteError(f"--n must be 1 or more, not {args.n}.")
    overrides = {k: v for k, v in {"reader": args.reader, "top_k": args.top_k, "reader_passages": args.reader_passages,
                                   "reader_int8": args.int8}.items() if v is not None}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    settings = settings.replace(**overrides)
    path = Path(args.book)
    if path.is_file():  # a novel: ingest into a temporary library (not timed)
        data_dir = Path(tempfile.mkdtemp(prefix="vignette-bench-query-"))
        try:
            return _measure_file(args, settings.replace(data_dir=data_dir, chroma_host=None), path)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    return _measure(args, settings, args.book)


def _measure_file(args: argparse.Namespace, settings: Settings, path: Path) -> int:
    from retrieval.store import BookStore

    report = BookStore(settings).ingest(path)
    return _measure(args, settings, report.book_id)


def _measure(args: argparse.Namespace, settings: Settings, book_id: str) -> int:
    from retrieval.pipeline import AnswerPipeline
    from retrieval.store import BookStore
    from retrieval.text import split_sentences

    store = BookStore(settings)
    if book_id == "sample":
        store.ensure_sample()
    book = store.get_book(book_id)
    questions = make_questions(book.text, split_sentences(book.text), args.n + 3, args.seed)
    pipeline = AnswerPipeline(store, settings)

    # 0. Warm-up: models, window vectors and sentence vectors load here, outside the timings.
    for q in questions[:3]:
        pipeline.ask(book_id, q)

    # 1. The timed questions.
    totals: list[float] = []
    cpu: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    abstained = 0
    for q in questions[3:]:
        c0, t0 = time.process_time(), time.perf_counter()
        answer = pipeline.ask(book_id, q)
        totals.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
        abstained += answer.abstained
        for s in STAGES:
            stages[s].append(pipeline.last_timings.get(s, 0.0))
    result = {
        "p50_ms": round(percentile(totals, 50), 1),
        "p95_ms": round(percentile(totals, 95), 1),
        "stages": {s: {"p50_ms": round(percentile(v, 50), 1), "p95_ms": round(percentile(v, 95), 1),
                       "mean_ms": round(statistics.fmean(v), 1)} for s, v in stages.items()},
        "cpu_p50_ms": round(percentile(cpu, 50), 1),
        "cpu_p95_ms": round(percentile(cpu, 95), 1),
        "load_avg": round(_load_average(), 2),
        "reader": getattr(pipeline.reader, "name", None),
        "reader_passages": settings.reader_passages,
        "reader_int8": settings.reader_int8,
        "query_threads": settings.query_threads,
        "reranker": settings.reranker,
        "top_k": settings.top_k,
        "n": len(totals),
        "abstained": abstained,
        "book": book_id,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"book: {book.title!r} ({book_id}), {len(book.chapters)} chapters; {len(totals)} questions "
          f"(+3 warm-up), seed {args.seed}")
    print(f"reader: {result['reader']}; re-ranker: {settings.reranker or 'none'}; top_k {settings.top_k}")
    print(f"{'stage':<10}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for s in STAGES:
        st = result["stages"][s]
        print(f"{s:<10}{st['p50_ms']:>10.1f}{st['p95_ms']:>10.1f}{st['mean_ms']:>10.1f}")
    print(f"{'total':<10}{result['p50_ms']:>10.1f}{result['p95_ms']:>10.1f}{statistics.fmean(totals):>10.1f}")
    print(f"{'CPU time':<10}{result['cpu_p50_ms']:>10.1f}{result['cpu_p95_ms']:>10.1f}{statistics.fmean(cpu):>10.1f}"
          f"   (this process's CPU per question; 1-min load average during the run: {result['load_avg']})")
    print("targets: p50 <= 150 ms, p95 <= 300 ms (Pride and Prejudice, MiniLM-size models, 2 CPU cores)")
    if pipeline.reader.notice:
        print(f"note: {pipeline.reader.notice}")
    return 0
