"""Train the cross-encoder re-ranker (retrieval/cross_encoder.py).

    python -m retrieval.train_cross --pairs ../shared/data/fairytaleqa/train.jsonl --out runs/cross \\
        --init runs/reader-minilm --epochs 0.35

The data, the schedule, the checkpoints and ``--resume`` are the poly-encoder's (``retrieval.train_poly``):
(question, passage) pairs in SQuAD json or FairytaleQA jsonl, or ``--self-supervised BOOK_ID`` (inverse
cloze over a stored book). A batch holds ``--batch-size`` questions of ``--groups-per-batch`` stories;
every question is scored against every passage of the batch (the gold passages, then BM25 hard negatives
from the same stories, up to ``--max-candidates``), so a step reads batch-size x max-candidates pairs.

``--init`` may be MiniLM, a bi-encoder, or an extractive reader trained here (its encoder has already
learnt to read a question against a passage); the one-logit head always starts new.
"""

from __future__ import annotations

import argparse
import sys

from retrieval.train_poly import add_common_arguments, start_training, train_loop
from vignette.errors import VignetteError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retrieval.train_cross", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--init", default="all-MiniLM-L6-v2",
                        help="initialise from this BERT-style model (name or path): MiniLM, a bi-encoder, a reader")
    parser.add_argument("--max-tokens", type=int, default=256, help="question + passage word pieces per pair")
    parser.set_defaults(batch_size=8, groups_per_batch=1, max_candidates=6, hard_negatives=3, lr=3e-5)
    args = parser.parse_args(argv)
    try:
        from retrieval.cross_encoder import CrossEncoder

        data = start_training(args)
        model = CrossEncoder.from_base(args.init, max_tokens=args.max_tokens)

        def score_batch(m, questions, cand_ids):
            return m(questions, [data.passages[c] for c in cand_ids])

        params = [p for p in model.parameters() if p.requires_grad]
        train_loop(model, score_batch, lambda m, d: m.save_pretrained(d), data, args, [{"params": params, "lr": args.lr}])
    except VignetteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
