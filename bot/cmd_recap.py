"""`python -m bot recap --book ID --upto-chapter N [--json]`: the story so far, in the book's own sentences."""

from __future__ import annotations

import argparse
import json

from vignette.settings import Settings


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "recap",
        help="the story so far: the sentences that carry each chapter, up to chapter N",
        description="An extractive recap of chapters 1..N: for each chapter, the sentences closest to the "
        "chapter's centre of meaning (MiniLM), without repeating each other. Every sentence is quoted from the "
        "book and cited with its chapter; nothing after chapter N is read. With --prose and a chat model "
        "(VIGNETTE_CHAT_MODEL) each chapter is retold as prose, still cited.",
        epilog="Example: python -m bot recap --book sample --upto-chapter 3",
    )
    p.add_argument("--book", required=True, metavar="ID", help="the book's id (see `python -m bot books`)")
    p.add_argument("--upto-chapter", type=int, metavar="N", help="recap chapters 1..N (default: the whole book)")
    p.add_argument("--sentences", type=int, default=3, metavar="K", help="sentences per chapter (default 3)")
    p.add_argument("--method", default="mmr", choices=["mmr", "centroid", "lead", "random"],
                   help="how sentences are chosen (default mmr; see the README's measurements)")
    p.add_argument("--prose", action="store_true", help="retell each chapter with the chat model, when one is set")
    p.add_argument("--chat-model", metavar="X", help="chat model for --prose (default: $VIGNETTE_CHAT_MODEL)")
    p.add_argument("--json", action="store_true", help='print JSON: {"upto_chapter", "method", "writer", '
                   '"chapters": [{"chapter", "title", "prose", "sentences": [{"text", "chapter", "start", "end", '
                   '"score"}]}]}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.companion import Companion
    from bot.recap import recap_for

    companion = Companion(settings)
    try:
        recap = recap_for(companion, args.book, args.upto_chapter, sentences=args.sentences, method=args.method,
                          prose=args.prose)
    finally:
        companion.close()
    if args.json:
        print(json.dumps(recap.to_dict(), ensure_ascii=False))
        return 0
    print(recap.to_text(), end="")
    for note in recap.notes:
        print(f"\nnote: {note}")
    return 0
