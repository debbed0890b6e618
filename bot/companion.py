"""The front door to a conversation: :class:`Companion`, built once by the app and the CLI.

    companion = Companion(settings)
    turn = companion.reply("alice", "sample", "Who found the letter?")
    turn.reply        # the text to show: answer, quote, "Chapter 3: ..."
    turn.to_dict()    # intent, question (as rewritten), answer, abstained, evidence, image, ...
    for item in companion.stream("alice", "sample", "where did she hide it?"):
        ...           # str: the reply so far (grows node by node); the last item is the Turn

It holds the book store, the answers pipeline, the illustrator and the conversation graph
(:mod:`bot.agent`), all cheap to construct: models load on first use. Conversations are kept in
``settings.memory_path`` by LangGraph's SQLite checkpointer, one thread per (session, book); a new
Companion over the same data dir carries on every conversation where it was.

Session names are *checked, not sanitised*: letters, digits, ``.``, ``_`` and ``-`` (at most 64, starting
with a letter or digit). Anything else (a slash, ``..``, a space) is refused with a clear message,
because quietly rewriting "a/b" into "a_b" could merge two people's conversations into one.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vignette.documents import Answer, Book
from vignette.errors import VignetteError
from vignette.settings import Settings

from bot.agent import (TINY_HINT, ConversationMemory, Services, build_graph, format_answer, stream_turn,
                       turn_input)
from bot.followups import CharacterIndex, ChatCondenser, OfflineResolver, make_rewriter

log = logging.getLogger(__name__)

SESSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")  # \Z: "$" would let a final newline through
DEFAULT_SESSION = "default"


def check_session(session: str | None) -> str:
    """The session name, or VignetteError saying which characters are allowed."""
    name = DEFAULT_SESSION if session is None else str(session)
    if not SESSION_RE.match(name):
        bad = sorted({c for c in name if not (c.isalnum() or c in "._-")})
        why = f"it contains {', '.join(repr(c) for c in bad)}" if bad else (
            "it is empty" if not name else "it is longer than 64 characters" if len(name) > 64
            else "it must start with a letter or a digit")
        raise VignetteError(
            f"The session name {name[:80]!r} is not allowed: {why}.",
            hint="Use letters, digits, '.', '_' and '-' only (at most 64, starting with a letter or digit), "
                 "e.g. --session alice-2. Names are refused rather than altered, so two conversations can "
                 "never be merged by accident.")
    return name


def thread_id(session: str, book_id: str) -> str:
    """One LangGraph thread per conversation: the session name and the book."""
    return f"{check_session(session)}@{book_id}"


@dataclass
class Turn:
    """One exchange: what was understood, what the book answered, and what was drawn."""

    session: str
    book_id: str
    text: str  # what the person typed
    intent: str  # ask, illustrate, both, spoiler, help, smalltalk, empty, invalid
    reply: str  # the text to show
    question: str | None = None  # the question as understood (rewritten when it was a follow-up)
    rewritten: bool = False
    rewrite_method: str | None = None  # "standalone", "resolver", "chat:<model>"
    answer: Answer | None = None
    image: str | None = None  # path of the PNG, when one was drawn
    scene_prompt: str | None = None
    illustration: dict[str, Any] | None = None  # writer, reason/hint when not drawn, notice, seed...
    upto_chapter: int | None = None  # the spoiler limit in force after this turn
    later: bool = False  # the book answers this after the spoiler limit ("The book tells you later")
    notices: list[str] = field(default_factory=list)
    error: str | None = None  # set for empty or too long turns and refused questions

    @property
    def abstained(self) -> bool | None:
        return None if self.answer is None else self.answer.abstained

    def to_dict(self) -> dict[str, Any]:
        """The JSON the CLI prints (one object per turn) and the app's API returns."""
        return {
            "session": self.session,
            "book_id": self.book_id,
            "user": self.text,
            "intent": self.intent,
            "question": self.question,
            "rewritten": self.rewritten,
            "answer": None if self.answer is None or self.answer.abstained else self.answer.answer,
            "abstained": self.abstained,
            "later": self.later,
            "evidence": [] if self.answer is None else [e.to_dict() for e in self.answer.evidence],
            "reader": None if self.answer is None else self.answer.reader,
            "image": self.image,
            "scene_prompt": self.scene_prompt,
            "upto_chapter": self.upto_chapter,
            "reply": self.reply,
            "notices": list(self.notices),
            "error": self.error,
        }


