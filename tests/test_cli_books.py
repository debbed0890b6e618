"""`python -m bot ingest / books / remove`: real subprocesses for the happy path, bad input in process."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bot.cli import main
from retrieval.store import BookStore
from tests.test_store import OTHER_BOOK, snapshot, tiny_book, write
from vignette.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
REPORT_KEYS = ["book_id", "title", "author", "chapters", "passages", "added", "structure", "warnings", "encoded"]


def bot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.system
def test_ingest_books_reingest_remove(cli_env, tmp_path):
    path = tiny_book(tmp_path)
    first = bot(cli_env, "ingest", str(path), "--book-id", "lamplighter", "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert list(report) == REPORT_KEYS
    assert report["book_id"] == "lamplighter" and report["chapters"] == 4
    assert report["added"] == report["passages"] > 0
    for stage in ("embedding sentences", "storing vectors", "embedding words"):  # a bar per stage, named
        assert stage in first.stderr
    assert report["structure"] == "headings" and report["warnings"] == []

    listed = bot(cli_env, "books")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "TITLE", "AUTHOR", "CHAPTERS", "PASSAGES", "SIZE"]
    assert row.startswith("lamplighter") and "The Lamplighter's Daughter" in row and "Imogen Farrow" in row
    assert row.split()[-4:-2] == ["4", str(report["passages"])] and row.endswith("MB")
    as_json = json.loads(bot(cli_env, "books", "--json").stdout)[0]
    folder = Path(cli_env["VIGNETTE_DATA_DIR"]) / "books" / "lamplighter"
    assert as_json["size_bytes"] == sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert 0 < as_json["vectors_bytes"] < as_json["size_bytes"]

    again = bot(cli_env, "ingest", str(path), "--book-id", "lamplighter")
    assert again.returncode == 0, again.stderr
    assert "already in the library" in again.stdout and "nothing to add" in again.stdout
    assert "Structure: 4 chapters (from headings)" in again.stdout and "Chapter 4: The Orchard Wedding" in again.stdout

    removed = bot(cli_env, "remove", "lamplighter")
    assert removed.returncode == 0 and "Removed lamplighter" in removed.stdout
    assert BookStore(Settings.from_env(env=cli_env)).books() == []


@pytest.mark.system
def test_missing_book_exits_non_zero_with_a_message(cli_env):
    result = bot(cli_env, "remove", "no-such-book")
    assert result.returncode != 0
    assert "error: There is no book 'no-such-book'" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def stocked(tmp_path_factory):
    """A data dir holding one book, for the bad-input tests to prove it stays untouched."""
    root = tmp_path_factory.mktemp("stocked")
    settings = Settings.from_env(env={}, data_dir=root / "data")
    BookStore(settings).ingest(tiny_book(root), book_id="lamplighter")
    return settings


def _broken_epub(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip")
        zf.writestr("OEBPS/chapter1.xhtml", "<html><body><p>No container, no package.</p></body></html>")
    return path


BAD_INPUTS = {
    "empty": lambda d: write(d / "empty.txt", ""),
    "binary": lambda d: (d / "photo.txt").write_bytes(bytes(range(256)) * 64) and d / "photo.txt",
    "pdf": lambda d: (d / "novel.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n") and d / "novel.pdf",
    "broken-epub": lambda d: _broken_epub(d / "novel.epub"),
    "not-a-zip-epub": lambda d: (d / "fake.epub").write_bytes(b"this is not a zip archive") and d / "fake.epub",
    "missing": lambda d: d / "no-such-file.txt",
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_input_is_refused_and_the_library_is_untouched(kind, stocked, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIGNETTE_DATA_DIR", str(stocked.data_dir))
    before = snapshot(Path(stocked.data_dir))
    path = BAD_INPUTS[kind](tmp_path)
    code = main(["ingest", str(path)])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("error: ") and path.name in err
    assert snapshot(Path(stocked.data_dir)) == before


def test_file_over_the_size_limit_is_refused(stocked, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIGNETTE_DATA_DIR", str(stocked.data_dir))
    monkeypatch.setenv("VIGNETTE_MAX_FILE_MB", "0.0001")  # ~100 bytes
    before = snapshot(Path(stocked.data_dir))
    code = main(["ingest", str(write(tmp_path / "clock.txt", OTHER_BOOK))])
    err = capsys.readouterr().err
    assert code != 0 and "too large" in err
    assert snapshot(Path(stocked.data_dir)) == before


def test_taken_id_with_other_content_is_refused(stocked, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIGNETTE_DATA_DIR", str(stocked.data_dir))
    before = snapshot(Path(stocked.data_dir))
    code = main(["ingest", str(write(tmp_path / "clock.txt", OTHER_BOOK)), "--book-id", "lamplighter", "--json"])
    out, err = capsys.readouterr()
    assert code != 0 and "already stored as 'lamplighter'" in err and "--book-id" in err
    assert "error" in json.loads(out)
    assert snapshot(Path(stocked.data_dir)) == before
    assert [b.book_id for b in BookStore(stocked).books()] == ["lamplighter"]


@pytest.mark.system
def test_bad_input_through_a_real_process(cli_env, tmp_path):
    result = bot(cli_env, "ingest", str(write(tmp_path / "empty.txt", "")))
    assert result.returncode != 0
    assert "empty" in result.stderr and "Traceback" not in result.stderr
    assert not (Path(cli_env["VIGNETTE_DATA_DIR"]) / "books").exists()


@pytest.mark.system
def test_a_book_stored_by_an_older_version_is_completed_once_with_progress(cli_env, tmp_path):
    """A format-1 book (no sentence vectors, no vocabulary) gets them built once, before its first question,
    with a progress bar; the next question builds nothing."""
    settings = Settings.from_env(env=cli_env)
    BookStore(settings).ingest(tiny_book(tmp_path), book_id="lamplighter")
    folder = settings.books_dir / "lamplighter"
    for name in ("sentences.npz", "vocabulary.npy", "vocabulary.json"):
        (folder / name).unlink()
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("parts", "passage_vectors"):
        manifest.pop(key)
    (folder / "manifest.json").write_text(json.dumps(dict(manifest, format=1)))
    assert BookStore(settings).missing_parts("lamplighter") == ["sentences", "vocabulary"]

    first = bot(cli_env, "ask", "--book", "lamplighter", "--json", "Who did Tobias Wren marry?")
    assert first.returncode == 0, first.stderr
    assert "stored by an older version" in first.stderr and "embedding sentences" in first.stderr
    assert "Elsie Dunn" in json.loads(first.stdout)["answer"]
    assert BookStore(settings).missing_parts("lamplighter") == []
    assert json.loads((folder / "manifest.json").read_text())["format"] == 2
    second = bot(cli_env, "ask", "--book", "lamplighter", "--json", "Who was the mayor?")
    assert second.returncode == 0 and "older version" not in second.stderr and "embedding" not in second.stderr
    assert json.loads(second.stdout)["abstained"] is True
