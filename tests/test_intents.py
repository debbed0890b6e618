"""Intent classification: each kind of turn is recognised, and questions stay questions."""

from __future__ import annotations

import pytest

from bot.intents import classify, parse_chapter_number


@pytest.mark.parametrize("text,kind", [
    ("hello", "greeting"), ("Hello!", "greeting"), ("hi there", "greeting"), ("Good morning", "greeting"),
    ("thanks", "thanks"), ("Thank you so much!", "thanks"), ("cheers", "thanks"),
    ("bye", "bye"), ("Goodbye.", "bye"), ("how are you?", "how_are_you"), ("ok", "ack"), ("cool", "ack"),
])
def test_small_talk(text, kind):
    intent = classify(text)
    assert intent.kind == "smalltalk"
    assert intent.smalltalk == kind


@pytest.mark.parametrize("text", ["help", "Help!", "?", "what can you do?", "How does this work?",
                                  "what should I ask?"])
def test_help(text):
    assert classify(text).kind == "help"


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty(text):
    assert classify(text).kind == "empty"


@pytest.mark.parametrize("text", [
    "Who found the letter?", "where did she hide it?", "why?", "and his sister?", "What happens in chapter 3?",
    "What did Wren read in chapter 3?", "Who is in the picture on the tin box?", "What is drawn on the lid?",
    "How did Wren draw the water from the well?", "Hello Kitty is not in this book, is it?",
    "What did Toby show Wren?", "Did Amos thank Wren?", "Who said hello to Pilot?", "What is the spoiler?",
])
def test_questions_are_questions(text):
    intent = classify(text)
    assert intent.kind == "ask"
    assert intent.text == text


def test_greeting_in_front_of_a_question_is_a_question():
    intent = classify("Hi! Who found the letter?")
    assert intent.kind == "ask"
    assert intent.text == "Who found the letter?"


@pytest.mark.parametrize("text,scene", [
    ("draw it", ""), ("Draw that", ""), ("illustrate this scene", ""), ("can you draw it please?", ""),
    ("show me a picture", ""), ("Draw the captain on the bridge", "the captain on the bridge"),
    ("draw her at the window", "her at the window"),
    ("Show me a picture of the lighthouse in the storm", "the lighthouse in the storm"),
    ("paint the storm", "the storm"), ("could you sketch Old Hester in the snow?", "Old Hester in the snow"),
    ("show me the lighthouse", "the lighthouse"),
])
def test_illustrate(text, scene):
    intent = classify(text)
    assert intent.kind == "illustrate"
    assert intent.text == scene


@pytest.mark.parametrize("text,question", [
    ("show me where the sisters met the stranger", "Where did the sisters meet the stranger?"),
    ("Show me where Wren hid the letter", "Where did Wren hide the letter?"),
    ("show me who found the letter", "Who found the letter?"),
    ("show me how Toby rang the bells", "How did Toby ring the bells?"),
])
def test_both(text, question):
    intent = classify(text)
    assert intent.kind == "both"
    assert intent.text == question


@pytest.mark.parametrize("text,chapter", [
    ("I've read up to chapter 10", 10), ("I'm on chapter 3", 3), ("I am on chapter three", 3),
    ("I have finished chapter IV", 4), ("I've read 5 chapters", 5), ("no spoilers past chapter 2", 2),
    ("spoiler limit 6", 6), ("I just finished chapter 7.", 7), ("I'm at chapter twenty-one", 21),
    ("only up to chapter 2 please", 2), ("I have read until chapter 4", 4),
])
def test_spoiler_limit(text, chapter):
    intent = classify(text)
    assert intent.kind == "spoiler"
    assert intent.chapter == chapter
    assert not intent.clear_limit


@pytest.mark.parametrize("text", ["I've finished the book", "I have read the whole book", "no spoiler limit",
                                  "spoilers are fine"])
def test_spoiler_limit_cleared(text):
    intent = classify(text)
    assert intent.kind == "spoiler" and intent.clear_limit and intent.chapter is None


def test_spoiler_limit_with_a_question_in_the_same_turn():
    intent = classify("I'm on chapter 3, who is Pilot?")
    assert (intent.kind, intent.chapter, intent.text) == ("spoiler", 3, "Who is Pilot?")


def test_chapter_numbers():
    assert parse_chapter_number("12") == 12
    assert parse_chapter_number("xii") == 12
    assert parse_chapter_number("IX") == 9
    assert parse_chapter_number("twelve") == 12
    assert parse_chapter_number("thirty-two") == 32
    assert parse_chapter_number("banana") is None
