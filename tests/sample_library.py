"""One ingested copy of the sample novel per test process, copied into each test's own data dir.

Ingesting the sample (embedding its passages, then the sentence windows built on the first question)
takes seconds to tens of seconds on two shared cores; the conversation tests need it in several files.
It is built once, in a temporary folder removed at exit, and each test gets a private copy (about 3 MB)
so conversations, images and memory files never leak between tests.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

_lock = threading.Lock()
_built: Path | None = None


def ingested_sample() -> Path:
    """The data dir holding the ingested sample novel (built on first call, shared by the process)."""
    global _built
    with _lock:
        if _built is None:
            from retrieval.pipeline import AnswerPipeline
            from retrieval.store import BookStore
            from vignette.settings import Settings

            root = Path(tempfile.mkdtemp(prefix="vignette-sample-"))
            atexit.register(shutil.rmtree, root, True)
            settings = Settings.from_env(env={}, data_dir=root / "data")
            store = BookStore(settings)
            store.ensure_sample()
            AnswerPipeline(store, settings).ask("sample", "Who keeps the lighthouse?")  # builds the window cache
            _built = root / "data"
    return _built


def copy_sample_to(data_dir: str | Path) -> Path:
    """A private copy of the ingested library at ``data_dir`` (no conversations, no images)."""
    data_dir = Path(data_dir)
    shutil.copytree(ingested_sample(), data_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("conversations.sqlite*", "images"))
    return data_dir
