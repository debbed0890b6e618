"""Offline, quiet, private by default; and the torchvision work-around.

Every entry point (CLI, app, tests' conftest) calls :func:`prepare` before anything imports torch,
transformers, open_clip or k_diffusion. It does two things:

1. Sets the variables that stop libraries from phoning home (Hugging Face Hub, Gradio analytics,
   Chroma telemetry, wandb), unless the user opted in with ``VIGNETTE_ALLOW_DOWNLOADS=1``; a value the
   user set explicitly is never overwritten.
2. Registers the ``torchvision::nms`` schemas when torchvision's compiled extension cannot load (the
   PyPI torchvision wheel is CUDA-linked; on a CPU torch its ``_C`` fails and ``import torchvision``
   raises). The pure-Python parts (transforms) then work. Where the extension loads, nothing is done.
"""

from __future__ import annotations

import os

_QUIET = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_MODE": "disabled",
    "WANDB_SILENT": "true",
    "TOKENIZERS_PARALLELISM": "false",
    "DISABLE_TELEMETRY": "1",
}
_OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}

_prepared = False


def downloads_allowed() -> bool:
    return os.environ.get("VIGNETTE_ALLOW_DOWNLOADS", "").strip().lower() in {"1", "true", "yes", "on"}


def prepare() -> None:
    """Idempotent: set quiet/offline variables and make torchvision importable."""
    global _prepared
    if _prepared:
        return
    for key, value in _QUIET.items():
        os.environ.setdefault(key, value)
    if not downloads_allowed():
        for key, value in _OFFLINE.items():
            os.environ.setdefault(key, value)
    _patch_torchvision()
    _prepared = True


def _patch_torchvision() -> None:
    import importlib.util

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    import glob

    import torch

    if hasattr(torch.ops, "torchvision") and _has_op("nms"):
        return
    root = list(spec.submodule_search_locations)[0]
    for lib in glob.glob(os.path.join(root, "_C*.so")):
        try:
            torch.ops.load_library(lib)
            return  # the real extension loads: nothing to do
        except (OSError, RuntimeError):
            break
    if _has_op("nms"):
        return
    lib = torch.library.Library("torchvision", "DEF")  # noqa: F841 - must stay referenced
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBS.append(lib)


_LIBS: list = []


def _has_op(name: str) -> bool:
    import torch

    try:
        getattr(torch.ops.torchvision, name)
        return True
    except (AttributeError, RuntimeError):
        return False
