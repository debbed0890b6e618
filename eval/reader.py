"""`python -m eval.reader --evaluate DIR` / `--calibrate DIR`: a trained reader on FairytaleQA.

* **Evaluate**: each question read against its gold section, and end to end against the top 1/3/5
  retrieved sections of its story; ROUGE-L F1 and token F1 of the best span (max over the gold answers),
  the best span chosen by its margin over its own window's no-answer score (what the product does) and
  by the raw span logit (to show that scores are comparable across sections).
* **Calibrate**: the abstain threshold that best separates answerable questions from the same questions
  with the answer cut out of their sections (the book talks about the thing but never says it), stored in
  the reader's folder (``vignette_reader.json``) for :class:`retrieval.reader.ExtractiveReader` to use.

Training is :mod:`retrieval.train_reader`; SQuAD 2.0 scores are :mod:`eval.squad`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

from vignette import offline

offline.prepare()

from retrieval.reader import READER_CONFIG  # noqa: E402
from retrieval.train_reader import answer_sentences  # noqa: E402 - the same cut as the training's near misses
from vignette.errors import VignetteError  # noqa: E402


# --------------------------------------------------------------------------------------------------------
# 1. Evaluation on FairytaleQA: given the gold section, and end to end over the retrieved sections
# --------------------------------------------------------------------------------------------------------


def evaluate(args: argparse.Namespace) -> dict:
    """Read each question's gold section, and the top 1/3/5 retrieved sections of its story, with the
    reader in ``args.evaluate``; score the best span by ROUGE-L F1 and token F1 (max over the gold
    answers). End to end, the best span is chosen two ways: by its margin over its own window's no-answer
    score (what :class:`~retrieval.reader.ExtractiveReader` does) and by the raw span logit, to show
    whether scores are comparable across sections (reading more sections should help, not hurt).
    ``abstain`` rows count an abstained answer as empty (ROUGE 0) at ``--abstain-threshold``."""
    import torch

    from eval.fairytaleqa import load_questions, load_stories, parse_retrievers
    from eval.metrics import max_over_gold, rouge_l, token_f1
    from retrieval.hybrid import HybridRetriever, MemorySource
    from retrieval.reader import ExtractiveReader
    from vignette.documents import Candidate
    from vignette.settings import Settings

    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    questions = load_questions(args.questions, None)
    if args.explicit_only:
        questions = [q for q in questions if q.get("explicit")]
    questions = questions[: args.limit] if args.limit else questions
    stories = load_stories(args.stories, {q["story_id"] for q in questions})
    settings = Settings.from_env()
    retriever = HybridRetriever(None, settings, retrievers=parse_retrievers(args.retriever))
    fingerprint = retriever.model_fingerprint()
    cache_root = Path(args.cache_dir) / fingerprint if args.cache_dir else None
    sources = {sid: MemorySource(ps, retriever.encode, key=sid, cache_dir=cache_root / sid if cache_root else None,
                                 fingerprint=fingerprint, tokenizer=retriever.tokenizer) for sid, ps in stories.items()}
    reader = ExtractiveReader(args.evaluate, settings, rank_penalty=args.rank_penalty)
    ks = sorted({int(k) for k in args.passages.split(",")})
    rows = []
    t0 = time.time()
    dump = open(args.dump, "w") if args.dump else None
    for n, q in enumerate(questions, start=1):
        golds = list(q.get("answers") or [])
        by_id = {p.passage_id: p for p in stories[q["story_id"]]}
        gold_ids = [f"{q['story_id']}#{s}" for s in q["section_ids"] if f"{q['story_id']}#{s}" in by_id]
        cands = retriever.retrieve_from(sources[q["story_id"]], q["question"], top_k=max(ks))
        row = {"qid": q["qid"], "explicit": bool(q.get("explicit"))}

        def score(prefix: str, text: str) -> None:
            row[f"{prefix}.rouge_l"] = max_over_gold(rouge_l, text, golds)
            row[f"{prefix}.f1"] = max_over_gold(token_f1, text, golds)

        gold_spans = reader.read_spans(q["question"], [Candidate(by_id[g], 1.0) for g in gold_ids], top_n=1)
        score("gold", gold_spans[0].text if gold_spans else "")
        spans = reader.read_spans(q["question"], cands, top_n=250)
        for k in ks:
            within = [s for s in spans if s.candidate_rank < k]
            margin = max(within, key=lambda s: s.score) if within else None
            raw = max(within, key=lambda s: s.logit) if within else None
            combined = within[0] if within else None  # what the reader answers: margin - rank penalty
            score(f"top{k}.raw", raw.text if raw else "")
            score(f"top{k}.margin", margin.text if margin else "")
            score(f"top{k}.combined", combined.text if combined else "")
            kept = next((s.text for s in within if s.score >= args.abstain_threshold), "")
            score(f"top{k}.combined+abstain", kept)
            row[f"top{k}.abstained"] = float(not kept)
        rows.append(row)
        if dump is not None:  # the best span of each retrieved section, for studying how to combine them
            per_rank = {}
            for sp in sorted(spans, key=lambda s: -s.score):
                per_rank.setdefault(sp.candidate_rank, sp)
            dump.write(json.dumps({
                "qid": q["qid"], "explicit": bool(q.get("explicit")), "gold_sections": gold_ids,
                "gold_rouge_l": row["gold.rouge_l"],
                "spans": [{"rank": r, "section": sp.passage.passage_id, "text": sp.text, "score": round(sp.score, 4),
                           "logit": round(sp.logit, 4), "rouge_l": max_over_gold(rouge_l, sp.text, golds),
                           "f1": max_over_gold(token_f1, sp.text, golds)} for r, sp in sorted(per_rank.items())],
            }) + "\n")
        if n % 50 == 0:
            print(f"{n}/{len(questions)} questions, {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    if dump is not None:
        dump.close()
    keys = sorted(k for k in rows[0] if k not in {"qid", "explicit"})
    summary: dict = {}
    for name, subset in (("all", rows), ("explicit", [r for r in rows if r["explicit"]]),
                         ("implicit", [r for r in rows if not r["explicit"]])):
        if subset:
            summary[name] = {k: round(100 * sum(r[k] for r in subset) / len(subset), 2) for k in keys}
            summary[name]["n"] = len(subset)
    summary["config"] = {"reader": str(args.evaluate), "retriever": args.retriever, "fusion": retriever.fusion,
                         "embedding_model": settings.embedding_model, "reranker": settings.reranker,
                         "questions": str(args.questions),
                         "abstain_threshold": args.abstain_threshold, "limit": args.limit,
                         "command": "python -m retrieval.train_reader " + " ".join(sys.argv[1:])}
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary


# --------------------------------------------------------------------------------------------------------
# 2. Calibrating the abstain threshold: answerable questions against the same questions with the answer cut
# --------------------------------------------------------------------------------------------------------

def without_answer(passage, answers: list[str]):
    """``passage`` with every sentence that states an answer removed, or None when none does."""
    import dataclasses

    cut = answer_sentences(passage.text, answers)
    if not cut:
        return None
    parts, last = [], 0
    for s, e in cut:
        parts.append(passage.text[last:s])
        last = e
    parts.append(passage.text[last:])
    return dataclasses.replace(passage, text=re.sub(r"[ \t]{2,}", " ", "".join(parts)).strip())


def choose_threshold(answerable: list[float], unanswerable: list[float]) -> dict:
    """The margin threshold that best separates the two lists: the one maximising the mean of the share of
    answerable questions answered and the share of unanswerable ones abstained on (balanced accuracy),
    ties broken towards 0. Both lists hold each question's best span margin (-inf: no span at all)."""
    finite = sorted({m for m in answerable + unanswerable if math.isfinite(m)})
    # Midpoints between neighbouring margins: the threshold sits as far from both sides as the data allows.
    candidates = sorted({0.0, *(round((a + b) / 2, 3) for a, b in zip(finite, finite[1:])),
                         *((round(finite[0] - 1, 3), round(finite[-1] + 1, 3)) if finite else ())})
    best = None
    for t in candidates:
        answered = sum(m >= t for m in answerable) / max(1, len(answerable))
        abstained = sum(m < t for m in unanswerable) / max(1, len(unanswerable))
        key = (answered + abstained, -abs(t))
        if best is None or key > best[0]:
            best = (key, t, answered, abstained)
    _, t, answered, abstained = best
    return {"threshold": t, "answered": answered, "abstained": abstained}


