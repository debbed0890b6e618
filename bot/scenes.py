"""What to draw for a message: the answer to a question, or the passage that best matches a described scene.

The illustrator draws from evidence; finding that evidence is the bot's job, with the same pipeline and
retriever that answer questions (so the spoiler limit holds for pictures too):

    prompt, answer = scene_for(illustrator, pipeline, "sample", "Where did Wren hide the letter?")
    prompt, _ = scene_for(illustrator, pipeline, "sample", "Wren rowing the Little Auk at dawn")
"""

from __future__ import annotations

import re
from typing import Any

from vignette.documents import Answer, Book, Evidence
from vignette.errors import VignetteError

_QUESTION_START = re.compile(
    r"^\s*(who|whom|whose|what|which|where|when|why|how|is|are|was|were|do|does|did|can|could|will|would|should|"
    r"has|have|had)\b",
    re.I,
)


def is_question(text: str) -> bool:
    """ "Where did Wren hide the letter?" yes; "Wren on the cliff at dawn" no."""
    text = text.strip()
    return text.endswith("?") or bool(_QUESTION_START.match(text))


def scene_for(illustrator: Any, pipeline: Any, book_id: str, text: str, upto_chapter: int | None = None,
              style: str | None = None) -> tuple[Any, Answer | None]:
    """A question is answered (``pipeline``, an :class:`~retrieval.pipeline.AnswerPipeline`) and its answer
    and evidence become the scene; anything else is a described scene, and the passage that best matches it
    (within the spoiler limit) is its evidence. Returns (scene prompt, answer or None)."""
    text = " ".join((text or "").split())
    if not text:
        raise VignetteError("Say what to draw: a question about the book or a scene from it.")
    book = pipeline.store.get_book(book_id)
    if is_question(text):
        answer = pipeline.ask(book_id, text, upto_chapter=upto_chapter)
        return illustrator.scene_prompt(answer, book, style=style), answer
    evidence = best_evidence(pipeline.retriever, book, text, upto_chapter)
    return illustrator.described_scene(text, evidence, book, style=style), None


def best_evidence(retriever: Any, book: Book, text: str, upto_chapter: int | None = None) -> Evidence:
    """The passage that best matches a described scene (the pipeline's retriever), narrowed to the two
    sentences of it that share the most words with the description."""
    from retrieval.text import split_sentences

    found = retriever.retrieve(book.book_id, text, top_k=1, max_chapter=upto_chapter)
    if not found:
        raise VignetteError(
            f"Nothing in {book.title!r} matches that scene"
            + (f" up to chapter {upto_chapter}." if upto_chapter else ".")
        )
    passage, score = found[0].passage, float(found[0].score)
    wanted = {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2}
    spans = split_sentences(book.text, passage.start, passage.end) or [(passage.start, passage.end)]
    overlap = [len(wanted & set(re.findall(r"[a-z]+", book.text[s:e].lower()))) for s, e in spans]
    best = max(range(len(spans)), key=lambda k: (overlap[k] + (overlap[k + 1] if k + 1 < len(spans) else 0), -k))
    s, e = spans[best][0], spans[min(best + 1, len(spans) - 1)][1]
    return Evidence(quote=book.text[s:e], chapter=passage.chapter, chapter_title=passage.chapter_title, start=s,
                    end=e, passage_id=passage.passage_id, score=score)
