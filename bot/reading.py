"""A reader's position in a book, in the book's own terms, and questions a reader might start with.

Every place that names a chapter to a reader (the "Reading up to" picker, the "up to Ch. N" chip on an
answer, the starter questions) reads it through :func:`chapter_names`, so a richer chapter record
(the book's own numbering and labels) shows everywhere at once.

The spoiler limit itself stays what the answers pipeline uses: the chapter's 1-based position
(``Chapter.number``); ``None`` means the whole book.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# A heading that opens with a unit word and its number ("Chapter 24", "Letter IV", "Book 2"): the reader's
# own short name for the chapter. "Chapter" is shortened, the others are already short.
_UNIT = re.compile(r"^\s*(?P<unit>[A-Za-z]+)\s+(?P<num>\d+|[IVXLCDM]+\b|[A-Za-z]+(?=[:.\s]|$))", re.I)
_SEPARATOR = re.compile(r"^\s*[:.\u2014\u2013-]\s*")
_UNIT_WORDS = {"chapter", "letter", "part", "book", "volume", "story", "canto", "section", "act", "scene",
               "adventure", "stave"}


@dataclass(frozen=True)
class ChapterName:
    """How a chapter is named to a reader."""

    position: int  # 1-based position in the book: the spoiler limit's unit
    short: str  # "Ch. 24", "Letter 4", "Prologue"
    full: str  # "Chapter 24 \u2014 The Wedding", or the heading as the book gives it


def chapter_names(chapter: Any) -> ChapterName:
    """The names of one :class:`~vignette.documents.Chapter` (or any record with ``number`` and ``title``).

    A record that carries its own ``label`` (the book's "Chapter XXIV", "Letter 4") is used as it is;
    otherwise the label is read from the start of the heading, and a heading with no unit word is
    "Chapter <position>"."""
    position = int(getattr(chapter, "number"))
    title = " ".join(str(getattr(chapter, "title", "") or "").split())
    label = " ".join(str(getattr(chapter, "label", "") or "").split())
    rest = title
    if label and title.lower().startswith(label.lower()):
        rest = title[len(label):]
    elif not label:
        found = _UNIT.match(title)
        if found and found.group("unit").lower() in _UNIT_WORDS:
            label, rest = found.group(0).strip(), title[found.end():]
        elif title and not re.search(r"\d", title) and len(title.split()) <= 2 and title[:1].isupper():
            label, rest = title, ""  # "Prologue", "Epilogue", "Preface": a name of its own
        else:
            label = f"Chapter {position}"
    rest = _SEPARATOR.sub("", rest).strip()
    unit, _, number = label.partition(" ")
    short = f"Ch. {number}" if unit.lower() == "chapter" and number else label
    full = f"{label} \u2014 {rest}" if rest else label
    return ChapterName(position, short, full)


def reading_choices(book: Any) -> list[tuple[str, int]]:
    """(label, position) for the "Reading up to" picker: every chapter by its own name; the last one also
    says it is the whole book."""
    chapters = list(getattr(book, "chapters", None) or [])
    if not chapters:
        return [("The whole book", 1)]
    choices = []
    for i, chapter in enumerate(chapters):
        name = chapter_names(chapter)
        last = i == len(chapters) - 1
        choices.append((f"{name.full} (the whole book)" if last else name.full, name.position))
    return choices


def reading_value(book: Any, limit: int | None) -> int:
    """The picker's value for a stored spoiler limit (None: the whole book, i.e. the last chapter)."""
    chapters = list(getattr(book, "chapters", None) or [])
    last = chapters[-1].number if chapters else 1
    return last if limit is None or limit <= 0 or limit >= last else int(limit)


def limit_chip(book: Any, limit: int | None) -> str:
    """"up to Ch. 3" when a spoiler limit is on, else ""."""
    chapters = list(getattr(book, "chapters", None) or [])
    if not limit or not chapters or limit >= chapters[-1].number:
        return ""
    for chapter in chapters:
        if chapter.number == limit:
            return f"up to {chapter_names(chapter).short}"
    return f"up to Ch. {limit}"


def coverage_note(book: Any) -> str:
    """What the picker covers when it has nothing to choose (a one-chapter or headingless book)."""
    chapters = list(getattr(book, "chapters", None) or [])
    if len(chapters) > 1:
        return ""
    return "This book has no chapter headings, so answers use the whole text." if not chapters or \
        not getattr(chapters[0], "title", "") else "This book has one chapter; answers use the whole book."


# --- starter questions -----------------------------------------------------------------------------------


def _chapter_at(book: Any, offset: int) -> int | None:
    for chapter in getattr(book, "chapters", None) or []:
        if chapter.start <= offset < chapter.end:
            return chapter.number
    return None


def _first_chapter(book: Any, aliases: list[str]) -> int | None:
    """The chapter where any of ``aliases`` is first named (whole words)."""
    text = getattr(book, "text", "") or ""
    best = None
    for alias in aliases:
        found = re.search(rf"\b{re.escape(alias)}\b", text)
        if found and (best is None or found.start() < best):
            best = found.start()
    return None if best is None else _chapter_at(book, best)


def starter_questions(book: Any, sheets: Any = None, limit: int | None = None, n: int = 3) -> list[str]:
    """Up to ``n`` questions a new reader could ask, drawn from the book itself and kept within the spoiler
    limit: "Who is <name>?" for the most mentioned person of the character sheets, "What does <name> look
    like?" for the most mentioned one the book describes, and "What is <place>?" for a name in a chapter's
    title that the book's text keeps using ("The Keeper of Gullstone Rock" -> "What is Gullstone Rock?")."""
    upto = limit or 10**9
    people = []
    for sheet in list(getattr(sheets, "characters", None) or []):
        if getattr(sheet, "mentions", 0) < 2:
            continue
        where = _first_chapter(book, list(sheet.aliases or [sheet.name]))
        if where is not None and where <= upto:
            people.append(sheet)
    people.sort(key=lambda s: -int(getattr(s, "mentions", 0)))
    questions = [f"Who is {sheet.name}?" for sheet in people[:1]]
    described = [s for s in people if getattr(s, "appearance", None)]
    described.sort(key=lambda s: (s.name == (people[0].name if people else None), -int(s.mentions)))
    questions += [f"What does {sheet.name} look like?" for sheet in described[:1]]
    names = {a.lower() for s in people for a in (list(s.aliases or []) + [s.name])}
    questions += [f"What is {topic}?" for topic in _title_places(book, upto, names)[:1]]
    questions += [f"Who is {s.name}?" for s in people[1:n]]
    if len(questions) < n:  # a short text gives the character sheets too little: its full names mid-sentence
        questions += [f"Who is {name}?" for name in _full_names(book, upto)]
    seen, unique = set(), []
    for q in questions:
        if q.lower() not in seen:
            seen.add(q.lower())
            unique.append(q)
    return unique[:n]


_PLACE = re.compile(r"\b(?:of|in|on|at|from|to|near|under|by|beyond)\s+(?P<the>the\s+)?"
                    r"(?P<name>[A-Z][\w'\u2019]+(?:\s+[A-Z][\w'\u2019]+)*)")


def _title_places(book: Any, upto: int, people: set[str]) -> list[str]:
    """Names after a preposition in the chapter titles within the limit ("of Gullstone Rock", "in the
    Lantern Room") that the text names at least three times and that are not people."""
    text = getattr(book, "text", "") or ""
    found = []
    for chapter in getattr(book, "chapters", None) or []:
        if chapter.number > upto:
            break
        _, _, topic = chapter_names(chapter).full.partition(" \u2014 ")
        for match in _PLACE.finditer(topic):
            name = match.group("name")
            if name.lower() in people or len(re.findall(rf"\b{re.escape(name)}\b", text)) < 3:
                continue
            found.append(("the " if match.group("the") else "") + name)
    return found


_FULL_NAME = re.compile(r"\b(?P<before>[a-z]+[,;]?) (?P<name>[A-Z][a-z]+(?: [A-Z][a-z]+)+)\b")
_DETERMINERS = {"the", "a", "an", "this", "that", "my", "our", "his", "her", "their", "its", "your"}


def _full_names(book: Any, upto: int) -> list[str]:
    """Capitalised word pairs (or longer) in the middle of sentences, after the first heading and within
    the limit ("called Ada Finch", not "the Modern Prometheus"), most frequent first: people's full names,
    for a text too short for character sheets."""
    text = getattr(book, "text", "") or ""
    chapters = [c for c in getattr(book, "chapters", None) or [] if c.number <= upto]
    start = chapters[0].start if chapters else 0
    end = chapters[-1].end if chapters else len(text)
    counts: dict[str, int] = {}
    for match in _FULL_NAME.finditer(text[start:end]):
        if match.group("before").rstrip(",;") in _DETERMINERS:
            continue
        counts[match.group("name")] = counts.get(match.group("name"), 0) + 1
    return sorted(counts, key=lambda name: -counts[name])
