"""The people of the book as of chapter N: who they are, where they first appear, how often, and how the
book introduces them, read from chapters 1..N only.

::

    cast = people_as_of(book, upto_chapter=5)
    cast.people[0].name, .first_chapter, .appearances   # [mentions in ch. 1, ch. 2, ...]
    cast.people[0].description                            # the character sheet, built from chapters 1..5

Spoiler safety is by construction: the book is cut at the end of chapter N (:func:`book_upto`) before
anything is read, and the names (:func:`illustration.characters.analyse_names`) and the character sheets
(:func:`illustration.characters.build_character_sheets`) are built from that cut. So someone who first
appears in chapter N+1 is not listed, and a description the book gives only later is not used. The
stored sheets (``characters.json``, built from the whole book) are never read here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from vignette.documents import Book

MAX_PEOPLE = 12
INTRODUCING = 3  # passages per person


@dataclass
class PersonPassage:
    text: str  # the sentence, verbatim (white space collapsed)
    chapter: int
    chapter_title: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Person:
    name: str
    aliases: list[str]
    first_chapter: int
    first_chapter_title: str
    appearances: list[int]  # mentions per chapter, chapters 1..N in order
    mentions: int
    description: str  # from the character sheet of chapters 1..N ("" when the book has said nothing yet)
    kind: str | None = None
    passages: list[PersonPassage] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passages"] = [p.to_dict() for p in self.passages]
        return data


@dataclass
class People:
    book_id: str
    title: str
    upto_chapter: int
    chapters: list[tuple[int, str]]  # (number, title) of chapters 1..N: the appearance chart's axis
    people: list[Person]

    def get(self, name: str) -> Person | None:
        want = " ".join(name.split()).lower()
        for p in self.people:
            if p.name.lower() == want or want in (a.lower() for a in p.aliases):
                return p
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"book_id": self.book_id, "title": self.title, "upto_chapter": self.upto_chapter,
                "chapters": [{"chapter": n, "title": t} for n, t in self.chapters],
                "people": [p.to_dict() for p in self.people]}

    def to_text(self) -> str:
        from bot.agent import chapter_label

        lines = [f"The people of \u201c{self.title}\u201d, as of chapter {self.upto_chapter}", ""]
        for p in self.people:
            first = chapter_label({"chapter": p.first_chapter, "chapter_title": p.first_chapter_title})
            lines.append(f"{p.name} \u2014 first appears in {first}; {p.mentions} mentions")
            if p.description:
                lines.append(f"  looks: {p.description}")
            lines.append("  by chapter: " + " ".join(f"{n}:{k}" for (n, _), k in zip(self.chapters, p.appearances)
                                                     if k))
            for q in p.passages:
                lines.append(f"  \u201c{q.text}\u201d [ch. {q.chapter}]")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def book_upto(book: Book, upto_chapter: int) -> Book:
    """The book cut at the end of chapter ``upto_chapter``: what a reader at that chapter has read."""
    kept = [c for c in book.chapters if c.number <= upto_chapter]
    start, end = min(c.start for c in kept), max(c.end for c in kept)
    # what comes before the first chapter is blanked (offsets kept): a table of contents there lists the
    # titles of every later chapter, and those can name people the reader has not met
    text = " " * start + book.text[start:end]
    return Book(book_id=f"{book.book_id}@{upto_chapter}", title=book.title, author=book.author,
                text=text, chapters=kept, source=book.source)


def _alias_pattern(aliases: list[str]) -> re.Pattern:
    alternatives = "|".join(re.escape(a) for a in sorted(aliases, key=len, reverse=True))
    return re.compile(r"(?<![A-Za-z])(?:" + alternatives + r")(?![A-Za-z])")


def people_as_of(book: Book, upto_chapter: int | None = None, max_people: int = MAX_PEOPLE) -> People:
    """The main characters of chapters 1..``upto_chapter`` (None: the whole book), most mentioned first."""
    from bot.recap import chapter_limit
    from illustration.characters import build_character_sheets
    from retrieval.text import split_sentences

    # 1. Check inputs and cut the book at the limit: nothing after it is read below
    limit = chapter_limit(book, upto_chapter)
    cut = book_upto(book, limit)
    # 2. Names and character sheets, from the cut only
    sheets = build_character_sheets(cut)
    people = []
    for sheet in sheets.characters[:max_people]:
        pattern = _alias_pattern(sheet.aliases or [sheet.name])
        counts = [len(pattern.findall(cut.text, c.start, c.end)) for c in cut.chapters]
        if not any(counts):
            continue
        first = next(c for c, k in zip(cut.chapters, counts) if k)
        # 3. Introducing passages: the first sentence that names them, then the first that describes them
        # (a source of the sheet's appearance phrases), then the next that names them; in reading order
        picked: list[tuple[int, int]] = []
        sentences = [(s, e) for c in cut.chapters if c.number >= first.number
                     for s, e in split_sentences(cut.text, c.start, c.end)]
        naming = [(s, e) for s, e in sentences if pattern.search(cut.text, s, e) and len(cut.text[s:e].split()) >= 5]
        if naming:
            picked.append(naming[0])
        for s, e in sorted(tuple(x) for x in sheet.sources):
            if len(picked) >= 2:
                break
            if first.start <= s and e <= len(cut.text) and all(s != p[0] for p in picked):
                picked.append((s, e))
        for span in naming[1:]:
            if len(picked) >= INTRODUCING:
                break
            if span not in picked:
                picked.append(span)
        passages = []
        for s, e in sorted(picked)[:INTRODUCING]:
            chapter = next(c for c in cut.chapters if c.start <= s < c.end)
            passages.append(PersonPassage(" ".join(cut.text[s:e].split()), chapter.number, chapter.title, s, e))
        people.append(Person(name=sheet.name, aliases=list(sheet.aliases), first_chapter=first.number,
                             first_chapter_title=first.title, appearances=counts, mentions=sum(counts),
                             description=sheet.description, kind=sheet.kind, passages=passages))
    people.sort(key=lambda p: (-p.mentions, p.first_chapter))
    return People(book.book_id, book.title, limit, [(c.number, c.title) for c in cut.chapters], people)
