"""Kill a real `python -m bot ingest` midway (SIGKILL): the library stays as it was, the killed book is not
listed, and a re-run resumes, encoding only what is missing, to the right passage count. A re-index of a
stored book (other settings) killed at any stage leaves the old book listed and answerable."""

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
PROGRESS = re.compile(rb"embedding sentences:.*?(\d+)/(\d+) \[")

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


def kill_during(command: list[str], env: dict[str, str], progress: re.Pattern, at_least: int) -> tuple[int, int]:
    """Run ``command``; SIGKILL it once its stderr shows ``progress`` at ``at_least`` or more. (done, total)."""
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = bytearray()
    reader = threading.Thread(target=lambda: [seen.extend(chunk) for chunk in iter(lambda: proc.stderr.read1(256), b"")],
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    killed_at = total = None
    while proc.poll() is None and time.monotonic() < deadline:
        counts = progress.findall(bytes(seen))
        if counts and int(counts[-1][0]) >= at_least:
            killed_at, total = map(int, counts[-1])
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    reader.join(timeout=10)
    assert killed_at is not None, f"the ingest ended before it could be killed: {bytes(seen)[-2000:]!r}"
    assert killed_at < total, "killed too late to test anything"
    assert proc.returncode == -signal.SIGKILL
    return killed_at, total


def encoder_work(settings: Settings, novel: Path, book_id: str) -> int:
    """Texts a whole ingest sends through the encoder: sentences, passages (unless derived), words."""
    from retrieval.grounding import BookVocabulary
    from retrieval.loading import load_book
    from retrieval.passages import split_passages
    from retrieval.sentences import sentence_units

    store = BookStore(settings)
    passages = split_passages(load_book(novel, book_id=book_id), store.encoder.tokenizer,
                              settings.passage_tokens, settings.passage_overlap_sentences)
    words = BookVocabulary(passages, store.encode).words()
    encoded_passages = len(passages) if settings.passage_vectors == "encode" else 0
    return len(sentence_units(passages)) + encoded_passages + len(words)


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
    killed_at, total = kill_during(command, env, PROGRESS, 16)

    # 3. The earlier book is untouched; the killed one is not listed, but noted as interrupted.
    assert snapshot(settings.books_dir / "lamplighter") == earlier_files
    listed = subprocess.run([sys.executable, "-m", "bot", "books", "--json"], cwd=ROOT, env=cli_env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert [b["book_id"] for b in json.loads(listed.stdout)] == ["lamplighter"]
    assert "'chronicle' was interrupted" in listed.stderr

    # 4. A re-run completes, not encoding again the sentence steps the killed run had finished.
    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["added"] == report["passages"]
    full = encoder_work(settings, novel, "chronicle")
    assert 0 < report["encoded"] <= full - killed_at

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


@pytest.mark.slow
@pytest.mark.parametrize("stage, at_least", [("embedding sentences", 24), ("embedding words", 16)])
def test_killed_reindex_keeps_the_stored_book_answerable(cli_env, tmp_path, stage, at_least):
    """Re-indexing a stored book (other passage settings), killed midway, never loses the stored book."""
    from chromadb.api.shared_system_client import SharedSystemClient

    settings = Settings.from_env(env={}, data_dir=Path(cli_env["VIGNETTE_DATA_DIR"]))
    novel = generated_novel(tmp_path / "chronicle.txt")
    old = BookStore(settings).ingest(novel, book_id="chronicle")
    SharedSystemClient.clear_system_cache()

    # 1. Re-ingest the same file with shorter passages, killed during `stage`.
    env = dict(cli_env, VIGNETTE_ENCODE_BATCH_SIZE="8", VIGNETTE_INGEST_BATCH_SIZE="8", VIGNETTE_PASSAGE_TOKENS="120")
    command = [sys.executable, "-m", "bot", "ingest", str(novel), "--book-id", "chronicle", "--json"]
    kill_during(command, env, re.compile(re.escape(stage).encode() + rb":.*?(\d+)/(\d+) \["), at_least)

    # 2. The old book is listed, whole, and answers.
    listed = subprocess.run([sys.executable, "-m", "bot", "books", "--json"], cwd=ROOT, env=cli_env,
                            capture_output=True, text=True, timeout=120)
    assert [(b["book_id"], b["passages"]) for b in json.loads(listed.stdout)] == [("chronicle", old.passages)]
    store = BookStore(settings)
    hit = store.dense_search("chronicle", "Who carried the silver key near the harbour?", k=3)
    assert len(hit) == 3 and all("day" in p.text for p, _ in hit)
    assert len(store.passages("chronicle")) == old.passages

    # 3. A re-run completes the new index; the old collection is gone.
    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    SharedSystemClient.clear_system_cache()
    store = BookStore(settings.replace(passage_tokens=120))
    assert report["passages"] > old.passages and len(store.passages("chronicle")) == report["passages"]
    names = [c.name for c in store.client.list_collections()]
    manifest = json.loads((settings.books_dir / "chronicle" / "manifest.json").read_text())
    assert names == [manifest["collection"]] and names != [collection_name("chronicle")]
    assert store.incomplete() == [] and sorted(p.name for p in settings.books_dir.iterdir()) == ["chronicle"]
