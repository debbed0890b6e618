"""`python -m eval.squad --reader DIR` - the extractive reader on SQuAD-format data, as the product reads.

Each question is read against its paragraph in windows (the reader's own length and stride), and the best
span's margin over its window's no-answer score decides: at or above the abstain threshold it answers,
below it it says "no answer". Scores are the official SQuAD 2.0 ones (Rajpurkar et al. 2018): exact match
and token F1 against the gold answers after normalisation, an unanswerable question scoring 1 only when the
reader abstains. Reported for all questions, the answerable ones (``HasAns``) and the unanswerable ones
(``NoAns``: the share abstained on), at the reader's threshold and at 0, plus the best threshold.

The default data is the SQuAD 2.0 dev set's fixed measurement articles (``PATH@eval``: every 4th article,
9 of 35; :data:`retrieval.train_reader.HOLDOUT_EVERY`), which the shipped reader never trained on.

``--calibrate FILE`` chooses the abstain threshold on answerable SQuAD-format questions the reader did not
train on (FairytaleQA val by default): each question is read against its paragraph, and against the same
paragraph with every sentence that states the answer cut out (it talks about the thing but never says it).
The margin that best separates the two (balanced accuracy) is reported, and with ``--write`` stored in the
reader's folder.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from vignette import offline

offline.prepare()

from vignette.errors import VignetteError  # noqa: E402

SQUAD_DEV = "../shared/data/qa/squad2-dev/dev-v2.0.json@eval"
FAIRYTALEQA_VAL = "../shared/data/fairytaleqa/squad_format/val.json"


def best_margins(reader, questions: list[str], contexts: list[str], batch: int = 32) -> list[tuple[float, str]]:
    """For each (question, context): the best span's margin over no-answer and its text ((-inf, "") when the
    context has no span at all). ``reader`` is a warmed-up :class:`retrieval.reader.ExtractiveReader`."""
    import torch

    from retrieval.reader import decode_spans, make_windows

    model, tokenizer = reader.model, reader.tokenizer
    device = next(model.parameters()).device
    results: list[tuple[float, str]] = []
    for b in range(0, len(questions), batch):
        qs, cs = questions[b : b + batch], contexts[b : b + batch]
        windows = make_windows(tokenizer, qs, cs, reader.max_length, reader.stride)
        inputs = {k: v.to(device) for k, v in windows.inputs.items()}
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model(**inputs)
        start, end = out.start_logits.float().cpu(), out.end_logits.float().cpu()
        for i in range(len(qs)):
            rows = [w for w, s in enumerate(windows.sample) if s == i]
            spans = decode_spans(
                start[rows], end[rows], [windows.offsets[w] for w in rows], windows.context_mask[rows],
                max_answer_tokens=reader.max_answer_tokens, top_n=1,
            )
            results.append((spans[0].score, cs[i][spans[0].start_char : spans[0].end_char]) if spans else
                           (-math.inf, ""))
    return results


def load_reader(name: str, device: str = "auto"):
    import torch

    from retrieval.reader import ExtractiveReader

    reader = ExtractiveReader(name, None)
    reader.warm_up()
    target = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    reader.model.to(target)
    return reader


def squad_scores(reader, spec: str, threshold: float | None, limit: int | None = None) -> dict:
    """EM / F1 (all, HasAns) and NoAns accuracy of ``reader`` on a SQuAD-format file, at ``threshold``
    (None: the reader's own), at 0, and at the threshold that maximises F1 (for reference only)."""
    from eval.metrics import normalize_answer, token_f1
    from retrieval.train_reader import read_squad

    rows = []
    for article in read_squad(spec):
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                golds = [a["text"] for a in qa.get("answers") or [] if a.get("text")]
                rows.append((qa["question"], paragraph["context"], golds))
    rows = rows[:limit] if limit else rows
    t0 = time.time()
    read = best_margins(reader, [r[0] for r in rows], [r[1] for r in rows])
    seconds = time.time() - t0

    def at(t: float) -> dict:
        em, f1, has, no = [], [], [], []
        for (_, _, golds), (margin, text) in zip(rows, read):
            answer = text if margin >= t else ""
            if golds:
                e = max(float(normalize_answer(answer) == normalize_answer(g)) for g in golds)
                f = max(token_f1(answer, g) for g in golds) if answer else 0.0
                has.append((e, f))
            else:
                e = f = float(not answer)
                no.append(e)
            em.append(e)
            f1.append(f)
        pct = lambda xs: round(100 * sum(xs) / max(1, len(xs)), 2)  # noqa: E731
        return {"exact": pct(em), "f1": pct(f1), "HasAns_exact": pct([h[0] for h in has]),
                "HasAns_f1": pct([h[1] for h in has]), "NoAns_accuracy": pct(no), "threshold": round(t, 3)}

    own = reader.abstain_threshold if threshold is None else threshold
    finite = sorted({m for m, _ in read if math.isfinite(m)})
    sweep = [at(t) for t in finite[:: max(1, len(finite) // 200)] + [0.0, own]]
    best = max(sweep, key=lambda r: r["f1"])
    n_has = sum(bool(r[2]) for r in rows)
    return {"data": spec, "questions": len(rows), "answerable": n_has, "unanswerable": len(rows) - n_has,
            "at_threshold": at(own), "at_zero": at(0.0), "best_f1_threshold": best,
            "seconds": round(seconds, 1)}


def calibrate(reader, spec: str, limit: int | None = None) -> dict:
    """The abstain threshold that best separates answerable questions from the same questions with the
    answer cut out of their paragraph (see the module docstring)."""
    from eval.reader import choose_threshold
    from retrieval.train_reader import _cut_answer, read_squad

    pos_q, pos_c, neg_q, neg_c = [], [], [], []
    for article in read_squad(spec):
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = qa.get("answers") or []
                if not answers:
                    continue
                pos_q.append(qa["question"])
                pos_c.append(paragraph["context"])
                cut = _cut_answer(paragraph["context"], int(answers[0]["answer_start"]), answers[0]["text"])
                if cut is not None:
                    neg_q.append(qa["question"])
                    neg_c.append(cut)
    if limit:
        pos_q, pos_c, neg_q, neg_c = pos_q[:limit], pos_c[:limit], neg_q[:limit], neg_c[:limit]
    pos = [m for m, _ in best_margins(reader, pos_q, pos_c)]
    neg = [m for m, _ in best_margins(reader, neg_q, neg_c)]
    chosen = choose_threshold(pos, neg)
    return {"abstain_threshold": chosen["threshold"], "answerable_answered": round(100 * chosen["answered"], 1),
            "cut_abstained": round(100 * chosen["abstained"], 1), "answerable": len(pos), "cut": len(neg),
            "data": spec,
            "at_zero": {"answerable_answered": round(100 * sum(m >= 0 for m in pos) / max(1, len(pos)), 1),
                        "cut_abstained": round(100 * sum(m < 0 for m in neg) / max(1, len(neg)), 1)}}


def write_threshold(folder: Path, report: dict) -> None:
    from retrieval.reader import READER_CONFIG

    path = folder / READER_CONFIG
    config = json.loads(path.read_text()) if path.is_file() else {}
    config["abstain_threshold"] = report["abstain_threshold"]
    config["calibration"] = {k: v for k, v in report.items() if k != "abstain_threshold"}
    path.write_text(json.dumps(config, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.squad", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reader", default=None, help="reader folder or hub id (default: the shipped reader)")
    parser.add_argument("--data", default=SQUAD_DEV, help=f"SQuAD-format PATH[@eval] (default: {SQUAD_DEV})")
    parser.add_argument("--threshold", type=float, default=None, help="abstain threshold (default: the reader's)")
    parser.add_argument("--calibrate", nargs="?", const=FAIRYTALEQA_VAL, default=None, metavar="FILE",
                        help=f"choose the abstain threshold on FILE (default: {FAIRYTALEQA_VAL}) first")
    parser.add_argument("--write", action="store_true", help="with --calibrate: store it in the reader's folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--out", type=Path, help="write the report (JSON) here")
    args = parser.parse_args(argv)
    try:
        from vignette.settings import Settings

        name = args.reader or Settings.from_env().reader
        reader = load_reader(name, args.device)
        report: dict = {"reader": str(name)}
        if args.calibrate:
            report["calibration"] = calibrate(reader, args.calibrate, args.limit)
            reader.abstain_threshold = report["calibration"]["abstain_threshold"]
            if args.write:
                write_threshold(Path(name), report["calibration"])
        report["squad"] = squad_scores(reader, args.data, args.threshold, args.limit)
    except VignetteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
