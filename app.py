"""Vignette in the browser: the Gradio UI and the entry point of ``make run`` and the Hugging Face Space.

``build_demo(companion, startup)`` declares the UI and wires its events; the work is done by the
:class:`~bot.companion.Companion` it is given (built once by :func:`main`). The page:

* a header row: the book picker, "Reading up to" (the spoiler limit, by the book's own chapter names;
  saved as soon as it changes) and "+ Add a book" (an upload panel with the stage and the time left);
* a one-line status ("Offline \u00b7 answers quoted from the book \u00b7 pictures: ..."), "Loading\u2026"
  while the models warm in the background, and a folded "About" with the model details and set-up advice;
* the chat (``gr.Chatbot``, messages format) whose answers stream in, each with its quote and chapter and,
  under a spoiler limit, an "up to Ch. N" chip; three starter questions from the book; the question box,
  sticky at the bottom on a phone; Illustrate and Stop, enabled only when they can act;
* side panels (``gr.Tabs``): "Illustration" opens when a drawing starts: the preview and its progress
  line, the pictures of this conversation (captioned with chapter, prompt version and seed), the
  editable scene prompt and character sheet with "Regenerate", and the drawing settings.

Sessions: each browser keeps a random session id in its localStorage (``gr.BrowserState``, encrypted with
a key kept in the data dir, so a restarted app still reads it; the page needs that key, so every visitor
has it: the id's randomness, not the encryption, keeps conversations apart). The Companion's checkpointer keeps each
conversation under (session, book), so a reload or a restart carries on where it was. Pictures reach a
browser only as event outputs (Gradio copies them into its cache under a content hash); the data dir is
never put in ``allowed_paths``, so no session can fetch another's files.

Drawing, from the Illustrate button, the API or a chat turn such as "draw it", runs one at a time: the
events share the ``"gpu"`` queue slot, and the app's drawing lock also covers chat turns that draw, while
ordinary chat turns keep their own slots and stay responsive.

API (``gradio_client``; see docs/app-section.md): ``/ask`` (message, book_id="sample", session=None) ->
(reply, details) and ``/illustrate`` (scene="", book_id="sample", session=None, seed=None, preset=None,
size=None) -> (image, prompt). API sessions live in their own namespace (``api-<name>``), apart from
the browsers'.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

if __name__ == "__main__":  # say something at once: the imports below take a few seconds
    print("Starting Vignette\u2026", flush=True)

from vignette import offline  # noqa: E402

offline.prepare()  # GRADIO_ANALYTICS_ENABLED=False and the other quiet variables, before gradio loads

import gradio as gr  # noqa: E402

from vignette.documents import Answer  # noqa: E402
from vignette.errors import VignetteError  # noqa: E402
from vignette.plaintext import html_literal, markdown_literal  # noqa: E402
from vignette.settings import MIB, Settings  # noqa: E402

log = logging.getLogger("vignette.app")

SAMPLE_BOOK = "sample"
UPLOAD_TYPES = [".txt", ".epub", ".md", ".html", ".htm"]
SESSION_STORAGE_KEY = "vignette-session"  # the browser's localStorage key
_WEB_SESSION = re.compile(r"^web-[0-9a-f]{32}\Z")
_API_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,59}\Z")  # "api-" + 60 = the Companion's 64
SIZES = ["256x256", "384x384", "512x512", "512x768", "768x512", "640x384", "768x768"]
PREVIEW_EVERY = 2  # a preview every other sampling step
DRAW_INTENTS = ("illustrate", "both")
SUGGESTIONS = 3  # starter questions shown under the chat
READY_STAGE = "getting it ready for questions"  # the upload's last stage: the book's views loaded
BOOK_VIEW_SIZE = 12 + SUGGESTIONS  # outputs of a book's view (VignetteApp._show_book)
CSS = """
#vignette-header {align-items: flex-end; gap: 8px}
#vignette-brand {flex: 0 0 auto !important; width: auto !important; min-width: 0 !important; align-self: center}
#vignette-title {font-size: 1.5rem; margin: 0 8px 0 0}
#vignette-status {font-size: 0.9em}
#vignette-status p {margin: 0}
#vignette-chat img {max-width: 360px}
.vignette-chip {display: inline-block; padding: 0 0.6em; border-radius: 999px; font-size: 0.8em;
  background: #f5f5f4; color: #292524; border: 1px solid #78716c}
#vignette-book input, #vignette-upto input, .vignette-suggestion {text-overflow: ellipsis; white-space: nowrap;
  overflow: hidden}
#vignette-gallery .caption-label {text-overflow: ellipsis; white-space: nowrap; overflow: hidden}
#vignette-suggestions {flex-wrap: wrap; gap: 6px}
.vignette-suggestion {flex: 0 1 auto !important; min-width: 0 !important; max-width: 100%}
#vignette-drawing-progress p {margin: 4px 0}
@media (max-width: 640px) {
  #vignette-header {flex-wrap: wrap !important; row-gap: 4px}
  #vignette-brand {order: 0}
  #vignette-title {font-size: 1.2rem}
  #vignette-add-book {order: 1; margin-left: auto}
  #vignette-header > .form {order: 2; flex: 1 1 100% !important}  /* the book and reading pickers */
  #vignette-book, #vignette-upto {flex: 1 1 40% !important; min-width: 0 !important}
  #vignette-composer {position: sticky; bottom: 0; z-index: 20; box-shadow: 0 -4px 12px rgba(0, 0, 0, 0.12)}
  #vignette-chat {height: 48vh !important; min-height: 240px}
}
"""
# Outside the page's scoped CSS: the page container's "overflow: hidden" would stop the question box from
# sticking to the bottom of a phone's screen; "clip" cuts the same overflow without making a scroll box.
HEAD = "<style>@media (max-width: 640px) {.gradio-container {overflow: clip !important}}</style>"


# --- sessions ------------------------------------------------------------------------------------------


def new_web_session() -> str:
    return f"web-{uuid.uuid4().hex}"


def web_session(value: Any) -> str:
    """The browser's session id; a missing or malformed one (say, edited localStorage) gets a fresh id."""
    return value if isinstance(value, str) and _WEB_SESSION.match(value) else new_web_session()


def api_session(name: str | None) -> str:
    """An API caller's session: its own name in the "api-" namespace, or a one-off id when none is given
    (None or ""). A name is used exactly as given or refused, never trimmed or altered, as the CLI does."""
    if name is None or name == "":
        return f"api-{uuid.uuid4().hex}"
    name = str(name)
    if not _API_NAME.match(name):
        bad = sorted({c for c in name if not (c.isalnum() and c.isascii() or c in "._-")})
        why = (f"it contains {', '.join(repr(c) for c in bad)}" if bad else
               "it is longer than 60 characters" if len(name) > 60 else "it must start with a letter or a digit")
        raise gr.Error(f"The session name {name[:80]!r} is not allowed: {why}. Use 1-60 letters, digits, '.', "
                       "'_' or '-', starting with a letter or digit; names are refused rather than altered, so "
                       "two conversations can never be merged by accident.")
    return f"api-{name}"


def browser_secret(settings: Settings) -> str:
    """The key the browser's session id is encrypted with; kept in the data dir so that a restarted app
    reads the ids its browsers already hold."""
    path = Path(settings.data_dir) / "app-secret"
    try:
        text = path.read_text(encoding="utf-8").strip()
        if len(text) >= 16:
            return text
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    text = secrets.token_urlsafe(24)
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o600)
    return text


# --- a Chroma server outage ----------------------------------------------------------------------------


def store_outage(err: BaseException, settings: Settings) -> str | None:
    """The plain message for a failure caused by an unreachable Chroma server (``err`` or anything in its
    chain is a refused or failed connection), else None. The store reconnects by itself when the server
    is back, so the next question works without a restart."""
    if not settings.chroma_host:
        return None
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        name = type(cause).__name__
        if isinstance(cause, ConnectionError) or name in ("ConnectError", "ConnectTimeout", "RemoteProtocolError",
                                                           "ReadError", "NetworkError"):
            return (f"The book store is not reachable at {settings.chroma_host}:{settings.chroma_port}; is "
                    "`chroma run` running?")
        cause = cause.__cause__ or cause.__context__
    return None


# --- words on the page --------------------------------------------------------------------------------


def chapter_label(evidence: dict[str, Any]) -> str:
    from bot.agent import chapter_label as label

    return label(evidence) if evidence.get("chapter") is not None else ""


def short_quote(text: str, limit: int = 160) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "\u2026"


def caption(evidence: dict[str, Any] | None, prompt: str = "", version: int | None = None,
            seed: int | None = None) -> str:
    """A gallery caption: the chapter and the passage the picture shows, then the prompt's version and
    the seed, so two drawings of one passage can be told apart."""
    evidence = evidence or {}
    quote = short_quote(evidence.get("quote", ""))
    label = chapter_label(evidence)
    if quote:
        text = f"{label}: \u201c{quote}\u201d" if label else f"\u201c{quote}\u201d"
    else:
        text = short_quote(prompt)
    tags = ([f"prompt v{version}"] if version else []) + ([f"seed {seed}"] if seed is not None else [])
    return " \u00b7 ".join([text] + tags)


def reply_text(reply: str, image: str | None) -> str:
    """The reply as the chat shows it: the picture appears inline, so its server path is left out."""
    if image:
        reply = reply.replace(f" Picture: {image}", "").replace(f"Picture: {image}", "")
    return reply


