"""A citation opened in the book: the paragraphs around a quote, the quote marked, previous and next.

::

    view = open_passage(book, start, end, upto_chapter=5)    # the offsets of an answer's evidence
    view.paragraphs       # [Paragraph(text, start, end, marks=[(a, b)])], the quote's offsets inside each
    view.previous, view.next   # where "previous" and "next" lead (None at the start, or at the limit)
    open_passage(book, *view.next, upto_chapter=5)             # the next page, nothing marked

Never past the limit: a passage after chapter N is refused (:class:`~vignette.errors.VignetteError`), and
"next" stops at the end of chapter N. Text is returned as plain strings with offsets; whoever shows it
escapes it (the app does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vignette.documents import Book, Chapter
from vignette.errors import VignetteError

AROUND = 2  # paragraphs shown before and after the quote's own


@dataclass
class Paragraph:
    text: str  # verbatim (line breaks inside the paragraph collapsed)
    start: int
    end: int
    marks: list[tuple[int, int]] = field(default_factory=list)  # the quote's part, as offsets into ``text``


@dataclass
class PassageView:
    book_id: str
    chapter: int
    chapter_title: str
    paragraphs: list[Paragraph]
    quote: tuple[int, int] | None  # the quote's offsets in Book.text, when one is marked
    previous: tuple[int, int] | None  # (start, end) to open for the previous page; None at the book's start
    next: tuple[int, int] | None  # None at the end of the book or of the reader's limit
    upto_chapter: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_text(self) -> str:
        """Plain text with the quote between »« marks (for the terminal and tests)."""
        from bot.agent import chapter_label

        out = [chapter_label({"chapter": self.chapter, "chapter_title": self.chapter_title}), ""]
        for p in self.paragraphs:
            text = p.text
            for a, b in reversed(p.marks):
                text = f"{text[:a]}\u00bb{text[a:b]}\u00ab{text[b:]}"
            out.extend([text, ""])
        return "\n".join(out).rstrip() + "\n"


def _chapter_at(book: Book, offset: int) -> Chapter:
    for c in book.chapters:
        if c.start <= offset < c.end:
            return c
    raise VignetteError(f"The offset {offset} is not inside any chapter of {book.title!r}.")


def _collapse(text: str, start: int, end: int, marks: list[tuple[int, int]]) -> Paragraph:
    """The paragraph with runs of white space collapsed, the marks moved to the collapsed text."""
    out: list[str] = []
    index = []  # collapsed position -> original offset
    space = False
    for i in range(start, end):
        ch = text[i]
        if ch.isspace():
            if not space and out:
                out.append(" ")
                index.append(i)
            space = True
            continue
        space = False
        out.append(ch)
        index.append(i)
    moved = []
    for a, b in marks:
        lo = next((k for k, o in enumerate(index) if o >= a), len(index))
        hi = next((k for k, o in enumerate(index) if o >= b), len(index))
        if hi > lo:
            moved.append((lo, hi))
    return Paragraph("".join(out), start, end, moved)


def open_passage(book: Book, start: int, end: int | None = None, upto_chapter: int | None = None,
                 around: int = AROUND) -> PassageView:
    """The paragraphs around ``book.text[start:end]`` within its chapter, the quote marked when ``end`` is
    given; refused when the passage lies after ``upto_chapter``."""
    from retrieval.text import split_paragraphs

    # 1. Check inputs
    try:
        start = int(start)
        end = None if end is None else int(end)
    except (TypeError, ValueError):
        raise VignetteError(f"A passage is opened by its offsets in the book, not {start!r}.") from None
    if not book.chapters:
        raise VignetteError(f"{book.title!r} has no chapters.")
    if start < 0 or start >= len(book.text) or (end is not None and not start < end <= len(book.text)):
        raise VignetteError(f"There is no passage at {start}\u2013{end} in {book.title!r}.")
    chapter = _chapter_at(book, start)
    if upto_chapter and chapter.number > int(upto_chapter):
        raise VignetteError(f"That passage is after chapter {upto_chapter}, your spoiler limit, so it stays closed.",
                            hint="Move the \u201cread up to\u201d limit forward to open it.")
    # 2. The chapter's paragraphs: the one holding the quote, and `around` either side
    spans = split_paragraphs(book.text, chapter.start, chapter.end)
    if not spans:
        raise VignetteError(f"Chapter {chapter.number} of {book.title!r} is empty.")
    hit = next((k for k, (s, e) in enumerate(spans) if s <= start < e or start < s), len(spans) - 1)
    last = hit
    if end is not None:
        last = max([k for k, (s, e) in enumerate(spans) if s < end] + [hit])
    lo, hi = max(0, hit - around), min(len(spans), last + around + 1)
    paragraphs = []
    for s, e in spans[lo:hi]:
        marks = []
        if end is not None and s < end and start < e:
            marks.append((max(s, start) - s, min(e, end) - s))
        paragraphs.append(_collapse(book.text, s, e, [(s + a, s + b) for a, b in marks]))
    # 3. Previous and next: the paragraphs just outside the window, across chapter boundaries, not past the limit
    previous = next_ = None
    if lo > 0:
        previous = spans[lo - 1]
    else:
        earlier = [c for c in book.chapters if c.number < chapter.number]
        if earlier:
            c = max(earlier, key=lambda c: c.number)
            tail = split_paragraphs(book.text, c.start, c.end)
            previous = tail[-1] if tail else None
    if hi < len(spans):
        next_ = spans[hi]
    else:
        later = [c for c in book.chapters if c.number > chapter.number
                 and (not upto_chapter or c.number <= int(upto_chapter))]
        if later:
            c = min(later, key=lambda c: c.number)
            head = split_paragraphs(book.text, c.start, c.end)
            next_ = head[0] if head else None
    return PassageView(book.book_id, chapter.number, chapter.title, paragraphs,
                       (start, end) if end is not None else None,
                       (previous[0], previous[1]) if previous else None,
                       (next_[0], next_[1]) if next_ else None, upto_chapter)


def page(book: Book, start: int, upto_chapter: int | None = None, around: int = AROUND) -> PassageView:
    """The page a "previous" or "next" link leads to: centred on the paragraph at ``start``, nothing marked."""
    return open_passage(book, start, None, upto_chapter, around)
