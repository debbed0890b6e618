"""What a reader sees of a book's structure: the chapter list, the warnings on an odd structure, and what
"I've read up to chapter N" means in a book whose numbering restarts in each part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.chapters import parse_number
from vignette.documents import Book, Chapter

__all__ = ["chapter_rows", "structure_warnings", "structure_summary", "resolve_reading_limit", "ReadingLimit",
           "limit_position"]

_SHORT_WORDS = 40  # a "chapter" shorter than this is probably a stray heading
_HALF = 0.5  # one chapter holding more than this share of the book's words (books of 4 chapters or more)


def _words(text: str) -> int:
    return len(text.split())


def _heading_end(text: str, ch: Chapter) -> int:
    """Where a chapter's text begins: after its heading line, and after its title's line when the title
    stands on a line of its own."""
    pos = ch.start
    for k in range(2):
        nl = text.find("\n", pos, ch.end)
        if nl == -1:
            return ch.end
        line = text[pos:nl]
        if k == 1 and not (ch.name and _squash(ch.name) in _squash(line) and len(line) < 2 * len(ch.name) + 10):
            return pos
        pos = nl + 1
        while pos < ch.end and text[pos] == "\n":
            pos += 1
    return pos


def _squash(s: str) -> str:
    return re.sub(r"\W+", "", s).casefold()


def chapter_rows(book: Book) -> list[dict]:
    """One row per chapter: number (position), label, the book's own number, part, title, first words and
    length in words."""
    rows = []
    for ch in book.chapters:
        body = book.text[_heading_end(book.text, ch):ch.end] if ch.kind != "section" else book.text[ch.start:ch.end]
        rows.append({
            "number": ch.number, "label": ch.label or ch.title, "printed": ch.printed, "kind": ch.kind,
            "part": ", ".join(p for p in (ch.volume, ch.part) if p) or None, "title": ch.name,
            "cited_as": ch.title, "first_words": " ".join(body.split()[:8]),
            "words": _words(book.text[ch.start:ch.end]), "start": ch.start, "end": ch.end,
        })
    return rows


def structure_warnings(book: Book) -> list[str]:
    """Signs of a wrong structure: numbering gaps or repeats within a part, a chapter of a few words, one
    chapter holding half the book; and what the loader noted (an unreadable EPUB navigation document)."""
    out = list(book.structure_notes)
    chapters = book.chapters
    if not chapters:
        return out + ["no chapters were found"]
    # 1. Numbering, within each part and kind ("Letter 1-4" then "Chapter 1-24" is fine).
    last: dict[tuple, int] = {}
    seen: set[tuple] = set()
    for ch in chapters:
        if ch.printed is None or ch.kind in ("section", "story", "unnumbered"):
            continue
        key = (ch.volume, ch.part, ch.kind)
        if (key, ch.printed) in seen:
            out.append(f"{ch.title} is numbered {ch.printed} a second time")
        elif key in last and ch.printed != last[key] + 1:
            out.append(f"numbering jumps from {last[key]} to {ch.printed} at {ch.title}")
        elif key not in last and ch.printed not in (0, 1) and not any(k[2] == ch.kind for k in last):
            out.append(f"numbering starts at {ch.printed} ({ch.title})")
        seen.add((key, ch.printed))
        last[key] = ch.printed
    # 2. Sizes.
    sizes = [_words(book.text[c.start:c.end]) for c in chapters]
    total = sum(sizes) or 1
    for ch, n in zip(chapters, sizes):
        if n < _SHORT_WORDS and ch.kind != "section":
            out.append(f"{ch.title} holds only {n} words")
    if len(chapters) >= 4:
        for ch, n in zip(chapters, sizes):
            if n > _HALF * total:
                out.append(f"{ch.title} holds {round(100 * n / total)}% of the book")
    if chapters[0].kind == "section":
        out.append("no chapter headings were found: the book is cut into sections of about 3,000 words")
    return out


def structure_summary(book: Book, width: int = 3) -> str:
    """A few lines for the end of an ingest: count, source, first and last chapters."""
    chs = book.chapters
    kinds: dict[str, int] = {}
    for c in chs:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    counts = ", ".join(f"{n} {k if n == 1 else _plural(k)}" for k, n in kinds.items())
    parts = sorted({(c.volume, c.part) for c in chs if c.part}, key=lambda vp: next(
        c.start for c in chs if (c.volume, c.part) == vp))
    lines = [f"Structure: {counts}" + (f" in {len(parts)} parts" if parts else "")
             + (f" (from {book.structure})" if book.structure else "")]
    shown = chs if len(chs) <= 2 * width else chs[:width] + [None] + chs[-width:]
    for c in shown:
        lines.append("  ..." if c is None else f"  {c.number:>4}  {c.title}")
    return "\n".join(lines)


def _plural(kind: str) -> str:
    return {"story": "stories", "unnumbered": "unnumbered sections"}.get(kind, kind + "s")


@dataclass
class ReadingLimit:
    """What "I've read up to chapter N" resolves to: a position in reading order, or a question."""

    position: int | None  # the last chapter (position) the reader has read; None when asking
    question: str | None = None  # asked back when the number is ambiguous or unknown
    chapter: Chapter | None = None


_PART_RE = re.compile(
    r"\b(book|part|volume|vol\.?|epilogue)\s+(?:the\s+)?([ivxlcdm]+|\d{1,3}|[a-z]+(?:-[a-z]+)?)\b", re.I
)


def resolve_reading_limit(book: Book, number: int, said: str = "", kind: str = "chapter") -> ReadingLimit:
    """The position of the book's own chapter ``number`` ("chapter 11" is the chapter printed 11, not the
    11th unit: letters, a prologue or a foreword may come first). Where numbering restarts in each part,
    ``said`` must name the part ("book 2, chapter 3"); otherwise the answer is a question that lists the
    parts. A book without printed numbers (sections, stories) counts positions."""
    chapters = book.chapters
    numbered = [c for c in chapters if c.printed is not None and c.kind not in ("section", "story", "unnumbered")]
    if not numbered:
        ch = next((c for c in chapters if c.number == number), None)
        return ReadingLimit(ch.number if ch else None, None if ch else _no_such(book, number), ch)
    same_kind = [c for c in numbered if c.kind == kind] or numbered
    matches = [c for c in same_kind if c.printed == number]
    m = _PART_RE.search(said or "")
    if m and len({(c.volume, c.part) for c in matches}) > 1:
        wanted = parse_number(m.group(2)) or parse_number(m.group(2).capitalize())
        keyword = m.group(1).lower().rstrip(".")
        keyword = "volume" if keyword == "vol" else keyword
        picked = [c for c in matches if _part_number(c, keyword) == wanted]
        if len(picked) == 1:
            return ReadingLimit(picked[0].number, None, picked[0])
    if len(matches) == 1:
        return ReadingLimit(matches[0].number, None, matches[0])
    if not matches:
        if number > max(c.printed for c in same_kind):
            return ReadingLimit(len(chapters), None, chapters[-1])  # past the last chapter: the whole book
        return ReadingLimit(None, _no_such(book, number), None)
    options = "; ".join(c.title.split(":")[0] for c in matches[:6])
    more = "" if len(matches) <= 6 else f" and {len(matches) - 6} more"
    return ReadingLimit(None, f"This book numbers its chapters again in each part, so chapter {number} could be "
                              f"{options}{more}. Which one have you read up to? (For example: \u201cI've read up "
                              f"to {matches[1].title.split(':')[0].lower()}\u201d.)", None)


def _part_number(ch: Chapter, keyword: str) -> int | None:
    for heading in (ch.part, ch.volume):
        if heading and heading.lower().startswith(keyword):
            m = re.match(r"\w+\s+(\d+)", heading)
            if m:
                return int(m.group(1))
    return None


def _no_such(book: Book, number: int) -> str:
    numbered = [c.printed for c in book.chapters if c.printed is not None]
    top = max(numbered) if numbered else len(book.chapters)
    return f"{book.title} has no chapter {number}; its chapters run up to {top}."


def limit_position(book: Book, said: str | int) -> int:
    """A spoiler limit as a reader gives it ("11", "book 2 chapter 3") as a position in reading order, for
    the stores' filters. A number past the book's last chapter is passed on unchanged, so the caller's own
    check can say how many chapters there are; an ambiguous or unknown one raises the question."""
    from vignette.errors import VignetteError

    text = str(said).strip()
    numbers = re.findall(r"\d+", text)
    if not numbers:
        raise VignetteError(f"The chapter limit must name a chapter number, not {text!r}.",
                            hint="For example --upto-chapter 11, or --upto-chapter 'book 2 chapter 3'.")
    number = int(numbers[-1])
    printed = [c.printed for c in book.chapters if c.printed is not None and c.kind not in ("section", "story")]
    if number < 1 or not printed or number > max(printed):
        return number
    limit = resolve_reading_limit(book, number, text)
    if limit.position is None:
        raise VignetteError(limit.question or f"No chapter {number}.",
                            hint="Name the part too, e.g. --upto-chapter 'book 2 chapter 3'.")
    return limit.position
