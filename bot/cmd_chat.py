"""`python -m bot chat` - talk with a book: one turn per line, follow-ups remembered.

    python -m bot chat --book sample                       # interactive (stdin is a terminal)
    printf 'Who found the letter?\\nwhere did she hide it?\\n' | python -m bot chat --book sample --json

Each line of stdin is one turn ("quit" or "exit" ends the chat). With --json every turn prints one JSON
object: intent, question (as rewritten), answer, abstained, evidence, image (a path or null), and more.
The conversation is kept in the data dir under --session (default "default"): run the command again with
the same session and it carries on where it was.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from vignette.errors import VignetteError
from vignette.settings import Settings

PROMPT = "you> "


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "chat",
        help="talk with a book: questions, follow-ups, pictures, spoiler limits",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="In the chat: ask anything; follow up with \"why?\", \"where did she go then?\"; say \"draw it\" "
               "or \"draw the lighthouse in the storm\"; \"I'm on chapter 3\" sets a spoiler limit; \"help\".",
    )
    p.add_argument("--book", default="sample", help="book id (see `python -m bot books`; default: the bundled sample)")
    p.add_argument("--session", default="default",
                   help="conversation name: letters, digits, '.', '_', '-' (default: default). Names with other "
                        "characters (e.g. '/') are refused, not altered.")
    p.add_argument("--json", action="store_true", help="print one JSON object per turn")
    p.add_argument("--upto-chapter", type=int, metavar="N",
                   help="spoiler limit: only use chapters 1..N (kept in the conversation; 0 lifts it)")
    p.add_argument("--models", dest="image_models", metavar="PROFILE",
                   help="image models for pictures: default, tiny-random, or a diffusers id/path "
                        "(default: $VIGNETTE_IMAGE_MODELS)")
    p.add_argument("--chat-model", dest="chat_model", metavar="SPEC",
                   help="chat model that rewrites follow-ups, e.g. ollama:llama3.1 or a local folder "
                        "(default: the offline resolver)")
    p.add_argument("--reader", help="extractive QA model (hub id or path) instead of the configured one")
    p.add_argument("--new", action="store_true", help="forget this session's conversation first")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    from bot.companion import Companion, check_session

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    # 1. check the inputs before any work
    session = check_session(args.session)
    if args.upto_chapter is not None and args.upto_chapter < 0:
        raise VignetteError(f"--upto-chapter must be 0 or more, not {args.upto_chapter}.")
    companion = Companion(settings)
    try:
        book = companion.book(args.book)
        from bot.cmd_books import prepare_book

        prepare_book(companion.store, book.book_id)  # a book stored by an older version: once, with progress
        if args.new:
            companion.reset(session, args.book)
        interactive = stdin.isatty() and not args.json
        if interactive:
            _banner(companion, book, session, stdout)
        # 2. one turn per line
        first = True
        while True:
            line = _read(stdin, interactive, stdout)
            if line is None:
                break
            text = line.rstrip("\r\n")
            if text.strip().lower() in ("quit", "exit", ":q", "/quit", "/exit"):
                break
            upto = args.upto_chapter if first else None
            first = False
            if args.json:
                turn = companion.reply(session, args.book, text, upto_chapter=upto)
                stdout.write(json.dumps(turn.to_dict(), ensure_ascii=False) + "\n")
                stdout.flush()
            else:
                if not interactive:
                    stdout.write(f"> {text}\n")
                _print_streamed(companion.stream(session, args.book, text, upto_chapter=upto), stdout)
    finally:
        companion.close()
    return 0


def _read(stdin: TextIO, interactive: bool, stdout: TextIO) -> str | None:
    if interactive:
        try:
            return input(PROMPT)
        except EOFError:
            stdout.write("\n")
            return None
    line = stdin.readline()
    return line if line else None


def _print_streamed(items, stdout: TextIO) -> None:
    shown = ""
    for item in items:
        if isinstance(item, str):
            new = item[len(shown):] if item.startswith(shown) else "\n" + item
            stdout.write(new)
            stdout.flush()
            shown = item
    stdout.write("\n\n")
    stdout.flush()


def _banner(companion, book, session: str, stdout: TextIO) -> None:
    status = companion.status()
    answers = status.get("answers") or {}
    reader = answers.get("reader") if isinstance(answers, dict) else None
    limit = companion.spoiler_limit(session, book.book_id)
    lines = [
        f"Vignette \u2014 \u201c{book.title}\u201d" + (f" by {book.author}" if book.author else "") +
        f", {len(book.chapters)} chapters. Session: {session}.",
        f"Answers: {reader or answers}. Follow-ups: {status['followups']}.",
        "Pictures: " + (status["images"]["message"] if status["images"]["available"]
                        else f"not available ({status['images']['message']})"),
    ]
    if limit:
        lines.append(f"Spoiler limit: chapters 1\u2013{limit}.")
    history = companion.history(session, book.book_id)
    if history:
        lines.append(f"Carrying on our conversation ({len(history)} earlier turns). Last: "
                     f"\u201c{history[-1].get('user', '')}\u201d")
    lines.append("Type a question (\"help\" for ideas, \"quit\" to leave).\n")
    stdout.write("\n".join(lines) + "\n")
