"""Kill a real `python -m bot ingest` midway (SIGKILL): the library stays as it was, the killed book is not
listed, and a re-run resumes, encoding only what is missing, to the right passage count."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from retrieval.store import BookStore, collection_name
from tests.test_store import snapshot, tiny_book
from vignette.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(rb"embedding:.*?(\d+)/(\d+) \[")

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def generated_novel(path: Path, chapters: int = 6, paragraphs: int = 8) -> Path:
    """A multi-chapter text of distinct, seeded sentences (about sixty passages)."""
    rng = random.Random(7)
    names = ["Ada", "Bram", "Cora", "Dmitri", "Elena", "Felix", "Greta", "Hugo", "Iris", "Jonah"]
    places = ["the mill", "the harbour", "the chapel", "the orchard", "the ferry", "the tower", "the market"]
    verbs = ["watched", "followed", "remembered", "painted", "answered", "carried", "mended", "sold"]
    things = ["a lantern", "the old map", "a silver key", "the torn sail", "a blue bottle", "the ledger",
              "a wooden horse", "the bell rope", "a letter", "the broken clock"]
    moods = ["quietly", "in the rain", "before dawn", "with great care", "for the last time", "at noon"]
    lines = ["The Generated Chronicle", "", "by A. Test", ""]
    for c in range(1, chapters + 1):
        lines += [f"CHAPTER {c}. The {rng.choice(['Long', 'Cold', 'Bright', 'Quiet'])} Day of {rng.choice(names)}", ""]
        for p in range(paragraphs):
            sentences = [
                f"{rng.choice(names)} {rng.choice(verbs)} {rng.choice(things)} near {rng.choice(places)} "
                f"{rng.choice(moods)}, and it was day {c * 100 + p * 10 + s} of the voyage."
                for s in range(9)
            ]
            lines += [" ".join(sentences), ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_killed_ingest_leaves_the_library_and_resumes(cli_env, tmp_path):
    from chromadb.api.shared_system_client import SharedSystemClient

    settings = Settings.from_env(env={}, data_dir=Path(cli_env["VIGNETTE_DATA_DIR"]))
    # 1. A book already in the library, which the killed ingest must not disturb.
    earlier = BookStore(settings).ingest(tiny_book(tmp_path), book_id="lamplighter")
    SharedSystemClient.clear_system_cache()
    earlier_files = snapshot(settings.books_dir / "lamplighter")

    # 2. Start ingesting a longer book in small steps, and SIGKILL it once some steps are in Chroma.
    novel = generated_novel(tmp_path / "chronicle.txt")
    env = dict(cli_env, VIGNETTE_ENCODE_BATCH_SIZE="8", VIGNETTE_INGEST_BATCH_SIZE="8")
    command = [sys.executable, "-m", "bot", "ingest", str(novel), "--book-id", "chronicle", "--json"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = bytearray()
    reader = threading.Thread(target=lambda: [seen.extend(chunk) for chunk in iter(lambda: proc.stderr.read1(256), b"")],
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    killed_at = None
    while proc.poll() is None and time.monotonic() < deadline:
        counts = PROGRESS.findall(bytes(seen))
        if counts and int(counts[-1][0]) >= 16:
            done, total = map(int, counts[-1])
            proc.send_signal(signal.SIGKILL)
            killed_at = done
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    reader.join(timeout=10)
    assert killed_at is not None, f"the ingest ended before it could be killed: {bytes(seen)[-2000:]!r}"
    assert killed_at < total, "killed too late to test anything"
    assert proc.returncode == -signal.SIGKILL

    # 3. The earlier book is untouched; the killed one is not listed, but noted as interrupted.
    assert snapshot(settings.books_dir / "lamplighter") == earlier_files
    listed = subprocess.run([sys.executable, "-m", "bot", "books", "--json"], cwd=ROOT, env=cli_env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert [b["book_id"] for b in json.loads(listed.stdout)] == ["lamplighter"]
    assert "'chronicle' was interrupted" in listed.stderr

    # 4. A re-run completes, encoding only what the killed run had not added.
    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["passages"] == total
    assert 0 < report["added"] <= total - killed_at

    store = BookStore(settings)
    from retrieval.loading import load_book
    from retrieval.passages import split_passages

    expected = split_passages(load_book(novel, book_id="chronicle"), store.encoder.tokenizer,
                              settings.passage_tokens, settings.passage_overlap_sentences)
    assert report["passages"] == len(expected) >= 40
    assert [p.passage_id for p in store.passages("chronicle")] == [p.passage_id for p in expected]
    assert sorted(b.book_id for b in store.books()) == ["chronicle", "lamplighter"] and store.incomplete() == []
    assert store.client.get_collection(collection_name("chronicle")).count() == len(expected)
    assert store.client.get_collection(collection_name("lamplighter")).count() == earlier.passages
    assert snapshot(settings.books_dir / "lamplighter") == earlier_files