def with_chip(reply: str, chip: str) -> str:
    """The reply with its "up to Ch. N" chip on top (when a spoiler limit is on)."""
    return f'<span class="vignette-chip">{chip}</span>\n\n{reply}' if chip else reply


def sheet_text(sheets, prompt_text: str) -> str:
    """The character sheets of the people in the scene, one "Name: description" per line (editable)."""
    if sheets is None:
        return ""
    return "\n".join(f"{s.name}: {s.description}" for s in sheets.mentioned_in(prompt_text))


def parse_sheet_text(text: str) -> dict[str, str]:
    """"Name: description" lines -> {name: description}; other lines are ignored."""
    found = {}
    for line in (text or "").splitlines():
        name, sep, description = line.partition(":")
        if sep and name.strip() and description.strip():
            found[name.strip()] = " ".join(description.split())
    return found


def parse_seed(seed: Any, random_seed: bool) -> int | None:
    if random_seed or seed is None or str(seed).strip() == "":
        return None
    try:
        return int(float(seed))
    except (TypeError, ValueError):
        raise gr.Error(f"The seed {seed!r} is not a whole number; tick \u201crandom\u201d or type e.g. 42."
                       ) from None


# --- a picture's record on disk --------------------------------------------------------------------------


def _in_worker(name: str, produce: Callable[[Callable[[tuple[str, Any]], None]], None],
               cancel: threading.Event) -> Iterator[tuple[str, Any]]:
    """Run ``produce(put)`` in a daemon thread and yield the (kind, value) events it puts, as they come;
    if it raises, ("error", exception) is the last event. Closing the generator (Stop, a closed tab) sets
    ``cancel``, which the sampler checks every step."""
    events: queue.Queue = queue.Queue()
    end = ("end", None)

    def work() -> None:
        try:
            produce(events.put)
            events.put(end)
        except BaseException as err:  # noqa: BLE001 - handed on as the last event
            events.put(("error", err))

    threading.Thread(target=work, name=name, daemon=True).start()
    try:
        while True:
            event = events.get()
            if event is end:
                return
            yield event
            if event[0] == "error":
                return
    finally:
        cancel.set()


@dataclass
class DrawStep:
    """A sampling step of a picture asked for in the chat, with its preview every PREVIEW_EVERY steps."""

    step: int
    steps: int
    preview: Any = None  # a PIL image, or None between previews


@dataclass
class Picture:
    """A picture of this conversation: the PNG, what it was drawn from, and when."""

    path: str
    prompt: str
    evidence: dict[str, Any] | None
    time: float
    seed: int | None = None
    notice: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- the handlers ------------------------------------------------------------------------------------------


