"""`python -m retrieval.bi_encoder_train` - fine-tune the bi-encoder (MiniLM) for question -> passage search.

Dense passage retrieval (Karpukhin et al. 2020, DPR) with one shared encoder (Sentence-BERT, Reimers &
Gurevych 2019): cosine x 20 between the question and each passage, cross-entropy over the batch's
passages (in-batch negatives, Henderson et al. 2017's MultipleNegativesRankingLoss) plus BM25 hard
negatives. Batches come from two stories at a time, so the negatives are the passages a reader would
confuse. Data, loop, checkpoints and resume are those of :mod:`retrieval.train_poly`.

The result is a sentence-transformers folder: point ``VIGNETTE_EMBEDDING_MODEL`` at it (and re-ingest the
books, since their stored vectors belong to the old model), and initialise the poly-encoder from it::

    python -m retrieval.bi_encoder_train --pairs ../shared/data/fairytaleqa/train.jsonl --out runs/bi-encoder
"""

from __future__ import annotations

import argparse
import sys

from vignette import offline

offline.prepare()

from retrieval.train_poly import add_common_arguments, start_training, train_loop  # noqa: E402
from vignette.errors import VignetteError  # noqa: E402

SCALE = 20.0  # cosine x 20: sentence-transformers' MultipleNegativesRankingLoss default


def embed(model, texts: list[str]):
    import torch

    features = model.tokenize(texts)
    return torch.nn.functional.normalize(model(features)["sentence_embedding"].float(), dim=-1)


def score_batch(model, questions: list[str], candidates: list[str]):
    return SCALE * embed(model, questions) @ embed(model, candidates).T


def save_model(model, directory) -> None:
    """Saved to read MiniLM's full 256 word pieces: trained on shorter passages for speed, the position
    embeddings beyond still hold what pre-training taught them."""
    trained_length = model.max_seq_length
    model.max_seq_length = max(trained_length, 256)
    model.save(str(directory))
    model.max_seq_length = trained_length


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retrieval.bi_encoder_train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--init", default="all-MiniLM-L6-v2", help="sentence-transformers model to start from (name or path)")
    parser.add_argument("--max-seq-length", type=int, default=192, help="word pieces per passage (MiniLM reads 256 at most)")
    args = parser.parse_args(argv)
    try:
        from sentence_transformers import SentenceTransformer

        from retrieval.embedding import resolve_model

        data = start_training(args)
        model = SentenceTransformer(resolve_model(args.init), device="cpu")
        model.max_seq_length = args.max_seq_length
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": args.lr}]
        train_loop(model, lambda m, q, ids: score_batch(m, q, [data.passages[i] for i in ids]), save_model,
                   data, args, groups)
    except VignetteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
