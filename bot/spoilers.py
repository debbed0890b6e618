""""Not yet" versus "not in the book": what to say when the spoiler limit hides the answer.

Under a spoiler limit of chapter N, a question the pipeline cannot answer from chapters 1..N is asked once
more of the whole book. Only one bit of that second run ever leaves this module: whether the book answers
it from a chapter after N. Its answer, quote, chapter number and chapter title are dropped here, so a reply
built from :func:`answered_later` can say "The book tells you later, after chapter N." (N being the
reader's own limit) and nothing more.
"""

from __future__ import annotations

from typing import Any


def answered_later(pipeline: Any, book_id: str, question: str, upto_chapter: int | None) -> bool:
    """True when the whole book answers ``question`` from a passage after ``upto_chapter``.

    ``pipeline`` is an :class:`~retrieval.pipeline.AnswerPipeline` (``ask(book_id, question,
    upto_chapter=None) -> Answer``). Without a limit there is nothing later, so this is False; the caller
    asks it only when the limited run abstained.
    """
    if not upto_chapter:
        return False
    full = pipeline.ask(book_id, question, upto_chapter=None)
    if full.abstained or not str(full.answer or "").strip() or not full.evidence:
        return False
    # the answering passage must lie past the limit: an answer inside chapters 1..N that the limited run
    # missed (a different candidate pool) is not "later", and saying so would be untrue
    return int(full.evidence[0].chapter) > int(upto_chapter)


def later_reply(upto_chapter: int) -> str:
    """The reply for a hidden answer: only the reader's own limit is named, never the chapter that answers."""
    return (f"The book tells you later, after chapter {upto_chapter}. "
            f"(You've read up to chapter {upto_chapter}; ask again when you've read further.)")
