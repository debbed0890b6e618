"""A poly-encoder re-ranker (Humeau, Shuster, Lachaux and Weston, 2019, "Poly-encoders: Transformer
Architectures and Pre-training Strategies for Fast and Accurate Multi-sentence Scoring").

Two BERT-style encoders, both initialised from MiniLM (or from a bi-encoder fine-tuned from it):

- the **candidate encoder** turns a passage into one vector (mean of its token outputs, as the
  sentence-transformers bi-encoder does), so a book's candidate vectors are computed once and cached;
- the **context encoder** turns the question into token outputs ``H`` (T x d); ``m`` learned codes attend
  over them and give ``m`` code vectors (m x d), which see the question through ``m`` different lenses;
- each candidate vector attends over the ``m`` code vectors (its own weighted view of the question), and
  the score is the dot product of that view with the candidate vector.

A query therefore costs one question encoding plus an (N x m) attention over the top N candidates.

Both the attended question vector and the candidate vector are L2-normalised and the dot product is
multiplied by ``scale`` (the bi-encoder's cosine x 20 of Henderson et al. 2017 / sentence-transformers'
MultipleNegativesRankingLoss). The codes start near zero, so each code's attention over the question tokens
starts uniform, which is exactly the bi-encoder's mean pooling: an untrained poly-encoder initialised
from a fine-tuned bi-encoder scores like that bi-encoder, and training can only move it from there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from vignette.errors import VignetteError

CONFIG_NAME = "poly_encoder.json"
WEIGHTS_NAME = "poly_encoder.pt"


@dataclass
class PolyEncoderConfig:
    codes: int = 16  # m: learned codes attending over the question (the paper tries 16 to 360)
    max_question_tokens: int = 64  # questions are short; longer ones are cut
    max_candidate_tokens: int = 192  # a passage of ~200 word pieces fits; longer ones are judged by their start
    scale: float = 20.0  # cosine x scale, the bi-encoder's temperature, so fine-tuned init transfers
    base_model: str = ""  # where both encoders were initialised from (for the record)
    hidden_size: int = 384  # d, read from the base model


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class PolyEncoder(nn.Module):
    """Question (context) encoder + m codes + passage (candidate) encoder; ``score`` is a dot product."""

    def __init__(self, config: PolyEncoderConfig, context_encoder: nn.Module, candidate_encoder: nn.Module,
                 tokenizer):
        super().__init__()
        self.config = config
        self.context_encoder = context_encoder
        self.candidate_encoder = candidate_encoder
        self.tokenizer = tokenizer
        # Near-zero codes: uniform attention over question tokens at first (= mean pooling), yet the
        # symmetry between codes is broken so they can specialise.
        self.codes = nn.Parameter(torch.randn(config.codes, config.hidden_size) * 1e-3)

    # ----------------------------------------------------------------------------------------- building
    @classmethod
    def from_base(cls, base: str | Path, codes: int = 16, **config_fields) -> "PolyEncoder":
        """Both encoders from one BERT-style checkpoint (MiniLM, or a bi-encoder fine-tuned from it)."""
        from transformers import AutoModel, AutoTokenizer

        path = _resolve(base)
        tokenizer = AutoTokenizer.from_pretrained(path)
        context = AutoModel.from_pretrained(path)
        candidate = AutoModel.from_pretrained(path)
        config = PolyEncoderConfig(codes=codes, base_model=str(base), hidden_size=context.config.hidden_size,
                                   **config_fields)
        return cls(config, context, candidate, tokenizer)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Config json, weights (both encoders + codes) and the tokenizer, in one folder."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        self.context_encoder.config.to_json_file(directory / "encoder_config.json")
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, directory / WEIGHTS_NAME)
        self.tokenizer.save_pretrained(directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "PolyEncoder":
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        directory = Path(directory)
        if not (directory / CONFIG_NAME).is_file():
            raise VignetteError(
                f"No poly-encoder found in {directory} (it has no {CONFIG_NAME}).",
                hint="Train one with `python -m retrieval.train_poly --pairs FILE --out DIR`, "
                "or unset the reranker setting.",
            )
        config = PolyEncoderConfig(**json.loads((directory / CONFIG_NAME).read_text()))
        encoder_config = AutoConfig.from_pretrained(directory / "encoder_config.json")
        model = cls(config, AutoModel.from_config(encoder_config), AutoModel.from_config(encoder_config),
                    AutoTokenizer.from_pretrained(directory))
        state = torch.load(directory / WEIGHTS_NAME, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.eval()
        return model

    def fingerprint(self, candidate_side_only: bool = False) -> str:
        """A short hash of the weights. Cached candidate vectors depend on the candidate encoder alone
        (``candidate_side_only``), so two models sharing it (m=16 and m=64 over a frozen one) share them."""
        if candidate_side_only:
            h = hashlib.sha1(f"candidates|{self.config.max_candidate_tokens}|{self.config.hidden_size}".encode())
            state = {f"candidate_encoder.{k}": v for k, v in self.candidate_encoder.state_dict().items()}
        else:
            h = hashlib.sha1(json.dumps(asdict(self.config), sort_keys=True).encode())
            state = self.state_dict()
        for name, tensor in sorted(state.items()):
            h.update(name.encode())
            t = tensor.detach().float().flatten()
            # The sum and a strided sample change with any training step; hashing every byte of 45M
            # floats on each load would cost more than it protects.
            h.update(np.float64(t.sum().item()).tobytes())
            h.update(t[:: max(1, t.numel() // 64)].numpy().tobytes())
        return h.hexdigest()[:16]

    # ----------------------------------------------------------------------------------------- forward
    def tokenize(self, texts: Sequence[str], max_tokens: int) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_tokens,
                              return_tensors="pt")

    def embed_candidates(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(N, T) tokens -> (N, d) unit candidate vectors."""
        out = self.candidate_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return nn.functional.normalize(_mean_pool(out, attention_mask).float(), dim=-1)

    def embed_context(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(Q, T) question tokens -> (Q, m, d): each code attends over the question's token outputs."""
        hidden = self.context_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden.float()
        logits = torch.einsum("md,qtd->qmt", self.codes.float(), hidden)
        logits = logits.masked_fill(attention_mask[:, None, :] == 0, torch.finfo(logits.dtype).min)
        return torch.einsum("qmt,qtd->qmd", logits.softmax(-1), hidden)

    def score_vectors(self, context: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """context (Q, m, d), candidates (N, d) shared by all questions or (Q, N, d) -> scores (Q, N).

        Each candidate attends over the m code vectors (its view of the question); the score is the
        scaled dot product of that view with the candidate.
        """
        candidates = candidates.float()
        if candidates.dim() == 2:
            attn = torch.einsum("nd,qmd->qnm", candidates, context).softmax(-1)
        else:
            attn = torch.einsum("qnd,qmd->qnm", candidates, context).softmax(-1)
        view = nn.functional.normalize(torch.einsum("qnm,qmd->qnd", attn, context), dim=-1)
        if candidates.dim() == 2:
            return self.config.scale * torch.einsum("qnd,nd->qn", view, candidates)
        return self.config.scale * torch.einsum("qnd,qnd->qn", view, candidates)

    def forward(self, questions: Sequence[str], candidates: Sequence[str]) -> torch.Tensor:
        """Scores (Q, N) of every question against every candidate text (training: in-batch negatives)."""
        q = self.tokenize(questions, self.config.max_question_tokens)
        c = self.tokenize(candidates, self.config.max_candidate_tokens)
        return self.score_vectors(self.embed_context(q["input_ids"], q["attention_mask"]),
                                  self.embed_candidates(c["input_ids"], c["attention_mask"]))

    # ----------------------------------------------------------------------------------------- inference
    @torch.inference_mode()
    def encode_candidates(self, texts: Sequence[str], batch_size: int = 32, progress=None) -> torch.Tensor:
        """(N, d) candidate vectors, computed once per book and cached beside it."""
        self.eval()
        vectors = []
        texts = list(texts)
        for i in range(0, len(texts), batch_size):
            c = self.tokenize(texts[i:i + batch_size], self.config.max_candidate_tokens)
            vectors.append(self.embed_candidates(c["input_ids"], c["attention_mask"]))
            if progress is not None:
                progress(min(i + batch_size, len(texts)), len(texts))
        if not vectors:
            return torch.zeros(0, self.config.hidden_size)
        return torch.cat(vectors)

    @torch.inference_mode()
    def encode_question(self, question: str) -> torch.Tensor:
        self.eval()
        q = self.tokenize([question], self.config.max_question_tokens)
        return self.embed_context(q["input_ids"], q["attention_mask"])[0]

    @torch.inference_mode()
    def score(self, question: str, cand_vecs: torch.Tensor) -> torch.Tensor:
        """(N,) scores of one question against N cached candidate vectors: one question encoding plus an
        (N x m) attention."""
        if len(cand_vecs) == 0:
            return torch.zeros(0)
        context = self.encode_question(question)
        return self.score_vectors(context[None], torch.as_tensor(cand_vecs))[0]


def _resolve(name_or_path: str | Path) -> str:
    """A local path as is; a known short name through the store's resolver (packaged MiniLM offline)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return str(path)
    try:
        from retrieval.embedding import resolve_model

        return resolve_model(str(name_or_path))
    except ImportError:  # pragma: no cover - the store module is part of the package
        return str(name_or_path)


class PolyEncoderReranker:
    """Re-ranks a retriever's candidates with a trained :class:`PolyEncoder`.

    Cheap to construct; the model loads on first use. Candidate vectors are cached per book in
    ``cache_dir`` (the book's folder) as ``poly-<candidate encoder hash>.npy`` with a hash of the passage
    ids beside them, so another candidate encoder or a re-ingested book never reuses stale vectors.
    """

    name = "poly"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._model: PolyEncoder | None = None
        self._fingerprint: str | None = None
        self._memory: dict[tuple, dict[str, int] | torch.Tensor] = {}
        self._contexts: dict[str, torch.Tensor] = {}  # questions encoded ahead in batches (evaluation)

    def warm_up(self) -> PolyEncoder:
        if self._model is None:
            torch.manual_seed(0)
            self._model = PolyEncoder.from_pretrained(self.path)
            self._fingerprint = self._model.fingerprint(candidate_side_only=True)
        return self._model

    @property
    def model(self) -> PolyEncoder:
        return self.warm_up()

    def candidate_vectors(self, ids: Sequence[str], texts: Sequence[str],
                          cache_dir: str | Path | None = None) -> tuple[dict[str, int], torch.Tensor]:
        """Vectors of all of a book's passages, from the cache where it matches ``ids`` and the model."""
        model = self.warm_up()
        ids = list(ids)
        ids_hash = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:16]
        key = (str(cache_dir), ids_hash)
        if key in self._memory:
            return self._memory[key]
        vectors = None
        if cache_dir is not None:
            cache_dir = Path(cache_dir)
            npy = cache_dir / f"poly-{self._fingerprint}.npy"
            meta = cache_dir / f"poly-{self._fingerprint}.json"
            if npy.is_file() and meta.is_file():
                try:
                    if json.loads(meta.read_text()).get("ids_hash") == ids_hash:
                        vectors = torch.from_numpy(np.load(npy))
                except (OSError, ValueError):
                    vectors = None
        if vectors is None:
            vectors = model.encode_candidates(texts)
            if cache_dir is not None:
                cache_dir.mkdir(parents=True, exist_ok=True)
                np.save(npy, vectors.numpy())
                meta.write_text(json.dumps({"ids_hash": ids_hash, "model": str(self.path)}))
        result = ({pid: i for i, pid in enumerate(ids)}, vectors)
        self._memory[key] = result
        return result

    @torch.inference_mode()
    def prepare_questions(self, questions: Sequence[str], batch_size: int = 64) -> None:
        """Encode many questions in batches ahead of ``rerank_scores`` (an evaluation's speed-up)."""
        model = self.warm_up()
        model.eval()
        questions = [q for q in dict.fromkeys(questions) if q not in self._contexts]
        for i in range(0, len(questions), batch_size):
            chunk = questions[i:i + batch_size]
            q = model.tokenize(chunk, model.config.max_question_tokens)
            for text, context in zip(chunk, model.embed_context(q["input_ids"], q["attention_mask"])):
                self._contexts[text] = context

    def rerank_scores(self, question: str, candidate_ids: Iterable[str], index: dict[str, int],
                      vectors: torch.Tensor) -> dict[str, float]:
        """Poly-encoder score of each candidate id (their vectors looked up in the book's cache)."""
        candidate_ids = list(candidate_ids)
        if not candidate_ids:
            return {}
        rows = torch.as_tensor([index[c] for c in candidate_ids])
        context = self._contexts.get(question)
        if context is not None:
            with torch.inference_mode():
                scores = self.model.score_vectors(context[None], vectors[rows])[0]
        else:
            scores = self.model.score(question, vectors[rows])
        return {c: float(s) for c, s in zip(candidate_ids, scores.tolist())}