class Companion:
    """Store + answers pipeline + illustrator + conversation graph, built once (see module docstring).

    Any part can be injected (tests, or an app that already built one); otherwise each is built on
    first use from ``settings``.
    """

    def __init__(self, settings: Settings | None = None, *, store: Any = None, pipeline: Any = None,
                 illustrator: Any = None, chat_model: Any = None, draw_options: dict[str, Any] | None = None):
        self.settings = settings or Settings.from_env()
        self.draw_options = dict(draw_options or {})  # defaults for pictures drawn in chat (size, steps, preset...)
        self._store = store
        self._pipeline = pipeline
        self._illustrator = illustrator
        self._chat_model = chat_model
        self._indexes: dict[str, CharacterIndex] = {}
        self._rewriters: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._build = threading.RLock()  # the app calls from several threads: build each part once
        self._told: set[str] = set()  # conversations already told about a damaged memory file
        self.memory = ConversationMemory(self.settings.memory_path)
        self.graph = build_graph(Services(self), self.memory.saver)

    # ---- parts, built lazily ---------------------------------------------------------------------------
    @property
    def store(self):
        with self._build:
            if self._store is None:
                from retrieval.store import BookStore

                self._store = BookStore(self.settings)
        return self._store

    @property
    def pipeline(self):
        with self._build:
            if self._pipeline is None:
                from retrieval.pipeline import AnswerPipeline

                self._pipeline = AnswerPipeline(self.store, self.settings)
        return self._pipeline

    @property
    def illustrator(self):
        with self._build:
            if self._illustrator is None:
                from illustration.illustrator import Illustrator

                self._illustrator = Illustrator(self.settings, self.store)
        return self._illustrator

    def book(self, book_id: str) -> Book:
        if book_id == "sample" and not self.store.has_book("sample"):
            self.store.ensure_sample()
        return self.store.get_book(book_id)

    def character_index(self, book_id: str) -> CharacterIndex:
        with self._guard:
            index = self._indexes.get(book_id)
        if index is None:
            index = CharacterIndex.from_book(self.book(book_id))
            with self._guard:
                self._indexes[book_id] = index
        return index

    def resolver(self, book_id: str) -> OfflineResolver:
        return OfflineResolver(self.character_index(book_id))

    def rewriter(self, book_id: str):
        with self._guard:
            rewriter = self._rewriters.get(book_id)
        if rewriter is None:
            rewriter = make_rewriter(self.settings, self.character_index(book_id), model=self._chat_model)
            with self._guard:
                self._rewriters[book_id] = rewriter
        return rewriter

    # ---- illustration ------------------------------------------------------------------------------------
    def images_available(self) -> tuple[bool, str]:
        """(available, message) for the image models, decided from files only (nothing is loaded)."""
        return self.illustrator.models_status()

    def illustrate(self, book_id: str, answer: Answer | None, scene: str | None, upto: int | None,
                   session: str | None = None, draw_options: dict[str, Any] | None = None,
                   progress: Any = None, cancel: Any = None) -> dict[str, Any]:
        """A scene prompt for ``answer`` (or a described ``scene``) and, when the image models are here, a
        picture saved under ``images/<book>/<session>/``. Returns plain data for the conversation state:
        ``prompt``, ``writer``, ``image`` (path or None) and, when nothing was drawn, ``reason`` and ``hint``.
        ``draw_options`` (preset, size, steps, sampler, seed, clip_scale...) override :attr:`draw_options`;
        ``progress(dict)`` and ``cancel`` (a threading.Event) go to the sampler."""
        illustrator = self.illustrator
        # 1. the scene prompt (needs no image model)
        try:
            if answer is not None:
                prompt = illustrator.scene_prompt(answer, self.book(book_id))
            else:
                from bot.scenes import scene_for

                prompt, _ = scene_for(illustrator, self.pipeline, book_id, scene or "", upto_chapter=upto)
        except VignetteError as err:
            return {"prompt": None, "image": None, "reason": err.message, "hint": err.hint}
        result: dict[str, Any] = {"prompt": prompt.text, "negative_prompt": prompt.negative,
                                  "writer": prompt.writer, "evidence": prompt.evidence, "notice": prompt.notice,
                                  "image": None}
        # 2. can we draw? (never pretend: say why not, and show the prompt instead)
        ok, message = illustrator.models_status()
        if not ok:  # the reply says why in plain words; what to install goes to the status (the app's About)
            result.update(reason="the picture models are not installed on this computer",
                          hint=f"{message} {TINY_HINT}")
            return result
        # 3. draw
        folder = Path(self.settings.images_dir) / book_id / (session or DEFAULT_SESSION)
        out = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}.png"
        options = {**self.draw_options, **(draw_options or {})}
        try:
            picture = illustrator.draw(prompt, illustrator.options(options.pop("preset", None), **options),
                                       callback=progress, cancel=cancel, out=out, book_id=book_id)
        except VignetteError as err:
            result.update(reason=err.message, hint=err.hint)
            return result
        result.update(image=str(picture.path), seed=picture.seed, sampler=picture.sampler, steps=picture.steps,
                      size=list(picture.size), models=dict(picture.models), notice=picture.notice)
        return result

    # ---- conversation ------------------------------------------------------------------------------------
    def _lock(self, tid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(tid, threading.Lock())

    def _config(self, tid: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": tid}}

    def _check(self, session: str | None, book_id: str) -> tuple[str, str]:
        session = check_session(session)
        if not book_id:
            raise VignetteError("No book chosen.", hint="Pass --book ID (see `python -m bot books`).")
        self.book(book_id)  # unknown book -> VignetteError listing the known ones
        return session, thread_id(session, book_id)

    def _load_state(self, tid: str) -> tuple[dict[str, Any], list[str]]:
        """The conversation's saved state; an unreadable one is set aside (renamed) and started afresh."""
        notices = []
        if self.memory.notice and tid not in self._told:
            notices.append(self.memory.notice)
            self._told.add(tid)
        try:
            snapshot = self.graph.get_state(self._config(tid))
            return dict(snapshot.values or {}), notices
        except Exception as err:  # noqa: BLE001 - any failure to decode the saved state
            moved = self.memory.quarantine(tid)
            notices.append(f"This conversation's saved memory could not be read ({type(err).__name__}); it was "
                           f"set aside as {moved!r} and the conversation starts afresh.")
            log.warning("quarantined %s: %s", tid, err)
            return {}, notices

    def stream(self, session: str | None, book_id: str, text: str, upto_chapter: int | None = None, *,
               draw_options: dict[str, Any] | None = None, progress: Any = None,
               cancel: Any = None) -> Iterator[str | Turn]:
        """Yield the reply as it grows (one str per finished stage), then the :class:`Turn`.

        ``upto_chapter``, when given, sets the conversation's spoiler limit from this turn on (0 or a
        number at or past the last chapter: the whole book); otherwise the limit already in the
        conversation applies (set earlier by "I've read up to chapter N" or by a previous call).
        """
        session, tid = self._check(session, book_id)
        with self._lock(tid):
            _, notices = self._load_state(tid)
            payload = turn_input(text if text is not None else "", book_id, session, upto_chapter, draw_options)
            payload["notices"] = notices
            config = self._config(tid)
            config["configurable"].update(progress=progress, cancel=cancel)
            shown = ""
            for _node, update in stream_turn(self.graph, payload, config):
                parts = update.get("parts")
                if parts:
                    partial = "\n\n".join(p for p in parts if p)
                    if partial != shown:
                        shown = partial
                        yield partial
            values = dict(self.graph.get_state(self._config(tid)).values)
            self.memory.prune(tid)  # the newest checkpoint holds the whole conversation
            turn = self._turn(session, book_id, values)
            if turn.reply != shown:
                yield turn.reply
            yield turn

    def reply(self, session: str | None, book_id: str, text: str, upto_chapter: int | None = None,
              **kwargs: Any) -> Turn:
        """One turn, all at once (see :meth:`stream`)."""
        turn = None
        for item in self.stream(session, book_id, text, upto_chapter=upto_chapter, **kwargs):
            turn = item
        assert isinstance(turn, Turn)
        return turn

    def _turn(self, session: str, book_id: str, values: dict[str, Any]) -> Turn:
        from bot.agent import answer_from_state

        intent = values.get("intent") or {}
        rewrite = values.get("rewrite") or {}
        answer = values.get("answer")
        illustration = values.get("illustration") or None
        return Turn(
            session=session,
            book_id=book_id,
            text=values.get("text") or "",
            intent=intent.get("kind") or "ask",
            reply=values.get("reply") or "",
            question=values.get("question"),
            rewritten=bool(rewrite.get("rewritten")),
            rewrite_method=rewrite.get("method"),
            answer=answer_from_state(answer) if answer else None,
            image=(illustration or {}).get("image"),
            scene_prompt=(illustration or {}).get("prompt"),
            illustration=illustration,
            upto_chapter=values.get("upto_chapter"),
            later=bool((answer or {}).get("later")),
            notices=list(values.get("notices") or []),
            error=values.get("error"),
        )

    # ---- the conversation's memory ---------------------------------------------------------------------
    def history(self, session: str | None, book_id: str) -> list[dict[str, Any]]:
        """The turns of a conversation, oldest first (user, intent, question, answer, evidence, image, reply)."""
        session, tid = self._check(session, book_id)
        state, _ = self._load_state(tid)
        return list(state.get("history") or [])

    def spoiler_limit(self, session: str | None, book_id: str) -> int | None:
        session, tid = self._check(session, book_id)
        state, _ = self._load_state(tid)
        return state.get("upto_chapter")

    def set_spoiler_limit(self, session: str | None, book_id: str, chapter: int | None) -> int | None:
        """Save the conversation's spoiler limit now, without a turn (the app's "Reading up to" picker);
        0, None or a chapter at or past the last one mean the whole book. Returns the limit as stored."""
        from bot.agent import _checked_limit

        session, tid = self._check(session, book_id)
        limit = _checked_limit(None if chapter is None else int(chapter), len(self.book(book_id).chapters))
        with self._lock(tid):
            self._load_state(tid)
            self.graph.update_state(self._config(tid), {"upto_chapter": limit, "book_id": book_id,
                                                        "session": session}, as_node="respond")
            self.memory.prune(tid)
        return limit

    def reset(self, session: str | None, book_id: str) -> None:
        """Forget a conversation."""
        session, tid = self._check(session, book_id)
        with self._lock(tid):
            self.memory.delete(tid)

    def status(self) -> dict[str, Any]:
        """Which models answer, rewrite follow-ups and draw; for the app's status line and `--json`."""
        pipeline_status: Any
        try:
            pipeline_status = self.pipeline.status()
        except Exception as err:  # noqa: BLE001 - a status line must not fail
            pipeline_status = {"error": str(err)}
        if self._rewriters:
            rewriter = next(iter(self._rewriters.values()))
        else:
            rewriter = make_rewriter(self.settings, CharacterIndex(), model=self._chat_model)
        if isinstance(rewriter, ChatCondenser):
            model = rewriter.model()
            followups = (f"chat model {rewriter.spec or type(model).__name__}" if model is not None else
                         f"offline resolver (chat model unavailable: {rewriter.error})")
        else:
            followups = "offline resolver (no chat model configured)"
        try:
            ok, message = self.images_available()
        except Exception as err:  # noqa: BLE001
            ok, message = False, str(err)
        return {
            "answers": pipeline_status,
            "followups": followups,
            "images": {"available": ok, "message": message, "profile": self.settings.image_models,
                       "hint": None if ok else TINY_HINT},
            "memory": {"path": str(self.settings.memory_path), "notice": self.memory.notice},
        }

    def close(self) -> None:
        self.memory.close()


__all__ = ["Companion", "Turn", "check_session", "thread_id", "format_answer"]
