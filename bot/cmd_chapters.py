"""`python -m bot chapters --book ID`: the chapters Vignette found, and the reader's corrections to them."""

from __future__ import annotations

import argparse
import json

from vignette.errors import VignetteError
from vignette.settings import Settings


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "chapters",
        help="list a book's chapters as found, and correct them",
        description="List the chapters of a stored book (or of a file, with --file): number, label, title, "
        "part, first words and length in words, with warnings on a suspicious structure. Correct them with "
        "--rename, --merge, --split, --front or --back: the correction is kept with the book, survives a "
        "re-ingest, and needs no re-embedding.",
        epilog="Examples: `python -m bot chapters --book emma`; `python -m bot chapters --book emma --rename 3 "
        "'The Letter'`; `python -m bot chapters --book emma --split 5 --at 'CHAPTER VI'`; "
        "`python -m bot chapters --book emma --front 1`.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--book", metavar="ID", help="a stored book's id (see `python -m bot books`)")
    source.add_argument("--file", metavar="PATH", help="a book file to look at without storing it")
    p.add_argument("--json", action="store_true", help="print JSON: {\"book_id\", \"title\", \"structure\", "
                   "\"chapters\": [{\"number\", \"label\", \"printed\", \"kind\", \"part\", \"title\", \"cited_as\", "
                   "\"first_words\", \"words\"}], \"warnings\"}")
    fix = p.add_argument_group("corrections (a stored book only; N is the number in the first column)")
    fix.add_argument("--rename", nargs=2, metavar=("N", "TITLE"), help="give chapter N this title")
    fix.add_argument("--merge", type=int, metavar="N", help="join chapter N to the chapter before it")
    fix.add_argument("--split", type=int, metavar="N", help="split chapter N at the line given by --at")
    fix.add_argument("--at", metavar="LINE", help="with --split: the first words of the line where the new "
                     "chapter begins, or its line number within chapter N")
    fix.add_argument("--title", help="with --split: the new chapter's title")
    fix.add_argument("--front", type=int, metavar="N", help="mark chapter N as front matter (not story text)")
    fix.add_argument("--back", type=int, metavar="N", help="mark chapter N as back matter (not story text)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.chapter_report import chapter_rows, structure_warnings

    # 1. The book: from a file, or stored (then corrected if asked).
    correction = _correction_args(args)
    if args.file:
        if correction:
            raise VignetteError("Corrections apply to a stored book.", hint="Ingest it first, then use --book ID.")
        from retrieval.loading import load_book

        book = load_book(args.file, max_bytes=int(settings.max_file_mb * 1024 * 1024))
    else:
        from retrieval.store import BookStore

        store = BookStore(settings)
        book = store.get_book(args.book)
        if correction:
            from retrieval.corrections import correct_book, make_correction

            op, n, title, line = correction
            fix = make_correction(book, op, n, title=title, line=line)
            book = correct_book(store, args.book, [fix])

    # 2. Print.
    rows = chapter_rows(book)
    warnings = structure_warnings(book)
    if args.json:
        keep = ("number", "label", "printed", "kind", "part", "title", "cited_as", "first_words", "words")
        print(json.dumps({"book_id": book.book_id, "title": book.title, "structure": book.structure,
                          "chapters": [{k: r[k] for k in keep} for r in rows], "warnings": warnings},
                         ensure_ascii=False))
        return 0
    unit = "sections" if rows and rows[0]["kind"] == "section" else "chapters"
    print(f"{book.title}: {len(rows)} {unit}" + (f", found from {book.structure}" if book.structure else ""))
    table = [("#", "LABEL", "PART", "TITLE", "FIRST WORDS", "WORDS")]
    for r in rows:
        table.append((str(r["number"]), r["label"] or "", _short(r["part"] or "", 28), _short(r["title"] or "", 36),
                      _short(r["first_words"], 44), str(r["words"])))
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    for row in table:
        cells = [row[i].rjust(widths[i]) if i in (0, 5) else row[i].ljust(widths[i]) for i in range(6)]
        print("  ".join(cells).rstrip())
    for w in warnings:
        print(f"warning: {w}")
    return 0


def _correction_args(args) -> tuple[str, int, str | None, str | None] | None:
    given = [(op, v) for op, v in (("rename", args.rename), ("merge", args.merge), ("split", args.split),
                                   ("front", args.front), ("back", args.back)) if v is not None]
    if len(given) > 1:
        raise VignetteError("Give one correction at a time.", hint="Run the command once for each correction.")
    if args.at is not None and (not given or given[0][0] != "split"):
        raise VignetteError("--at goes with --split.")
    if not given:
        return None
    op, value = given[0]
    if op == "rename":
        number, title = value
        if not str(number).isdigit():
            raise VignetteError(f"--rename takes a chapter number and a title, not {number!r}.")
        return op, int(number), title, None
    if op == "split" and not args.at:
        raise VignetteError("--split needs --at: the first words of the line where the new chapter begins.")
    return op, int(value), args.title, args.at


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "\u2026"
