"""`python -m bot ingest PATH`, `python -m bot books`, `python -m bot remove ID`: the library."""

from __future__ import annotations

import argparse
import json
import sys

from vignette.settings import Settings


def add_parser(subparsers) -> None:
    ingest = subparsers.add_parser(
        "ingest",
        help="add a novel to the library (plain text, EPUB, Markdown or HTML)",
        description="Load a novel, split it into chapters and passages, and index it for questions. "
        "Re-ingesting the same book adds nothing; an interrupted ingest resumes where it stopped.",
    )
    ingest.add_argument("path", help="the book's file (.txt, .epub, .md, .html)")
    ingest.add_argument("--book-id", help="the id to store it under (default: derived from the title)")
    ingest.add_argument("--json", action="store_true", help="print the result as JSON: "
                        '{"book_id", "title", "author", "chapters", "passages", "added", "structure", "warnings", "encoded"}')
    ingest.set_defaults(func=run)

    books = subparsers.add_parser("books", help="list the books in the library",
                                  description="List the stored books: id, title, author, chapters, passages, and the size "
                                  "of each book's folder (MB = 2**20 bytes; --json: size_bytes, vectors_bytes).")
    books.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    books.set_defaults(func=run)

    remove = subparsers.add_parser("remove", help="delete a book from the library",
                                   description="Delete a stored book, its passages and its indexes.")
    remove.add_argument("book_id", metavar="ID", help="the book's id (see `python -m bot books`)")
    remove.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    commands = {"ingest": run_ingest, "books": run_books, "remove": run_remove}
    return commands[args.command](args, settings)


def run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.store import BookStore

    store = BookStore(settings)
    with _ProgressBar() as bar:
        report = store.ingest(args.path, book_id=args.book_id, progress=bar.update)
    from retrieval.chapter_report import structure_summary, structure_warnings

    book = store.get_book(report.book_id)
    warnings = structure_warnings(book)
    if args.json:
        data = report.to_dict()
        encoded = data.pop("encoded")  # the keys in the order --help gives them
        print(json.dumps({**data, "structure": book.structure, "warnings": warnings, "encoded": encoded},
                         ensure_ascii=False))
        return 0
    if report.added:
        print(f"Added {report.title!r}{_by(report.author)} as {report.book_id}: {report.chapters} chapters, "
              f"{report.passages} passages ({report.added} newly indexed).")
    else:
        print(f"{report.title!r}{_by(report.author)} is already in the library as {report.book_id} "
              f"({report.chapters} chapters, {report.passages} passages); nothing to add.")
    print(structure_summary(book))
    for w in warnings:
        print(f"warning: {w}")
    if warnings:
        print(f"See them all with `python -m bot chapters --book {report.book_id}`; correct them there "
              f"(--rename, --merge, --split, --front, --back) without re-embedding.")
    return 0


def run_books(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.store import BookStore

    store = BookStore(settings)
    books = store.books()
    if args.json:
        print(json.dumps([b.to_dict() for b in books], ensure_ascii=False))
    elif not books:
        print("The library is empty. Add a book with `python -m bot ingest PATH`.")
    else:
        rows = [("ID", "TITLE", "AUTHOR", "CHAPTERS", "PASSAGES", "SIZE")]
        rows += [(b.book_id, b.title, b.author or "-", str(b.chapters), str(b.passages), _mb(b.size_bytes))
                 for b in books]
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        for row in rows:
            cells = [row[i].ljust(widths[i]) if i < 3 else row[i].rjust(widths[i]) for i in range(6)]
            print("  ".join(cells).rstrip())
    for book_id in store.incomplete():
        print(f"note: the ingest of {book_id!r} was interrupted; run `python -m bot ingest` on it again to "
              f"finish, or `python -m bot remove {book_id}`.", file=sys.stderr)
    return 0


def run_remove(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.store import BookStore

    BookStore(settings).remove(args.book_id)
    print(f"Removed {args.book_id}.")
    return 0


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def _by(author: str | None) -> str:
    return f" by {author}" if author else ""


class _ProgressBar:
    """tqdm bars on stderr fed by the store's progress(done, total, stage) callback: one bar per stage that
    counts something ("embedding sentences", "storing vectors", ...), the stage named."""

    def __init__(self):
        self._bar = None
        self._stage = None

    def update(self, done: int, total: int, stage: str) -> None:
        from tqdm import tqdm

        if stage in {"splitting", "done"}:
            return
        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=total, desc=stage, unit="", file=sys.stderr, dynamic_ncols=True)
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "_ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def prepare_book(store, book_id: str) -> None:
    """Build what a book stored by an older version lacks (once, with a progress bar) before a question."""
    if not store.has_book(book_id) or not store.missing_parts(book_id):
        return
    print(f"note: {book_id!r} was stored by an older version of Vignette; preparing it for questions (once).",
          file=sys.stderr)
    with _ProgressBar() as bar:
        store.complete(book_id, progress=bar.update)
