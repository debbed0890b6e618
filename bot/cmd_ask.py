"""`python -m bot ask --book ID [--upto-chapter N] [--json] "question"`: one question, one grounded answer."""

from __future__ import annotations

import argparse
import json

from vignette.settings import Settings


def add_parser(subparsers) -> None:
    ask = subparsers.add_parser(
        "ask",
        help="ask a book a question; the answer is quoted with its chapter",
        description="Ask a stored book one question. The answer comes with the sentence it was read from and "
        "its chapter, or \"The book doesn't say.\" when nothing in the book answers it. With --upto-chapter N "
        "nothing after chapter N is read (no spoilers); when the answer lies after it, the reply is only \"The "
        "book tells you later, after chapter N.\"",
        epilog='Example: python -m bot ask --book sample --upto-chapter 3 "Who found the letter?"',
    )
    ask.add_argument("question", help="the question, in English (quote it)")
    ask.add_argument("--book", required=True, metavar="ID",
                     help="the book's id (see `python -m bot books`); 'sample' is the bundled sample novel")
    ask.add_argument("--upto-chapter", metavar="N", help="read no further than chapter N as the book numbers it "
                     "(spoiler limit); where numbering restarts in each part, name the part: 'book 2 chapter 3'")
    ask.add_argument("--top-k", type=int, metavar="N", help="passages the reader reads (default: $VIGNETTE_TOP_K or 5)")
    ask.add_argument("--reader", metavar="X", help="question-answering model: a folder (e.g. from "
                     "`python -m retrieval.train_reader`), a hub id, or 'sentence' for the sentence fallback "
                     "(default: $VIGNETTE_READER)")
    ask.add_argument("--json", action="store_true", help='print JSON: {"answer", "abstained", "evidence": '
                     '[{"quote", "chapter", "chapter_title", "start", "end", "passage_id", "score"}], "reader", "later"}; "later" '
                     '(with --upto-chapter): the book answers after the limit; "notice" and "reader_reason" when the '
                     'best-matching sentence stands in for the question-answering model, and why')
    ask.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.pipeline import AnswerPipeline, check_question
    from retrieval.store import SAMPLE_ID, BookStore

    check_question(args.question, settings)  # before anything is loaded or ingested
    store = BookStore(settings)
    if args.book == SAMPLE_ID:
        store.ensure_sample()
    from bot.cmd_books import prepare_book

    prepare_book(store, args.book)  # a book stored by an older version: once, with progress
    pipeline = AnswerPipeline(store, settings)
    upto = None
    if args.upto_chapter is not None:
        from retrieval.chapter_report import limit_position

        upto = limit_position(store.get_book(args.book), args.upto_chapter)
    answer = pipeline.ask(args.book, args.question, upto_chapter=upto)
    later = False
    if answer.abstained and upto:  # "not yet" or "not in the book" (bot/spoilers.py)
        from bot.spoilers import answered_later, later_reply

        later = answered_later(pipeline, args.book, args.question, upto)
    reason = getattr(pipeline.reader, "reason", None)  # why a stand-in answers (a one-off command: said here)
    if args.json:
        data = answer.to_dict()
        if args.upto_chapter:
            data["later"] = later
        if answer.notice:
            data["notice"] = answer.notice
        if reason:
            data["reader_reason"] = reason
        print(json.dumps(data, ensure_ascii=False))
        return 0
    if later:
        print(later_reply(args.upto_chapter))
    elif answer.abstained:
        print("The book doesn't say." + (f" {answer.why}" if answer.why else ""))
    else:
        print(answer.answer)
        for ev in answer.evidence[:1]:
            print()
            print(f"\u201c{' '.join(ev.quote.split())}\u201d")
            print(f"\u2014 {_chapter_label(ev.chapter, ev.chapter_title)}")
    if answer.notice:
        print()
        print(f"note: {answer.notice}")
        if reason:
            print(f"      ({reason[0].upper() + reason[1:]}.)")
    return 0


def _chapter_label(number: int, title: str) -> str:
    """"Chapter 3: The Letter" as given by the loader; a bare title gets its number in front."""
    if title and title.lower().startswith(("chapter", "letter", "part", "book", "story", "volume", "stave", "act ",
                                           "canto", "section", "prologue", "prelude", "epilogue", "finale",
                                           "conclusion")):
        return title
    return f"Chapter {number}: {title}" if title else f"Chapter {number}"
