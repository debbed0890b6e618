"""Nothing reaches the network: at import, in `python -m bot ingest` and in `python -m bot books`.

The subprocesses run with the socket guard of tests/netguard (via ``cli_env``), which refuses and logs any
connection leaving this machine, and with a fresh HOME, so a model Chroma or Hugging Face tried to fetch
would show up as a refused attempt or as a new cache folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_store import tiny_book

pytestmark = pytest.mark.system  # real `python -m bot` processes (make test-fast leaves them out)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def offline_env(cli_env, tmp_path):
    env = dict(cli_env)
    env["HOME"] = str(tmp_path / "home")
    env.pop("XDG_CACHE_HOME", None)
    env.pop("HF_HOME", None)
    (tmp_path / "home").mkdir()
    return env


def refused(env: dict[str, str]) -> list[str]:
    log = Path(env["VIGNETTE_NETGUARD_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def test_the_guard_is_active_in_subprocesses(offline_env):
    probe = "import socket\ntry:\n    socket.create_connection(('93.184.216.34', 80), timeout=1)\nexcept OSError:\n    pass"
    subprocess.run([sys.executable, "-c", probe], env=offline_env, cwd=ROOT, check=True, timeout=60)
    assert refused(offline_env) and "93.184.216.34" in refused(offline_env)[0]


def test_imports_and_the_cli_stay_offline(offline_env, tmp_path):
    imports = ("import bot.cli, retrieval.store, retrieval.embedding, retrieval.sparse, eval.bench, "
               "chromadb, sentence_transformers, transformers")
    subprocess.run([sys.executable, "-c", imports], env=offline_env, cwd=ROOT, check=True, timeout=120)
    assert refused(offline_env) == []

    ingest = subprocess.run([sys.executable, "-m", "bot", "ingest", str(tiny_book(tmp_path)), "--json"],
                            env=offline_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)["added"] > 0
    books = subprocess.run([sys.executable, "-m", "bot", "books", "--json"], env=offline_env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert books.returncode == 0, books.stderr
    assert [b["title"] for b in json.loads(books.stdout)] == ["The Lamplighter's Daughter"]

    assert refused(offline_env) == []
    home = Path(offline_env["HOME"])
    assert not (home / ".cache" / "chroma").exists(), "Chroma fetched its default ONNX model"
    assert not (home / ".cache" / "huggingface" / "hub").exists(), "a model was looked up on the Hugging Face Hub"
