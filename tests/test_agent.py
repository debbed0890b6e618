"""The conversation graph behind the Companion, with the real store, pipeline and illustrator.

Memory: a conversation continues after a restart (a new Companion over the same data dir), and two
conversations never see each other's history. Intents: "hello" never reaches retrieval. Replies are
grounded. Bad input: empty and very long turns, session names with path characters, damaged memory.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.agent import format_answer
from bot.companion import Companion, Turn, check_session
from tests.sample_library import copy_sample_to
from vignette.errors import VignetteError


class CountingPipeline:
    """The real AnswerPipeline, counting the questions that reach it."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[str] = []

    def ask(self, book_id, question, upto_chapter=None, **kwargs):
        self.calls.append(question)
        return self.inner.ask(book_id, question, upto_chapter=upto_chapter, **kwargs)

    def __getattr__(self, name):  # store, retriever, status...: the real pipeline's
        return getattr(self.inner, name)


@pytest.fixture
def library(settings):
    copy_sample_to(settings.data_dir)
    return settings


def make_companion(settings) -> tuple[Companion, CountingPipeline]:
    from retrieval.pipeline import AnswerPipeline
    from retrieval.store import BookStore

    store = BookStore(settings)
    pipeline = CountingPipeline(AnswerPipeline(store, settings))
    return Companion(settings, store=store, pipeline=pipeline), pipeline


def test_small_talk_help_and_spoiler_turns_never_reach_retrieval(library):
    companion, pipeline = make_companion(library)
    hello = companion.reply("reader", "sample", "hello")
    assert hello.intent == "smalltalk" and "The Keeper's Promise" in hello.reply
    thanks = companion.reply("reader", "sample", "thanks!")
    assert thanks.intent == "smalltalk" and "welcome" in thanks.reply.lower()
    help_turn = companion.reply("reader", "sample", "help")
    assert help_turn.intent == "help" and "draw it" in help_turn.reply and "chapter" in help_turn.reply
    limit = companion.reply("reader", "sample", "I'm on chapter 3")
    assert limit.intent == "spoiler" and limit.upto_chapter == 3 and "1\u20133" in limit.reply
    empty = companion.reply("reader", "sample", "   ")
    assert empty.intent == "empty" and "didn't catch" in empty.reply
    assert pipeline.calls == []
    assert [t.answer for t in (hello, thanks, help_turn, limit, empty)] == [None] * 5


def test_memory_survives_a_restart_and_conversations_stay_apart(library):
    companion, pipeline = make_companion(library)
    first = companion.reply("ann", "sample", "How many steps does the lighthouse have?")
    assert first.intent == "ask" and not first.rewritten
    assert "one hundred and twelve" in first.answer.answer
    assert "\u201c" in first.reply and "Chapter 2: The Keeper of Gullstone Rock" in first.reply
    companion.reply("ann", "sample", "How old is Toby?")
    companion.close()

    # a restart: a new Companion over the same data dir carries on where the conversation was
    restarted = Companion(library)
    follow = restarted.reply("ann", "sample", "and his sister?")
    assert follow.rewritten and follow.question == "How old is Toby's sister Wren?"
    assert follow.reply.startswith("(I read this as: \u201cHow old is Toby's sister Wren?\u201d)")
    assert [h["user"] for h in restarted.history("ann", "sample")] == [
        "How many steps does the lighthouse have?", "How old is Toby?", "and his sister?"]

    # another conversation has no memory of Ann's
    other = restarted.reply("bob", "sample", "and his sister?")
    assert not other.rewritten and other.question == "and his sister?"
    assert [h["user"] for h in restarted.history("bob", "sample")] == ["and his sister?"]
    assert len(restarted.history("ann", "sample")) == 3

    # the memory file keeps the newest checkpoints of a conversation only, however long it grows
    tid = "ann@sample"
    count = lambda: restarted.memory.conn.execute(  # noqa: E731
        "SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?", (tid,)).fetchone()[0]
    assert 1 <= count() <= 2
    restarted.reply("ann", "sample", "hello")
    assert 1 <= count() <= 2 and len(restarted.history("ann", "sample")) == 4