def calibrate(args: argparse.Namespace) -> dict:
    """Choose the reader's abstain threshold on FairytaleQA questions (explicit ones: their answers are in
    the text) and store it in the reader's folder.

    Answerable: the question against the top ``--calibrate-passages`` sections retrieved from its story, as
    the bot reads them, when one of them states the answer. Unanswerable: the same question and sections
    with every sentence that states the answer cut out - the hard case of a book that talks about the thing
    asked but never says it ("How old is the captain?"). Each side keeps the best span margin (after the answer-type check); the threshold that
    best separates them is written as ``abstain_threshold`` into ``DIR/vignette_reader.json``, where
    :class:`~retrieval.reader.ExtractiveReader` reads it unless VIGNETTE_ABSTAIN_THRESHOLD overrides it.
    Calibrate on val, never on the data a number is reported on."""
    import torch

    from eval.fairytaleqa import load_questions, load_stories, parse_retrievers
    from eval.metrics import max_over_gold, rouge_l
    from retrieval.hybrid import HybridRetriever, MemorySource
    from retrieval.reader import ExtractiveReader
    from vignette.settings import Settings

    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(args.calibrate)
    if not (folder / "config.json").is_file():
        raise VignetteError(f"--calibrate: {folder} holds no reader (no config.json).")
    questions = [q for q in load_questions(args.questions, None) if q.get("explicit") and q.get("answers")]
    questions = questions[: args.limit] if args.limit else questions
    stories = load_stories(args.stories, {q["story_id"] for q in questions})
    settings = Settings.from_env()
    k = int(args.calibrate_passages or settings.reader_passages)
    retriever = HybridRetriever(None, settings, retrievers=parse_retrievers(args.retriever))
    fingerprint = retriever.model_fingerprint()
    cache_root = Path(args.cache_dir) / fingerprint if args.cache_dir else None
    sources = {sid: MemorySource(ps, retriever.encode, key=sid, cache_dir=cache_root / sid if cache_root else None,
                                 fingerprint=fingerprint, tokenizer=retriever.tokenizer) for sid, ps in stories.items()}
    reader = ExtractiveReader(folder, settings, rank_penalty=args.rank_penalty, abstain_threshold=0.0)

    def best(question: str, cands) -> tuple[float, str]:
        spans = reader.read_spans(question, cands, top_n=250)
        if not spans:
            return -math.inf, ""
        return max(s.score for s in spans), spans[0].text  # margin decides; the best combined span answers

    from vignette.documents import Candidate

    pos, neg, pos_rouge = [], [], []
    not_found = 0
    t0 = time.time()
    for n, q in enumerate(questions, start=1):
        cands = retriever.retrieve_from(sources[q["story_id"]], q["question"], top_k=k)
        cut = [(c, without_answer(c.passage, q["answers"])) for c in cands]
        if all(p is None for _, p in cut):
            not_found += 1  # the answer is not in what was retrieved: abstaining there is right, not a miss
            continue
        margin, text = best(q["question"], cands)
        pos.append(margin)
        pos_rouge.append(max_over_gold(rouge_l, text, q["answers"]))
        neg.append(best(q["question"], [Candidate(p if p is not None else c.passage, c.score) for c, p in cut])[0])
        if n % 50 == 0:
            print(f"{n}/{len(questions)} questions, {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    chosen = choose_threshold(pos, neg)
    t = chosen["threshold"]
    answered_rouge = [r for m, r in zip(pos, pos_rouge) if m >= t]
    report = {
        "abstain_threshold": t,
        "answerable_answered": round(100 * chosen["answered"], 1),
        "unanswerable_abstained": round(100 * chosen["abstained"], 1),
        "at_zero": {"answerable_answered": round(100 * sum(m >= 0 for m in pos) / max(1, len(pos)), 1),
                    "unanswerable_abstained": round(100 * sum(m < 0 for m in neg) / max(1, len(neg)), 1)},
        "rouge_l_answered": round(100 * sum(answered_rouge) / max(1, len(answered_rouge)), 1),
        "answerable": len(pos),
        "unanswerable": len(neg),
        "answer_not_retrieved": not_found,
        "passages": k,
        "retriever": args.retriever,
        "questions": str(args.questions),
        "command": "python -m retrieval.train_reader " + " ".join(sys.argv[1:]),
    }
    if not args.no_write:
        cfg_path = folder / READER_CONFIG
        config = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        config["abstain_threshold"] = t
        config["calibration"] = {key: v for key, v in report.items() if key != "abstain_threshold"}
        tmp = cfg_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        os.replace(tmp, cfg_path)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


# --------------------------------------------------------------------------------------------------------
# 3. Command line
# --------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m eval.reader",
        description="Evaluate a trained extractive reader on FairytaleQA, or choose and store its abstain "
        "threshold (--calibrate).",
    )
    p.add_argument("--evaluate", metavar="DIR", help="a trained reader to evaluate: given the gold section, and end "
                   "to end over the top retrieved sections (margin vs raw span scores)")
    p.add_argument("--stories", type=Path, help="FairytaleQA stories.jsonl")
    p.add_argument("--questions", type=Path, help="FairytaleQA questions, e.g. val.jsonl")
    p.add_argument("--retriever", default="hybrid", help="hybrid, or retriever names joined by '+' (as eval.fairytaleqa)")
    p.add_argument("--passages", default="1,3,5", help="numbers of top sections to read, e.g. 1,3,5")
    p.add_argument("--explicit-only", action="store_true", help="only the explicit questions")
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument("--abstain-threshold", type=float, default=0.0, help="margin under which the reader abstains")
    p.add_argument("--rank-penalty", type=float, default=1.0, help="margin points a span loses per retrieval rank")
    p.add_argument("--cache-dir", default="var/cache/fairytaleqa", help="section/window embedding cache (shared with eval.fairytaleqa)")
    p.add_argument("--report", type=Path, help="write the summary JSON here")
    p.add_argument("--calibrate", metavar="DIR", help="choose DIR's abstain threshold on --questions (explicit ones, "
                   "against the same sections with the answer cut out) and store it in DIR/vignette_reader.json")
    p.add_argument("--calibrate-passages", type=int, default=0,
                   help="sections read per question when calibrating (0: settings.reader_passages)")
    p.add_argument("--no-write", action="store_true", help="with --calibrate: report only, leave DIR unchanged")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--dump", type=Path, help="write each question's best span per retrieved section (JSONL) here")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.evaluate or args.calibrate):
        parser.error("give --evaluate DIR or --calibrate DIR")
    if not (args.stories and args.questions):
        parser.error("--evaluate and --calibrate need --stories and --questions")
    try:
        calibrate(args) if args.calibrate else evaluate(args)
    except VignetteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
