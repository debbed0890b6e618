"""`python -m eval.fairytaleqa` - retrieval (and reading) on FairytaleQA (Xu et al., ACL 2022).

Each story's sections are its passages, searched by the product's own :class:`HybridRetriever` over an
in-memory :class:`~retrieval.hybrid.MemorySource` (one index per story; ``--pooled``: all the stories of
the file in one index). For each question: recall@1/3/5 and the reciprocal rank of the first gold
section; and the answer read from the top passages by the product's default reader (as the bot resolves
``VIGNETTE_READER``; ``--reader`` names another, ``--reader none`` measures retrieval alone), scored by
token F1 and ROUGE-L F1 (max over the two gold answers, SQuAD normalisation) and the abstain rate. Everything is reported overall and
split by explicit / implicit questions, in ``metrics.json`` and ``metrics.md`` (plus every question's
ranking in ``rankings.jsonl``).

Example (validation, hybrid retrieval + a trained poly-encoder)::

    python -m eval.fairytaleqa --stories ../shared/data/fairytaleqa/stories.jsonl \\
        --questions ../shared/data/fairytaleqa/val.jsonl --rerank runs/poly-m16 --out runs/eval/hybrid-poly
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vignette import offline

offline.prepare()

from eval.metrics import (  # noqa: E402
    aggregate,
    markdown_table,
    max_over_gold,
    reciprocal_rank,
    recall_at_k,
    rouge_l,
    token_f1,
)
from vignette.documents import Passage  # noqa: E402
from vignette.errors import VignetteError  # noqa: E402
from vignette.settings import Settings  # noqa: E402

HYBRID = ("bm25", "dense", "window", "sentence")


def parse_retrievers(text: str) -> tuple[str, ...]:
    """"hybrid" (all four) or retriever names joined by "+", e.g. "bm25+window"."""
    names = HYBRID if text == "hybrid" else tuple(n.strip() for n in text.split("+") if n.strip())
    unknown = [n for n in names if n not in HYBRID]
    if unknown or not names:
        raise VignetteError(f"Unknown retriever {text!r}: use 'hybrid' or names from {', '.join(HYBRID)} joined by '+'.")
    return names
RETRIEVAL_KEYS = ["r@1", "r@3", "r@5", "mrr"]
READER_KEYS = ["f1", "rouge_l", "abstain_rate"]
GROUNDING_KEYS = ["unmentioned_rate"]


def load_stories(path: Path, story_ids: set[str] | None = None) -> dict[str, list[Passage]]:
    """Each story's sections as passages (offsets into the story's sections joined by blank lines)."""
    stories: dict[str, list[Passage]] = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        story = json.loads(line)
        if story_ids is not None and story["story_id"] not in story_ids:
            continue
        offset, passages = 0, []
        for section in story["sections"]:
            text = section["text"]
            passages.append(Passage(passage_id=f"{story['story_id']}#{section['id']}", book_id=story["story_id"],
                                    chapter=1, chapter_title=story.get("title", story["story_id"]),
                                    start=offset, end=offset + len(text), text=text))
            offset += len(text) + 2
        stories[story["story_id"]] = passages
    return stories


def load_questions(path: Path, limit: int | None = None) -> list[dict]:
    questions = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return questions[:limit] if limit else questions


def parse_weights(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    weights = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        weights[name.strip()] = float(value)
    return weights


def evaluate(args, settings: Settings) -> dict:
    from retrieval.hybrid import HybridRetriever, MemorySource

    # 1. Check inputs and load the data.
    for path in (args.stories, args.questions):
        if not Path(path).is_file():
            raise VignetteError(f"{path} does not exist.")
    questions = load_questions(args.questions, args.limit)
    stories = load_stories(args.stories, {q["story_id"] for q in questions})
    missing = {q["story_id"] for q in questions} - set(stories)
    if missing:
        raise VignetteError(f"{len(missing)} stories of the questions are not in {args.stories}: {sorted(missing)[:3]}")
    views = parse_retrievers(args.retriever)
    if args.reader_passages is None:  # as the product reads
        args.reader_passages = settings.reader_passages

    # 2. The product's retriever over in-memory stories.
    overrides = {"reranker": str(args.rerank) if args.rerank else None, "candidates": args.candidates,
                 "fusion": args.fusion, "cross_encoder": str(args.cross) if args.cross else None,
                 "cross_depth": args.cross_depth, "cross_weight": args.cross_weight}
    if args.embedding_model:
        overrides["embedding_model"] = str(args.embedding_model)
    settings = settings.replace(**{k: v for k, v in overrides.items()
                                   if v is not None or k in ("reranker", "cross_encoder")})
    retriever = HybridRetriever(None, settings, retrievers=views,
                                weights=parse_weights(args.weights), rerank_depth=args.rerank_depth,
                                rerank_mode=args.rerank_mode)
    fingerprint = retriever.model_fingerprint()
    cache_root = Path(args.cache_dir) / fingerprint if args.cache_dir else None
    if args.pooled:
        everything = [p for sid in sorted(stories) for p in stories[sid]]
        sources = {"*": MemorySource(everything, retriever.encode, key="pooled",
                                     cache_dir=cache_root / "pooled" if cache_root else None, fingerprint=fingerprint, tokenizer=retriever.tokenizer,
                                     passage_vectors=settings.passage_vectors)}
    else:
        sources = {sid: MemorySource(ps, retriever.encode, key=sid, cache_dir=cache_root / sid if cache_root else None,
                                     fingerprint=fingerprint, tokenizer=retriever.tokenizer, passage_vectors=settings.passage_vectors)
                   for sid, ps in stories.items()}
    reader = None
    if args.reader is None or args.reader.strip().lower() != "none":  # the product's default reader unless told otherwise
        from retrieval.reader import load_reader

        reader = load_reader(settings if args.reader is None else settings.replace(reader=str(args.reader)))
        if getattr(reader, "notice", None):
            print(f"note: {reader.notice}", file=sys.stderr)

    depth = max(0, args.reader_rerank)
    from retrieval.reader_protocol import PassageJudge, rerank_by_reader

    if depth and not isinstance(reader, PassageJudge):
        raise VignetteError(f"--reader-rerank needs an extractive QA reader (--reader FOLDER); the reader here is "
                            f"{getattr(reader, 'name', 'none')}.")

    vocabularies = {}
    if args.grounding is not None:
        from retrieval.grounding import BookVocabulary

        for key, source in sources.items():
            vocabularies[key] = BookVocabulary(source.passages, retriever.encode, cache_dir=source.cache_dir,
                                               fingerprint=fingerprint)

    # 3. Every question (encoded ahead in batches: same vectors, a fraction of the CPU time).
    rows, began = [], time.time()
    texts = [q["question"] for q in questions]
    vectors = retriever.encode(texts) if {"dense", "window", "sentence"} & set(retriever.retrievers) else [None] * len(texts)
    if retriever.reranker is not None:
        retriever.reranker.prepare_questions(texts)
    top_k = max(5, args.reader_passages)
    with open(Path(args.out) / "rankings.jsonl", "w") as out:
        for n, q in enumerate(questions, start=1):
            source = sources["*" if args.pooled else q["story_id"]]
            candidates = retriever.retrieve_from(source, q["question"], top_k=max(top_k, args.rank_depth, depth),
                                                 question_vector=vectors[n - 1])
            answer = None
            if depth:  # the reader re-ranks the first `depth` passages, then answers from them (as the pipeline)
                candidates = rerank_by_reader(reader, q["question"], candidates, depth=depth,
                                              weight=args.reader_rerank_weight)
                answer = reader.read(q["question"], candidates[:depth])
            ranked = [c.passage.passage_id for c in candidates]
            gold = {f"{q['story_id']}#{s}" for s in q["section_ids"]}
            row = {"qid": q["qid"], "explicit": "explicit" if q.get("explicit") else "implicit",
                   "r@1": recall_at_k(ranked, gold, 1), "r@3": recall_at_k(ranked, gold, 3),
                   "r@5": recall_at_k(ranked, gold, 5), "mrr": reciprocal_rank(ranked, gold)}
            missing = []
            if vocabularies:  # the product's check: does the story mention what the question asks about?
                missing = vocabularies["*" if args.pooled else q["story_id"]].unmentioned(q["question"], None, args.grounding)
                row.update(unmentioned_rate=float(bool(missing)), unmentioned=[m.word for m in missing])
            if reader is not None:
                if answer is None:
                    answer = reader.read(q["question"], candidates[: args.reader_passages])
                if missing:
                    answer.answer, answer.abstained = "", True
                golds = list(q.get("answers") or [])
                row.update(answer=answer.answer, abstain_rate=float(answer.abstained),
                           f1=max_over_gold(token_f1, answer.answer, golds),
                           rouge_l=max_over_gold(rouge_l, answer.answer, golds))
            rows.append(row)
            out.write(json.dumps({**row, "ranked": ranked[:10], "gold": sorted(gold)}) + "\n")
            if n % 100 == 0:
                print(f"{n}/{len(questions)} questions, {time.time() - began:.0f} s", file=sys.stderr)

    # 4. Aggregate and write.
    keys = RETRIEVAL_KEYS + (READER_KEYS if reader is not None else []) + (GROUNDING_KEYS if vocabularies else [])
    metrics = aggregate(rows, keys, group_key="explicit")
    metrics["config"] = {
        "stories": str(args.stories), "questions": str(args.questions), "limit": args.limit,
        "index": "pooled" if args.pooled else "per story", "retriever": args.retriever,
        "retrievers": list(retriever.retrievers), "fusion": retriever.fusion,
        "embedding_model": settings.embedding_model, "rerank": str(args.rerank) if args.rerank else None,
        "rerank_mode": args.rerank_mode if args.rerank else None, "rerank_depth": args.rerank_depth if args.rerank else None,
        "cross_encoder": {"path": str(args.cross), "depth": args.cross_depth, "weight": args.cross_weight} if args.cross else None,
        "weights": retriever.weights, "rrf_k": settings.rrf_k if retriever.fusion == "rrf" else None, "candidates": settings.candidates,
        "reader": getattr(reader, "name", None),
        "reader_rerank": {"depth": depth, "weight": args.reader_rerank_weight} if depth else None, "grounding_threshold": args.grounding, "reader_passages": args.reader_passages if reader else None,
        "seconds": round(time.time() - began, 1), "command": "python -m eval.fairytaleqa " + " ".join(sys.argv[1:]),
    }
    return metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stories", type=Path, required=True, help="FairytaleQA stories.jsonl")
    parser.add_argument("--questions", type=Path, required=True, help="FairytaleQA questions (val.jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="folder for metrics.json, metrics.md, rankings.jsonl")
    parser.add_argument("--pooled", action="store_true", help="all stories in one index (default: one per story)")
    parser.add_argument("--retriever", default="hybrid",
                        help="hybrid (all four fused), or bm25, dense (whole sections), window (best 3-sentence window), "
                        "sentence (best sentence), alone or joined by '+' (e.g. bm25+window)")
    parser.add_argument("--fusion", choices=["score", "rrf"],
                        help="score: weighted sum of z-scored scores; rrf: reciprocal rank fusion (default: settings.fusion)")
    parser.add_argument("--rerank", type=Path, help="a trained poly-encoder folder (python -m retrieval.train_poly)")
    parser.add_argument("--rerank-mode", default="fuse", choices=["fuse", "replace"],
                        help="fuse: the poly-encoder joins the fusion; replace: its order alone over the fused top N")
    parser.add_argument("--rerank-depth", type=int, default=20, help="N: fused candidates the poly-encoder re-orders "
                        "(RRF, or replace; score fusion scores the whole pool)")
    parser.add_argument("--reader", help="who reads the answers: by default the product's default reader "
                        "(VIGNETTE_READER, resolved as the bot resolves it); a QA model folder or hub id; 'sentence' "
                        "for the sentence fallback; 'none' for retrieval only")
    parser.add_argument("--cross", type=Path, help="a trained cross-encoder folder (python -m retrieval.train_cross) "
                        "re-scoring the fused top --cross-depth")
    parser.add_argument("--cross-depth", type=int, default=Settings.cross_depth,
                        help=f"fused candidates the cross-encoder re-scores (default {Settings.cross_depth})")
    parser.add_argument("--cross-weight", type=float, default=Settings.cross_weight,
                        help=f"weight of its z-scored score (default {Settings.cross_weight})")
    parser.add_argument("--reader-rerank", type=int, default=0, metavar="N",
                        help="the reader reads the top N passages and its confidence re-ranks them (needs --reader "
                        "FOLDER); the retrieval metrics are then those of the re-ranked list")
    parser.add_argument("--reader-rerank-weight", type=float, default=Settings.reader_rerank_weight,
                        help="weight of the reader's z-scored margin against the fused score (default: %(default)s)")
    parser.add_argument("--reader-passages", type=int, default=None,
                        help="top passages the reader reads (default: as the product, $VIGNETTE_READER_PASSAGES or 3)")
    parser.add_argument("--grounding", type=float, nargs="?", const=0.7, default=None, metavar="THRESHOLD",
                        help="apply the product's unmentioned-word check (retrieval/grounding.py; default threshold "
                        "0.7): the share of questions it would abstain on is 'unmentioned_rate'")
    parser.add_argument("--embedding-model", help="bi-encoder (default: VIGNETTE_EMBEDDING_MODEL or all-MiniLM-L6-v2)")
    parser.add_argument("--weights", help="fusion weights, e.g. bm25=1,dense=0.5,window=1,poly=2 (default: retrieval.hybrid.SCORE_WEIGHTS or RRF_WEIGHTS; "
                        "a retriever not named weighs 1)")
    parser.add_argument("--candidates", type=int, help="passages each retriever proposes (default: settings.candidates)")
    parser.add_argument("--rank-depth", type=int, default=10, help="ranks kept per question in rankings.jsonl")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--cache-dir", type=Path, default=Path("var/cache/fairytaleqa"),
                        help="where section and window embeddings are cached ('' to disable)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.fairytaleqa", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.cache_dir is not None and str(args.cache_dir) in {"", "."}:
        args.cache_dir = None
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        metrics = evaluate(args, Settings.from_env())
    except VignetteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    groups = {k: v for k, v in metrics.items() if k != "config"}
    keys = RETRIEVAL_KEYS + READER_KEYS + GROUNDING_KEYS
    table = markdown_table(groups, keys)
    (args.out / "metrics.md").write_text(
        f"# FairytaleQA: {metrics['config']['retriever']}"
        f"{' + poly-encoder' if metrics['config']['rerank'] else ''}, {metrics['config']['index']} index\n\n"
        f"`{metrics['config']['command']}`\n\n{table}")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
