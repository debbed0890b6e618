"""The store against a real Chroma server (`chroma run`) on 127.0.0.1, started and stopped by the test."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from retrieval.store import BookStore, collection_name
from tests.test_store import tiny_book
from vignette.errors import VignetteError
from vignette.settings import Settings

pytestmark = pytest.mark.server

CHROMA = Path(sys.executable).with_name("chroma")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path, cli_env):
    """A `chroma run` server on a free port; yields the port and stops the server afterwards."""
    if not CHROMA.exists():
        pytest.skip(f"the chroma console script is not installed beside {sys.executable}")
    port = free_port()
    log = open(tmp_path / "chroma.log", "wb")
    server = subprocess.Popen([str(CHROMA), "run", "--path", str(tmp_path / "server-db"), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=cli_env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma run did not start: {(tmp_path / 'chroma.log').read_text(errors='replace')}")
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_ingest_and_search_through_a_chroma_server(chroma_server, tmp_path):
    settings = Settings.from_env(env={}, data_dir=tmp_path / "data", chroma_host="127.0.0.1",
                                 chroma_port=chroma_server)
    store = BookStore(settings)
    report = store.ingest(tiny_book(tmp_path), book_id="lamplighter")
    assert report.added == report.passages > 0
    assert not settings.chroma_dir.exists()  # the vectors live on the server, not in the embedded store

    # A second store (a second HttpClient) finds the collection on the server and searches it.
    fresh = BookStore(settings)
    assert fresh.client.get_collection(collection_name("lamplighter")).count() == report.passages
    top = fresh.dense_search("lamplighter", "What did Mara find washed up on the shingle?", k=2, max_chapter=3)
    assert top[0][0].chapter == 3 and "violin case" in top[0][0].text
    assert all(p.chapter <= 3 for p, _ in top)
    assert fresh.ingest(tiny_book(tmp_path), book_id="lamplighter").added == 0

    fresh.remove("lamplighter")
    assert collection_name("lamplighter") not in [c.name for c in BookStore(settings).client.list_collections()]


def test_unreachable_server_is_a_clear_error(tmp_path):
    settings = Settings.from_env(env={}, data_dir=tmp_path / "data", chroma_host="127.0.0.1", chroma_port=free_port())
    with pytest.raises(VignetteError, match="Cannot reach the Chroma server at 127.0.0.1") as err:
        BookStore(settings).ingest(tiny_book(tmp_path), book_id="lamplighter")
    assert "chroma run" in str(err.value)
    assert not settings.books_dir.exists() or not any(settings.books_dir.iterdir())
