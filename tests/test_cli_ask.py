"""`python -m bot ask`: JSON keys, the human output, and bad input refused with status 2 and no traceback."""

from __future__ import annotations

import pytest

import json
import subprocess
import sys
from pathlib import Path

from tests.sample_library import copy_sample_to

pytestmark = pytest.mark.system  # real `python -m bot` processes (make test-fast leaves them out)

ROOT = Path(__file__).resolve().parents[1]


def _ask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "ask", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_ask_json_on_the_sample(cli_env):
    copy_sample_to(cli_env["VIGNETTE_DATA_DIR"])  # the sample, ingested once per test process
    # The configured QA model is not on this machine: the sentence fallback answers and says so.
    cli_env["VIGNETTE_READER"] = "some-org/qa-model-not-on-this-machine"
    done = _ask(cli_env, "--book", "sample", "--json", "How many steps does the lighthouse have?")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {"answer", "abstained", "evidence", "reader"} <= set(data)
    assert data["abstained"] is False and data["reader"].startswith("sentence:")
    assert "one hundred and twelve" in data["answer"].lower()
    ev = data["evidence"][0]
    assert set(ev) == {"quote", "chapter", "chapter_title", "start", "end", "passage_id", "score"}
    assert ev["chapter"] == 2 and ev["chapter_title"].startswith("Chapter 2")
    assert "best-matching sentence" in data["notice"] and "qa-model-not-on-this-machine" in data["reader_reason"]

    # Human output: the answer, the quote in quotation marks, the chapter, and the fallback's notice.
    done = _ask(cli_env, "--book", "sample", "--upto-chapter", "2", "How many steps does the lighthouse have?")
    assert done.returncode == 0, done.stderr
    assert "\u201c" in done.stdout and "\u2014 Chapter 2: The Keeper of Gullstone Rock" in done.stdout
    assert "note: The best-matching sentence answered" in done.stdout and "qa-model-not-on-this-machine" in done.stdout

    # Abstaining reads as a plain sentence.
    done = _ask(cli_env, "--book", "sample", "What is the boiling point of mercury in kelvin?")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("The book doesn't say.")

    # A chapter limit beyond the book: a clear message, status 2, no traceback, JSON error when asked.
    done = _ask(cli_env, "--book", "sample", "--upto-chapter", "40", "--json", "Who found the letter?")
    assert done.returncode == 2
    assert "has 8 chapters" in json.loads(done.stdout)["error"]
    assert "Traceback" not in done.stderr


def test_bad_questions_are_refused_before_anything_loads(cli_env):
    data_dir = Path(cli_env["VIGNETTE_DATA_DIR"])
    for question, expected in [("   ", "empty"), ("x" * 5000, "5,000 characters"),
                               ("Qui a trouvé la lettre ?", "not to be in English")]:
        done = _ask(cli_env, "--book", "sample", question)
        assert done.returncode == 2
        assert expected in done.stderr and "Traceback" not in done.stderr
    done = _ask(cli_env, "--book", "no-such-book", "Who found the letter?")
    assert done.returncode == 2 and "no book 'no-such-book'" in done.stderr
    assert not (data_dir / "books" / "sample").exists()  # nothing was ingested for a refused question