class VignetteApp:
    """The event handlers over one Companion. Holds no conversation itself: that is the Companion's.

    Handlers return tuples in the order of the outputs ``build_demo`` wires (named in each docstring)."""

    def __init__(self, companion, startup=None):
        self.c = companion
        self.settings = companion.settings
        self.startup = startup  # bot.startup.Startup while models warm in the background; None: ready
        self._cancels: dict[str, threading.Event] = {}
        self._guard = threading.Lock()
        self._drawing = threading.Lock()  # one picture at a time, whichever event asked for it
        self._staging: Path | None = None

    # ---- start ------------------------------------------------------------------------------------------
    def loading(self) -> str:
        """What is still loading ("" once ready)."""
        if self.startup is None or self.startup.ready.is_set():
            return ""
        return self.startup.stage or "Loading\u2026"

    def wait_for_library(self) -> None:
        if self.startup is not None:
            self.startup.library.wait(600)

    def wait_until_ready(self) -> None:
        if self.startup is not None:
            self.startup.wait(600)

    # ---- books and sessions ---------------------------------------------------------------------------
    def book_choices(self) -> list[tuple[str, str]]:
        books = sorted(self.c.store.books(), key=lambda b: (b.book_id != SAMPLE_BOOK, b.title.lower()))
        return [(f"{b.title} \u2014 {b.author}" if b.author else b.title, b.book_id) for b in books]

    def known_book(self, book_id: Any) -> str:
        ids = [v for _, v in self.book_choices()]
        if isinstance(book_id, str) and book_id in ids:
            return book_id
        return SAMPLE_BOOK if SAMPLE_BOOK in ids else (ids[0] if ids else SAMPLE_BOOK)

    def chapters(self, book_id: str) -> int:
        return max(1, len(self.c.book(book_id).chapters))

    def reading_position(self, session: str, book_id: str) -> dict:
        """The "Reading up to" picker for the book: its chapters by their own names, at the saved limit; a
        book with one chapter (or none found) gets a fixed picker that says what it covers."""
        from bot.reading import coverage_note, reading_choices, reading_value

        book = self.c.book(book_id)
        choices = reading_choices(book)
        note = coverage_note(book)
        return gr.update(choices=choices, value=reading_value(book, self.c.spoiler_limit(session, book_id)),
                         interactive=len(choices) > 1, info=note or None)

    def chip(self, book_id: str, limit: int | None) -> str:
        from bot.reading import limit_chip

        return limit_chip(self.c.book(book_id), limit)

    def starters(self, session: str, book_id: str) -> list[str]:
        """Three questions to start with, within the reader's spoiler limit."""
        from bot.reading import starter_questions

        try:
            return starter_questions(self.c.book(book_id), self._sheets(book_id),
                                     self.c.spoiler_limit(session, book_id))
        except Exception:  # noqa: BLE001 - suggestions are a courtesy; the page must not fail for them
            log.exception("no starter questions for %s", book_id)
            return []

    def suggestion_buttons(self, questions: list[str]) -> tuple:
        return tuple(gr.update(value=questions[i], visible=True) if i < len(questions) else
                     gr.update(value="", visible=False) for i in range(SUGGESTIONS))

    def session_folder(self, session: str, book_id: str) -> Path:
        """Where this session's pictures of the book are kept (the Companion puts chat pictures there too)."""
        return Path(self.settings.images_dir) / book_id / session

    # ---- what the browser shows ------------------------------------------------------------------------
    def pictures(self, session: str, book_id: str) -> list[Picture]:
        """This session's pictures of the book, oldest first: those drawn in chat turns and by the
        Illustrate button. Each carries its prompt's version: the first prompt drawn of a passage is v1,
        an edited one v2, and so on (the same prompt drawn again keeps its version, with another seed)."""
        found: dict[str, Picture] = {}
        for record in self.c.history(session, book_id):
            image = record.get("image")
            if image and Path(image).is_file():
                data = _sidecar(Path(image))  # the picture's own record names the passage it shows
                evidence = data.get("evidence") or (record.get("evidence") or [None])[0]
                found[str(Path(image).resolve())] = Picture(
                    image, data.get("prompt") or record.get("scene_prompt") or "", evidence,
                    float(record.get("time") or 0), data.get("seed"), data.get("notice"),
                    {"negative": data.get("negative_prompt"), "writer": data.get("writer")})
        folder = self.session_folder(session, book_id)
        for png in sorted(folder.glob("*.png")) if folder.is_dir() else []:
            key = str(png.resolve())
            if key not in found:  # drawn by the Illustrate button or the API, not by a chat turn
                data = _sidecar(png)
                found[key] = Picture(str(png), data.get("prompt", ""), data.get("evidence"),
                                     png.stat().st_mtime, data.get("seed"), data.get("notice"),
                                     {"button": True, "negative": data.get("negative_prompt"),
                                      "writer": data.get("writer")})
        pictures = sorted(found.values(), key=lambda p: p.time)
        versions: dict[Any, list[str]] = {}
        for picture in pictures:
            passage = (picture.evidence or {}).get("passage_id") or (picture.evidence or {}).get("start")
            prompts = versions.setdefault(passage, [])
            if picture.prompt not in prompts:
                prompts.append(picture.prompt)
            picture.extra["version"] = prompts.index(picture.prompt) + 1
        return pictures

    def gallery(self, session: str, book_id: str) -> dict:
        """The panel's gallery: hidden until the conversation has a picture."""
        pictures = self.pictures(session, book_id)
        items = [(self.servable(p.path), self.caption(p)) for p in pictures]
        return gr.update(value=items, visible=bool(items))

    @staticmethod
    def caption(picture: Picture) -> str:
        return caption(picture.evidence, picture.prompt, picture.extra.get("version"), picture.seed)

    def chat_history(self, session: str, book_id: str) -> list[dict]:
        """The conversation as chat messages, its pictures (from chat turns and the button) in time order;
        answers given under a spoiler limit carry their "up to Ch. N" chip."""
        items: list[tuple[float, list[dict]]] = []
        for record in self.c.history(session, book_id):
            image = record.get("image")
            reply = reply_text(record.get("reply") or "", image)
            if record.get("question"):
                reply = with_chip(markdown_literal(reply), self.chip(book_id, record.get("upto_chapter")))
            else:
                reply = markdown_literal(reply)
            messages = [{"role": "user", "content": markdown_literal(record.get("user") or "")},
                        {"role": "assistant", "content": reply}]
            if image and Path(image).is_file():
                messages.append({"role": "assistant", "content": {"path": self.servable(image)}})
            items.append((float(record.get("time") or 0), messages))
        for picture in self.pictures(session, book_id):
            if picture.extra.get("button"):
                items.append((picture.time, self.picture_messages(picture)))
        items.sort(key=lambda item: item[0])
        return [m for _, messages in items for m in messages]

    def picture_messages(self, picture: Picture) -> list[dict]:
        text = f"Illustration of {self.caption(picture)}"
        if picture.notice:
            text += f"\n\nNote: {picture.notice}"
        text = markdown_literal(text)
        return [{"role": "assistant", "content": text},
                {"role": "assistant", "content": {"path": self.servable(picture.path)}}]

    def servable(self, path: str) -> str:
        """A path Gradio may copy into its cache. Pictures under the working or temp dir go as they are;
        others (a data dir on a Space's /data volume) are staged through a private temp folder, so the data
        dir never has to be opened with ``allowed_paths``."""
        resolved = Path(path).resolve()
        roots = [Path.cwd().resolve(), Path(tempfile.gettempdir()).resolve()]
        if any(resolved.is_relative_to(root) for root in roots):
            return str(resolved)
        with self._guard:
            if self._staging is None:
                self._staging = Path(tempfile.mkdtemp(prefix="vignette-app-"))
        target = self._staging / uuid.uuid4().hex / resolved.name
        target.parent.mkdir(parents=True)
        shutil.copyfile(resolved, target)
        return str(target)

    def _status(self) -> dict[str, Any] | None:
        try:
            return self.c.status()
        except Exception as err:  # noqa: BLE001 - the status line must never break the page
            return {"answers": {"error": str(err)}}

    def status(self) -> str:
        """The one line above the chat."""
        from bot.startup import status_line

        loading = self.loading()
        return status_line(None if loading else self._status(), loading)

    def about(self) -> str:
        """The About panel: model details and set-up advice, said once here rather than in answers."""
        from bot.startup import about_text

        status = self._status() or {}
        hints = []
        if (status.get("answers") or {}).get("reader_fallback"):
            from retrieval.reader import reader_setup_hint

            hints.append(reader_setup_hint(self.settings))
        if self.startup is not None and self.startup.error:
            hints.append(f"Starting up: {self.startup.error}")
        return about_text(status, hints)

    def pictures_available(self) -> bool:
        try:
            return bool(self.c.images_available()[0])
        except Exception:  # noqa: BLE001
            return False

    def can_illustrate(self, session: str, book_id: str) -> bool:
        return self.pictures_available() and self.last_answer(session, book_id) is not None

    def poll(self):
        """The status timer, while loading: (status line, About, timer); the timer stops once ready."""
        loading = self.loading()
        return self.status(), self.about(), gr.update(active=bool(loading))

    # ---- page load, book change, reading position, upload ---------------------------------------------
    def load(self, stored: Any):
        """Page load: the reader's book and conversation (once the library is there). Outputs: BOOK_VIEW."""
        self.wait_for_library()
        stored = stored if isinstance(stored, dict) else {}
        session = web_session(stored.get("session"))
        book_id = self.known_book(stored.get("book"))
        return self._show_book(session, book_id)

    def change_book(self, book_id: str, stored: Any):
        session = web_session((stored or {}).get("session"))
        return self._show_book(session, self.known_book(book_id))

    def _show_book(self, session: str, book_id: str, chat: list[dict] | None = None):
        """BOOK_VIEW: (stored state, book picker, reading position, chat, gallery, preview, progress line,
        prompt, sheet, scene state, Illustrate, Regenerate, suggestion 1..3)."""
        prompt, sheet, scene = "", "", None
        pictures = self.pictures(session, book_id)
        if pictures:  # the last picture's prompt, ready for Regenerate
            scene = self._scene_of(pictures[-1], book_id)
            prompt, sheet = scene.text, sheet_text(self._sheets(book_id), scene.text)
        history = self.chat_history(session, book_id) if chat is None else chat
        return ({"session": session, "book": book_id},
                gr.update(choices=self.book_choices(), value=book_id),
                self.reading_position(session, book_id),
                history,
                self.gallery(session, book_id),
                gr.update(value=None, visible=False), "",
                prompt, sheet, scene,
                gr.update(interactive=self.can_illustrate(session, book_id)),
                gr.update(interactive=scene is not None),
                *self.suggestion_buttons(self.starters(session, book_id)))

    @staticmethod
    def _scene_of(picture: Picture, book_id: str):
        from illustration.scene import ScenePrompt

        return ScenePrompt(text=picture.prompt, negative=picture.extra.get("negative") or "", parts={},
                           writer=picture.extra.get("writer") or "rule-based", book_id=book_id,
                           evidence=picture.evidence)

    def set_position(self, upto: Any, stored: Any):
        """The reader moved "Reading up to": save it now (a reload keeps it) and offer questions within it.
        Outputs: (suggestion 1..3)."""
        stored = stored or {}
        session = web_session(stored.get("session"))
        book_id = self.known_book(stored.get("book"))
        try:
            self.c.set_spoiler_limit(session, book_id, int(upto) if upto else None)
        except (TypeError, ValueError, VignetteError) as err:
            raise gr.Error(getattr(err, "message", None) or f"That reading position cannot be used: {err}") from None
        return self.suggestion_buttons(self.starters(session, book_id))

    def upload(self, file: str | None, stored: Any):
        """Ingest an uploaded book, streaming (upload note, ...) updates: the stage and the time left while
        it works; then the new book with one "ready" message and three starter questions in its chat.
        A refused file empties the upload box and the note says why; nothing stored is touched (the store
        writes a new book aside and renames it into place only when it is complete).
        Outputs: BOOK_VIEW + (upload box, upload note)."""
        keep = tuple(gr.update() for _ in range(BOOK_VIEW_SIZE))

        def refuse(reason: str):
            gr.Warning(html_literal(reason))
            return keep + (gr.update(value=None), f"**Not added.** {markdown_literal(reason)}")

        if not file:
            yield refuse("No file arrived. Choose a .txt, .epub, .md or .html file.")
            return
        path = Path(file)
        name = path.name
        if path.suffix.lower() not in UPLOAD_TYPES:
            yield refuse(f"\u201c{name}\u201d is not a book file Vignette can read: upload a .txt, .epub, .md "
                         "or .html file.")
            return
        size = path.stat().st_size
        if size > self.settings.max_file_bytes:
            shown = f"{size / MIB:.1f}" if size >= MIB else f"{size / MIB:.3g}"  # a small limit: no "0.0 MiB"
            yield refuse(f"\u201c{name}\u201d is {shown} MiB; the limit is {self.settings.max_file_mb:g} "
                         "MiB (a long novel is about 1\u20132 MiB of text).")
            return
        self.wait_for_library()
        yield keep + (gr.update(), f"Reading \u201c{name}\u201d\u2026")
        events: queue.Queue = queue.Queue()
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["report"] = self.ingest_upload(path, lambda d, t, s: events.put((d, t, s)))
            except BaseException as err:  # noqa: BLE001 - handed to the handler
                result["error"] = err
            events.put(None)

        threading.Thread(target=work, name="upload", daemon=True).start()
        tracker = IngestProgress(name)
        while True:
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                yield keep + (gr.update(), tracker.line())
                continue
            if event is None:
                break
            tracker.update(*event)
            yield keep + (gr.update(), tracker.line())
        if "error" in result:
            err = result["error"]
            if isinstance(err, VignetteError):
                yield refuse(err.message + (f" {err.hint}" if err.hint else ""))
                return
            outage = store_outage(err, self.settings)
            if outage is not None:
                yield refuse(outage)
                return
            log.exception("upload failed", exc_info=err)
            yield refuse(f"\u201c{name}\u201d could not be added ({type(err).__name__}: {err}).")
            return
        report = result["report"]
        session = web_session((stored or {}).get("session"))
        view = self._show_book(session, report.book_id)
        questions = self.starters(session, report.book_id)
        from bot.startup import plural

        if report.added:
            text = (f"\u201c{markdown_literal(report.title)}\u201d is ready as {report.book_id}: "
                    f"{plural(report.chapters, 'chapter')}, {plural(report.passages, 'passage')}.")
        else:
            text = (f"\u201c{markdown_literal(report.title)}\u201d was already in the library (as "
                    f"{report.book_id}); nothing changed.")
        if questions:
            text += " You could ask:\n" + "\n".join(f"- {q}" for q in questions)
        chat = list(view[3]) + [{"role": "assistant", "content": text}]
        yield view[:3] + (chat,) + view[4:] + (gr.update(value=None), text.split(" You could ask")[0])

    def ingest_upload(self, path: Path, progress):
        """Load an uploaded book and store it under an id of its own: its title's slug, or, when that is
        taken by another text or the title has no Latin letters, the slug with a hash of the text
        (:func:`retrieval.book_ids.unique_book_id`); the id is shown in the notice."""
        from retrieval.book_ids import unique_book_id
        from retrieval.loading import load_book

        book = load_book(path, max_bytes=self.settings.max_file_bytes)
        book.book_id = unique_book_id(book, self.c.store)
        report = self.c.store.add_book(book, progress=progress)
        progress(0, 1, READY_STAGE)  # its first question then costs no more than the rest
        self.c.pipeline.prepare(report.book_id)
        progress(1, 1, READY_STAGE)
        return report

    # ---- chat ---------------------------------------------------------------------------------------------
    @staticmethod
    def take_message(text: str, history: list[dict]):
        """Show the reader's message at once and clear the box; the reply streams in the next step."""
        text = text or ""
        history = list(history or [])
        if text.strip():
            history.append({"role": "user", "content": markdown_literal(text)})
        return "", history, text

    def respond(self, text: str, history: list[dict], stored: Any, upto: Any):
        """Stream the Companion's reply into the chat; a picture asked for in the chat streams its
        previews into the Illustration panel (and its progress into the chat) and is then added inline,
        with its prompt and character sheet put in the panel's boxes so Regenerate works on it.
        Yields RESPOND: (chat, reading position, gallery, preview, progress line, prompt, sheet, scene,
        Illustrate, Stop, Regenerate, panels)."""
        stored = stored or {}
        session = web_session(stored.get("session"))
        book_id = self.known_book(stored.get("book"))
        history = list(history or [])
        keep = gr.update()
        rest = (keep,) * 11
        if not (text or "").strip():
            yield (history,) + rest
            return
        loading = self.loading().rstrip("\u2026").lower()
        waiting = f"\u2026 ({loading})" if loading else "\u2026"
        history.append({"role": "assistant", "content": waiting})
        yield (history,) + rest
        self.wait_until_ready()
        turn = None
        shown = "\u2026"
        drawing = False
        try:
            for item in self._stream(session, book_id, text, upto):
                if isinstance(item, str):
                    shown = markdown_literal(item)
                    history[-1] = {"role": "assistant", "content": shown}
                    yield (history,) + rest
                elif isinstance(item, DrawStep):
                    history[-1] = {"role": "assistant",
                                   "content": f"{shown}\n\n*Drawing: step {item.step} of {item.steps}\u2026*"}
                    preview = gr.update(value=item.preview, visible=True) if item.preview is not None else keep
                    start = (gr.update(interactive=False), gr.update(interactive=True),
                             gr.update(interactive=False), gr.Tabs(selected="illustration")) if not drawing \
                        else (keep,) * 4
                    drawing = True
                    yield (history, keep, keep, preview, f"Drawing: step {item.step} of {item.steps}",
                           keep, keep, keep) + start
                else:
                    turn = item
        except VignetteError as err:
            message = err.message + (f"\n\n{err.hint}" if err.hint else "")
            history[-1] = {"role": "assistant", "content": markdown_literal(message)}
            yield (history,) + rest
            return
        except Exception as err:  # noqa: BLE001 - said in the chat rather than leaving it hanging
            outage = store_outage(err, self.settings)
            if outage is not None or isinstance(err, VignetteError):
                message = outage or err.message + (f"\n\n{err.hint}" if err.hint else "")
                history[-1] = {"role": "assistant", "content": markdown_literal(message)}
                yield history, keep, keep, keep
                return
            log.exception("reply failed")
            history[-1] = {"role": "assistant", "content": markdown_literal(
                f"Sorry, something went wrong while answering ({type(err).__name__}: {err}).")}
            yield (history,) + rest
            return
        if turn is None:
            return
        reply = markdown_literal(reply_text(turn.reply, turn.image))
        if turn.question:
            reply = with_chip(reply, self.chip(book_id, turn.upto_chapter))
        history[-1] = {"role": "assistant", "content": reply}
        gallery = preview = progress = prompt = sheet = scene = keep
        illustration = turn.illustration or {}
        if illustration.get("prompt"):  # a scene prompt was written: the panel's boxes hold it for Regenerate
            from illustration.scene import ScenePrompt

            scene = ScenePrompt(text=illustration["prompt"], negative=illustration.get("negative_prompt") or "",
                                parts={}, writer=illustration.get("writer") or "rule-based", book_id=book_id,
                                evidence=illustration.get("evidence"))
            prompt, sheet = scene.text, sheet_text(self._sheets(book_id), scene.text)
        if turn.image and Path(turn.image).is_file():
            history.append({"role": "assistant", "content": {"path": self.servable(turn.image)}})
            gallery = self.gallery(session, book_id)
            preview, progress = gr.update(value=None, visible=False), ""
        elif drawing:
            reason = str(illustration.get("reason") or "")
            preview = gr.update(value=None, visible=False)
            progress = reason if reason.startswith("Stopped at step") else ""
        position = gr.update(value=self._position_value(book_id, turn.upto_chapter))
        yield (history, position, gallery, preview, progress, prompt, sheet, scene,
               gr.update(interactive=self.can_illustrate(session, book_id)), gr.update(interactive=False),
               gr.update(interactive=True) if scene is not keep else keep, keep)

    def _position_value(self, book_id: str, limit: int | None) -> int:
        from bot.reading import reading_value

        return reading_value(self.c.book(book_id), limit)

    def _stream(self, session: str, book_id: str, text: str, upto: Any) -> Iterator[Any]:
        """companion.stream; a turn that asks for a picture holds the drawing lock, runs in a worker thread
        and also yields the sampler's :class:`DrawStep` previews as they come."""
        from bot.intents import classify

        limit = int(upto) if upto else None
        if classify(" ".join(text.split())).kind not in DRAW_INTENTS:
            yield from self.c.stream(session, book_id, text, upto_chapter=limit)
            return
        # Stop reaches a picture asked for in the chat too: the sampler checks this event every step.
        cancel = threading.Event()
        with self._guard:
            self._cancels[session] = cancel

        def produce(put: Callable[[tuple[str, Any]], None]) -> None:
            with self._drawing:
                for item in self.c.stream(session, book_id, text, upto_chapter=limit, cancel=cancel,
                                          draw_options={"preview_every": PREVIEW_EVERY},
                                          progress=lambda info: put(("step", info))):
                    put(("item", item))

        try:
            for kind, value in _in_worker(f"chat-draw-{session}", produce, cancel):
                if kind == "step":
                    yield DrawStep(int(value.get("step", 0)), int(value.get("steps", 0)), value.get("preview"))
                elif kind == "item":
                    yield value
                elif kind == "error":
                    raise value
        finally:
            cancel.set()  # a closed event (Stop, a closed tab) also ends the drawing
            with self._guard:
                if self._cancels.get(session) is cancel:
                    del self._cancels[session]

    # ---- pictures -----------------------------------------------------------------------------------------
    def last_answer(self, session: str, book_id: str) -> Answer | None:
        """The conversation's last answer that has a passage to draw."""
        for record in reversed(self.c.history(session, book_id)):
            if record.get("answer") and not record.get("abstained") and record.get("evidence"):
                return Answer.from_dict(record)
        return None

    def options(self, preset, sampler, steps, seed, random_seed, clip_scale, size):
        try:
            return self.c.illustrator.options(
                preset or None, sampler=sampler or None, steps=int(steps) if steps else None,
                seed=parse_seed(seed, random_seed),
                clip_scale=float(clip_scale) if clip_scale is not None else None,
                size=size or None, preview_every=PREVIEW_EVERY)
        except VignetteError as err:
            raise gr.Error(html_literal(err.message)) from None

    def illustrate_last(self, stored, upto, preset, sampler, steps, seed, random_seed, clip_scale, size,
                        history):
        """Illustrate button: a scene prompt from the last answer, then draw it (streaming previews).
        Yields DRAWN."""
        stored = stored or {}
        session = web_session(stored.get("session"))
        book_id = self.known_book(stored.get("book"))
        options = self.options(preset, sampler, steps, seed, random_seed, clip_scale, size)
        answer = self.last_answer(session, book_id)
        if answer is None:
            raise gr.Error("There is nothing to draw yet: ask about the book first, then press Illustrate.")
        try:
            prompt = self.c.illustrator.scene_prompt(answer, book_id)
        except VignetteError as err:
            raise gr.Error(html_literal(err.message)) from None
        sheets = self._sheets(book_id)
        sheet = sheet_text(sheets, prompt.text)
        yield from self._draw(session, book_id, prompt, options, history, sheet)

    def regenerate(self, prompt_text, sheet, scene, stored, preset, sampler, steps, seed, random_seed,
                   clip_scale, size, history):
        """Regenerate: save the edited character descriptions, then draw the (edited) prompt again.
        Yields DRAWN."""
        stored = stored or {}
        session = web_session(stored.get("session"))
        book_id = self.known_book(stored.get("book"))
        options = self.options(preset, sampler, steps, seed, random_seed, clip_scale, size)
        if scene is None:
            raise gr.Error("Press Illustrate first: Regenerate draws the scene prompt again, after your "
                           "edits.")
        edits = parse_sheet_text(sheet)
        changed = self._save_sheet_edits(book_id, edits)
        if changed and (prompt_text or "").strip() == scene.text:
            # the prompt was not touched: write it again so it carries the new descriptions
            answer = self.last_answer(session, book_id)
            if answer is not None:
                scene = self.c.illustrator.scene_prompt(answer, book_id)
                prompt_text = scene.text
        try:
            prompt = scene.edited(prompt_text or "")
        except VignetteError as err:
            raise gr.Error(html_literal(err.message)) from None
        yield from self._draw(session, book_id, prompt, options, history,
                              sheet_text(self._sheets(book_id), prompt.text) or sheet)

    def _sheets(self, book_id: str):
        try:
            return self.c.illustrator.character_sheets(book_id)
        except VignetteError:
            return None

    def _save_sheet_edits(self, book_id: str, edits: dict[str, str]) -> list[str]:
        sheets = self._sheets(book_id)
        changed = []
        for name, description in edits.items():
            current = sheets.get(name) if sheets is not None else None
            if current is None or current.description != description:
                try:
                    self.c.illustrator.edit_character(book_id, name, description)
                except VignetteError as err:
                    raise gr.Error(html_literal(err.message)) from None
                changed.append(name)
        return changed

    def _draw(self, session, book_id, prompt, options, history, sheet):
        """Draw ``prompt`` in a worker thread. Yields DRAWN: (preview, progress line, prompt, sheet, scene,
        chat, gallery, seed, Illustrate, Stop, Regenerate, panels). While it draws, Stop is the one button
        that acts and the Illustration tab is open; the preview shows the sampler's steps, and is emptied
        when the picture arrives (in the chat and the gallery) or when Stop ends it."""
        history = list(history or [])
        keep = gr.update()
        cancel = threading.Event()
        with self._guard:
            self._cancels[session] = cancel
        busy = (gr.update(interactive=False), gr.update(interactive=True), gr.update(interactive=False))
        yield (gr.update(value=None, visible=True), "Waiting for the drawing slot\u2026", prompt.text, sheet,
               prompt, history, keep, keep) + busy + (gr.Tabs(selected="illustration"),)
        idle = (gr.update(interactive=True), gr.update(interactive=False), gr.update(interactive=True), keep)
        try:
            for update in self._stream_draw(session, book_id, prompt, options, history, sheet, cancel):
                yield update + ((keep,) * 4 if update[1] is None or str(update[1]).startswith("Drawing")
                                else idle)
        finally:
            with self._guard:
                if self._cancels.get(session) is cancel:
                    del self._cancels[session]

    def _stream_draw(self, session, book_id, prompt, options, history, sheet, cancel):
        from illustration.sampler import Cancelled

        keep = gr.update()
        for kind, value in self._run_draw(session, book_id, prompt, options, cancel):
            if kind == "step":
                line = f"Drawing: step {value['step']} of {value['steps']}"
                preview = value.get("preview")
                yield (gr.update(value=preview) if preview is not None else keep, line,
                       keep, keep, keep, keep, keep, keep)
            elif kind == "error":
                if isinstance(value, Cancelled):
                    yield (gr.update(value=None, visible=False), f"Stopped at step {value.step} of {value.steps}.",
                           keep, keep, keep, keep, keep, keep)
                    return
                message = value.message if isinstance(value, VignetteError) else f"Drawing failed: {value}"
                yield (gr.update(value=None, visible=False), f"Not drawn: {message}",
                       keep, keep, keep, keep, keep, keep)
                return
            else:
                picture = value
                pictures = self.pictures(session, book_id)
                record = next((p for p in pictures if Path(p.path).resolve() == Path(picture.path).resolve()),
                              Picture(picture.path, picture.prompt, picture.evidence, time.time(), picture.seed,
                                      picture.notice))
                history += self.picture_messages(record)
                done = f"Done: prompt v{record.extra.get('version', 1)}, seed {picture.seed}."
                yield (gr.update(value=None, visible=False), done, picture.prompt, sheet,
                       prompt, history, self.gallery(session, book_id), picture.seed)

    def _run_draw(self, session, book_id, prompt, options, cancel) -> Iterator[tuple[str, Any]]:
        """Draw in a worker thread: ("step", info) events, then ("done", picture) or ("error", err)."""
        folder = self.session_folder(session, book_id)

        def produce(put: Callable[[tuple[str, Any]], None]) -> None:
            with self._drawing:
                if cancel.is_set():
                    from illustration.sampler import Cancelled

                    raise Cancelled(0, options.steps)
                out = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}.png"
                result = self.c.illustrator.draw(prompt, options, cancel=cancel, out=out, book_id=book_id,
                                                 callback=lambda info: put(("step", info)))
            put(("done", result))

        return _in_worker(f"draw-{session}", produce, cancel)

    def forget(self, stored: Any):
        """The chat's clear button: forget this conversation and its pictures (memory and files).
        Outputs: (gallery, preview, prompt, sheet, scene, Illustrate, Regenerate)."""
        stored = stored or {}
        session = web_session(stored.get("session"))
        book_id = self.known_book(stored.get("book"))
        self.c.reset(session, book_id)
        shutil.rmtree(self.session_folder(session, book_id), ignore_errors=True)
        return (gr.update(value=[], visible=False), gr.update(value=None, visible=False), "", "", None,
                gr.update(interactive=False), gr.update(interactive=False))

    def stop(self, stored: Any) -> None:
        """Stop: the session's drawing ends at its next step (its handler then says where it stopped)."""
        session = web_session((stored or {}).get("session"))
        with self._guard:
            cancel = self._cancels.get(session)
        if cancel is not None:
            cancel.set()

    # ---- the API ------------------------------------------------------------------------------------------
    def api_error(self, err: Exception) -> gr.Error:
        """The gr.Error a handler raises for ``err``: a store outage or a VignetteError in plain words;
        anything else is re-raised as the bug it is."""
        outage = store_outage(err, self.settings)
        if outage is not None:
            return gr.Error(outage)
        if isinstance(err, VignetteError):
            return gr.Error(err.message + (f" {err.hint}" if err.hint else ""))
        raise err

    def ask_api(self, message: str, book_id: str = SAMPLE_BOOK, session: str | None = None):
        """Ask a question about a book; returns the reply (answer, quote, chapter) and its details as JSON.

        ``session`` names a conversation (follow-ups use its memory); leave it empty for a one-off question.
        """
        session_id = api_session(session)
        self.wait_until_ready()  # the models warming in the background are loaded once, not twice
        try:
            turn = None
            for item in self._stream(session_id, book_id or SAMPLE_BOOK, message or "", None):
                turn = item
        except Exception as err:
            raise self.api_error(err) from None
        details = turn.to_dict()
        details["image"] = bool(turn.image)  # a server path means nothing to a client: /illustrate sends it
        details["session"] = session_id
        return reply_text(turn.reply, turn.image), details

    def illustrate_api(self, scene: str = "", book_id: str = SAMPLE_BOOK, session: str | None = None,
                       seed: float | None = None, preset: str | None = None, size: str | None = None):
        """Draw a scene; returns the PNG and the scene prompt it was drawn from.

        ``scene`` is a question ("Where did Wren hide the letter?"), a described scene ("the lighthouse in the
        storm"), or empty for the session's last answer. ``seed`` (random when empty), ``preset`` ("fast",
        "quality") and ``size`` ("WxH") are optional.
        """
        session_id = api_session(session)
        book_id = book_id or SAMPLE_BOOK
        self.wait_until_ready()
        try:
            options = self.c.illustrator.options(preset or None, seed=None if seed is None else int(seed),
                                                 size=size or None)
            if (scene or "").strip():
                limit = self.c.spoiler_limit(session_id, book_id)
                from bot.scenes import scene_for

                prompt, _ = scene_for(self.c.illustrator, self.c.pipeline, book_id, scene, limit)
            else:
                answer = self.last_answer(session_id, book_id)
                if answer is None:
                    raise VignetteError("There is nothing to draw yet in this session: pass a scene or a "
                                        "question, or ask /ask first with the same session.")
                prompt = self.c.illustrator.scene_prompt(answer, book_id)
        except Exception as err:
            raise self.api_error(err) from None
        cancel = threading.Event()
        for kind, value in self._run_draw(session_id, book_id, prompt, options, cancel):
            if kind == "error":
                message = value.message if isinstance(value, VignetteError) else f"Drawing failed: {value}"
                raise gr.Error(message)
            if kind == "done":
                return self.servable(value.path), value.prompt
        raise gr.Error("The drawing stopped without a picture.")


