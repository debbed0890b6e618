"""`python -m bot people --book ID --upto-chapter N [--json]`: the main characters as of chapter N."""

from __future__ import annotations

import argparse
import json

from vignette.settings import Settings


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "people",
        help="the main characters as of chapter N: first chapter, appearances, looks, introducing passages",
        description="The book's main characters as a reader at chapter N knows them: the chapter where each "
        "first appears, how often they are named chapter by chapter, their looks from a character sheet built "
        "from chapters 1..N only, and the passages that introduce them. Nobody and nothing from after chapter "
        "N is used.",
        epilog="Example: python -m bot people --book sample --upto-chapter 2",
    )
    p.add_argument("--book", required=True, metavar="ID", help="the book's id (see `python -m bot books`)")
    p.add_argument("--upto-chapter", type=int, metavar="N", help="as of chapter N (default: the whole book)")
    p.add_argument("--json", action="store_true", help='print JSON: {"upto_chapter", "chapters", "people": '
                   '[{"name", "aliases", "first_chapter", "appearances", "mentions", "description", "passages"}]}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.people import people_as_of
    from retrieval.store import SAMPLE_ID, BookStore

    store = BookStore(settings)
    if args.book == SAMPLE_ID:
        store.ensure_sample()
    cast = people_as_of(store.get_book(args.book), args.upto_chapter)
    if args.json:
        print(json.dumps(cast.to_dict(), ensure_ascii=False))
    else:
        print(cast.to_text(), end="")
    return 0
