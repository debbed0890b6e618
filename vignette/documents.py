"""The dataclasses that flow between stages: book -> passages -> candidates -> answer -> illustration.

Offsets are character offsets into ``Book.text`` (the cleaned text), so every passage and every quote can
be cited and checked against the book.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Chapter:
    """One unit of the story, as the book prints it. ``number`` is its position in reading order (what the
    store and the spoiler limit filter by); ``printed`` is the book's own number, which may restart in each
    part ("Book II, Chapter 3" is ``part="Book 2"``, ``printed=3``)."""

    number: int  # 1-based position in the book (a letter or a story of a collection counts as one)
    title: str  # the heading as a reader would cite it, e.g. "Chapter 3: The Letter" or "Book 2, Chapter 3"
    start: int  # offset of the heading in Book.text
    end: int  # offset one past the chapter's last character
    part: str | None = None  # enclosing PART/BOOK heading, if any, e.g. "Book 2: The Golden Thread"
    label: str | None = None  # the numbered heading: "Chapter 3", "Letter 4", "Stave 1", "Prologue", "Section 2"
    printed: int | None = None  # the book's own number (roman or spelled out, converted); None if unnumbered
    name: str | None = None  # the chapter's own title ("The Letter"), without the label
    kind: str = "chapter"  # "chapter", "letter", "stave", "act", "story", "unnumbered" or "section"
    volume: str | None = None  # a level above the part (Les Misérables: Volume > Book > Chapter)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Book:
    book_id: str
    title: str
    author: str | None
    text: str  # cleaned text: no Gutenberg header/footer, normalised newlines
    chapters: list[Chapter]
    source: str = ""  # file name it was loaded from
    structure: str = ""  # what the chapters were found from: "epub-nav", "epub-ncx", "spine", "headings", "sections"
    structure_notes: list[str] = field(default_factory=list)  # what looked odd, e.g. an unreadable nav

    def chapter(self, number: int) -> Chapter:
        for ch in self.chapters:
            if ch.number == number:
                return ch
        raise KeyError(number)


@dataclass(frozen=True)
class Passage:
    passage_id: str  # derived from the book id and the content: re-ingesting adds nothing
    book_id: str
    chapter: int
    chapter_title: str
    start: int  # offsets into Book.text
    end: int
    text: str

    def metadata(self) -> dict[str, Any]:
        """What the vector store keeps beside the text (flat scalars only)."""
        return {
            "book_id": self.book_id,
            "chapter": self.chapter,
            "chapter_title": self.chapter_title,
            "start": self.start,
            "end": self.end,
        }

    @classmethod
    def from_metadata(cls, passage_id: str, text: str, meta: dict[str, Any]) -> "Passage":
        return cls(
            passage_id=passage_id,
            book_id=str(meta["book_id"]),
            chapter=int(meta["chapter"]),
            chapter_title=str(meta["chapter_title"]),
            start=int(meta["start"]),
            end=int(meta["end"]),
            text=text,
        )


@dataclass
class Candidate:
    """A passage proposed by retrieval, best first; ``scores`` keeps each retriever's view of it."""

    passage: Passage
    score: float
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class Evidence:
    quote: str  # the sentence(s) around the answer, verbatim from the book
    chapter: int
    chapter_title: str
    start: int  # offsets of the quote in Book.text
    end: int
    passage_id: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Evidence":
        """From :meth:`to_dict`'s form (keys it does not know are ignored: records saved by other versions)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Answer:
    question: str
    answer: str  # the span (or sentence) that answers; "" when abstained
    abstained: bool
    evidence: list[Evidence]
    reader: str  # which reader answered, e.g. "extractive:deepset/roberta-base-squad2" or "sentence:all-MiniLM-L6-v2"
    notice: str | None = None  # e.g. "no QA model available offline; the best-matching sentence answered"
    why: str | None = None  # why it abstained, when known: "The book never mentions “mayor”."

    def to_dict(self) -> dict[str, Any]:
        data = {
            "answer": self.answer,
            "abstained": self.abstained,
            "evidence": [e.to_dict() for e in self.evidence],
            "reader": self.reader,
        }
        if self.why:
            data["why"] = self.why
        return data

    def to_state(self) -> dict[str, Any]:
        """Every field as JSON values (the conversation memory keeps answers in this form)."""
        return {**self.to_dict(), "question": self.question, "abstained": bool(self.abstained),
                "notice": self.notice, "why": self.why}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Answer":
        """From :meth:`to_state` or :meth:`to_dict` (or a memory record): what is missing takes its default."""
        return cls(
            question=data.get("question") or "",
            answer=data.get("answer") or "",
            abstained=bool(data.get("abstained", False)),
            evidence=[Evidence.from_dict(e) for e in data.get("evidence") or []],
            reader=data.get("reader") or "",
            notice=data.get("notice"),
            why=data.get("why"),
        )
