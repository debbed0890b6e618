"""The conversation as a LangGraph graph: understand the turn -> answer -> illustrate -> respond.

::

    START -> understand --(ask, both, spoiler + question)--> answer --(both)--> illustrate --> respond -> END
                  |                                             '----------(ask)----------------^
                  |--(illustrate)--> illustrate
                  '--(hello, help, spoiler, empty, too long)--> respond

* **understand**: checks the input, classifies the intent (:mod:`bot.intents`), applies a spoiler limit,
  and rewrites a follow-up into a standalone question (:mod:`bot.followups`) from the memory.
* **answer**: the answers pipeline (retrieval + reader) under the conversation's spoiler limit.
* **illustrate**: a scene prompt from the answer and its evidence, then a picture when image models are
  available; otherwise the prompt and a plain statement of why no picture was drawn.
* **respond**: the reply text, and one record appended to the conversation's history.

Memory is LangGraph's own persistence: a ``SqliteSaver`` checkpointer in ``settings.memory_path``, one
``thread_id`` per conversation (session name + book id), so a conversation continues after a restart and
two conversations never share state. The state holds only plain JSON values (no pickled objects), so a
memory file stays readable across versions. A damaged memory file is moved aside and a fresh one started
(:class:`ConversationMemory`); a damaged conversation inside it is set aside under a new name.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, TypedDict

from langchain_core.runnables import RunnableConfig

from vignette.documents import Answer
from vignette.errors import VignetteError

from bot.followups import OfflineResolver, history_from_records
from bot.intents import Intent, classify

log = logging.getLogger(__name__)

MAX_HISTORY = 50  # turns kept in a conversation's state; the follow-up resolver reads only the last few
TINY_HINT = ("To try the mechanics without real models, set VIGNETTE_IMAGE_MODELS=tiny-random "
             "(its pictures are noise).")


def _append_capped(old: list[dict] | None, new: list[dict] | None) -> list[dict]:
    merged = list(old or []) + list(new or [])
    return merged[-MAX_HISTORY:]


class ConversationState(TypedDict, total=False):
    # --- kept across turns (the conversation) ---
    book_id: str
    session: str | None
    upto_chapter: int | None  # the spoiler limit: only chapters 1..N are used; None: the whole book
    history: Annotated[list[dict], _append_capped]  # one record per turn
    last_answer: dict | None  # what "draw it" illustrates
    # --- this turn (reset by every input) ---
    text: str
    limit_request: int | None  # a spoiler limit set by the caller (app slider, --upto-chapter); 0: none
    draw_options: dict | None  # overrides of the drawing preset for this turn (size, steps, sampler, seed...)
    intent: dict | None
    rewrite: dict | None
    question: str | None
    answer: dict | None
    illustration: dict | None
    parts: list[str]  # the reply so far, paragraph by paragraph (what streaming shows)
    notices: list[str]
    error: str | None
    reply: str


TURN_KEYS = ("text", "limit_request", "draw_options", "intent", "rewrite", "question", "answer", "illustration", "parts",
             "notices", "error", "reply")


# --------------------------------------------------------------------------------------------------------
# Answers as plain data (the state must hold JSON values only)
# --------------------------------------------------------------------------------------------------------


def answer_to_state(answer: Answer) -> dict[str, Any]:
    return answer.to_state()


def answer_from_state(data: dict[str, Any]) -> Answer:
    return Answer.from_dict(data)


# --------------------------------------------------------------------------------------------------------
# Reply text
# --------------------------------------------------------------------------------------------------------


def chapter_label(evidence: dict[str, Any]) -> str:
    """"Chapter 3: The Letter in the Lantern Room" (the book's own heading when it already says so)."""
    number = evidence.get("chapter")
    title = str(evidence.get("chapter_title") or "").strip()
    # The loader's titles already cite the book's own numbering ("Stave 1: ...", "Book 2, Chapter 3: ...",
    # "Finale"): a position number in front of them would be wrong.
    if title and (re.match(r"^(chapter|letter|part|book|volume|story|prologue|prelude|epilogue|finale|conclusion|"
                           r"preface|adventure|stave|act|canto|section)\b",
                           title, re.I) or (number is not None and str(number) in title.split(":")[0])):
        return title
    if title:
        return f"Chapter {number}: {title}"
    return f"Chapter {number}"


def _quote(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "\u2026"
    return f"\u201c{text}\u201d"


def format_answer(answer: dict[str, Any], upto_chapter: int | None) -> str:
    """Answer, quote and chapter; or an honest abstain with the closest passage."""
    evidence = answer.get("evidence") or []
    if answer.get("later") and upto_chapter:
        from bot.spoilers import later_reply

        return later_reply(upto_chapter)  # nothing else: the closest passage would only distract
    if answer.get("abstained") or not str(answer.get("answer") or "").strip():
        lines = ["The book doesn't say, as far as I can find."]
        if upto_chapter:
            lines[0] = f"The book doesn't say, as far as I can find in chapters 1\u2013{upto_chapter}."
        if answer.get("why"):
            lines[0] = f"The book doesn't say: {answer['why'][0].lower()}{answer['why'][1:]}"
        if evidence:
            top = evidence[0]
            lines.append(f"The closest passage I found, in {chapter_label(top)}: {_quote(top.get('quote', ''))}")
        return "\n".join(lines)
    text = " ".join(str(answer["answer"]).split())
    if not evidence:
        return text
    top = evidence[0]
    quote = " ".join(str(top.get("quote", "")).split())
    if quote and _norm(quote) != _norm(text):
        return f"{text}\n{_quote(quote)}\n\u2014 {chapter_label(top)}"
    return f"{_quote(quote or text)}\n\u2014 {chapter_label(top)}"


def _norm(s: str) -> str:
    return re.sub(r"\W+", " ", s).strip().lower()


def help_text(title: str, upto: int | None, chapters: int | None, images: tuple[bool, str]) -> str:
    limit = (f"Right now I only use chapters 1\u2013{upto}." if upto else "Right now I use the whole book.")
    can_draw = ("" if images[0] else f"\n(No pictures can be drawn here at the moment: {images[1]})")
    return (
        f"I'm Vignette, a reading companion for \u201c{title}\u201d. I answer from the book itself, with the "
        f"quote and the chapter it comes from, and I say so when the book doesn't tell.\n"
        f"\u2022 Ask anything: \u201cWho found the letter?\u201d, then follow up: \u201cwhere did she hide it?\u201d, "
        f"\u201cwhy?\u201d\n"
        f"\u2022 Pictures: \u201cdraw it\u201d (the last answer), \u201cdraw the lighthouse in the storm\u201d, or "
        f"\u201cshow me where Wren hid the letter\u201d (answer and picture).\n"
        f"\u2022 No spoilers: \u201cI've read up to chapter 3\u201d (\u201cI've finished the book\u201d lifts it). "
        f"{limit}\n"
        f"\u2022 Each conversation is remembered, even after a restart." + can_draw
    )


_SMALLTALK_REPLIES = {
    "greeting": "Hello! I'm Vignette, your reading companion for \u201c{title}\u201d. Ask me anything about the "
                "book and I'll answer with a quote and its chapter. Say \u201chelp\u201d to see what else I can do.",
    "thanks": "You're welcome! Ask me anything else about \u201c{title}\u201d whenever you like.",
    "bye": "Goodbye! This conversation is saved; come back any time and we'll carry on where we left off.",
    "how_are_you": "Very well, thank you, and ready to talk about \u201c{title}\u201d. What would you like to know?",
    "ack": "Anything else you'd like to know about \u201c{title}\u201d?",
}


# --------------------------------------------------------------------------------------------------------
# The services the graph calls (injected: the real pipeline and illustrator, or others in tests)
# --------------------------------------------------------------------------------------------------------


class Services:
    """What the nodes need. ``companion`` supplies the book store, the answers pipeline, the illustrator,
    the follow-up rewriter for a book, and settings; the graph holds no model itself."""

    def __init__(self, companion: Any):
        self.c = companion

    @property
    def settings(self):
        return self.c.settings

    def book(self, book_id: str):
        return self.c.book(book_id)

    def rewriter(self, book_id: str):
        return self.c.rewriter(book_id)

    def resolver(self, book_id: str) -> OfflineResolver:
        return self.c.resolver(book_id)

    def ask(self, book_id: str, question: str, upto: int | None) -> Answer:
        return self.c.pipeline.ask(book_id, question, upto_chapter=upto)

    def answered_later(self, book_id: str, question: str, upto: int | None) -> bool:
        """Whether the book answers ``question`` after the limit (bot/spoilers.py; nothing else leaks)."""
        from bot.spoilers import answered_later

        return answered_later(self.c.pipeline, book_id, question, upto)

    def illustrate(self, book_id: str, answer: Answer | None, scene: str | None, upto: int | None,
                   session: str | None, draw_options: dict | None = None, progress: Callable | None = None,
                   cancel: Any = None) -> dict[str, Any]:
        return self.c.illustrate(book_id, answer, scene, upto, session, draw_options=draw_options,
                                 progress=progress, cancel=cancel)

    def images_available(self) -> tuple[bool, str]:
        return self.c.images_available()


# --------------------------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------------------------


def build_graph(services: Services, checkpointer: Any):
    """Compile the conversation graph with ``checkpointer`` (one thread per conversation)."""
    from langgraph.graph import END, START, StateGraph

    settings = services.settings

    def understand(state: ConversationState) -> dict[str, Any]:
        text = state.get("text") or ""
        book_id = state["book_id"]
        book = services.book(book_id)
        n_chapters = len(book.chapters) or None
        upto = state.get("upto_chapter")
        parts: list[str] = []
        updates: dict[str, Any] = {}

        # 1. a limit set by the caller (the app's slider, --upto-chapter)
        request = state.get("limit_request")
        if request is not None:
            upto = _checked_limit(int(request), n_chapters)
            updates["upto_chapter"] = upto

        # 2. check the input
        stripped = " ".join(text.split())
        if len(stripped) > settings.max_question_chars:
            msg = (f"That message is {len(stripped)} characters long; I can take up to "
                   f"{settings.max_question_chars}. Please ask one question at a time, in a sentence or two.")
            return {**updates, "intent": Intent("invalid").to_dict(), "error": msg, "parts": [msg]}
        intent = classify(stripped)
        updates["intent"] = intent.to_dict()
        if intent.kind == "empty":
            msg = "I didn't catch a question there. Ask me something about the book, or say \u201chelp\u201d."
            return {**updates, "error": "empty turn", "parts": [msg]}

        # 3. the spoiler limit
        question_text = intent.text if intent.kind in ("ask", "both") else ""
        if intent.kind == "spoiler":
            if intent.clear_limit:
                upto = None
                parts.append("Understood: you've finished the book, so I'll use all of it.")
            elif intent.chapter is not None and intent.chapter < 1:
                # the words of --upto-chapter and the app's limit (retrieval.pipeline.check_chapter_limit)
                parts.append(f"The chapter limit must be 1 or more, not {intent.chapter}. I've left the spoiler "
                             "limit as it was.")
            else:
                # "chapter 11" is the chapter the book prints as 11 (letters or a foreword may come first);
                # where numbering restarts in each part, the part must be named, or we ask which.
                resolved = _resolve_limit(book, intent.chapter, stripped)
                if resolved.question:
                    parts.append(resolved.question + " I've left the spoiler limit as it was.")
                    updates["upto_chapter"] = upto
                    return {**updates, "parts": parts}
                position = resolved.position if resolved.position is not None else intent.chapter
                upto = _checked_limit(position, n_chapters)
                if upto is None:
                    parts.append(f"This book has {n_chapters} chapters, so chapter {intent.chapter} covers all of "
                                 f"it: I'll use the whole book.")
                elif upto == intent.chapter:
                    parts.append(f"Got it: no spoilers. I'll only use chapters 1\u2013{upto} "
                                 f"(up to \u201c{_chapter_title(book, upto)}\u201d) until you tell me you've read more.")
                else:  # letters, a prologue or earlier parts come before it
                    parts.append(f"Got it: no spoilers. I'll only use the book up to the end of "
                                 f"\u201c{_chapter_title(book, upto)}\u201d until you tell me you've read more.")
            updates["upto_chapter"] = upto
            question_text = intent.text

        # 4. a follow-up becomes a standalone question
        history = history_from_records(state.get("history") or [])
        if question_text:
            rewrite = services.rewriter(book_id).rewrite(question_text, history)
            updates["rewrite"] = rewrite.to_dict()
            updates["question"] = rewrite.question
            if rewrite.rewritten:
                parts.append(f"(I read this as: \u201c{rewrite.question}\u201d)")
        elif intent.kind == "illustrate" and intent.text:
            scene, resolved = services.resolver(book_id).resolve_pronouns(intent.text, history)
            if resolved:
                intent.text = scene
                updates["intent"] = intent.to_dict()
                parts.append(f"(I read this as: \u201c{scene}\u201d)")
        updates["parts"] = parts
        return updates

    def route_after_understand(state: ConversationState) -> str:
        kind = (state.get("intent") or {}).get("kind")
        if state.get("error"):
            return "respond"
        if state.get("question"):
            return "answer"
        if kind == "illustrate":
            return "illustrate"
        return "respond"

    def answer(state: ConversationState) -> dict[str, Any]:
        upto = state.get("upto_chapter")
        parts = list(state.get("parts") or [])
        try:
            result = services.ask(state["book_id"], state["question"], upto)
        except VignetteError as err:
            parts.append(err.message + (f"\n{err.hint}" if err.hint else ""))
            return {"error": err.message, "parts": parts}
        data = answer_to_state(result)
        if upto and data["abstained"]:  # "not yet" or "not in the book": ask the whole book, keep one bit
            try:
                data["later"] = bool(services.answered_later(state["book_id"], state["question"], upto))
            except VignetteError:
                data["later"] = False
        parts.append(format_answer(data, upto))
        notices = list(state.get("notices") or [])
        if result.notice and not any((h.get("answer_notice") == result.notice) for h in state.get("history") or []):
            notices.append(result.notice)  # said once per conversation
        return {"answer": data, "parts": parts, "notices": notices}

    def route_after_answer(state: ConversationState) -> str:
        kind = (state.get("intent") or {}).get("kind")
        return "illustrate" if kind == "both" and not state.get("error") else "respond"

    def illustrate(state: ConversationState, config: RunnableConfig) -> dict[str, Any]:
        runtime = ((config or {}).get("configurable") or {})  # progress callback, cancel event: not saved
        intent = state.get("intent") or {}
        parts = list(state.get("parts") or [])
        book_id = state["book_id"]
        upto = state.get("upto_chapter")
        scene = intent.get("text") if intent.get("kind") == "illustrate" else None
        if intent.get("kind") == "both":
            source = state.get("answer")
        elif scene:
            source = None
        else:
            source = state.get("last_answer")
            if not source:
                parts.append("There's nothing to draw yet: ask me about the book first, or describe a scene "
                             "(\u201cdraw the lighthouse in the storm\u201d).")
                return {"parts": parts}
        if source is not None and source.get("later"):
            parts.append("That comes later in the book, so I won't draw it yet.")
            return {"parts": parts}
        if source is not None and (source.get("abstained") or not source.get("evidence")):
            parts.append("The book doesn't describe that, so there is no scene from it for me to draw.")
            return {"parts": parts}
        result = services.illustrate(book_id, answer_from_state(source) if source else None, scene, upto,
                                     state.get("session"), draw_options=state.get("draw_options"),
                                     progress=runtime.get("progress"), cancel=runtime.get("cancel"))
        parts.append(_format_illustration(result))
        return {"illustration": result, "parts": parts}

    def respond(state: ConversationState) -> dict[str, Any]:
        intent = state.get("intent") or {}
        kind = intent.get("kind")
        parts = list(state.get("parts") or [])
        book = services.book(state["book_id"])
        if kind == "smalltalk":
            parts.append(_SMALLTALK_REPLIES.get(intent.get("smalltalk") or "ack",
                                                _SMALLTALK_REPLIES["ack"]).format(title=book.title))
        elif kind == "help":
            parts.append(help_text(book.title, state.get("upto_chapter"), len(book.chapters),
                                   services.images_available()))
        notices = list(state.get("notices") or [])
        reply = "\n\n".join(p for p in parts if p)
        if notices:
            reply += "\n\n" + "\n".join(f"Note: {n}" for n in notices)
        answer = state.get("answer")
        illustration = state.get("illustration")
        record = {
            "time": time.time(),
            "user": state.get("text") or "",
            "intent": kind,
            "question": state.get("question"),
            "rewritten": bool((state.get("rewrite") or {}).get("rewritten")),
            "scene": intent.get("text") if kind == "illustrate" else None,
            "answer": answer.get("answer") if answer else None,
            "abstained": answer.get("abstained") if answer else None,
            "later": bool(answer.get("later")) if answer else False,
            "evidence": (answer.get("evidence") or [])[:1] if answer else [],
            "answer_notice": answer.get("notice") if answer else None,
            "image": (illustration or {}).get("image"),
            "scene_prompt": (illustration or {}).get("prompt"),
            "upto_chapter": state.get("upto_chapter"),
            "reply": reply,
        }
        updates: dict[str, Any] = {"reply": reply, "history": [record]}
        if answer is not None:
            updates["last_answer"] = answer
        return updates

    graph = StateGraph(ConversationState)
    graph.add_node("understand", understand)
    graph.add_node("answer", answer)
    graph.add_node("illustrate", illustrate)
    graph.add_node("respond", respond)
    graph.add_edge(START, "understand")
    graph.add_conditional_edges("understand", route_after_understand, ["answer", "illustrate", "respond"])
    graph.add_conditional_edges("answer", route_after_answer, ["illustrate", "respond"])
    graph.add_edge("illustrate", "respond")
    graph.add_edge("respond", END)
    return graph.compile(checkpointer=checkpointer)


def _checked_limit(chapter: int | None, n_chapters: int | None) -> int | None:
    """A spoiler limit as stored: None when it covers the whole book."""
    if chapter is None or chapter <= 0:
        return None
    if n_chapters and chapter >= n_chapters:
        return None
    return chapter


def _resolve_limit(book: Any, number: int, said: str):
    """What "up to chapter N" means in this book (retrieval.chapter_report.resolve_reading_limit); books
    whose chapters carry no printed numbers count positions."""
    from retrieval.chapter_report import ReadingLimit, resolve_reading_limit

    if not getattr(book, "chapters", None) or not any(getattr(c, "printed", None) for c in book.chapters):
        return ReadingLimit(number)
    unit = re.search(r"\b(letter|stave|canto)s?\s", said, re.I)  # "up to letter 3": the book's letters
    return resolve_reading_limit(book, number, said, kind=unit.group(1).lower() if unit else "chapter")


def _chapter_title(book: Any, number: int) -> str:
    try:
        return book.chapter(number).title
    except KeyError:
        return f"chapter {number}"


def _format_illustration(result: dict[str, Any]) -> str:
    lines = []
    prompt = result.get("prompt")
    if result.get("image"):
        lines.append(f"Here is the scene. Picture: {result['image']}")
        if prompt:
            lines.append(f"Scene prompt ({result.get('writer') or 'writer'}): {prompt}")
    else:
        if prompt:
            lines.append(f"Scene prompt ({result.get('writer') or 'writer'}): {prompt}")
        # the reason only: set-up hints (result["hint"]) belong to the status and the app's About panel
        lines.append(f"No picture was drawn: {result.get('reason') or 'the image models are unavailable'}")
    if result.get("notice"):
        lines.append(f"Note: {result['notice']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# The memory file
# --------------------------------------------------------------------------------------------------------


class ConversationMemory:
    """The SQLite file that LangGraph's ``SqliteSaver`` keeps every conversation in.

    Opening checks the file (``PRAGMA quick_check``). A file that is not a readable SQLite database is
    moved aside to ``conversations.sqlite.damaged-<time>`` (nothing is deleted) and a fresh memory is
    started; :attr:`notice` says so, for the user. A single conversation whose saved state cannot be read
    is set aside the same way, under the thread id ``<id>#damaged-<time>`` (:meth:`quarantine`).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.notice: str | None = None
        self.conn: sqlite3.Connection | None = None
        self.saver = self._open()

    def _open(self):
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._connect_checked()
        except sqlite3.DatabaseError as err:
            moved = self._move_aside()
            self.notice = (f"The conversation memory file could not be read ({err}); it was moved aside to "
                           f"{moved.name} and a fresh memory was started, so earlier conversations are not "
                           f"remembered.")
            log.warning(self.notice)
            conn = self._connect_checked()
        self.conn = conn
        saver = SqliteSaver(conn)
        saver.setup()
        return saver

    def _connect_checked(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), check_same_thread=False)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
            if not rows or rows[0][0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {rows[:1]}")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and not {"checkpoints", "writes"} <= tables:
                raise sqlite3.DatabaseError("it is a SQLite file, but not a conversation memory")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{n}")
            n += 1
        self.path.rename(target)
        for suffix in ("-wal", "-shm", "-journal"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.rename(target.with_name(target.name + suffix))
        return target

    def quarantine(self, thread_id: str) -> str:
        """Set a conversation's unreadable state aside (renamed, not deleted); returns the new name."""
        new_id = f"{thread_id}#damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        with self.saver.lock:
            for table in ("checkpoints", "writes"):
                self.conn.execute(f"UPDATE {table} SET thread_id = ? WHERE thread_id = ?", (new_id, thread_id))
            self.conn.commit()
        return new_id

    def thread_ids(self) -> list[str]:
        with self.saver.lock:
            return [r[0] for r in self.conn.execute("SELECT DISTINCT thread_id FROM checkpoints")]

    def delete(self, thread_id: str) -> None:
        self.saver.delete_thread(thread_id)

    def prune(self, thread_id: str, keep: int = 2) -> int:
        """Drop all but the newest ``keep`` checkpoints of a conversation (and their pending writes).

        LangGraph writes a checkpoint after every node of every turn, each holding the whole state, so a
        long conversation would otherwise grow the file by several copies of its history per turn. The
        newest checkpoint is all a conversation needs to continue. Returns the checkpoints removed."""
        with self.saver.lock:
            newest = [r[0] for r in self.conn.execute(
                "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
                "ORDER BY checkpoint_id DESC LIMIT ?", (thread_id, max(1, keep)))]
            if not newest:
                return 0
            marks = ",".join("?" * len(newest))
            removed = self.conn.execute(
                f"DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id NOT IN ({marks})",
                (thread_id, *newest)).rowcount
            self.conn.execute(f"DELETE FROM writes WHERE thread_id = ? AND checkpoint_id NOT IN ({marks})",
                              (thread_id, *newest))
            self.conn.commit()
        return removed

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def stream_turn(graph: Any, payload: dict[str, Any], config: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Run one turn, yielding (node, update) as each node finishes."""
    for update in graph.stream(payload, config, stream_mode="updates"):
        for node, values in update.items():
            yield node, values or {}


def turn_input(text: str, book_id: str, session: str, limit_request: int | None,
               draw_options: dict | None = None) -> dict[str, Any]:
    """The graph input for one turn: the per-turn channels reset, the conversation's channels untouched."""
    payload: dict[str, Any] = {key: None for key in TURN_KEYS}
    payload.update({"text": text, "book_id": book_id, "session": session, "parts": [], "notices": [],
                    "reply": "", "limit_request": limit_request, "draw_options": dict(draw_options or {})})
    return payload

