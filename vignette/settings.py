"""All configuration in one place.

Every field has a default and a one-line reason. Each can be overridden by an environment variable
``VIGNETTE_<FIELD NAME IN CAPITALS>`` (e.g. ``VIGNETTE_DATA_DIR``) and, where the CLI offers it, a flag.
Precedence: CLI flag > environment variable > default.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from vignette.errors import VignetteError

ENV_PREFIX = "VIGNETTE_"
MIB = 1024 * 1024  # what "MB" means in every size Vignette reports or limits


@dataclass
class Settings:
    # --- storage -------------------------------------------------------------------------------------
    data_dir: Path = Path("var")  # Chroma store, BM25 indexes, conversation memory, images; one folder to back up
    chroma_host: str | None = None  # set to use a Chroma server (`chroma run`) instead of the embedded store
    chroma_port: int = 8000  # the Chroma server's port, when chroma_host is set
    max_file_mb: float = 50.0  # refuse larger book files, in MiB (1,048,576 bytes; decimals allowed): a long novel is ~1-2 MiB of text

    # --- passages ------------------------------------------------------------------------------------
    embedding_model: str = "all-MiniLM-L6-v2"  # bi-encoder: a sentence-transformers name or path; the default ships offline
    passage_tokens: int = 200  # word pieces per passage; under MiniLM's 256 window so nothing is truncated
    passage_overlap_sentences: int = 1  # sentences repeated between neighbouring passages, so no fact is cut in two
    encode_batch_size: int = 32  # batch 64 measured no faster on 2 CPU cores
    passage_vectors: str = "sentence-mean"  # Chroma's whole-passage vectors: the length-weighted mean of the passage's sentence vectors (no second encoder pass; same FairytaleQA val scores, see README), or "encode" each passage
    ingest_batch_size: int = 256  # texts encoded (and passages added to Chroma) per step; a killed ingest resumes after its last finished step

    # --- retrieval -----------------------------------------------------------------------------------
    top_k: int = 5  # passages handed to the reader
    candidates: int = 50  # passages each retriever proposes before fusion and re-ranking
    fusion: str = "score"  # "score": weighted sum of each retriever's z-scored scores (FairytaleQA val R@1 71.1 vs 65.8 by RRF); "rrf": reciprocal-rank fusion
    rrf_k: int = 60  # reciprocal-rank-fusion constant (Cormack et al. 2009), when fusion is "rrf"
    reranker: str | None = None  # path to a trained poly-encoder (python -m retrieval.train_poly); None: no re-ranking
    cross_encoder: str | None = None  # path to a trained cross-encoder (python -m retrieval.train_cross) re-scoring the fused top cross_depth; None: off
    cross_depth: int = 20  # passages the cross-encoder reads per question (one transformer pass each)
    cross_weight: float = 0.5  # weight of its z-scored score against the z-scored fused retrieval score (depth and weight chosen on FairytaleQA val with the reader re-ranking after it)

    # --- reading -------------------------------------------------------------------------------------
    reader: str | None = "shipped"  # extractive QA model: "shipped" (models/reader, trained here, loads offline), a folder or a hub id; "sentence" or none: the best-sentence fallback
    max_answer_tokens: int = 30  # longest span the reader may return
    abstain_threshold: float | None = None  # answer only when the best span beats no-answer by this margin; None: the reader folder's calibrated value (else 0)
    grounding_threshold: float | None = 0.7  # abstain when a factoid question names something the book (up to the spoiler limit) never mentions nor anything this close (word cosine); None: off
    max_question_chars: int = 1000  # longer questions are refused with a clear message
    sentence_min_similarity: float = 0.35  # sentence fallback abstains below this cosine similarity (MiniLM)
    sentence_rank_penalty: float = 0.0  # sentence fallback: score a sentence loses per retrieval rank of its passage
    reader_int8: bool = False  # dynamic int8 quantisation of the QA reader: read stage 2.1x faster on CPU, but -4.6 ROUGE-L (FairytaleQA val) and shifted margins
    reader_passages: int = 3  # of the top_k passages, how many the QA reader reads (each ~35-70 ms of one CPU core)
    reader_rank_penalty: float = 1.0  # margin points a span loses per retrieval rank: weighs the retriever's order in (FairytaleQA val)
    reader_early_exit: float | None = 1.0  # answer from the top passage alone when its margin reaches this (None: read all)
    reader_rerank_depth: int = 0  # >0: the QA reader reads this many passages and its confidence re-ranks them (FairytaleQA val R@5 92.8 -> see README); costs that many reads; 0: off
    reader_rerank_weight: float = 0.3  # weight of the reader's z-scored margin against the z-scored fused retrieval score
    query_threads: int = 1  # torch threads while answering; 1 measured 3-5x less CPU per question than 2 on a busy 2-core machine

    # --- conversation --------------------------------------------------------------------------------
    chat_model: str | None = None  # e.g. "ollama:llama3.1" or a local transformers path; None: offline resolver

    # --- illustration --------------------------------------------------------------------------------
    image_models: str = "default"  # profile: "default", "tiny-random", or a diffusers id/path
    image_preset: str = "fast"  # "fast" (CPU-friendly) or "quality" (more steps, CLIP guidance)
    device: str = "auto"  # "auto" picks CUDA, then MPS, then CPU
    dtype: str = "auto"  # "auto": fp16 on CUDA/MPS, fp32 on CPU
    clip_model: str = "ViT-B-32:laion2b_s34b_b79k"  # open_clip MODEL:TAG or MODEL:/path/to/weights for CLIP guidance; "none" turns it off

    # --- network -------------------------------------------------------------------------------------
    allow_downloads: bool = False  # offline by default; set true to let models download from the Hub

    @property
    def max_file_bytes(self) -> int:
        """The book-file limit in bytes: ``max_file_mb`` MiB, the one definition every check uses."""
        return int(self.max_file_mb * MIB)

    @property
    def books_dir(self) -> Path:
        return Path(self.data_dir) / "books"

    @property
    def chroma_dir(self) -> Path:
        return Path(self.data_dir) / "chroma"

    @property
    def images_dir(self) -> Path:
        return Path(self.data_dir) / "images"

    @property
    def memory_path(self) -> Path:
        return Path(self.data_dir) / "conversations.sqlite"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then ``VIGNETTE_*`` variables, then ``overrides`` (e.g. CLI flags; None is ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key in env:
                values[f.name] = _coerce(f.name, env[key], hints[f.name])
        for name, value in overrides.items():
            if value is None:
                continue
            if name not in {f.name for f in fields(cls)}:
                raise TypeError(f"unknown setting {name!r}")
            values[name] = _coerce(name, value, hints[name]) if isinstance(value, str) else value
        settings = cls(**values)
        if not 0 < settings.max_file_mb < float("inf"):
            raise VignetteError(f"The setting {ENV_PREFIX}MAX_FILE_MB={settings.max_file_mb!r} must be above 0 "
                                "(a size in MiB, e.g. 50 or 1.5).")
        settings.data_dir = Path(settings.data_dir).expanduser()
        return settings

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    def describe(self) -> list[tuple[str, Any, str]]:
        """(name, value, reason) for each setting, for --help and the README."""
        return [(f.name, getattr(self, f.name), _REASONS.get(f.name, "")) for f in fields(self)]


def _coerce(name: str, raw: str, hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    text = raw.strip()
    if args and text.lower() in {"", "none", "null"}:
        return None
    try:
        if base is bool:
            if text.lower() in {"1", "true", "yes", "on"}:
                return True
            if text.lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(text)
        if base is int:
            return int(text)
        if base is float:
            return float(text)
        if base is Path:
            return Path(text)
        return text
    except ValueError:
        raise VignetteError(
            f"The setting {ENV_PREFIX}{name.upper()}={raw!r} is not a valid {getattr(base, '__name__', base)}."
        ) from None


def _read_reasons() -> dict[str, str]:
    """The trailing comment of each field is its documented reason."""
    import inspect

    reasons: dict[str, str] = {}
    for line in inspect.getsource(Settings).splitlines():
        line = line.strip()
        if ":" in line and "#" in line and not line.startswith("#"):
            name = line.split(":", 1)[0].strip()
            reasons[name] = line.split("#", 1)[1].strip()
    return reasons


_REASONS: dict[str, str] = {}
try:
    _REASONS = _read_reasons()
except (OSError, TypeError):  # source unavailable (frozen app): reasons are documentation only
    pass

