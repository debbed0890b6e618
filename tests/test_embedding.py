"""retrieval.embedding: model resolution, the cached encoder, and the Chroma embedding function."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.embedding import (
    VignetteEmbeddingFunction,
    encode,
    load_encoder,
    resolve_model,
)
from vignette.errors import VignetteError


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_default_names_resolve_to_the_packaged_model(name, minilm_path):
    assert Path(resolve_model(name)) == minilm_path


def test_local_folder_is_passed_through(minilm_path):
    assert resolve_model(str(minilm_path)) == str(minilm_path)


def test_missing_local_folder_says_so(tmp_path):
    with pytest.raises(VignetteError, match="does not exist") as err:
        resolve_model(str(tmp_path / "no-such-model"))
    assert "VIGNETTE_EMBEDDING_MODEL" in str(err.value)


def test_unavailable_hub_model_offline_says_how_to_fix():
    with pytest.raises(VignetteError, match="not available offline") as err:
        resolve_model("someone/a-model-that-is-not-cached")
    assert "VIGNETTE_ALLOW_DOWNLOADS=1" in str(err.value)


def test_encoder_is_loaded_once():
    assert load_encoder("all-MiniLM-L6-v2") is load_encoder("all-MiniLM-L6-v2", device="cpu")


def test_embeddings_are_unit_length_and_semantic():
    vectors = encode(load_encoder(), [
        "The cat slept on the mat by the fire.",
        "A kitten dozed on the rug near the hearth.",
        "Share prices fell sharply on the stock exchange.",
    ])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_chroma_reopens_a_collection_with_the_registered_function(tmp_path, monkeypatch):
    import chromadb
    from chromadb.api.shared_system_client import SharedSystemClient
    from chromadb.config import Settings as ChromaSettings
    from chromadb.utils.embedding_functions import known_embedding_functions
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    def no_onnx(*args, **kwargs):
        raise AssertionError("Chroma fell back to its default ONNX model (a download)")

    monkeypatch.setattr(ONNXMiniLM_L6_V2, "__call__", no_onnx)
    assert known_embedding_functions[VignetteEmbeddingFunction.name()] is VignetteEmbeddingFunction
    ef = VignetteEmbeddingFunction("all-MiniLM-L6-v2")
    assert VignetteEmbeddingFunction.build_from_config(ef.get_config()).get_config() == ef.get_config()

    settings = ChromaSettings(anonymized_telemetry=False)
    client = chromadb.PersistentClient(path=str(tmp_path), settings=settings)
    texts = ["The lighthouse keeper lit the red lantern.", "The schooner struck the rocks in the storm."]
    collection = client.create_collection("vignette-test", embedding_function=ef,
                                          configuration={"hnsw": {"space": "cosine"}})
    collection.add(ids=["a", "b"], documents=texts, embeddings=encode(load_encoder(), texts))
    del client, collection
    SharedSystemClient.clear_system_cache()

    reopened = chromadb.PersistentClient(path=str(tmp_path), settings=settings).get_collection("vignette-test")
    stored = reopened.configuration["embedding_function"]
    assert isinstance(stored, VignetteEmbeddingFunction) and stored.model_name == "all-MiniLM-L6-v2"
    # Querying by text uses the rebuilt function (the MiniLM), not Chroma's default.
    hits = reopened.query(query_texts=["a ship wrecked on the rocks"], n_results=1)
    assert hits["ids"][0] == ["b"]
