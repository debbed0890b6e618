"""`python -m bot illustrate` and `python -m bot characters` as a user runs them (tiny random image models;
the bundled sample novel is ingested once for the module)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.system  # real `python -m bot` processes (make test-fast leaves them out)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """One data dir for the module: the sample novel is ingested by the first command that needs it."""
    return tmp_path_factory.mktemp("library")


def bot(env: dict, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**env, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_illustrate_a_described_scene_as_json(cli_env, library, tmp_path):
    env = {**cli_env, "VIGNETTE_DATA_DIR": str(library)}
    out = tmp_path / "scene.png"
    result = bot(
        env,
        "illustrate",
        "--book",
        "sample",
        "--models",
        "tiny-random",
        "--size",
        "64x48",
        "--steps",
        "2",
        "--seed",
        "3",
        "--sampler",
        "euler_ancestral",
        "--json",
        "--out",
        str(out),
        "Wren rowing the Little Auk at dawn",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("prompt", "negative_prompt", "image", "seed", "sampler", "steps", "evidence"):
        assert key in data
    assert data["image"] == str(out) and data["seed"] == 3 and data["sampler"] == "euler_ancestral"
    assert data["steps"] == 2 and data["size"] == [64, 48]
    assert "Wren" in data["prompt"] and "dawn" in data["prompt"]
    evidence = data["evidence"]
    assert "Little Auk" in evidence["quote"] and evidence["chapter"] >= 1 and evidence["passage_id"]
    assert "noise" in data["notice"]
    from PIL import Image

    from illustration.metadata import read_metadata

    with Image.open(out) as image:
        assert image.size == (64, 48)
    meta = read_metadata(out)
    assert meta["prompt"] == data["prompt"] and meta["book_id"] == "sample"
    assert meta["evidence"]["passage_id"] == evidence["passage_id"]
    saved = Path(data["saved"])  # the record kept with the book in the data dir
    assert saved.parent == library / "images" / "sample" and saved.with_suffix(".json").is_file()


def test_illustrate_a_question_draws_the_answers_passage(cli_env, library):
    env = {**cli_env, "VIGNETTE_DATA_DIR": str(library)}
    result = bot(
        env,
        "illustrate",
        "--book",
        "sample",
        "--models",
        "tiny-random",
        "--size",
        "32x32",
        "--steps",
        "1",
        "--seed",
        "1",
        "Who found the green lantern on Kestrel Point?",
    )
    assert result.returncode == 0, result.stderr
    assert "Scene prompt (" in result.stdout and "Image: " in result.stdout
    assert "Evidence: " in result.stdout
    image = Path(result.stdout.split("Image: ", 1)[1].split()[0])
    assert image.is_file() and image.parent == library / "images" / "sample"


def test_prompt_only_prints_the_scene_to_edit(cli_env, library):
    env = {**cli_env, "VIGNETTE_DATA_DIR": str(library)}
    result = bot(
        env,
        "illustrate",
        "--book",
        "sample",
        "--prompt-only",
        "--json",
        "--style",
        "engraving",
        "Nell Pritchard in the square at night with her rolling pin",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["prompt"].startswith("a Victorian wood engraving of Nell Pritchard")
    assert "blue headscarf" in data["prompt"] and data["writer"] == "rule-based"
    assert not (library / "images" / "sample").exists() or all(
        "Nell" not in p.read_text() for p in (library / "images" / "sample").glob("*.json")
    )


def test_characters_are_shown_and_an_edit_is_kept(cli_env, library):
    env = {**cli_env, "VIGNETTE_DATA_DIR": str(library)}
    shown = bot(env, "characters", "--book", "sample")
    assert shown.returncode == 0, shown.stderr
    assert "Wren: " in shown.stdout and "red wool scarf" in shown.stdout
    edited = bot(
        env,
        "characters",
        "--book",
        "sample",
        "--set",
        "Toby=very tall boy, yellow oilskin",
        "--rebuild",
        "--json",
    )
    assert edited.returncode == 0, edited.stderr
    toby = next(c for c in json.loads(edited.stdout)["characters"] if c["name"] == "Toby")
    assert toby["description"] == "very tall boy, yellow oilskin" and toby["edited"]
    assert (library / "books" / "sample" / "characters.json").is_file()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--size", "65x64"], "multiple of 8"),
        (["--sampler", "plms"], "dpmpp_2m"),
        (["--models", "/no/such/model"], "VIGNETTE_ALLOW_DOWNLOADS=1"),
    ],
)  # every bad input is refused in-process by tests/test_illustrator.py; here: the CLI's path to the user
def test_bad_input_fails_fast_with_a_clear_message(cli_env, tmp_path, args, message):
    started = time.perf_counter()
    result = bot(
        cli_env, "illustrate", "--book", "sample", *args, "--json", "a bell tower at dawn", timeout=120
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert json.loads(result.stdout)["error"]
    # refused before any work: no book was ingested, no picture saved
    data_dir = Path(cli_env["VIGNETTE_DATA_DIR"])
    assert not (data_dir / "books").exists() and not (data_dir / "images").exists()
    assert time.perf_counter() - started < 120
