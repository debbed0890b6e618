"""The unmentioned-word check: which question words count, inflections and near words, the spoiler
limit, and the pipeline abstaining with the reason on the real sample novel."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.grounding import BookVocabulary, candidate_nouns, explain
from vignette.documents import Passage

TEXT = [
    (1, "The keeper climbed the tower. His neighbour waved from the harbour. The boats were painted red."),
    (2, "A storm came at night. The keeper's daughter lit the lamp while the sailors were sleeping."),
    (3, "In the morning the lifeboat brought the sailors home."),
]


def _vocab(encode=None):
    passages = [Passage(f"b#{i}", "b", ch, f"Chapter {ch}", 0, len(t), t) for i, (ch, t) in enumerate(TEXT)]
    return BookVocabulary(passages, encode or _hash_encode)


def _hash_encode(texts):
    """Unit vectors that make two words close only when they share their first four letters."""
    import zlib

    out = np.zeros((len(texts), 256), dtype=np.float32)
    for i, t in enumerate(texts):
        out[i, zlib.crc32(t[:4].encode()) % 256] = 1.0
    return out


def test_only_nouns_of_factoid_questions_count():
    assert candidate_nouns("Who was the mayor of the town?") == ["mayor", "town"]
    assert candidate_nouns("What was Mrs Vane's favourite song?") == ["mrs", "vane", "favourite", "song"]
    assert candidate_nouns("What did Wren have for breakfast?") == ["wren", "breakfast"]
    # After do-support the word after the subject is a verb: "the Queen shout".
    assert candidate_nouns("What did the Queen shout at the trial?") == ["queen", "trial"]
    # Why / how / what-happened questions are answered in the book's words, not the question's.
    assert candidate_nouns("Why did the mayor leave?") == []
    assert candidate_nouns("How did the mayor feel?") == []
    assert candidate_nouns("What happened after the mayor left?") == []
    assert candidate_nouns("How many ships did the mayor own?") == ["ships", "mayor"]
    # Words that frame a question are not what it is about.
    assert candidate_nouns("Who was the first person at the door?") == ["door"]


def test_inflections_hyphens_and_the_spoiler_limit():
    vocab = _vocab()
    assert vocab.mentions("keepers") and vocab.mentions("painting") and vocab.mentions("sleep")
    assert vocab.mentions("keeper-daughter")  # each part is in the book
    assert not vocab.mentions("mayor")
    assert vocab.mentions("lifeboat") and not vocab.mentions("lifeboat", max_chapter=2)
    assert vocab.mentions("daughter", max_chapter=2) and not vocab.mentions("daughter", max_chapter=1)


def test_unmentioned_words_unless_a_near_word_is_in_the_book():
    vocab = _vocab()
    missing = vocab.unmentioned("Who was the mayor of the harbour?")
    assert [m.word for m in missing] == ["mayor"]
    # "neighbors" is not in the book, "neighbour" is: close enough, not reported.
    assert vocab.unmentioned("Who waved to the neighbors?") == []
    assert [m.word for m in vocab.unmentioned("Who steered the lifeboat?", max_chapter=2)] == ["lifeboat"]
    assert vocab.unmentioned("Who steered the lifeboat?") == []
    assert explain(missing) == "The book never mentions \u201cmayor\u201d."
    assert explain(missing, 2) == "Chapters 1\u20132 never mention \u201cmayor\u201d."


@pytest.fixture(scope="module")
def sample_pipeline(tmp_path_factory):
    from retrieval.pipeline import AnswerPipeline
    from retrieval.store import BookStore
    from vignette.settings import Settings

    settings = Settings.from_env(env={}, data_dir=tmp_path_factory.mktemp("grounding") / "data", reader="sentence")
    store = BookStore(settings)
    store.ensure_sample()
    return AnswerPipeline(store, settings)


def test_the_pipeline_abstains_and_says_why(sample_pipeline, minilm_path):
    answer = sample_pipeline.ask("sample", "Who was the mayor of Saltmarrow?")
    assert answer.abstained and answer.why == "The book never mentions \u201cmayor\u201d."
    assert answer.to_dict()["why"] == answer.why and answer.reader == "grounding"
    # The lifeboat comes in chapter 6: unknown under a limit of 5, answered without it.
    limited = sample_pipeline.ask("sample", "What is the name of the Saltmarrow lifeboat?", upto_chapter=5)
    assert limited.abstained and "Chapters 1\u20135 never mention" in limited.why
    free = sample_pipeline.ask("sample", "What is the name of the Saltmarrow lifeboat?")
    assert not free.abstained and "Constance" in free.answer and free.evidence[0].chapter == 6
    # A question about what the book does mention goes on to be read as before.
    assert not sample_pipeline.ask("sample", "How old is Toby?").abstained
    # Off: the check is skipped.
    from retrieval.pipeline import AnswerPipeline

    off = AnswerPipeline(sample_pipeline.store, sample_pipeline.settings.replace(grounding_threshold=None))
    assert off.ask("sample", "Who was the mayor of Saltmarrow?").why is None


def test_the_vocabulary_saved_at_ingest_loads_as_built(tmp_path):
    """What a store saves with the book (words, first chapters, float16 vectors) reloads without re-reading
    the book, gives the same answers, and is refused for another encoder."""
    built = _vocab(_hash_encode)
    built.save_vectors(tmp_path, _hash_encode(built.words()))
    loaded = BookVocabulary.load(tmp_path, _hash_encode)
    assert loaded is not None and loaded.keys == built.keys and loaded.first == built.first
    assert loaded.words() == built.words()
    assert np.allclose(loaded.vectors(), built.vectors(), atol=1e-3)  # float16 on disk
    for question, limit in [("Who was the mayor?", None), ("Where did the fox hide?", 1)]:
        assert [m.word for m in loaded.unmentioned(question, limit)] == [m.word for m in built.unmentioned(question, limit)]
    assert BookVocabulary.load(tmp_path, _hash_encode, fingerprint="another-model") is None