def _sidecar(png: Path) -> dict[str, Any]:
    try:
        return json.loads(png.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# --- the reading companion: the story so far, the people, a citation opened, the export -------------------
# Book text reaches these panels only through html.escape: a novel's words are shown as text, never as markup.


def _esc(text: Any) -> str:
    import html

    return html.escape(" ".join(str(text or "").split()), quote=True)


def recap_html(recap) -> str:
    """The recap as escaped HTML: a heading per chapter, its sentences (or prose), each cited."""
    from bot.agent import chapter_label

    parts = [f"<div class='vignette-recap'><p><b>The story so far</b>, chapters 1\u2013{recap.upto_chapter}"
             f" ({_esc(recap.writer)}; {_esc(recap.method)})</p>"]
    for c in recap.chapters:
        parts.append(f"<h4>{_esc(chapter_label({'chapter': c.chapter, 'chapter_title': c.title}))}</h4>")
        if c.prose:
            parts.append(f"<p>{_esc(c.prose)} <small>[ch. {c.chapter}]</small></p>")
        else:
            parts.append("<ul>" + "".join(f"<li>{_esc(s.text)} <small>[ch. {s.chapter}]</small></li>"
                                           for s in c.sentences) + "</ul>")
    parts += [f"<p><i>{_esc(n)}</i></p>" for n in recap.notes]
    return "".join(parts) + "</div>"


def appearance_chart(counts: list[int], chapters: list[tuple[int, str]], width: int = 320, height: int = 60) -> str:
    """A small SVG bar chart of a person's mentions per chapter (chapters 1..N), each bar titled."""
    n = max(1, len(counts))
    top = max(counts) if counts and max(counts) > 0 else 1
    bar = width / n
    rects = []
    for i, (k, (number, title)) in enumerate(zip(counts, chapters)):
        h = 0 if k == 0 else max(2.0, (height - 12) * k / top)
        rects.append(f"<rect x='{i * bar + 1:.1f}' y='{height - 12 - h:.1f}' width='{max(1.0, bar - 2):.1f}' "
                     f"height='{h:.1f}' fill='#b45309'><title>Chapter {number}: {k} mention"
                     f"{'s' if k != 1 else ''}</title></rect>")
    label = (f"<text x='0' y='{height - 1}' font-size='10'>ch. 1</text>"
             f"<text x='{width}' y='{height - 1}' font-size='10' text-anchor='end'>ch. {chapters[-1][0] if chapters else n}"
             f"</text>")
    return (f"<svg class='vignette-chart' width='{width}' height='{height}' role='img' "
            f"aria-label='mentions per chapter'>{''.join(rects)}{label}</svg>")


def person_html(person, chapters: list[tuple[int, str]]) -> str:
    from bot.agent import chapter_label

    first = chapter_label({"chapter": person.first_chapter, "chapter_title": person.first_chapter_title})
    parts = [f"<div class='vignette-person'><h4>{_esc(person.name)}</h4>",
             f"<p>First appears in <b>{_esc(first)}</b>; named {person.mentions} time"
             f"{'s' if person.mentions != 1 else ''} so far.</p>",
             f"<p>{'Looks: ' + _esc(person.description) if person.description else 'The book has not described them yet.'}"
             f"</p>", appearance_chart(person.appearances, chapters)]
    if len(person.aliases) > 1:
        parts.append(f"<p><small>Also: {_esc(', '.join(a for a in person.aliases if a != person.name))}</small></p>")
    for q in person.passages:
        parts.append(f"<blockquote>{_esc(q.text)} <small>[ch. {q.chapter}]</small></blockquote>")
    return "".join(parts) + "</div>"


def passage_html(view) -> str:
    """The passage in context: the chapter's title, the paragraphs, the quote inside <mark>."""
    from bot.agent import chapter_label

    import html

    parts = [f"<div class='vignette-reader'><h4>{_esc(chapter_label({'chapter': view.chapter, 'chapter_title': view.chapter_title}))}</h4>"]
    for p in view.paragraphs:
        text, pieces, pos = p.text, [], 0
        for a, b in p.marks:
            pieces += [html.escape(text[pos:a]), f"<mark>{html.escape(text[a:b])}</mark>"]
            pos = b
        pieces.append(html.escape(text[pos:]))
        parts.append(f"<p>{''.join(pieces)}</p>")
    return "".join(parts) + "</div>"


class ReadingPanels:
    """The handlers of the recap, people, reader and export panels, over a :class:`VignetteApp`."""

    def __init__(self, app: "VignetteApp"):
        self.app = app

    def _where(self, stored: Any, upto: Any) -> tuple[str, str, int | None]:
        """(session, book, limit): the slider's chapter, or None when it covers the whole book."""
        stored = stored or {}
        session = web_session(stored.get("session"))
        book_id = self.app.known_book(stored.get("book"))
        n = self.app.chapters(book_id)
        limit = int(upto) if upto else None
        return session, book_id, (limit if limit and limit < n else None)

    def show_recap(self, stored: Any, upto: Any, progress=gr.Progress()):
        from bot.recap import recap_for

        _, book_id, limit = self._where(stored, upto)
        progress(0, desc="Reading the chapters")
        try:
            return recap_html(recap_for(self.app.c, book_id, limit,
                                        prose=bool(self.app.settings.chat_model)))
        except VignetteError as err:
            raise gr.Error(err.message) from None

    def _people(self, book_id: str, limit: int | None):
        from bot.people import people_as_of

        try:
            return people_as_of(self.app.c.book(book_id), limit)
        except VignetteError as err:
            raise gr.Error(err.message) from None

    def show_people(self, stored: Any, upto: Any):
        _, book_id, limit = self._where(stored, upto)
        cast = self._people(book_id, limit)
        names = [p.name for p in cast.people]
        first = names[0] if names else None
        shown = person_html(cast.people[0], cast.chapters) if names else "<p>No characters found yet.</p>"
        return gr.update(choices=names, value=first), shown

    def person(self, name: str | None, stored: Any, upto: Any) -> str:
        if not name:
            return ""
        _, book_id, limit = self._where(stored, upto)
        cast = self._people(book_id, limit)
        found = cast.get(name)
        return person_html(found, cast.chapters) if found else f"<p>{_esc(name)} is not known by chapter {cast.upto_chapter}.</p>"

    @staticmethod
    def ask_about(name: str | None) -> str:
        if not name:
            raise gr.Error("Pick a person first.")
        return f"Who is {name}?"

    @staticmethod
    def draw(name: str | None) -> str:
        if not name:
            raise gr.Error("Pick a person first.")
        return f"draw {name}"

    def _open(self, book_id: str, start: int, end: int | None, limit: int | None):
        from bot.passage_view import open_passage

        try:
            view = open_passage(self.app.c.book(book_id), start, end, limit)
        except VignetteError as err:
            raise gr.Error(err.message + (f" {err.hint}" if err.hint else "")) from None
        return (passage_html(view), {"previous": view.previous, "next": view.next},
                gr.update(interactive=view.previous is not None), gr.update(interactive=view.next is not None),
                gr.update(selected="reader"))

    def open_citation(self, stored: Any, upto: Any, evt: gr.SelectData):
        """A chat message clicked: open the quote it holds (found among the conversation's evidence)."""
        session, book_id, limit = self._where(stored, upto)
        value = evt.value
        if isinstance(value, dict):
            value = value.get("text") or value.get("value") or ""
        if isinstance(value, list):
            value = " ".join(v.get("text", "") if isinstance(v, dict) else str(v) for v in value)
        clicked = " ".join(str(value or "").split())
        for record in reversed(self.app.c.history(session, book_id)):
            for evidence in record.get("evidence") or []:
                quote = " ".join(str(evidence.get("quote") or "").split())
                if quote and quote[:80] in clicked and evidence.get("start") is not None:
                    return self._open(book_id, int(evidence["start"]), int(evidence["end"]), limit)
        gr.Info("That message holds no quote from the book to open.")
        keep = gr.update()
        return keep, keep, keep, keep, keep

    def open_last(self, stored: Any, upto: Any):
        """The button: open the last answer's quote."""
        session, book_id, limit = self._where(stored, upto)
        for record in reversed(self.app.c.history(session, book_id)):
            for evidence in record.get("evidence") or []:
                if evidence.get("start") is not None and not record.get("abstained"):
                    return self._open(book_id, int(evidence["start"]), int(evidence["end"]), limit)
        raise gr.Error("There is no quoted answer to open yet: ask about the book first.")

    def turn_page(self, where: Any, direction: str, stored: Any, upto: Any):
        _, book_id, limit = self._where(stored, upto)
        span = (where or {}).get(direction)
        if not span:
            raise gr.Error("There is nothing further that way" + (f" before chapter {limit + 1}." if limit and
                                                                 direction == "next" else "."))
        return self._open(book_id, int(span[0]), None, limit)

    def export(self, stored: Any):
        from bot.export import export_conversation

        session, book_id, _ = self._where(stored, None)
        if not self.app.c.history(session, book_id):
            raise gr.Error("There is no conversation to export yet.")
        text = export_conversation(self.app.c, book_id, session)
        folder = Path(tempfile.mkdtemp(prefix="vignette-export-"))
        path = folder / f"vignette-{book_id}-conversation.md"
        path.write_text(text, encoding="utf-8")
        return str(path)

    # ---- the API --------------------------------------------------------------------------------------
    def recap_api(self, book_id: str = SAMPLE_BOOK, upto_chapter: float | None = None) -> dict:
        """The story so far: chapters 1..upto_chapter (empty: the whole book), each sentence cited."""
        from bot.recap import recap_for

        try:
            return recap_for(self.app.c, book_id or SAMPLE_BOOK, int(upto_chapter) if upto_chapter else None,
                             prose=bool(self.app.settings.chat_model)).to_dict()
        except VignetteError as err:
            raise gr.Error(err.message + (f" {err.hint}" if err.hint else "")) from None

    def people_api(self, book_id: str = SAMPLE_BOOK, upto_chapter: float | None = None) -> dict:
        """The main characters as of chapter upto_chapter (empty: the whole book)."""
        return self._people(book_id or SAMPLE_BOOK, int(upto_chapter) if upto_chapter else None).to_dict()


def _build_reading_tabs(app: "VignetteApp", *, stored, upto, chat, message, pending, gallery, picture) -> None:
    """The "Story so far", "People", "Reader" and "Export" tabs, and the /recap and /people endpoints."""
    panels = ReadingPanels(app)
    with gr.Tabs(elem_id="vignette-reading") as tabs:
        with gr.Tab("Story so far", id="recap", elem_id="vignette-recap-tab"):
            recap_button = gr.Button("Recap up to my chapter", elem_id="vignette-recap-button")
            recap = gr.HTML(elem_id="vignette-recap")
        with gr.Tab("People", id="people", elem_id="vignette-people-tab"):
            people_button = gr.Button("Who's who so far", elem_id="vignette-people-button")
            names = gr.Radio(label="People (as of your chapter)", choices=[], elem_id="vignette-people")
            person = gr.HTML(elem_id="vignette-person")
            with gr.Row():
                ask = gr.Button("Ask about them", elem_id="vignette-person-ask")
                draw = gr.Button("Draw them", elem_id="vignette-person-draw")
        with gr.Tab("Reader", id="reader", elem_id="vignette-reader-tab"):
            gr.Markdown("Click an answer in the chat to open its quote here, in context.")
            open_last = gr.Button("Open the last answer's quote", elem_id="vignette-open-last")
            reader = gr.HTML(elem_id="vignette-reader")
            where = gr.State(None)
            with gr.Row():
                previous = gr.Button("\u2190 Previous", interactive=False, elem_id="vignette-reader-previous")
                following = gr.Button("Next \u2192", interactive=False, elem_id="vignette-reader-next")
        with gr.Tab("Export", id="export", elem_id="vignette-export-tab"):
            export = gr.Button("Export this conversation (Markdown)", elem_id="vignette-export")
            exported = gr.File(label="Conversation", interactive=False, elem_id="vignette-export-file")
    private = {"api_visibility": "private"}
    recap_button.click(panels.show_recap, [stored, upto], [recap], concurrency_id="recap", concurrency_limit=1, **private)
    people_button.click(panels.show_people, [stored, upto], [names, person], **private)
    names.change(panels.person, [names, stored, upto], [person], **private)
    opened = [reader, where, previous, following, tabs]
    chat.select(panels.open_citation, [stored, upto], opened, **private)
    open_last.click(panels.open_last, [stored, upto], opened, **private)
    previous.click(lambda w, s, u: panels.turn_page(w, "previous", s, u), [where, stored, upto], opened, **private)
    following.click(lambda w, s, u: panels.turn_page(w, "next", s, u), [where, stored, upto], opened, **private)
    export.click(panels.export, [stored], [exported], **private)
    for button, words in ((ask, panels.ask_about), (draw, panels.draw)):  # a name clicked becomes a chat turn
        (button.click(words, [names], [message], **private)
         .then(app.take_message, [message, chat], [message, chat, pending], queue=False, **private)
         .then(app.respond, [pending, chat, stored, upto], [chat, upto, gallery, picture], concurrency_id="chat",
               concurrency_limit=4, show_progress="hidden", **private))
    with gr.Row(visible=False):  # the API: /recap and /people
        api_book = gr.Textbox(label="book_id", value=SAMPLE_BOOK)
        api_upto = gr.Number(label="upto_chapter", precision=0)
        api_out = gr.JSON(label="result")
        gr.Button("recap").click(panels.recap_api, [api_book, api_upto], [api_out], api_name="recap",
                                 concurrency_id="recap", concurrency_limit=1)
        gr.Button("people").click(panels.people_api, [api_book, api_upto], [api_out], api_name="people")


class IngestProgress:
    """The upload's progress line: the stage by name, how far it is, and the time left. Between the store's
    reports (a batch of passages at a time) the count moves on at the rate measured so far, so the line
    moves smoothly; before the first batch a rate of about 30 passages a second (MiniLM on two CPU
    cores) stands in."""

    PRIOR_RATE = 30.0  # passages per second until one is measured

    def __init__(self, name: str):
        self.name = name
        self.stage = "reading"
        self.done = self.total = 0
        self.base = 0
        self.stage_started = self.at = time.perf_counter()

    def update(self, done: int, total: int, stage: str) -> None:
        now = time.perf_counter()
        if stage != self.stage:
            self.stage, self.base, self.stage_started = stage, done, now
        self.done, self.total, self.at = int(done), int(total), now

    def estimate(self) -> tuple[float, float | None]:
        """(passages done by now, seconds left), while embedding."""
        if self.stage != "embedding" or not self.total:
            return float(self.done), None
        measured = self.done - self.base
        rate = measured / max(self.at - self.stage_started, 1e-6) if measured > 0 else self.PRIOR_RATE
        now = time.perf_counter()
        shown = min(self.total - 0.5, self.done + rate * (now - self.at)) if self.done < self.total else self.total
        return max(float(self.done), shown), (self.total - shown) / rate

    def line(self) -> str:
        from bot.startup import time_left

        if self.stage == "reading":
            return f"Reading \u201c{self.name}\u201d\u2026"
        if self.stage == "splitting":
            return f"Splitting \u201c{self.name}\u201d into passages\u2026"
        if self.stage == "embedding":
            shown, left = self.estimate()
            percent = int(100 * shown / self.total) if self.total else 0
            tail = f" \u00b7 {time_left(left)}" if time_left(left) else ""
            return f"Indexing passages: {int(shown):,} of {self.total:,} ({percent}%){tail}"
        return f"{self.stage.capitalize()}\u2026"


# --- the UI --------------------------------------------------------------------------------------------


def build_demo(companion, startup=None) -> gr.Blocks:
    """The whole page over one Companion (already built); ``demo.queue().launch()`` serves it.
    ``startup`` (a :class:`bot.startup.Startup`) is the background warm-up the page waits for.

    Layout: a header row (book, "Reading up to", "+ Add a book"), the status line and a folded About;
    then the chat with its question box (sticky at the bottom on a phone) beside the side panels, a
    ``gr.Tabs`` (``#vignette-panels``) whose "Illustration" tab holds the drawing tools; more panels
    are added there as tabs."""
    from illustration.options import presets
    from illustration.sampler import SAMPLERS

    app = VignetteApp(companion, startup)
    settings = companion.settings
    preset_table = presets()
    start = app.c.illustrator.options(settings.image_preset)
    size = f"{start.width}x{start.height}"

    with gr.Blocks(title="Vignette", fill_width=True) as demo:
        stored = gr.BrowserState({"session": "", "book": SAMPLE_BOOK}, storage_key=SESSION_STORAGE_KEY,
                                 secret=browser_secret(settings))
        pending = gr.State("")  # the message being answered
        scene = gr.State(None)  # the ScenePrompt last drawn (for Regenerate)

        # 1. the header: which book, how far the reader is, and adding a book
        with gr.Row(elem_id="vignette-header", equal_height=True):
            gr.HTML("<h1 id='vignette-title'>Vignette</h1>", elem_id="vignette-brand", padding=False)
            book = gr.Dropdown(label="Book", choices=[], value=None, elem_id="vignette-book", scale=3,
                               min_width=150)
            upto = gr.Dropdown(label="Reading up to", choices=[], value=None, elem_id="vignette-upto", scale=3,
                               min_width=150)
            add_book = gr.Button("+ Add a book", elem_id="vignette-add-book", scale=0, min_width=120,
                                 size="sm")
        with gr.Group(visible=False, elem_id="vignette-add-panel") as add_panel:
            upload = gr.File(label="Add a book (.txt, .epub, .md, .html)", file_types=UPLOAD_TYPES,
                             type="filepath", elem_id="vignette-upload", height=110)
            upload_note = gr.Markdown("", elem_id="vignette-upload-note")
            close_add = gr.Button("Close", size="sm", elem_id="vignette-add-close")
        status = gr.Markdown(app.status(), elem_id="vignette-status")
        with gr.Accordion("About", open=False, elem_id="vignette-about"):
            about = gr.Markdown("", elem_id="vignette-about-text")
        timer = gr.Timer(1.0, active=True)

        # 2. the chat first; the side panels beside it (below it on a phone)
        with gr.Row(elem_id="vignette-body"):
            with gr.Column(scale=3, min_width=320, elem_id="vignette-main"):
                chat = gr.Chatbot(label="Conversation", elem_id="vignette-chat", height="62vh", buttons=["copy"],
                                  placeholder="Ask about the book: pick a question below, or type your own. "
                                              "Say \u201cdraw it\u201d or press Illustrate for a picture.")
                with gr.Row(elem_id="vignette-suggestions"):
                    suggestions = [gr.Button("", visible=False, size="sm", elem_id=f"vignette-suggest-{i}",
                                             elem_classes=["vignette-suggestion"]) for i in range(SUGGESTIONS)]
                with gr.Group(elem_id="vignette-composer"):
                    with gr.Row(equal_height=True):
                        message = gr.Textbox(label="Your question", show_label=False, scale=5, max_lines=4,
                                             placeholder="Ask about the book\u2026 Type help for more",
                                             elem_id="vignette-message", autofocus=True, container=False)
                        send = gr.Button("Send", variant="primary", scale=1, min_width=70, elem_id="vignette-send")
                    with gr.Row():
                        illustrate = gr.Button("Illustrate the last answer", interactive=False, size="sm",
                                               elem_id="vignette-illustrate")
                        stop = gr.Button("Stop", variant="stop", interactive=False, size="sm",
                                         elem_id="vignette-stop")
            with gr.Column(scale=2, min_width=300, elem_id="vignette-side"):
                with gr.Tabs(elem_id="vignette-panels") as panels:
                    with gr.Tab("Illustration", id="illustration", elem_id="vignette-illustration-tab"):
                        picture = gr.Image(label="Drawing in progress", type="pil", interactive=False, height=320,
                                           visible=False, elem_id="vignette-picture", buttons=[])
                        drawing_progress = gr.Markdown("", elem_id="vignette-drawing-progress")
                        gallery = gr.Gallery(label="Pictures of this conversation", columns=3, height=260,
                                             preview=False, fit_columns=False, object_fit="contain",
                                             interactive=False, visible=False, elem_id="vignette-gallery")
                        prompt = gr.Textbox(label="Scene prompt (edit, then Regenerate)", lines=3,
                                            elem_id="vignette-prompt")
                        sheet = gr.Textbox(label="Character sheet (\u201cName: description\u201d per line; edits "
                                           "are kept)", lines=3, elem_id="vignette-sheet")
                        regenerate = gr.Button("Regenerate", interactive=False, elem_id="vignette-regenerate")
                        with gr.Accordion("Drawing settings", open=False, elem_id="vignette-settings"):
                            preset = gr.Dropdown(label="Preset", choices=list(preset_table), value=start.preset,
                                                 elem_id="vignette-preset")
                            sampler = gr.Dropdown(label="Sampler", choices=list(SAMPLERS), value=start.sampler,
                                                  elem_id="vignette-sampler")
                            steps = gr.Slider(label="Steps", minimum=1, maximum=60, step=1, value=start.steps,
                                              elem_id="vignette-steps")
                            with gr.Row():
                                seed = gr.Number(label="Seed", value=0, precision=0, minimum=0,
                                                 elem_id="vignette-seed")
                                random_seed = gr.Checkbox(label="Random seed", value=True,
                                                          elem_id="vignette-random-seed")
                            clip_scale = gr.Slider(label="CLIP guidance scale (0: off)", minimum=0, maximum=1000,
                                                   step=10, value=start.clip_scale, elem_id="vignette-clip")
                            size_box = gr.Dropdown(label="Size", choices=sorted(set(SIZES) | {size}), value=size,
                                                   allow_custom_value=True, elem_id="vignette-size")

        # The API: hidden components give /ask and /illustrate typed parameters with defaults.
        with gr.Row(visible=False):
            api_message = gr.Textbox(label="message")
            api_book = gr.Textbox(label="book_id", value=SAMPLE_BOOK)
            api_session_box = gr.Textbox(label="session")
            api_reply = gr.Textbox(label="reply")
            api_details = gr.JSON(label="details")
            api_ask = gr.Button("ask")
            api_scene = gr.Textbox(label="scene", value="")
            api_seed = gr.Number(label="seed", precision=0)
            api_preset = gr.Textbox(label="preset")
            api_size = gr.Textbox(label="size")
            api_image = gr.Image(label="image", type="filepath", format="png")
            api_prompt = gr.Textbox(label="prompt")
            api_draw = gr.Button("illustrate")

        # --- wiring ------------------------------------------------------------------------------------
        book_view = [stored, book, upto, chat, gallery, picture, drawing_progress, prompt, sheet, scene,
                     illustrate, regenerate] + suggestions
        assert len(book_view) == BOOK_VIEW_SIZE
        private = {"api_visibility": "private"}
        demo.load(app.poll, None, [status, about, timer], queue=False, **private)
        demo.load(app.load, [stored], book_view, show_progress="minimal", **private)
        timer.tick(app.poll, None, [status, about, timer], queue=False, show_progress="hidden", **private)
        book.input(app.change_book, [book, stored], book_view, **private)
        upto.input(app.set_position, [upto, stored], suggestions, show_progress="hidden", **private)
        add_book.click(lambda: gr.update(visible=True), None, [add_panel], queue=False, **private)
        close_add.click(lambda: gr.update(visible=False), None, [add_panel], queue=False, **private)

        draw_settings = [preset, sampler, steps, seed, random_seed, clip_scale, size_box]
        responded = [chat, upto, gallery, picture, drawing_progress, prompt, sheet, scene, illustrate, stop,
                     regenerate, panels]
        drawn = [picture, drawing_progress, prompt, sheet, scene, chat, gallery, seed, illustrate, stop,
                 regenerate, panels]
        answer = {"concurrency_id": "chat", "concurrency_limit": 4, "show_progress": "hidden", **private}
        for trigger in (message.submit, send.click):
            trigger(app.take_message, [message, chat], [message, chat, pending], queue=False, **private
                    ).then(app.respond, [pending, chat, stored, upto], responded, **answer)
        for button in suggestions:
            button.click(app.take_message, [button, chat], [message, chat, pending], queue=False, **private
                         ).then(app.respond, [pending, chat, stored, upto], responded, **answer)
        gpu = {"concurrency_id": "gpu", "concurrency_limit": 1, "show_progress": "hidden", **private}
        illustrate.click(app.illustrate_last, [stored, upto] + draw_settings + [chat], drawn, **gpu)
        regenerate.click(app.regenerate, [prompt, sheet, scene, stored] + draw_settings + [chat], drawn, **gpu)
        stop.click(app.stop, [stored], None, queue=False, **private)
        chat.clear(app.forget, [stored], [gallery, picture, prompt, sheet, scene, illustrate, regenerate],
                   **private)
        preset.change(_preset_values, [preset], [sampler, steps, clip_scale, size_box], queue=False, **private)
        upload.upload(app.upload, [upload, stored], book_view + [upload, upload_note], concurrency_id="ingest",
                      concurrency_limit=1, show_progress="hidden", **private)

        api_ask.click(app.ask_api, [api_message, api_book, api_session_box], [api_reply, api_details],
                      api_name="ask", concurrency_id="chat", concurrency_limit=4)
        api_draw.click(app.illustrate_api,
                       [api_scene, api_book, api_session_box, api_seed, api_preset, api_size],
                       [api_image, api_prompt], api_name="illustrate", concurrency_id="gpu",
                       concurrency_limit=1)
        _build_reading_tabs(app, stored=stored, upto=upto, chat=chat, message=message, pending=pending,
                            gallery=gallery, picture=picture)
    demo.vignette = app  # the handlers, for tests and benchmarks
    return demo


def _preset_values(name: str):
    from illustration.options import resolve_options

    try:
        o = resolve_options(name)
    except VignetteError as err:
        raise gr.Error(html_literal(err.message)) from None
    return o.sampler, o.steps, o.clip_scale, f"{o.width}x{o.height}"


# --- serving ----------------------------------------------------------------------------------------------


def default_preset(env: dict[str, str] | None = None) -> str:
    """The preset a machine gets unless VIGNETTE_IMAGE_PRESET says otherwise: "quality" with a CUDA GPU,
    "fast" on a CPU (a CPU Space among them)."""
    env = os.environ if env is None else env
    if env.get("VIGNETTE_IMAGE_PRESET", "").strip():
        return env["VIGNETTE_IMAGE_PRESET"].strip()
    import torch

    return "quality" if torch.cuda.is_available() else "fast"


def server_address(env: dict[str, str] | None = None) -> tuple[str, int | None]:
    """(host, port): GRADIO_SERVER_NAME and GRADIO_SERVER_PORT (or PORT) when set; else 127.0.0.1 and None,
    which lets Gradio take the first free port from 7860."""
    env = os.environ if env is None else env
    host = env.get("GRADIO_SERVER_NAME", "").strip() or "127.0.0.1"
    raw = env.get("GRADIO_SERVER_PORT", "").strip() or env.get("PORT", "").strip()
    if not raw:
        return host, None
    try:
        return host, int(raw)
    except ValueError:
        raise VignetteError(f"The port {raw!r} (GRADIO_SERVER_PORT or PORT) is not a number.") from None


def build_companion(settings: Settings | None = None):
    """Settings from the environment and the Companion (cheap: nothing is loaded yet; see
    :class:`bot.startup.Startup` for the sample novel and the answer models)."""
    from bot.companion import Companion

    settings = settings or Settings.from_env()
    settings = settings.replace(image_preset=default_preset())
    if not os.environ.get("VIGNETTE_INGEST_BATCH_SIZE", "").strip():
        # an upload's progress moves a batch at a time: smaller batches (two encoder batches) move it
        # smoothly in the browser, at no measurable cost in speed
        settings = settings.replace(ingest_batch_size=2 * settings.encode_batch_size)
    return Companion(settings)


def warm_up(companion) -> float:
    """Load the answer models (encoder, reader) now, so the first question is answered at once; returns
    the seconds it took."""
    from bot.startup import WARM_QUESTION

    started = time.perf_counter()
    companion.pipeline.ask(SAMPLE_BOOK, WARM_QUESTION)
    return time.perf_counter() - started


def theme() -> gr.themes.Base:
    """Soft, amber and stone, with every text and control at WCAG AA contrast (4.5:1; checked by the
    browser tests): dark text on the light fills, white on the dark amber buttons."""
    return gr.themes.Soft(primary_hue="amber", secondary_hue="stone", neutral_hue="stone").set(
        block_label_text_color="*neutral_800", block_label_background_fill="*primary_100",
        block_title_text_color="*neutral_800", block_info_text_color="*neutral_600",
        body_text_color_subdued="*neutral_600", input_placeholder_color="*neutral_600",
        button_primary_background_fill="*primary_800", button_primary_background_fill_hover="*primary_900",
        button_primary_text_color="white", button_primary_text_color_hover="white",
        button_secondary_text_color="*neutral_800", button_cancel_background_fill="#b91c1c",
        button_cancel_background_fill_hover="#991b1b", button_cancel_text_color="white",
        link_text_color="*primary_800", color_accent="*primary_800", color_accent_soft="*primary_100",
        checkbox_label_text_color="*neutral_800",
    )


def launch(demo: gr.Blocks, settings: Settings, host: str | None = None, port: int | None = None, **kwargs):
    """Serve ``demo`` on ``host``/``port`` (default: :func:`server_address`); uploads over the limit are
    refused by the browser before they are sent."""
    if host is None:
        host, port = server_address()
    return demo.queue(default_concurrency_limit=2).launch(
        server_name=host, server_port=port, max_file_size=settings.max_file_bytes, css=CSS,
        theme=theme(), head=HEAD, footer_links=["api"],
        run_history=False,  # conversations are kept by the Companion; nothing else records them
        **kwargs)


def main() -> None:
    """`python app.py` (what `make run` and the Space run): serve the page first, then get the library and
    the answer models ready in the background (the page says "Loading…" meanwhile)."""
    from bot.startup import Startup

    try:
        companion = build_companion()
        startup = Startup(companion, SAMPLE_BOOK).start()
        demo = build_demo(companion, startup)
    except VignetteError as err:
        raise SystemExit(f"error: {err.message}" + (f"\n{err.hint}" if err.hint else "")) from None
    launch(demo, companion.settings)


if __name__ == "__main__":
    main()
