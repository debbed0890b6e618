"""`python -m bot recap`, `people` and `export` (in-process, through bot.cli.main), and the recap's
optional prose from a chat model (a LangChain fake chat model stands in for one)."""

from __future__ import annotations

import json

import pytest

from bot.cli import main
from tests.sample_library import copy_sample_to


@pytest.fixture
def data_dir(tmp_path):
    return copy_sample_to(tmp_path / "data")


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_recap_json_cites_every_sentence_up_to_the_limit(capsys, data_dir):
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "recap", "--book", "sample", "--upto-chapter", "2",
                       "--sentences", "2", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["upto_chapter"] == 2 and data["method"] == "mmr" and data["writer"] == "extractive"
    assert [c["chapter"] for c in data["chapters"]] == [1, 2]
    assert all(len(c["sentences"]) == 2 and all(s["chapter"] == c["chapter"] for s in c["sentences"])
               for c in data["chapters"])
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "recap", "--book", "sample", "--upto-chapter", "1")
    assert code == 0 and "Chapter 1: The Seven Bells of Saltmarrow" in out and "[ch. 1]" in out
    assert "[ch. 2]" not in out
    code, out, err = run(capsys, "--data-dir", str(data_dir), "recap", "--book", "sample", "--upto-chapter", "0")
    assert code == 2 and "1 or more" in err


def test_people_json_as_of_chapter_2(capsys, data_dir):
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "people", "--book", "sample", "--upto-chapter", "2",
                       "--json")
    assert code == 0
    data = json.loads(out)
    names = [p["name"] for p in data["people"]]
    assert any("Wren" in n for n in names) and not any("Dunmore" in n for n in names)
    pilot = next(p for p in data["people"] if p["name"] == "Pilot")
    assert pilot["first_chapter"] == 2 and pilot["appearances"][0] == 0 and len(pilot["appearances"]) == 2


def test_export_a_cli_conversation(capsys, data_dir, tmp_path):
    from bot.companion import Companion
    from vignette.settings import Settings

    companion = Companion(Settings.from_env(env={}, data_dir=data_dir))
    companion.reply("evening", "sample", "How old is Toby?")
    companion.close()
    out_file = tmp_path / "evening.md"
    code, _, err = run(capsys, "--data-dir", str(data_dir), "export", "--book", "sample", "--session", "evening",
                       "--out", str(out_file))
    assert code == 0 and "Wrote" in err
    text = out_file.read_text(encoding="utf-8")
    assert "## 1. How old is Toby?" in text and "> Toby was sixteen" in text and "Chapter 1" in text
    code, _, err = run(capsys, "--data-dir", str(data_dir), "export", "--book", "sample", "--session", "nobody")
    assert code == 2 and "no conversation" in err
    code, _, err = run(capsys, "--data-dir", str(data_dir), "export", "--book", "sample", "--session", "../x")
    assert code == 2 and "not allowed" in err


def test_recap_prose_keeps_a_grounded_rewrite_and_refuses_an_invented_one(tmp_path):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from bot.recap import build_recap, rewrite_recap
    from retrieval.loading import load_book
    from tests.test_reading_companion import SAMPLE_NOVEL

    book = load_book(SAMPLE_NOVEL)
    recap = build_recap(book, None, 2, sentences=2, method="lead")
    first = " ".join(s.text for s in recap.chapters[0].sentences)
    grounded = " ".join(first.split()[:25]) + "."
    invented = "Captain Dunmore sails the Marigold onto the Needles and is saved by the green lantern beam."
    rewrite_recap(recap, FakeListChatModel(responses=[grounded, invented]), "fake")
    assert recap.chapters[0].prose == grounded and recap.chapters[1].prose is None
    assert recap.writer == "chat:fake" and any("strayed" in n for n in recap.notes)
    text = recap.to_text()
    assert f"{grounded} [ch. 1]" in text and "[ch. 2]" in text and "Dunmore" not in text
