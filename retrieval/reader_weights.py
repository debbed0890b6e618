"""How a trained reader is stored and loaded over a base model that installs from its package.

A reader that ships with Vignette must load offline, live in the repository in files a Hugging Face Space
accepts without LFS (each under 10 MB), and never be used when damaged. Two layouts, both over a packaged
base (:mod:`vignette.hub`) named in ``vignette_reader.json``:

* **fp16 shards** (``"format": "fp16-shards"``, written by :func:`export_shards`): the whole fine-tuned
  model's weights in float16, cut into files of at most ``max_file_mb``; a tensor larger than that (the
  word embeddings) is cut by rows. ``weights.json`` says how to put them back. Loaded in float32.
* **LoRA adapter** (peft's ``adapter_config.json`` + ``adapter_model.safetensors``, written by
  ``python -m retrieval.train_reader --lora``): merged into the base's weights at load
  (:func:`merge_adapter`).

``files`` in ``vignette_reader.json`` maps every stored file to its sha256; :func:`check_files` refuses a
missing or altered one with a message that names it.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from vignette.errors import VignetteError

READER_CONFIG = "vignette_reader.json"
SHARDS_FORMAT = "fp16-shards"
SHARD_INDEX = "weights.json"


def check_files(folder: Path, config: dict[str, Any]) -> None:
    """Every file the reader's ``files`` list names exists and has its sha256 (a deleted or damaged shipped
    file is named, never loaded)."""
    from vignette.hub import sha256_of

    for name, digest in (config.get("files") or {}).items():
        path = folder / name
        if not path.is_file():
            raise VignetteError(f"The reader in {folder} is incomplete: {name} is missing.")
        if sha256_of(path) != digest:
            raise VignetteError(f"The reader in {folder} is damaged: {name} does not match its sha256.")


def resolve_base(base: str | None, folder: Path) -> str:
    """The folder of an adapter's base model: a packaged model's name (:mod:`vignette.hub`), a path
    (absolute, or relative to the adapter's folder), or a hub id that is cached or may be downloaded."""
    from vignette.hub import is_packaged, packaged_model_dir

    if not base:
        raise VignetteError(f"The reader in {folder} does not name its base model ({READER_CONFIG}: base).")
    if is_packaged(base):
        return str(packaged_model_dir(base))
    for candidate in (Path(base).expanduser(), folder / base):
        if candidate.is_dir():
            return str(candidate)
    return base


def merge_adapter(model: Any, folder: Path) -> None:
    """Add a peft LoRA adapter (``adapter_config.json`` + ``adapter_model.safetensors``) into ``model``'s
    weights in place: ``W += (alpha / r) * B @ A`` for each adapted linear layer (``alpha / sqrt(r)`` with
    rsLoRA), and the fully trained modules (``modules_to_save``, the QA head) copied over. Done here rather
    than through peft so that loading needs no peft and no version match with the one that trained it."""
    import torch
    from safetensors.torch import load_file

    cfg = json.loads((folder / "adapter_config.json").read_text())
    weights_path = folder / "adapter_model.safetensors"
    if not weights_path.is_file():
        raise VignetteError(f"The reader in {folder} is incomplete: adapter_model.safetensors is missing.")
    tensors = load_file(str(weights_path))
    rank = float(cfg.get("r", 8))
    scale = float(cfg.get("lora_alpha", rank)) / (math.sqrt(rank) if cfg.get("use_rslora") else rank)
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())

    def module_name(key: str) -> str:
        key = key.removeprefix("base_model.model.")
        return key.replace(".modules_to_save.default", "")

    pairs: dict[str, dict[str, Any]] = {}
    copied = 0
    for key, value in tensors.items():
        if ".lora_A." in key or ".lora_B." in key:
            name, part = (module_name(key).split(".lora_A.")[0], "A") if ".lora_A." in key else (
                module_name(key).split(".lora_B.")[0], "B")
            pairs.setdefault(name, {})[part] = value
            continue
        name = module_name(key)
        if name not in params:
            raise VignetteError(f"The adapter in {folder} does not fit its base model (no parameter {name}).")
        with torch.no_grad():
            params[name].copy_(value.to(params[name].dtype))
        copied += 1
    for name, ab in pairs.items():
        layer = modules.get(name)
        if layer is None or "A" not in ab or "B" not in ab:
            raise VignetteError(f"The adapter in {folder} does not fit its base model (layer {name}).")
        with torch.no_grad():
            delta = (ab["B"].float() @ ab["A"].float()) * scale
            if cfg.get("fan_in_fan_out"):
                delta = delta.T
            layer.weight.add_(delta.to(layer.weight.dtype))
    if not pairs:
        raise VignetteError(f"The adapter in {folder} holds no LoRA weights.")