def test_spoiler_limit_persists_and_applies_to_later_questions(library):
    companion, pipeline = make_companion(library)
    companion.reply("cy", "sample", "I've read up to chapter 2")
    turn = companion.reply("cy", "sample", "Where did Wren hide the letter?")  # told in chapter 4
    assert turn.upto_chapter == 2
    assert all(e.chapter <= 2 for e in turn.answer.evidence) and "clapper" not in turn.reply.lower()
    turn = companion.reply("cy", "sample", "How many steps does the lighthouse have?")  # told in chapter 2
    assert turn.upto_chapter == 2 and turn.answer.evidence and turn.answer.evidence[0].chapter == 2
    assert Companion(library).spoiler_limit("cy", "sample") == 2  # kept in the conversation's state
    cleared = companion.reply("cy", "sample", "I've finished the book")
    assert cleared.upto_chapter is None


def test_an_unanswerable_question_gets_an_honest_abstain(library):
    companion, _ = make_companion(library)
    turn = companion.reply("dee", "sample", "What is the capital of Peru?")
    assert turn.answer.abstained
    assert turn.reply.startswith("The book doesn't say")
    assert turn.to_dict()["answer"] is None and turn.to_dict()["abstained"] is True


def test_abstain_and_answer_formats():
    evidence = {"quote": "The lighthouse had one hundred and twelve steps.", "chapter": 2,
                "chapter_title": "The Keeper of Gullstone Rock"}
    grounded = format_answer({"answer": "one hundred and twelve", "abstained": False, "evidence": [evidence]}, None)
    assert grounded.splitlines() == ["one hundred and twelve", "\u201cThe lighthouse had one hundred and twelve steps.\u201d",
                                     "\u2014 Chapter 2: The Keeper of Gullstone Rock"]
    abstain = format_answer({"answer": "", "abstained": True, "evidence": [evidence]}, 3)
    assert abstain.startswith("The book doesn't say, as far as I can find in chapters 1\u20133")
    assert "closest passage" in abstain and "Chapter 2: The Keeper of Gullstone Rock" in abstain


def test_illustrate_without_image_models_shows_the_prompt_and_says_why(library):
    settings = library.replace(image_models=str(Path(library.data_dir) / "no-such-model"))
    companion, _ = make_companion(settings)
    nothing = companion.reply("eve", "sample", "draw it")
    assert nothing.intent == "illustrate" and nothing.image is None and "nothing to draw yet" in nothing.reply
    companion.reply("eve", "sample", "How many steps does the lighthouse have?")
    turn = companion.reply("eve", "sample", "draw it")
    assert turn.intent == "illustrate" and turn.image is None
    assert turn.scene_prompt and "Scene prompt" in turn.reply
    assert "No picture was drawn" in turn.reply and "VIGNETTE_IMAGE_MODELS" not in turn.reply
    assert "VIGNETTE_IMAGE_MODELS=tiny-random" in turn.illustration["hint"]  # for the status, not the reply


def test_illustrate_with_tiny_random_models_draws_a_png(library):
    companion, _ = make_companion(library.replace(image_models="tiny-random"))
    steps = []
    turn = companion.reply("fay", "sample", "draw the lighthouse in the storm",
                           draw_options={"size": "64x64", "steps": 2, "seed": 3}, progress=steps.append)
    assert turn.intent == "illustrate"
    assert [s["step"] for s in steps][-1] >= 1 and turn.illustration["seed"] == 3
    assert turn.image and Path(turn.image).is_file() and Path(turn.image).read_bytes()[:4] == b"\x89PNG"
    assert Path(turn.image).parent == Path(library.data_dir) / "images" / "sample" / "fay"
    assert "noise" in turn.reply  # the tiny models say their pictures are noise


def test_stream_yields_the_reply_as_it_grows_then_the_turn(library):
    companion, _ = make_companion(library)
    companion.reply("gus", "sample", "How old is Toby?")
    items = list(companion.stream("gus", "sample", "and his sister?"))
    texts = [i for i in items if isinstance(i, str)]
    assert isinstance(items[-1], Turn)
    assert texts[0] == "(I read this as: \u201cHow old is Toby's sister Wren?\u201d)"  # before retrieval runs
    assert texts[-1] == items[-1].reply and len(texts) >= 2


def test_too_long_turn_is_refused_clearly(library):
    companion, pipeline = make_companion(library)
    turn = companion.reply("hal", "sample", "Why " * 400)
    assert turn.intent == "invalid" and turn.error
    assert "characters long" in turn.reply
    assert pipeline.calls == []
    assert companion.reply("hal", "sample", "hello").intent == "smalltalk"  # the conversation goes on


