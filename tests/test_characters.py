"""Character sheets read from the bundled sample novel (its facts file lists the characters' looks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from illustration.characters import (
    CharacterSheets,
    analyse_names,
    appearance_phrases,
    build_character_sheets,
    edit_character,
    load_character_sheets,
    sheets_path,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample-novel.txt"
FACTS = ROOT / "data" / "sample-novel.facts.yaml"


@pytest.fixture(scope="module")
def book():
    from retrieval.loading import load_book

    return load_book(SAMPLE, book_id="sample")


@pytest.fixture(scope="module")
def sheets(book):
    return build_character_sheets(book)


class FolderStore:
    """The two BookStore methods the sheets use, over a temp folder (the CLI test uses the real store)."""

    def __init__(self, folder: Path, book):
        self.folder = folder
        self.book = book
        self.reads = 0

    def book_dir(self, book_id: str) -> Path:
        assert book_id == self.book.book_id
        return self.folder

    def get_book(self, book_id: str):
        self.reads += 1
        return self.book


def _sheet_for(sheets: CharacterSheets, full_name: str):
    """The sheet of a character named in the facts file ("Elias Dunmore" -> "Captain Dunmore")."""
    tokens = set(full_name.split())
    for sheet in sheets.characters:
        if tokens & {word for alias in sheet.aliases for word in alias.split()}:
            return sheet
    return None


def test_main_characters_are_found_and_places_and_ships_are_not(book):
    index = analyse_names(book)
    names = {c.name for c in index.characters}
    aliases = {a for c in index.characters for a in c.aliases}
    for person in ("Wren", "Toby", "Amos", "Vane", "Silas", "Nell", "Pilot", "Dunmore"):
        assert person in aliases, f"{person} not found among {sorted(names)}"
    for thing in (
        "Saltmarrow",
        "Marigold",
        "Needles",
        "Black Heron",
        "Kestrel Point",
        "Gullstone Rock",
        "The",
        "She",
    ):
        assert thing not in aliases, f"{thing!r} taken for a character"
    places = [p for p, _ in index.places]
    assert "Saltmarrow" in places and "Kestrel Point" in places
    # full names and titles join into one character; a shared surname joins nobody
    vane = next(c for c in index.characters if "Vane" in c.aliases)
    assert "Mrs Vane" in vane.aliases and "Cordelia" in vane.aliases
    wren = next(c for c in index.characters if "Wren" in c.aliases)
    assert "Toby" not in wren.aliases
    assert wren.pronoun == "she" and next(c for c in index.characters if "Toby" in c.aliases).pronoun == "he"


def test_sheets_find_the_appearance_facts_of_the_sample_novel(sheets):
    facts = [f for f in yaml.safe_load(FACTS.read_text(encoding="utf-8")) if f.get("kind") == "appearance"]
    assert len(facts) >= 10
    found, in_description, missed = 0, 0, []
    for fact in facts:
        sheet = _sheet_for(sheets, fact["character"])
        assert sheet is not None, f"no sheet for {fact['character']}"
        phrases = " | ".join(sheet.appearance).lower()
        if any(a.lower() in phrases for a in fact["answer_contains"]):
            found += 1
        else:
            missed.append((fact["character"], fact["answer_contains"], sheet.appearance))
        in_description += any(a.lower() in sheet.description.lower() for a in fact["answer_contains"])
    assert found >= 0.8 * len(facts), missed
    assert in_description >= 0.75 * len(facts), missed


def test_descriptions_are_short_and_say_what_the_book_says(sheets):
    wren = _sheet_for(sheets, "Wren Tolley")
    assert "red" in wren.description and "scarf" in wren.description
    assert "copper" in wren.description
    # someone else's clothes are not hers (Mrs Vane's green velvet coat appears in sentences about Wren)
    assert "green" not in wren.description
    amos = _sheet_for(sheets, "Amos Fenwick")
    assert "beard" in amos.description and "spectacles" in amos.description
    assert "white ear" not in amos.description  # the white ear is his dog's
    for sheet in sheets.characters:
        assert len(sheet.description.split(",")) <= 6
        for start, end in sheet.sources:  # every phrase can be traced to a sentence of the book
            assert 0 <= start < end


def test_appearance_phrases_read_modifiers_on_both_sides():
    assert appearance_phrases("she wore a long coat of green velvet", "she") == ["long green velvet coat"]
    (hair,) = appearance_phrases("Her hair was silver-grey and pinned into a bun", "she")
    assert hair.startswith("silver-grey") and hair.endswith("hair")
    assert "short" in appearance_phrases("He was a short, stout man in a brown bowler hat", "he")
    assert "brown bowler hat" in appearance_phrases("He was a short, stout man in a brown bowler hat", "he")
    # a possessive of someone else, or a feature owned by the other gender, is not theirs
    assert appearance_phrases("he rubbed the dog's white ear", "he") == []
    assert appearance_phrases("she stared at his round brass spectacles", "she") == []
    # furniture is not a person
    assert appearance_phrases("It was a small, round room made of glass") == []


def test_sheets_are_stored_with_the_book_and_edits_survive_a_rebuild(book, tmp_path):
    store = FolderStore(tmp_path, book)
    first = load_character_sheets(store, "sample")
    path = sheets_path(store, "sample")
    assert path == tmp_path / "characters.json" and path.is_file()
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert {c["name"] for c in stored["characters"]} == {c.name for c in first.characters}
    reads = store.reads
    assert load_character_sheets(store, "sample").to_dict() == first.to_dict()
    assert store.reads == reads  # the stored sheets are read, not rebuilt

    edit_character(store, "sample", "Wren", "tall girl in a yellow oilskin")
    edit_character(store, "sample", "Mr Tibbs", "the harbour cat, one-eyed and ginger")
    rebuilt = load_character_sheets(store, "sample", rebuild=True)
    assert store.reads == reads + 1
    wren = rebuilt.get("Wren")
    assert wren.description == "tall girl in a yellow oilskin" and wren.edited
    assert rebuilt.get("Mr Tibbs").description.startswith("the harbour cat")
    toby = rebuilt.get("Toby")
    assert not toby.edited and "jersey" in toby.description  # the others are read again
    assert "Wren: tall girl in a yellow oilskin (edited)" in rebuilt.describe()


def test_sheets_are_appended_where_a_character_is_named(sheets):
    found = sheets.mentioned_in("Mrs Vane stood at the top of the stairs while Toby waited below")
    assert [s.name for s in found][:2] == [_sheet_for(sheets, "Cordelia Vane").name, "Toby"]
    assert sheets.mentioned_in("the sea was grey and empty") == []
