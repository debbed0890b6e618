"""What a reader is to the pipeline, and the one optional step a reader can add: re-ranking passages.

A reader turns retrieved passages into an :class:`~vignette.documents.Answer` (the words, the quoted
evidence with its chapter, or an abstention). The pipeline knows readers only through :class:`Reader`:
a new kind of reader is one class that has these attributes and methods, handed to
:func:`retrieval.reader.load_reader` or to ``AnswerPipeline(reader=...)``. Nothing dispatches on a
reader's name.

A reader that can say how sure it is that each passage answers the question (:class:`PassageJudge`, the
extractive reader: its best span's margin over "not in this passage") may also re-rank the retrieved
passages before it reads them. That is a pipeline step, :func:`rerank_by_reader`, not a second way to read.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from vignette.documents import Answer, Book, Candidate


@runtime_checkable
class Reader(Protocol):
    """Reads retrieved passages and answers, quoting the book, or abstains.

    - ``name``: which reader answered, kept in ``Answer.reader`` ("extractive:reader", "sentence:...").
    - ``notice``: what each answer of this reader says about it (a stand-in says that it stands in), or None.
    - ``max_passages``: how many of the retrieved passages it reads (each costs a forward pass), or None
      for all it is given.
    - ``is_fallback``: True for the stand-in that answers when the configured model could not be used;
      its ``reason`` then says why (the status line and the About panel show it).
    """

    name: str
    notice: str | None
    max_passages: int | None
    is_fallback: bool

    def warm_up(self) -> None:
        """Load what the reader needs now, so the first question does not wait for it."""

    def read(self, question: str, candidates: Sequence[Candidate], book: Book | None = None) -> Answer:
        """Answer ``question`` from ``candidates`` (best first), or abstain."""


@runtime_checkable
class PassageJudge(Protocol):
    """A reader that scores each passage by how sure it is that the passage answers the question."""

    def passage_confidence(self, question: str, candidates: Sequence[Candidate]) -> list[float]:
        """One score per candidate, higher is surer; comparable across the candidates of one question."""


def rerank_by_reader(judge: PassageJudge, question: str, candidates: Sequence[Candidate], *, depth: int,
                     weight: float) -> list[Candidate]:
    """The first ``depth`` candidates re-ranked by the reader's confidence; the rest keep their order after.

    The reader's confidence (a cross-encoder's judgement: it reads question and passage together, where the
    retrievers encode them apart) is z-scored over the ``depth`` passages and added, times ``weight``, to
    their z-scored fused retrieval scores (:func:`retrieval.hybrid.score_fusion`). Each candidate keeps its
    retrieval score. FairytaleQA val: see the README (``python -m eval.fairytaleqa ... --reader-rerank 10``).
    """
    from retrieval.hybrid import score_fusion

    head = list(candidates[: max(1, depth)])
    if len(head) < 2:
        return list(candidates)
    confidence = judge.passage_confidence(question, head)
    views = {"fused": {i: c.score for i, c in enumerate(head)}, "reader": dict(enumerate(confidence))}
    order = [i for i, _ in score_fusion(views, range(len(head)), {"fused": 1.0, "reader": weight})]
    return [head[i] for i in order] + list(candidates[len(head):])
