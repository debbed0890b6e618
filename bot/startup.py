"""Starting the app without making a reader wait, and saying in one line what the page can do.

:class:`Startup` gets the library and the answer models ready in a background thread (the sample novel
ingested on a fresh machine, the encoder and the reader loaded), so the page is served first and says
"Loading…" meanwhile. :func:`status_line` is the one line a reader sees; :func:`about_text` holds the
model details and any set-up advice, shown once in the app's collapsed About panel instead of in answers.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from vignette.errors import VignetteError

log = logging.getLogger(__name__)

WARM_QUESTION = "Who is the keeper of the lighthouse?"  # any question warms the encoder and the reader


class Startup:
    """Background start: ``library`` is set once the sample book is stored, ``ready`` once the answer
    models are warm (or the warm-up failed: ``error`` says why; questions then say it themselves)."""

    def __init__(self, companion: Any, sample: str = "sample", on_message: Callable[[str], None] | None = None):
        self.companion = companion
        self.sample = sample
        self.library = threading.Event()
        self.ready = threading.Event()
        self.error: str | None = None
        self.stage = "Loading\u2026"
        self.seconds: float | None = None
        self._say = on_message or (lambda text: print(text, flush=True))
        self._thread: threading.Thread | None = None

    def start(self) -> "Startup":
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="vignette-startup", daemon=True)
            self._thread.start()
        return self

    def run(self) -> None:
        """1. the sample book stored; 2. the answer models loaded by answering one question."""
        started = time.perf_counter()
        try:
            self.stage = "Loading the library\u2026"
            report = self.companion.store.ensure_sample()
            if report is not None:
                self._say(f"Ingested the sample novel \u201c{report.title}\u201d ({report.passages} passages).")
            store = self.companion.store
            for book_id in store.outdated():  # stored by an older version: built once, here, not on a question
                self.stage = f"Preparing \u201c{book_id}\u201d for this version\u2026"
                self._say(f"Preparing {book_id!r} for questions (once, for this version of Vignette)...")
                store.complete(book_id)
        except Exception as err:  # noqa: BLE001 - the page still serves; it says what went wrong
            self.error = getattr(err, "message", None) or f"{type(err).__name__}: {err}"
            log.warning("the sample book could not be stored: %s", self.error)
        finally:
            self.library.set()
        try:
            self.stage = "Loading the answer models\u2026"
            if self.error is None:
                self.companion.pipeline.ask(self.sample, WARM_QUESTION)
        except VignetteError as err:
            self.error = err.message
            log.warning("warm-up failed: %s", err.message)
        except Exception as err:  # noqa: BLE001
            self.error = f"{type(err).__name__}: {err}"
            log.exception("warm-up failed")
        finally:
            self.seconds = time.perf_counter() - started
            self.stage = ""
            self.ready.set()
            self._say(f"Ready ({self.seconds:.1f} s after the page was served).")

    def wait(self, timeout: float | None = None) -> bool:
        return self.ready.wait(timeout)


def pictures_phrase(images: dict[str, Any]) -> str:
    """"pictures: ready", "pictures: test models (noise)" or "pictures: not installed"."""
    if not images.get("available", False):
        return "pictures: not installed"
    if "tiny-random" in str(images.get("profile", "")) or "noise" in str(images.get("message", "")):
        return "pictures: test models (noise)"
    return "pictures: ready"


def status_line(status: dict[str, Any] | None, loading: str = "") -> str:
    """The one line a reader sees above the chat."""
    if loading:
        return f"{loading} You can type already; the first answer waits until this is done."
    status = status or {}
    answers = status.get("answers") or {}
    if answers.get("error"):
        return "Offline \u00b7 answers are not available: see About"
    how = ("answers quoted from the book (closest sentences)" if answers.get("reader_fallback")
           else "answers quoted from the book")
    return f"Offline \u00b7 {how} \u00b7 {pictures_phrase(status.get('images') or {})}"


def about_text(status: dict[str, Any] | None, setup_hints: list[str] | None = None) -> str:
    """The About panel: what answers, what follows up, what draws, and what could be set up."""
    status = status or {}
    answers = status.get("answers") or {}
    lines = ["Vignette answers from the book itself and quotes the passage with its chapter. Everything runs "
             "on this computer; nothing is sent anywhere.", ""]
    if "reader" in answers:
        reader = str(answers.get("reader_label") or answers["reader"])
        if answers.get("reader_fallback"):
            reader += " (the best-matching sentence answers"
            reader += f": {answers['reader_notice']})" if answers.get("reader_notice") else ")"
        lines.append(f"- **Answers:** {reader}")
        retrieval = f"{answers.get('retriever', '')} over {answers.get('encoder', '')}"
        if answers.get("reranker"):
            retrieval += f", re-ranked by {answers['reranker']}"
        lines.append(f"- **Retrieval:** {retrieval}")
    elif answers.get("error"):
        lines.append(f"- **Answers:** not available ({answers['error']})")
    if status.get("followups"):
        lines.append(f"- **Follow-up questions:** {status['followups']}")
    images = status.get("images") or {}
    if images.get("message"):
        lines.append(f"- **Pictures:** {images['message']}")
    hints = [h for h in (setup_hints or []) if h]
    if images.get("hint"):
        hints.append(str(images["hint"]))
    if hints:
        lines += ["", "**Set-up**", ""] + [f"- {h}" for h in hints]
    return "\n".join(lines)


def plural(n: int, word: str, words: str | None = None) -> str:
    """"1 chapter", "3 chapters"."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def time_left(seconds: float | None) -> str:
    """"about 40 s left", "about 2 min left", or "" when unknown."""
    if seconds is None or seconds < 0:
        return ""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s left"
    return f"about {round(seconds / 60)} min left"
