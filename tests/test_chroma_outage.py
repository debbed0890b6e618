"""The app while its Chroma server (`chroma run`, started and stopped by the test) is down: /ask and the chat
say so in plain words, and answer again once the server is back, without a restart."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_chroma_server import free_port
from tests.test_store import tiny_book

pytestmark = pytest.mark.server

CHROMA = Path(sys.executable).with_name("chroma")
QUESTION = "What did Mara find washed up on the shingle?"


class ChromaServer:
    """`chroma run` over one folder and port; stop() and start() again keep both."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder, self.env, self.port = folder, env, free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.folder.parent / "chroma.log", "ab")
        self.proc = subprocess.Popen([str(CHROMA), "run", "--path", str(self.folder), "--host", "127.0.0.1",
                                      "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("chroma run did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def test_a_server_outage_is_said_plainly_and_the_app_recovers(tmp_path, cli_env):
    """A stopped Chroma server gives "The book store is not reachable at HOST:PORT" on /ask and in the chat."""
    if not CHROMA.exists():
        pytest.skip(f"the chroma console script is not installed beside {sys.executable}")
    import gradio as gr

    import app
    from bot.companion import Companion
    from vignette.settings import Settings

    server = ChromaServer(tmp_path / "server-db", cli_env)
    server.start()
    try:
        settings = Settings.from_env(env={}, data_dir=tmp_path / "data", chroma_host="127.0.0.1",
                                     chroma_port=server.port, reader="sentence")
        companion = Companion(settings)
        companion.store.ingest(tiny_book(tmp_path), book_id="lamplighter")
        handlers = app.VignetteApp(companion)
        reply, _ = handlers.ask_api(QUESTION, "lamplighter", "outage")
        assert "violin case" in reply

        # 1. The server goes away: plain words on /ask and in the chat, no exception class.
        server.stop()
        expected = f"The book store is not reachable at 127.0.0.1:{server.port}; is `chroma run` running?"
        with pytest.raises(gr.Error, match=re.escape(expected)):
            handlers.ask_api(QUESTION, "lamplighter", "outage")
        stored = {"session": app.new_web_session(), "book": "lamplighter"}
        *_, (history, *_) = handlers.respond(QUESTION, [], stored, None)
        shown = history[-1]["content"]
        assert f"not reachable at 127.0.0.1:{server.port}" in shown and "chroma run" in shown
        assert "Error" not in shown and "Errno" not in shown

        # 2. It comes back on the same port: the same handlers answer again.
        server.start()
        reply, _ = handlers.ask_api(QUESTION, "lamplighter", "outage")
        assert "violin case" in reply
        companion.close()
    finally:
        server.stop()
