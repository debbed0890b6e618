"""Chapter structure against a hand-checked truth: ``python -m eval.chapters ../shared/data/books``.

The folder holds books and a ``books.json`` that lists, for every file, its chapters as the book numbers
them (``number``, ``label``, ``title``, ``part``, ``first_words``), its unnumbered story sections and its
front and back matter. Each book is loaded with :func:`retrieval.loading.load_book` (parsing only, no
embedding) and compared chapter by chapter. A chapter is right when

- it is found, in order, with the book's own number (the alignment follows numbers and titles);
- its title agrees (case, white space, quotes and end punctuation aside; both absent counts as agreeing);
- it opens a new part exactly where the truth does (so parts, and numbering that restarts in them, agree);
- its ``first_words`` occur in the first few hundred characters of the chapter's text.

A book is right when it has no missing and no extra chapters and every chapter is right. Unnumbered story
sections (a Prologue, a Finale) are reported apart; so is the book without headings, which must come out
as sections named "Section N" that start where its text starts.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["BookScore", "score_book", "score_folder", "normalise"]

_NEAR = 900  # characters from a chapter's heading within which its first words must appear


def normalise(s: str | None) -> str:
    """Case-folded, straight quotes, dashes as spaces, white space collapsed, no end punctuation."""
    if not s:
        return ""
    s = s.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    s = re.sub(r"[\u2014\u2013]|--", " ", s)
    s = re.sub(r"\s+", " ", s).strip().casefold()
    return s.strip(" .,:;!?\"'_-")


@dataclass
class BookScore:
    file: str
    expected: int  # numbered chapters in the truth
    found: int  # numbered chapters found
    right: int  # chapters right in every respect
    missing: int
    extra: int
    wrong: list[str] = field(default_factory=list)  # a few examples of what differed
    sections_expected: int = 0
    sections_right: int = 0
    sections_extra: int = 0  # unnumbered sections found that the truth does not have
    structure: str = ""  # what the loader used: "headings", "epub-nav", ...
    seconds: float = 0.0

    @property
    def whole(self) -> bool:
        return self.right == self.expected == self.found and self.missing == self.extra == 0

    def to_dict(self) -> dict:
        return {**asdict(self), "whole": self.whole}


def _part_starts(items: list[tuple]) -> list[bool]:
    out, prev = [], None
    for i, key in enumerate(items):
        out.append(key != prev if i else key != (None, None))
        prev = key
    return out


def score_book(truth: dict, book) -> BookScore:
    """Compare a loaded :class:`~vignette.documents.Book` with one entry of books.json."""
    numbered = [c for c in book.chapters if c.kind not in ("unnumbered", "section")]
    sections = [c for c in book.chapters if c.kind == "unnumbered"]
    expected = truth["chapters"]
    score = BookScore(truth["file"], len(expected), len(numbered), 0, 0, 0,
                      structure=getattr(book, "structure", ""))

    # 1. A book without headings: sections that start where the text starts.
    if not expected:
        first = normalise(truth.get("whole_text_first_words"))
        all_sections = all(c.kind == "section" for c in book.chapters)
        starts = bool(book.chapters) and first in normalise(book.text[book.chapters[0].start:][:_NEAR])
        score.found = 0 if all_sections else len(numbered)
        score.extra = score.found
        if not (all_sections and starts):
            score.wrong.append("a book without headings should be cut into sections from its first words")
        return score

    # 2. Align the found chapters with the true ones by (number, title).
    want = [(c["number"], normalise(c["title"])) for c in expected]
    got = [(c.printed, normalise(c.name)) for c in numbered]
    want_starts = _part_starts([(c.get("volume"), c.get("part")) for c in expected])
    got_starts = _part_starts([(c.volume, c.part) for c in numbered])
    matcher = difflib.SequenceMatcher(a=[w[0] for w in want], b=[g[0] for g in got], autojunk=False)
    pairs = []
    for block in matcher.get_matching_blocks():
        pairs += [(block.a + k, block.b + k) for k in range(block.size)]
    score.missing = len(expected) - len(pairs)
    score.extra = len(numbered) - len(pairs)

    # 3. Each aligned pair: title, part boundary, first words.
    for i, j in pairs:
        t, ch = expected[i], numbered[j]
        problems = []
        if want[i][1] != got[j][1]:
            problems.append(f"title {got[j][1]!r} != {want[i][1]!r}")
        if want_starts[i] != got_starts[j]:
            problems.append("part boundary differs")
        body = normalise(book.text[ch.start:ch.end][:_NEAR])
        if normalise(t["first_words"]) not in body:
            problems.append(f"does not open with {t['first_words']!r}")
        if problems:
            if len(score.wrong) < 5:
                score.wrong.append(f"{t.get('part') or ''} {t['label']}: " + "; ".join(problems))
        else:
            score.right += 1
    if score.missing and len(score.wrong) < 5:
        found = {i for i, _ in pairs}
        lost = [f"{c.get('part') or ''} {c['label']}".strip() for k, c in enumerate(expected) if k not in found]
        score.wrong.append("missing: " + ", ".join(lost[:5]))
    if score.extra and len(score.wrong) < 5:
        matched = {j for _, j in pairs}
        more = [c.title for k, c in enumerate(numbered) if k not in matched]
        score.wrong.append("extra: " + ", ".join(more[:5]))

    # 4. Unnumbered story sections (Prologue, Finale): found by label and first words.
    matched = set()
    for u in truth.get("unnumbered_sections", []):
        score.sections_expected += 1
        words = normalise(u["first_words"])
        hit = next((k for k, c in enumerate(sections) if words in normalise(book.text[c.start:c.end][:_NEAR])), None)
        if hit is not None:
            score.sections_right += 1
            matched.add(hit)
    score.sections_extra = len(sections) - len(matched)
    return score


def score_folder(folder: Path, only: list[str] | None = None) -> list[BookScore]:
    from retrieval.loading import load_book

    truth = json.loads((folder / "books.json").read_text(encoding="utf-8"))
    scores = []
    for entry in truth:
        if only and entry["file"] not in only:
            continue
        t0 = time.perf_counter()
        book = load_book(folder / entry["file"])
        score = score_book(entry, book)
        score.seconds = time.perf_counter() - t0
        scores.append(score)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.chapters", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder with books and their books.json")
    parser.add_argument("--only", nargs="*", help="score only these files")
    parser.add_argument("--json", action="store_true", help="print one JSON object per book")
    args = parser.parse_args(argv)
    if not (args.folder / "books.json").is_file():
        print(f"error: no books.json in {args.folder}", file=sys.stderr)
        return 2
    scores = score_folder(args.folder, args.only)
    for s in scores:
        if args.json:
            print(json.dumps(s.to_dict(), ensure_ascii=False))
            continue
        mark = "ok " if s.whole else "BAD"
        secs = f", sections {s.sections_right}/{s.sections_expected}" if s.sections_expected else ""
        print(f"{mark} {s.file}: {s.right}/{s.expected} right, found {s.found} "
              f"(missing {s.missing}, extra {s.extra}){secs} [{s.structure}] {s.seconds:.1f}s")
        for w in s.wrong:
            print(f"      {w}")
    whole = sum(s.whole for s in scores)
    right = sum(s.right for s in scores)
    expected = sum(s.expected for s in scores)
    found = sum(s.found for s in scores)
    sec_e = sum(s.sections_expected for s in scores)
    sec_r = sum(s.sections_right for s in scores)
    sec_x = sum(s.sections_extra for s in scores)
    summary = (f"books whose whole structure is right: {whole}/{len(scores)}; chapters right: {right}/{expected}"
               f" (found {found}); unnumbered sections found: {sec_r}/{sec_e} ({sec_x} extra)")
    print(summary if not args.json else json.dumps({"summary": summary}), file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
