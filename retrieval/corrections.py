"""A reader's corrections to a book's chapters: rename, merge, split at a line, mark as front or back matter.

Corrections are kept beside the stored book, in ``chapters.corrections.json``, and applied to the chapters
the loader found whenever the book is read (:func:`apply_corrections`). Each names its chapter by the
offset where the chapter starts in ``Book.text``, which does not change while the text does not, so the
corrections survive a re-ingest. Applying them never re-embeds anything: the passages keep their vectors
and only their chapter number and title change (:func:`correct_book`), in the passages file and in the
vector store's metadata; passages in what became front or back matter leave the index.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vignette.documents import Book, Chapter
from vignette.errors import VignetteError

__all__ = ["Correction", "CORRECTIONS_FILE", "load_corrections", "apply_corrections", "correct_book",
           "make_correction"]

CORRECTIONS_FILE = "chapters.corrections.json"
OPS = ("rename", "merge", "split", "front", "back")


@dataclass(frozen=True)
class Correction:
    op: str  # one of OPS
    at: int  # offset in Book.text where the chapter it applies to starts
    title: str | None = None  # rename: the new title; split: the new chapter's title (optional)
    split_at: int | None = None  # split: offset of the line where the new chapter begins

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def load_corrections(folder: Path) -> list[Correction]:
    path = Path(folder) / CORRECTIONS_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Correction(**item) for item in data.get("corrections", [])]
    except (ValueError, TypeError) as exc:
        raise VignetteError(f"The chapter corrections in {str(path)!r} are damaged ({exc}).",
                            hint=f"Delete {CORRECTIONS_FILE} to use the chapters as found.") from None


def save_corrections(folder: Path, corrections: list[Correction]) -> None:
    path = Path(folder) / CORRECTIONS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"corrections": [c.to_dict() for c in corrections]}, ensure_ascii=False, indent=1),
                   encoding="utf-8")
    os.replace(tmp, path)


def make_correction(book: Book, op: str, chapter: int, title: str | None = None,
                    line: str | None = None) -> Correction:
    """A correction for chapter number ``chapter`` (its position, as `python -m bot chapters` lists it).
    ``line`` (split only) is the start of the line where the new chapter begins, or its line number
    within the chapter (1 is the heading's line)."""
    # 1. Check inputs.
    if op not in OPS:
        raise VignetteError(f"Unknown chapter correction {op!r}.", hint=f"Use one of: {', '.join(OPS)}.")
    try:
        ch = book.chapter(int(chapter))
    except (KeyError, ValueError):
        raise VignetteError(f"{book.title!r} has no chapter {chapter!r} to {op}.",
                            hint=f"Chapters are numbered 1 to {len(book.chapters)} in "
                                 "`python -m bot chapters`.") from None
    if op == "rename" and not (title or "").strip():
        raise VignetteError("A rename needs the new title.")
    if op == "merge" and ch.number == 1:
        raise VignetteError("Chapter 1 has no chapter before it to merge into.",
                            hint="Merge a later chapter: it joins the one before it.")
    if op != "split":
        return Correction(op, ch.start, title.strip() if title else None)

    # 2. A split: find the line inside the chapter.
    if not line or not str(line).strip():
        raise VignetteError("A split needs the line where the new chapter begins (its first words, or its "
                            "line number within the chapter).")
    lines = book.text[ch.start:ch.end].split("\n")
    offset, pos = None, ch.start
    wanted = str(line).strip()
    for no, text in enumerate(lines, start=1):
        if (wanted.isdigit() and int(wanted) == no) or (not wanted.isdigit() and text.strip().startswith(wanted)):
            offset = pos + (len(text) - len(text.lstrip()))
            break
        pos += len(text) + 1
    if offset is None or offset <= ch.start:
        raise VignetteError(f"No line starting {wanted!r} inside chapter {ch.number} ({ch.title}) to split at.",
                            hint="Give the first words of a line after the chapter's heading.")
    return Correction("split", ch.start, title.strip() if title else None, offset)


def apply_corrections(
    text: str, chapters: list[Chapter], corrections: list[Correction]
) -> tuple[list[Chapter], list[str]]:
    """The chapters after the corrections, renumbered from 1, and a note for each correction that no longer
    fits (its chapter is gone from the loader's list)."""
    from retrieval.chapters import parse_heading_line

    chs = list(chapters)
    skipped = []
    for c in corrections:
        i = next((k for k, ch in enumerate(chs) if ch.start == c.at), None)
        if i is None:
            skipped.append(f"a {c.op} of the chapter at offset {c.at} no longer fits")
            continue
        ch = chs[i]
        if c.op == "rename":
            chs[i] = dataclasses.replace(ch, name=c.title, title=_cited(ch, c.title))
        elif c.op == "merge" and i > 0:
            chs[i - 1] = dataclasses.replace(chs[i - 1], end=ch.end)
            del chs[i]
        elif c.op in ("front", "back"):
            del chs[i]
        elif c.op == "split" and c.split_at is not None and ch.start < c.split_at < ch.end:
            head_end = text.find("\n", c.split_at)
            head = text[c.split_at: head_end if head_end != -1 else ch.end]
            label, printed, kind = parse_heading_line(head)
            name = c.title
            new = Chapter(number=0, title="", start=c.split_at, end=ch.end, part=ch.part, label=label,
                          printed=printed, name=name, kind=kind, volume=ch.volume)
            end = c.split_at
            while end > ch.start and text[end - 1].isspace():
                end -= 1
            chs[i] = dataclasses.replace(ch, end=end)
            chs.insert(i + 1, dataclasses.replace(new, title=_cited(new, name)))
    return [dataclasses.replace(ch, number=k) for k, ch in enumerate(chs, start=1)], skipped


def _cited(ch: Chapter, name: str | None) -> str:
    """The citation title with a new name: the prefix before the label ("Book 2, ") is kept."""
    label = ch.label or ch.title
    prefix = ""
    if ch.label and ch.title.startswith(ch.label) is False and ch.label in ch.title:
        prefix = ch.title[: ch.title.index(ch.label)]
    if ch.kind == "story" or not ch.label or (name or "").casefold() == label.casefold():
        return name or label
    return f"{prefix}{label}: {name}" if name else f"{prefix}{label}"


def correct_book(store, book_id: str, new: list[Correction]) -> Book:
    """Store ``new`` corrections with the book and re-label its passages (no re-embedding). Returns the book
    with its corrected chapters."""
    from retrieval.sparse import BM25Index
    from retrieval.store import BM25_DIR, MANIFEST, PASSAGES_FILE, _write_json

    # 1. Check inputs: the corrections must apply to the stored book.
    store._require(book_id)
    folder = store.settings.books_dir / book_id
    base = store.get_book(book_id, corrected=False)
    corrections = load_corrections(folder) + list(new)
    chapters, _ = apply_corrections(base.text, base.chapters, corrections)
    if not chapters:
        raise VignetteError("That would leave the book without chapters; nothing was changed.")

    # 2. Each passage takes the last chapter it reaches (a passage across a new split counts as the later
    #    chapter, so the spoiler limit never lets it through early); passages outside every chapter leave.
    passages = store.passages(book_id)
    kept, dropped = [], []
    for p in passages:
        ch = next((c for c in reversed(chapters) if c.start < p.end and p.start < c.end), None)
        if ch is None:
            dropped.append(p)
            continue
        kept.append(dataclasses.replace(p, chapter=ch.number, chapter_title=ch.title))
    if not kept:
        raise VignetteError("That would leave the book without passages; nothing was changed.")

    # 3. The vector store's metadata first (the vectors stay), then the files; the manifest is touched last
    #    so every process reloads the book.
    collection = store._collection(book_id)
    for i in range(0, len(kept), 500):
        batch = kept[i:i + 500]
        collection.update(ids=[p.passage_id for p in batch], metadatas=[p.metadata() for p in batch])
    if dropped:
        collection.delete(ids=[p.passage_id for p in dropped])
        BM25Index.build([p.passage_id for p in kept], [p.text for p in kept]).save(folder / BM25_DIR)
    tmp = folder / (PASSAGES_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for p in kept:
            fh.write(json.dumps(dataclasses.asdict(p), ensure_ascii=False) + "\n")
    os.replace(tmp, folder / PASSAGES_FILE)
    save_corrections(folder, corrections)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    manifest.update(chapters=len(chapters), passages=len(kept))
    _write_json(folder / MANIFEST, manifest)
    store._forget(book_id)
    return store.get_book(book_id)  # its notes say which older corrections no longer fit
