"""`python -m bot chat`: one turn per stdin line, --json objects, memory across runs, bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import build_parser
from tests.sample_library import copy_sample_to

ROOT = Path(__file__).resolve().parents[1]


def run_chat(settings, argv: list[str], lines: list[str]) -> tuple[int, str]:
    from bot import cmd_chat

    args = build_parser().parse_args(["chat", *argv])
    out = io.StringIO()
    code = cmd_chat.run(args, settings, stdin=io.StringIO("".join(line + "\n" for line in lines)), stdout=out)
    return code, out.getvalue()


@pytest.fixture
def library(settings):
    copy_sample_to(settings.data_dir)
    return settings


def test_json_prints_one_object_per_turn(library):
    code, out = run_chat(library, ["--book", "sample", "--session", "cli-1", "--json"],
                         ["hello", "How old is Toby?", "and his sister?", "", "draw Toby climbing the clock tower"])
    assert code == 0
    turns = [json.loads(line) for line in out.splitlines()]
    assert [t["intent"] for t in turns] == ["smalltalk", "ask", "ask", "empty", "illustrate"]
    for t in turns:
        assert {"intent", "question", "answer", "abstained", "evidence", "image"} <= set(t)
    assert turns[0]["question"] is None and turns[0]["evidence"] == []
    assert turns[1]["question"] == "How old is Toby?" and not turns[1]["rewritten"]
    assert turns[1]["evidence"] and {"quote", "chapter", "chapter_title"} <= set(turns[1]["evidence"][0])
    assert turns[2]["question"] == "How old is Toby's sister Wren?" and turns[2]["rewritten"]
    assert turns[3]["error"] and "didn't catch" in turns[3]["reply"]
    assert turns[4]["image"] is None  # default image models are not on this machine: the prompt instead
    assert "No picture was drawn" in turns[4]["reply"]


def test_upto_chapter_flag_sets_the_conversation_limit(library):
    code, out = run_chat(library, ["--session", "cli-2", "--json", "--upto-chapter", "2"],
                         ["How many steps does the lighthouse have?", "Who found the letter?"])
    steps, found = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and steps["upto_chapter"] == found["upto_chapter"] == 2
    assert "one hundred and twelve" in steps["answer"] and steps["evidence"][0]["chapter"] == 2
    # The letter is found in chapter 3: within the limit nothing past chapter 2 is quoted.
    assert all(e["chapter"] <= 2 for e in found["evidence"])
    code, out = run_chat(library, ["--session", "cli-2b", "--json"], ["Who found the letter?"])
    free = json.loads(out.splitlines()[0])
    assert code == 0 and free["upto_chapter"] is None
    assert "Wren" in free["answer"] and free["evidence"][0]["chapter"] == 3


def test_plain_output_shows_answer_quote_and_chapter(library):
    code, out = run_chat(library, ["--session", "cli-3"], ["How many steps does the lighthouse have?"])
    assert code == 0
    assert out.startswith("> How many steps does the lighthouse have?\n")
    assert "one hundred and twelve" in out and "\u2014 Chapter 2: The Keeper of Gullstone Rock" in out


def test_bad_session_name_is_refused_with_a_message(library, capsys):
    from bot.cli import main

    code = main(["--data-dir", str(library.data_dir), "chat", "--session", "../../etc/passwd"])
    err = capsys.readouterr().err
    assert code == 2
    assert "not allowed" in err and "'/'" in err


@pytest.mark.system
def test_the_real_command_remembers_across_runs(library, cli_env):
    """A conversation started in this process carries on in a new `python -m bot chat` process."""
    code, _ = run_chat(library, ["--book", "sample", "--session", "proc", "--json"], ["How old is Toby?"])
    assert code == 0
    cli_env["VIGNETTE_DATA_DIR"] = str(library.data_dir)
    cmd = [sys.executable, "-m", "bot", "chat", "--book", "sample", "--session", "proc", "--json"]
    second = subprocess.run(cmd, input="and his sister?\n", capture_output=True, text=True, cwd=ROOT,
                            env=cli_env, timeout=300)
    assert second.returncode == 0, second.stderr
    turn = json.loads(second.stdout.splitlines()[-1])
    assert turn["question"] == "How old is Toby's sister Wren?" and turn["rewritten"]
