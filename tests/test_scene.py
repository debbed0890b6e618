"""Scene prompts from an answer and its evidence passage: the few-shot file, the writers, the prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from illustration.characters import build_character_sheets
from illustration.scene import (
    PARTS,
    ChatSceneWriter,
    RuleBasedSceneWriter,
    ScenePrompt,
    TransformersSceneWriter,
    compose_prompt,
    key_noun_phrases,
    load_examples,
    make_scene_writer,
    parse_scene,
    write_scene_prompt,
)
from vignette.documents import Evidence
from vignette.errors import VignetteError

ROOT = Path(__file__).resolve().parents[1]
FACTS = yaml.safe_load((ROOT / "data" / "sample-novel.facts.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def book():
    from retrieval.loading import load_book

    return load_book(ROOT / "data" / "sample-novel.txt", book_id="sample")


@pytest.fixture(scope="module")
def sheets(book):
    return build_character_sheets(book)


def evidence_for(book, quote: str) -> Evidence:
    start = book.text.find(quote)
    assert start >= 0, quote
    chapter = next(c for c in book.chapters if c.start <= start < c.end)
    return Evidence(
        quote=quote,
        chapter=chapter.number,
        chapter_title=chapter.title,
        start=start,
        end=start + len(quote),
        passage_id="sample-test",
        score=1.0,
    )


def fact(question_start: str) -> dict:
    return next(f for f in FACTS if f["question"].startswith(question_start))


def test_the_few_shot_examples_have_every_part():
    data = load_examples()
    assert data["instructions"].strip()
    assert len(data["examples"]) >= 4
    for ex in data["examples"]:
        assert ex["passage"].strip() and ex["question"].strip() and ex["answer"].strip()
        assert set(PARTS) <= set(ex["scene"]), ex["question"]
        assert all(str(ex["scene"][k]).strip() for k in PARTS)


def test_rule_based_writer_puts_the_passages_character_place_and_time_into_the_prompt(book, sheets):
    f = fact("Who found the green lantern")
    prompt = write_scene_prompt(
        "Toby", evidence_for(book, f["quote"]), book, question=f["question"], sheets=sheets
    )
    assert prompt.writer == "rule-based"
    assert "Toby" in prompt.text and "Kestrel Point" in prompt.text
    assert "first light" in prompt.text or "dawn" in prompt.text
    # the character sheet's description follows the name
    toby = sheets.get("Toby")
    first = toby.description.split(",")[0].strip()
    assert f"Toby ({first}" in prompt.text
    assert prompt.parts["characters"].startswith("Toby:")
    assert prompt.evidence["chapter"] == f["chapter"] and prompt.book_id == "sample"


def test_rule_based_writer_names_everyone_in_the_scene_with_their_looks(book, sheets):
    f = fact("What was Nell Pritchard holding")
    prompt = write_scene_prompt(
        "a rolling pin", evidence_for(book, f["quote"]), book, question=f["question"], sheets=sheets
    )
    assert "Nell Pritchard" in prompt.text and "blue headscarf" in prompt.text
    assert "rolling pin" in prompt.text and "night" in prompt.text
    f = fact("What building did Wren see Silas Crook")
    prompt = write_scene_prompt(
        "the oil store", evidence_for(book, f["quote"]), book, question=f["question"], sheets=sheets
    )
    assert "Silas Crook" in prompt.text and "bowler" in prompt.text
    assert "Wren" in prompt.text and "red wool scarf" in prompt.text
    assert "oil store" in prompt.text


def test_a_scene_without_people_is_an_establishing_shot_of_the_place(book):
    f = fact("Where was the new bell cast?")
    parts = RuleBasedSceneWriter().write(
        "in the foundries of Port Ember",
        evidence_for(book, "It had been cast in the foundries of Port Ember"),
        book,
    )
    assert "Port Ember" in parts["subject"] or "Port Ember" in parts["setting"]
    f = fact("At what time did the great storm break?")
    parts = RuleBasedSceneWriter().write("four o'clock", evidence_for(book, f["quote"]), book)
    assert "storm" in parts["time_of_day"] and "sunset" in parts["time_of_day"]
    assert parts["mood"] == "dramatic and stormy"


def test_style_presets_and_negative_prompt(book, sheets):
    f = fact("Who found the green lantern")
    ev = evidence_for(book, f["quote"])
    storybook = write_scene_prompt("Toby", ev, book, question=f["question"], sheets=sheets)
    engraving = write_scene_prompt("Toby", ev, book, question=f["question"], sheets=sheets, style="engraving")
    assert "wood engraving" in engraving.text and "wood engraving" not in storybook.text
    assert engraving.style == "engraving" and "colour" in engraving.negative
    assert "watermark" in storybook.negative
    with pytest.raises(VignetteError, match="Unknown style 'comic'.*storybook"):
        compose_prompt({"subject": "a bell"}, style="comic")


def test_an_edited_prompt_keeps_the_evidence_and_says_who_wrote_it(book, sheets):
    f = fact("Who found the green lantern")
    prompt = write_scene_prompt(
        "Toby", evidence_for(book, f["quote"]), book, question=f["question"], sheets=sheets
    )
    edited = prompt.edited("Toby holding a green lantern among the gorse at dawn, watercolour")
    assert edited.text.startswith("Toby holding a green lantern")
    assert edited.writer == "user (edited rule-based)"
    assert edited.evidence == prompt.evidence and edited.negative == prompt.negative
    assert prompt.edited(prompt.text).writer == "rule-based"
    with pytest.raises(VignetteError):
        prompt.edited("   ")


def test_key_noun_phrases_of_a_quote():
    phrases = key_noun_phrases("brought out a small brass spyglass, the kind that folds up into itself")
    assert phrases[0] == "small brass spyglass"
    assert "kind" not in phrases
    assert "hung seven" not in " ".join(key_noun_phrases("in the open belfry at the top hung seven bells"))


def test_parse_scene_reads_the_first_json_object_with_the_parts():
    reply = 'Sure! {"subject": "a girl", "setting": "a tower", "time_of_day": "night", "mood": "tense"} done'
    assert parse_scene(reply) == {
        "subject": "a girl",
        "setting": "a tower",
        "time_of_day": "night",
        "mood": "tense",
    }
    assert parse_scene("no scene here") is None
    assert parse_scene('{"subject": "only one part"}') is None


def test_a_langchain_chat_model_writes_the_scene_from_the_few_shot_turns(book, sheets):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    scene = {
        "subject": "a tall boy holding a green lantern",
        "setting": "gorse on Kestrel Point",
        "time_of_day": "first light",
        "mood": "uneasy",
        "composition": "low angle, the lantern in the foreground",
    }
    writer = make_scene_writer(FakeListChatModel(responses=["Here you are:\n" + json.dumps(scene)]))
    assert isinstance(writer, ChatSceneWriter) and writer.name.startswith("chat:FakeListChatModel")
    f = fact("Who found the green lantern")
    prompt = write_scene_prompt(
        "Toby", evidence_for(book, f["quote"]), book, question=f["question"], writer=writer, sheets=sheets
    )
    assert prompt.writer.startswith("chat:") and prompt.notice is None
    assert prompt.text.startswith(
        "a storybook illustration of a tall boy holding a green lantern, gorse on Kestrel Point, first light"
    )
    # the few-shot examples go as chat turns before the request, which carries the passage
    messages = writer.messages(f["question"], "Toby", f["quote"])
    examples = load_examples()["examples"]
    assert len(messages) == 1 + 2 * len(examples) + 1
    assert json.loads(messages[2].content)["subject"] == examples[0]["scene"]["subject"]
    assert f["quote"] in messages[-1].content


def test_an_unreadable_reply_falls_back_to_the_rule_based_writer_and_says_so(book):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    writer = ChatSceneWriter(FakeListChatModel(responses=["I'd rather not."]))
    f = fact("Who found the green lantern")
    prompt = write_scene_prompt(
        "Toby", evidence_for(book, f["quote"]), book, question=f["question"], writer=writer
    )
    assert prompt.writer == "rule-based"
    assert "could not be read" in prompt.notice
    assert "Toby" in prompt.text


def test_a_local_transformers_model_gets_the_few_shot_text_prompt(book, tmp_path, minilm_path):
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=16, n_layer=1, n_head=2)
    )
    model.save_pretrained(tmp_path / "tiny-lm")
    tokenizer.save_pretrained(tmp_path / "tiny-lm")
    writer = make_scene_writer(str(tmp_path / "tiny-lm"))
    assert isinstance(writer, TransformersSceneWriter)
    writer.max_new_tokens = 12
    text = writer.prompt("Who found it?", "Toby", "I went along Kestrel Point at first light")
    assert text.endswith("Scene: {") and "Passage: I went along Kestrel Point at first light" in text
    assert text.count("Scene: {") == len(load_examples()["examples"]) + 1
    f = fact("Who found the green lantern")
    prompt = write_scene_prompt(
        "Toby", evidence_for(book, f["quote"]), book, question=f["question"], writer=writer
    )
    # a random model writes no scene: the writer says so and the rule-based parts are drawn
    assert prompt.writer == "rule-based" and "could not be read" in prompt.notice


def test_scene_prompt_round_trips_as_a_dict():
    prompt = ScenePrompt(text="a bell", negative="text", parts={"subject": "a bell"}, writer="rule-based")
    assert ScenePrompt(**prompt.to_dict()) == prompt