def export_shards(model: Any, out: Path, config: dict[str, Any], max_file_mb: float = 9.5) -> dict[str, Any]:
    """Write ``model``'s weights as float16 shards of at most ``max_file_mb`` MiB into ``out`` with
    ``weights.json`` and ``vignette_reader.json`` (``config`` plus the format and every file's sha256).
    Returns the written reader config."""
    import torch
    from safetensors.torch import save_file

    from vignette.hub import sha256_of

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    limit = int(max_file_mb * 2**20)
    index: dict[str, Any] = {"tensors": {}}
    shard: dict[str, torch.Tensor] = {}
    size = 0
    names: list[str] = []

    def flush() -> None:
        nonlocal shard, size
        if shard:
            name = f"weights-{len(names) + 1:02d}.safetensors"
            save_file(shard, str(tmp / name), metadata={"format": "pt"})
            names.append(name)
            shard, size = {}, 0

    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().to(torch.float16).contiguous()
        nbytes = tensor.numel() * 2
        rows = [tensor] if nbytes <= limit or tensor.dim() == 0 else list(
            torch.split(tensor, max(1, limit // max(1, tensor[0].numel() * 2)), dim=0))
        parts = []
        for i, part in enumerate(rows):
            part = part.contiguous()
            if size + part.numel() * 2 > limit:
                flush()
            part_key = key if len(rows) == 1 else f"{key}#{i}"
            shard[part_key] = part
            size += part.numel() * 2
            parts.append([len(names) + 1, part_key])
        index["tensors"][key] = {"shape": list(tensor.shape), "parts": parts}
    flush()
    for entry in index["tensors"].values():  # shard numbers -> file names, now that they exist
        entry["parts"] = [[names[n - 1], k] for n, k in entry["parts"]]
    (tmp / SHARD_INDEX).write_text(json.dumps(index, indent=1) + "\n")
    files = {name: sha256_of(tmp / name) for name in [*names, SHARD_INDEX]}
    config = {**config, "format": SHARDS_FORMAT, "files": files}
    (tmp / READER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return config


def load_shards(model: Any, folder: Path, config: dict[str, Any]) -> None:
    """Load fp16 shards written by :func:`export_shards` into ``model`` (every parameter and buffer must be
    there: a shard that does not fit its base is refused)."""
    import torch
    from safetensors.torch import load_file

    index_path = folder / SHARD_INDEX
    if not index_path.is_file():
        raise VignetteError(f"The reader in {folder} is incomplete: {SHARD_INDEX} is missing.")
    index = json.loads(index_path.read_text())
    cache: dict[str, dict[str, Any]] = {}
    state = {}
    for key, entry in index["tensors"].items():
        pieces = []
        for file, part_key in entry["parts"]:
            if file not in cache:
                cache[file] = load_file(str(folder / file))
            pieces.append(cache[file][part_key])
        tensor = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=0)
        if list(tensor.shape) != entry["shape"]:
            raise VignetteError(f"The reader in {folder} is damaged: {key} has the wrong shape.")
        state[key] = tensor.float() if tensor.is_floating_point() else tensor
    expected = set(model.state_dict())
    if set(state) != expected:
        missing = sorted(expected - set(state))[:3]
        raise VignetteError(f"The reader in {folder} does not fit its base model (missing {missing}).")
    model.load_state_dict(state, strict=True)