@pytest.mark.parametrize("name", ["../etc", "a/b", "a\\b", "", " ", "x" * 65, ".hidden", "a b", "nul\x00"])
def test_session_names_with_path_characters_are_refused(library, name):
    with pytest.raises(VignetteError) as err:
        check_session(name)
    assert "not allowed" in err.value.message and "letters, digits" in err.value.hint


def test_session_name_refused_by_the_companion_before_any_work(library):
    companion, pipeline = make_companion(library)
    with pytest.raises(VignetteError):
        companion.reply("../../evil", "sample", "Who found the letter?")
    assert pipeline.calls == []
    assert check_session("alice-2.ok_") == "alice-2.ok_"


def test_a_corrupted_memory_file_is_moved_aside_and_a_fresh_memory_started(library):
    memory = Path(library.memory_path)
    memory.parent.mkdir(parents=True, exist_ok=True)
    memory.write_bytes(b"this is not a database" * 100)
    companion, _ = make_companion(library)
    turn = companion.reply("ivy", "sample", "hello")
    assert turn.intent == "smalltalk"
    assert "could not be read" in turn.reply and "moved aside" in turn.reply
    damaged = list(memory.parent.glob("conversations.sqlite.damaged-*"))
    assert len(damaged) == 1 and damaged[0].read_bytes().startswith(b"this is not a database")
    assert companion.status()["memory"]["notice"]
    assert len(companion.history("ivy", "sample")) == 1  # the new memory works
    assert "could not be read" not in companion.reply("ivy", "sample", "thanks").reply  # said once


def test_a_damaged_conversation_is_set_aside_and_restarted(library):
    companion, _ = make_companion(library)
    companion.reply("jo", "sample", "hello")
    companion.reply("kim", "sample", "hello")
    companion.close()
    with sqlite3.connect(library.memory_path) as conn:
        conn.execute("UPDATE checkpoints SET checkpoint = X'00ff00ff' WHERE thread_id = 'jo@sample'")
    companion, _ = make_companion(library)
    turn = companion.reply("jo", "sample", "thanks")
    assert "could not be read" in turn.reply and "set aside" in turn.reply
    assert [h["user"] for h in companion.history("jo", "sample")] == ["thanks"]
    assert [h["user"] for h in companion.history("kim", "sample")] == ["hello"]  # others untouched
    assert any(t.startswith("jo@sample#damaged-") for t in companion.memory.thread_ids())


def test_each_book_is_its_own_conversation():
    from bot.companion import thread_id

    assert thread_id("ann", "sample") != thread_id("ann", "alice")
    assert thread_id("ann", "sample") != thread_id("bob", "sample")


def test_a_configured_chat_model_condenses_follow_ups(library):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from retrieval.pipeline import AnswerPipeline
    from retrieval.store import BookStore

    store = BookStore(library)
    model = FakeListChatModel(responses=["Standalone question: How old is Toby's sister?"])
    companion = Companion(library, store=store, pipeline=AnswerPipeline(store, library), chat_model=model)
    companion.reply("lu", "sample", "How old is Toby?")
    turn = companion.reply("lu", "sample", "and his sister?")
    assert turn.question == "How old is Toby's sister?"
    assert turn.rewrite_method.startswith("chat:")
    status = companion.status()
    assert status["followups"].startswith("chat model")
    assert {"answers", "followups", "images", "memory"} <= set(status)
    assert status["answers"]["reader"]


def test_an_answer_survives_the_memory_and_an_older_record():
    """One conversion between an Answer and the memory's JSON: it round-trips, and a record written by
    another version (extra keys, missing ones) still reads."""
    import json

    from vignette.documents import Answer, Evidence

    evidence = Evidence(quote="Toby was sixteen.", chapter=1, chapter_title="Chapter 1: The Bells", start=10,
                        end=27, passage_id="p1", score=2.5)
    answer = Answer(question="How old is Toby?", answer="sixteen", abstained=False, evidence=[evidence],
                    reader="extractive:reader", notice=None, why=None)
    assert Answer.from_dict(json.loads(json.dumps(answer.to_state()))) == answer
    old = {"answer": "sixteen", "evidence": [{**evidence.to_dict(), "colour": "red"}], "kept_by": "v0.1"}
    back = Answer.from_dict(old)
    assert back.evidence == [evidence] and back.question == "" and not back.abstained and back.reader == ""
