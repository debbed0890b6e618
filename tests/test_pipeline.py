"""AnswerPipeline on the bundled sample novel: grounded answers from the sentence fallback, the spoiler
limit, abstaining, and every bad input refused with a clear message and nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from retrieval.pipeline import AnswerPipeline, guess_language
from retrieval.reader import SentenceReader
from tests.sample_library import copy_sample_to
from vignette.errors import VignetteError

ROOT = Path(__file__).resolve().parents[1]
FACTS = yaml.safe_load((ROOT / "data" / "sample-novel.facts.yaml").read_text())


def _fact(question_start: str) -> dict:
    return next(f for f in FACTS if f["question"].startswith(question_start))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """The sample novel ingested once into a temporary library; the pipeline with no QA model on the
    machine (the configured hub model is not cached offline), so the sentence fallback answers."""
    from retrieval.store import BookStore
    from vignette.settings import Settings

    data_dir = copy_sample_to(tmp_path_factory.mktemp("library") / "data")
    settings = Settings.from_env(env={}, data_dir=data_dir, reader="some-org/qa-model-not-on-this-machine")
    store = BookStore(settings)
    assert store.has_book("sample")
    return store, AnswerPipeline(store, settings)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("start", [
    "How long did the fishermen of Saltmarrow save",
    "How many steps does the lighthouse have",
    "What was Nell Pritchard holding",
])
def test_fallback_answers_with_a_sentence_from_the_right_chapter(library, start):
    store, pipeline = library
    fact = _fact(start)
    answer = pipeline.ask("sample", fact["question"])
    assert not answer.abstained
    assert any(a.lower() in answer.answer.lower() for a in fact["answer_contains"]), answer.answer
    ev = answer.evidence[0]
    assert ev.chapter == fact["chapter"]
    book = store.get_book("sample")
    assert book.text[ev.start : ev.end] == ev.quote  # the quote is verbatim at its offsets
    assert ev.chapter_title == book.chapter(ev.chapter).title
    assert answer.reader.startswith("sentence:")
    assert "qa-model-not-on-this-machine" in pipeline.reader.reason and "best-matching sentence" in answer.notice


def test_status_says_the_fallback_answers(library):
    _, pipeline = library
    status = pipeline.status()
    assert status["reader_fallback"] is True and status["reader"].startswith("sentence:")
    assert status["configured_reader"] == "some-org/qa-model-not-on-this-machine"
    assert status["encoder"] and "reranker" in status


def test_spoiler_limit_never_quotes_a_later_chapter(library):
    _, pipeline = library
    fact = _fact("What was Nell Pritchard holding")  # told in chapter 7
    answer = pipeline.ask("sample", fact["question"], upto_chapter=2)
    assert all(ev.chapter <= 2 for ev in answer.evidence)
    assert not any(a.lower() in answer.answer.lower() for a in fact["answer_contains"])


def test_abstains_when_nothing_matches(library):
    _, pipeline = library
    answer = pipeline.ask("sample", "What is the boiling point of mercury in kelvin?")
    assert answer.abstained and answer.answer == "" and answer.evidence == []


def test_injected_reader_is_used(library):
    store, _ = library
    reader = SentenceReader(lambda: store.encoder, model_name="all-MiniLM-L6-v2", min_similarity=2.0,
                            cache_dir=store.book_dir)  # the sentence vectors cached by the tests above
    pipeline = AnswerPipeline(store, store.settings, reader=reader)
    answer = pipeline.ask("sample", "How many steps does the lighthouse have?")
    assert answer.abstained  # this reader's threshold can never be met
    assert set(pipeline.last_timings) == {"check", "retrieve", "rerank", "read"}


def test_reader_rerank_depth_hands_that_many_passages_to_the_reader(library):
    """Any reader is known by the Reader protocol alone: without re-ranking it reads its ``max_passages``;
    with ``reader_rerank_depth`` a reader that judges passages re-ranks that many (within the spoiler limit),
    as a pipeline step, and then reads them in the new order."""
    from retrieval.reader_protocol import PassageJudge, Reader
    from vignette.documents import Answer

    store, _ = library

    class Recording:  # a reader of a new kind: no name the pipeline knows
        name = "recording"
        notice = None
        max_passages = 2
        is_fallback = False

        def __init__(self):
            self.calls = []

        def warm_up(self):
            pass

        def read(self, question, candidates, book=None):
            self.calls.append(("read", [c.passage.passage_id for c in candidates]))
            return Answer(question=question, answer="", abstained=True, evidence=[], reader=self.name)

        def passage_confidence(self, question, candidates):
            self.calls.append(("judge", len(candidates), max(c.passage.chapter for c in candidates)))
            return [float(i) for i in range(len(candidates))]  # the last retrieved is the surest

    reader = Recording()
    assert isinstance(reader, Reader) and isinstance(reader, PassageJudge)
    settings = store.settings.replace(reader_rerank_depth=8, reader_rerank_weight=5.0)
    pipeline = AnswerPipeline(store, settings, reader=reader)
    pipeline.ask("sample", "Who rowed out to the wreck?", upto_chapter=3)
    judged, (_, read) = reader.calls
    assert judged == ("judge", 8, 3) and len(read) == 8
    retrieved = [c.passage.passage_id for c in pipeline.retriever.retrieve("sample", "Who rowed out to the wreck?",
                                                                          top_k=8, max_chapter=3)]
    assert read == list(reversed(retrieved))  # the reader's confidence outweighs retrieval at weight 5
    assert pipeline.last_timings["rerank"] > 0
    reader.calls.clear()
    AnswerPipeline(store, store.settings, reader=reader).ask("sample", "Who rowed out to the wreck?")
    assert [(kind, len(ids)) for kind, ids in reader.calls] == [("read", 2)]


@pytest.mark.parametrize("book_id, question, upto, expected", [
    ("sample", "", None, "empty"),
    ("sample", "   \n\t ", None, "empty"),
    ("sample", "Why " * 1250 + "?", None, "5,001 characters"),
    ("sample", "Qui a trouvé la lettre dans la lanterne ?", None, "not to be in English"),
    ("sample", "¿Quién encontró la carta?", None, "not to be in English"),
    ("sample", "Кто нашёл письмо?", None, "not to be in English"),
    ("no-such-book", "Who found the letter?", None, "no book 'no-such-book'"),
    ("sample", "Who found the letter?", 99, "has 8 chapters"),
    ("sample", "Who found the letter?", 0, "1 or more"),
    ("sample", "Who found the letter?", -3, "1 or more"),
])
def test_bad_input_is_refused_and_nothing_changes(library, book_id, question, upto, expected):
    store, pipeline = library
    before = _snapshot(store.settings.data_dir)
    books_before = [b.to_dict() for b in store.books()]
    with pytest.raises(VignetteError) as err:
        pipeline.ask(book_id, question, upto_chapter=upto)
    assert expected in str(err.value)
    assert _snapshot(store.settings.data_dir) == before
    assert [b.to_dict() for b in store.books()] == books_before


def test_unknown_book_lists_the_known_ones(library):
    _, pipeline = library
    with pytest.raises(VignetteError) as err:
        pipeline.ask("moby-dick", "Who is Ishmael?")
    assert "sample" in str(err.value)


@pytest.mark.parametrize("question", [
    "Why?", "Darcy?", "Who is Don Juan?", "Was Wren brave?", "What is la Marigold?", "And then?",
    "Who said 'Je ne sais quoi'?", "How did Mme de Villefort die?",
])
def test_short_and_odd_english_questions_pass(question):
    assert guess_language(question) is None


@pytest.mark.parametrize("question, language", [
    ("Qui est Elizabeth ?", "French"),
    ("Pourquoi Darcy est-il fier ?", "French"),
    ("Wer ist der Leuchtturmwärter?", "German"),
    ("¿Quién es Darcy?", "Spanish"),
    ("Chi è Wren?", "Italian"),
    ("Кто такой Дарси?", "Cyrillic script"),
    ("達西是誰？", "Chinese or Japanese"),
])
def test_other_languages_are_recognised(question, language):
    assert guess_language(question) == language
