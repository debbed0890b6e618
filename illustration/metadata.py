"""The picture's record: the :class:`Illustration` dataclass, PNG text chunks and the sidecar JSON.

Every PNG Vignette writes carries, in its ``tEXt``/``iTXt`` chunks, what is needed to draw it again and to
know what it shows: prompt, negative prompt, seed, sampler, steps, size, classifier-free and CLIP
guidance settings, model names, the book and the evidence passage (id, chapter, quote). The same record
is written beside it as JSON. :func:`read_metadata` reads the chunks back with their types.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SOFTWARE = "Vignette"
# PNG chunk key -> how to read it back.
_INT_KEYS = {"seed", "steps", "width", "height"}
_FLOAT_KEYS = {"cfg_scale"}
_JSON_KEYS = {"clip_guidance", "models", "evidence", "size"}


@dataclass
class Illustration:
    path: str  # the PNG
    prompt: str
    negative_prompt: str
    seed: int
    sampler: str
    steps: int
    size: tuple[int, int]  # (width, height)
    cfg_scale: float
    clip_guidance: dict[str, Any] | None  # {"scale", "cutouts", "every", "cut_pow"}; None when off
    preset: str
    style: str | None
    models: dict[str, str]  # {"profile", "diffusion", "clip", "device", "dtype"}
    book_id: str | None = None
    evidence: dict[str, Any] | None = (
        None  # {"passage_id", "chapter", "chapter_title", "quote", "start", "end"}
    )
    writer: str | None = None  # who wrote the scene prompt ("rule-based", "chat:...", "user")
    notice: str | None = None  # e.g. "tiny-random models: this picture is noise"
    elapsed_s: float = 0.0
    image: Any = field(default=None, repr=False, compare=False)  # the PIL image (not serialised)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("image", None)
        data["size"] = list(self.size)
        return data

    @property
    def sidecar_path(self) -> Path:
        return Path(self.path).with_suffix(".json")


def png_text(illustration: Illustration) -> dict[str, str]:
    """The text chunks for ``illustration`` (all strings; structured values as JSON)."""
    chunks = {
        "prompt": illustration.prompt,
        "negative_prompt": illustration.negative_prompt,
        "seed": str(illustration.seed),
        "sampler": illustration.sampler,
        "steps": str(illustration.steps),
        "width": str(illustration.size[0]),
        "height": str(illustration.size[1]),
        "cfg_scale": repr(float(illustration.cfg_scale)),
        "clip_guidance": json.dumps(illustration.clip_guidance),
        "preset": illustration.preset,
        "style": illustration.style or "",
        "models": json.dumps(illustration.models, ensure_ascii=False),
        "book_id": illustration.book_id or "",
        "evidence": json.dumps(illustration.evidence, ensure_ascii=False),
        "writer": illustration.writer or "",
        "Software": SOFTWARE,
    }
    if illustration.notice:
        chunks["notice"] = illustration.notice
    return chunks


def save_png(image, illustration: Illustration, path: str | Path, sidecar: bool = True) -> Path:
    """Write ``image`` as a PNG carrying the record in text chunks (and the sidecar JSON)."""
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    for key, value in png_text(illustration).items():
        info.add_itxt(key, value)  # iTXt: UTF-8, so quotes with curly quotes and accents survive
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG", pnginfo=info)
    tmp.replace(path)
    if sidecar:
        side = path.with_suffix(".json")
        side.write_text(json.dumps(illustration.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The record from a Vignette PNG's text chunks, with numbers as numbers and structures decoded."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        raw = dict(getattr(image, "text", {}) or image.info)
    data: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            continue
        if key in _INT_KEYS:
            data[key] = int(value)
        elif key in _FLOAT_KEYS:
            data[key] = float(value)
        elif key in _JSON_KEYS:
            data[key] = json.loads(value) if value else None
        elif key in ("book_id", "style", "writer") and value == "":
            data[key] = None
        else:
            data[key] = value
    if "width" in data and "height" in data:
        data["size"] = [data["width"], data["height"]]
    return data


def read_sidecar(path: str | Path) -> Illustration:
    """The :class:`Illustration` from the JSON beside a PNG (the image itself is not loaded)."""
    data = json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8"))
    data["size"] = tuple(data["size"])
    return Illustration(**data)
