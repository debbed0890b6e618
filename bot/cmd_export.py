"""`python -m bot export --book ID --session NAME [--out FILE]`: a conversation as one Markdown file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vignette.errors import VignetteError
from vignette.settings import Settings


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="a conversation as one Markdown file: questions, answers, quotes with chapters, pictures",
        description="Write a conversation (kept under --session for --book) as one Markdown file: each "
        "question, the answer with its quote and chapter, and the pictures with the prompts they were drawn "
        "from (embedded, so the file stands alone; --images link writes their paths instead).",
        epilog="Example: python -m bot export --book sample --session evening --out evening.md",
    )
    p.add_argument("--book", required=True, metavar="ID", help="the book's id (see `python -m bot books`)")
    p.add_argument("--session", required=True, metavar="NAME", help="the conversation's session name")
    p.add_argument("--out", type=Path, metavar="FILE", help="write here (default: print to the terminal)")
    p.add_argument("--images", choices=["embed", "link"], default="embed",
                   help="embed the pictures in the file (default) or link to them")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.companion import Companion
    from bot.export import export_conversation

    companion = Companion(settings)
    try:
        if not companion.history(args.session, args.book):
            raise VignetteError(f"There is no conversation named {args.session!r} about {args.book!r}.",
                                hint="Start one with `python -m bot chat --book ID --session NAME`.")
        text = export_conversation(companion, args.book, args.session, images=args.images)
    finally:
        companion.close()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    if args.out.is_dir():
        raise VignetteError(f"{args.out} is a folder; give a file name, e.g. {args.out / 'conversation.md'}.")
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.out)
    print(f"Wrote {args.out} ({len(text):,} characters).", file=sys.stderr)
    return 0
