"""`python -m bot` - the command line.

Each sub-command lives in its own module (``bot/cmd_*.py``) exposing ``add_parser(subparsers)`` that
registers its arguments and sets ``func=run`` where ``run(args, settings) -> int``. Errors meant for a
person (:class:`~vignette.errors.VignetteError`) are printed without a traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from vignette import offline

offline.prepare()

from vignette.errors import VignetteError  # noqa: E402
from vignette.settings import Settings  # noqa: E402

# Order here is the order in --help.
COMMAND_MODULES = [
    "bot.cmd_books",  # ingest, books, remove
    "bot.cmd_chapters",  # chapters: the structure found, and corrections to it
    "bot.cmd_ask",  # ask: one question, a quoted answer or "the book doesn't say"
    "bot.cmd_chat",  # chat: a conversation with follow-ups, pictures and a spoiler limit
    "bot.cmd_illustrate",  # illustrate, characters: scene pictures and character sheets
    "bot.cmd_recap",  # recap: the story so far, up to chapter N
    "bot.cmd_people",  # people: the main characters as of chapter N
    "bot.cmd_export",  # export: a conversation as one Markdown file
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Vignette: talk with a novel. Ingest a book, ask it questions (answers are quoted with "
        "their chapter), chat with follow-ups, and illustrate its scenes.",
        epilog="Every setting can also be set with an environment variable VIGNETTE_<NAME>, e.g. "
        "VIGNETTE_DATA_DIR=/path/to/data.",
    )
    parser.add_argument("--data-dir", type=Path, help="where books, indexes, memory and images are kept "
                        "(default: $VIGNETTE_DATA_DIR or ./var)")
    parser.add_argument("--chroma-host", help="use a Chroma server (`chroma run`) at this host instead of the embedded store")
    parser.add_argument("--chroma-port", type=int, help="the Chroma server's port (default 8000)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {}
    for name in ("data_dir", "chroma_host", "chroma_port", "reader", "reranker", "chat_model", "image_models",
                 "image_preset", "embedding_model", "device", "dtype", "top_k"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings.from_env(**overrides)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
        return int(args.func(args, settings) or 0)
    except VignetteError as err:
        if getattr(args, "json", False):
            print(json.dumps({"error": err.message, "hint": err.hint}), file=sys.stdout)
        print(f"error: {err.message}", file=sys.stderr)
        if err.hint:
            print(err.hint, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
