"""A cross-encoder re-ranker: the question and a passage read together by one transformer, one relevance
logit per pair (monoBERT: Nogueira and Cho, 2019, "Passage Re-ranking with BERT").

The bi-encoder and the poly-encoder encode the passage without seeing the question, which is what makes
them cheap (a book's passage vectors are computed once). A cross-encoder attends across both, so it can
check that the passage says what the question asks, at the price of one transformer pass per (question,
passage) pair: it only re-scores the fused top ``depth`` (20 by default), and it is off unless configured
(``VIGNETTE_CROSS_ENCODER=DIR``).

Its scores and the fused retrieval scores are standardised over those ``depth`` passages and added, the
cross-encoder's with ``weight``: the fused score keeps what BM25 and the dense views know, and how far
ahead the best passage is. Depth 20 and weight 0.5 were chosen on FairytaleQA val with the QA reader
re-ranking the top 10 after it (see the README's results).

Training (``python -m retrieval.train_cross``) uses the poly-encoder's data and loop: a batch is a few
questions of one story, every question scored against every passage of the batch (the stories' gold
passages and their BM25 hard negatives), with a softmax over each question's row.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from vignette.documents import Candidate
from vignette.errors import VignetteError

CONFIG_NAME = "vignette_cross_encoder.json"


@dataclass
class CrossEncoderConfig:
    max_tokens: int = 256  # question + passage word pieces; a longer passage is judged by its start
    base_model: str = ""  # where it was initialised from (for the record)


def _resolve(base: str | Path) -> str:
    from retrieval.embedding import resolve_model

    return resolve_model(str(base))


class CrossEncoder(nn.Module):
    """A BERT-style encoder with a one-logit head over ``[CLS] question [SEP] passage [SEP]``."""

    def __init__(self, config: CrossEncoderConfig, model: nn.Module, tokenizer):
        super().__init__()
        self.config = config
        self.model = model
        self.tokenizer = tokenizer

    @classmethod
    def from_base(cls, base: str | Path, **config_fields) -> "CrossEncoder":
        """From a BERT-style checkpoint (MiniLM, or a bi-encoder fine-tuned from it); the head starts new."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = _resolve(base)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        return cls(CrossEncoderConfig(base_model=str(base), **config_fields), model, tokenizer)

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        (directory / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "CrossEncoder":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        directory = Path(directory)
        if not (directory / CONFIG_NAME).is_file():
            raise VignetteError(
                f"No cross-encoder found in {directory} (it has no {CONFIG_NAME}).",
                hint="Train one with `python -m retrieval.train_cross --pairs FILE --out DIR`, "
                "or unset VIGNETTE_CROSS_ENCODER.",
            )
        fields = json.loads((directory / CONFIG_NAME).read_text())
        config = CrossEncoderConfig(**{k: v for k, v in fields.items() if k in CrossEncoderConfig.__dataclass_fields__})
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForSequenceClassification.from_pretrained(directory)
        return cls(config, model.eval(), tokenizer)

    def _logits(self, questions: Sequence[str], passages: Sequence[str]) -> torch.Tensor:
        enc = self.tokenizer(list(questions), list(passages), truncation="only_second",
                             max_length=self.config.max_tokens, padding=True, return_tensors="pt")
        return self.model(**enc).logits.squeeze(-1)

    def forward(self, questions: Sequence[str], passages: Sequence[str]) -> torch.Tensor:
        """(Q, N) scores: every question against every passage (training)."""
        q = [question for question in questions for _ in passages]
        p = [passage for _ in questions for passage in passages]
        return self._logits(q, p).view(len(questions), len(passages))

    @torch.inference_mode()
    def score_pairs(self, questions: Sequence[str], passages: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """One score per (question, passage) pair, in order; pairs of similar length are batched together."""
        if len(questions) != len(passages):
            raise ValueError("score_pairs needs as many questions as passages")
        order = sorted(range(len(passages)), key=lambda i: len(passages[i]))
        out = np.zeros(len(passages), dtype=np.float32)
        self.model.eval()
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            out[idx] = self._logits([questions[i] for i in idx], [passages[i] for i in idx]).float().numpy()
        return out


def _z(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x)


class CrossEncoderReranker:
    """Re-scores a retriever's top ``depth`` candidates with a :class:`CrossEncoder` (see the module doc).

    Cheap to construct; the model loads on first use.
    """

    name = "cross"

    def __init__(self, path: str | Path, depth: int = 20, weight: float = 0.5):
        if depth < 2:
            raise VignetteError(f"The cross-encoder must re-rank 2 passages or more, not {depth}.")
        self.path = Path(path)
        self.depth = int(depth)
        self.weight = float(weight)
        self._model: CrossEncoder | None = None

    def warm_up(self) -> CrossEncoder:
        if self._model is None:
            self._model = CrossEncoder.from_pretrained(self.path)
        return self._model

    def rerank(self, question: str, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The candidates with the top ``depth`` re-ordered by fused + weight x cross-encoder z-scores;
        each of them carries its ``cross`` score (and the combined one as ``score``)."""
        head = list(candidates[: self.depth])
        if len(head) < 2:
            return list(candidates)
        cross = self.warm_up().score_pairs([question] * len(head), [c.passage.text for c in head])
        fused = np.array([c.score for c in head], dtype=np.float64)
        combined = _z(fused) + self.weight * _z(cross.astype(np.float64))
        order = np.argsort(-combined, kind="stable")
        rescored = [replace(head[i], score=float(combined[i]), scores={**head[i].scores, "cross": float(cross[i])})
                    for i in order]
        return rescored + list(candidates[self.depth :])
