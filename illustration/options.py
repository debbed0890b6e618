"""Drawing options: presets from ``data/styles.yaml``, flag overrides, and the input checks.

Everything a user can get wrong is checked here, before a model is loaded or a step is taken: the size
(a multiple of 8, between :data:`MIN_SIDE` and :data:`MAX_SIDE` pixels a side), the number of steps
(1 to :data:`MAX_STEPS`), the sampler, the preset, the style and the guidance numbers. Each mistake
raises :class:`~vignette.errors.VignetteError` naming the value and the valid choices.
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from vignette.errors import VignetteError

STYLES_PATH = Path(__file__).resolve().parents[1] / "data" / "styles.yaml"
MIN_SIDE = 32  # pixels; smaller latents (4x4) leave the UNet nothing to work with
MAX_SIDE = 1024  # pixels; SD 1.x is trained at 512, and 1024x1024 already needs ~10 GB in fp16
MAX_STEPS = 150  # beyond this no sampler here improves; a typo like 2000 would run for an hour
MAX_CFG = 30.0
MAX_CUTOUTS = 64
MAX_SEED = 2**32 - 1


@dataclass
class DrawOptions:
    preset: str = "fast"
    sampler: str = "dpmpp_2m"
    steps: int = 8
    width: int = 512
    height: int = 512
    cfg_scale: float = 7.0  # classifier-free guidance scale; 1 turns it (and the negative prompt) off
    clip_scale: float = 0.0  # CLIP guidance scale; 0 turns it off
    clip_cutouts: int = 4
    clip_every: int = 1  # guide every k-th step
    clip_decode_scale: float = 1.0  # < 1: CLIP guidance decodes a smaller picture (cheaper; changes the picture)
    seed: int | None = None  # None: a random seed, recorded in the result
    style: str | None = None  # None: the default style
    preview_every: int = 0  # a preview image in the progress callback every N steps (0: none)

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    @property
    def clip_guided(self) -> bool:
        return self.clip_scale > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.lru_cache(maxsize=4)
def _load_yaml(path: str, mtime: float) -> dict:
    import yaml

    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def load_style_file(path: Path | None = None) -> dict:
    """The parsed ``data/styles.yaml`` (styles, presets, default_style, default_negative)."""
    path = Path(path or STYLES_PATH)
    return _load_yaml(str(path), path.stat().st_mtime)


def presets(path: Path | None = None) -> dict[str, dict]:
    return dict(load_style_file(path).get("presets") or {})


def styles(path: Path | None = None) -> dict[str, dict]:
    return dict(load_style_file(path).get("styles") or {})


def default_style(path: Path | None = None) -> str:
    return str(load_style_file(path).get("default_style") or next(iter(styles(path))))


def parse_size(text: str | tuple[int, int]) -> tuple[int, int]:
    """'640x480' -> (640, 480); a single number means a square."""
    if isinstance(text, (tuple, list)):
        return int(text[0]), int(text[1])
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX\u00d7*,]\s*(\d+))?\s*", str(text))
    if not m:
        raise VignetteError(f"The size {text!r} is not WIDTHxHEIGHT in pixels, e.g. 512x512 or 640x384.")
    w = int(m.group(1))
    return w, int(m.group(2) or w)


def resolve_options(preset: str | None = None, *, settings=None, **overrides: Any) -> DrawOptions:
    """A preset's options with the given overrides (None means "keep the preset's"), checked.

    ``size`` may be given as 'WxH' or (W, H). Raises VignetteError for anything invalid, before any work.
    """
    table = presets()
    name = preset or (getattr(settings, "image_preset", None) if settings is not None else None) or "fast"
    if name not in table:
        raise VignetteError(f"Unknown preset {name!r}. Choose one of: {', '.join(table)}.")
    base = dict(table[name])
    options = DrawOptions(preset=name)
    width, height = parse_size(base.get("size", "512x512"))
    options = replace(
        options,
        sampler=str(base.get("sampler", options.sampler)),
        steps=int(base.get("steps", 8)),
        width=width,
        height=height,
        cfg_scale=float(base.get("cfg_scale", 7.0)),
        clip_scale=float(base.get("clip_scale", 0.0)),
        clip_cutouts=int(base.get("clip_cutouts", 4)),
        clip_every=int(base.get("clip_every", 1)),
        clip_decode_scale=float(base.get("clip_decode_scale", 1.0)),
    )
    size = overrides.pop("size", None)
    if size is not None:
        width, height = parse_size(size)
        options = replace(options, width=width, height=height)
    unknown = set(overrides) - set(DrawOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown drawing options: {sorted(unknown)}")
    options = replace(options, **{k: v for k, v in overrides.items() if v is not None})
    check_options(options)
    return options


def check_options(options: DrawOptions) -> DrawOptions:
    """Raise VignetteError naming the first invalid value and what is allowed."""
    from illustration.sampler import SAMPLERS

    for side, value in (("width", options.width), ("height", options.height)):
        if not isinstance(value, int) or value % 8 or not (MIN_SIDE <= value <= MAX_SIDE):
            raise VignetteError(
                f"The {side} {value} will not work: sizes must be a multiple of 8 between {MIN_SIDE} and "
                f"{MAX_SIDE} pixels (e.g. 512x512, 640x384)."
            )
    if not isinstance(options.steps, int) or not (1 <= options.steps <= MAX_STEPS):
        raise VignetteError(
            f"{options.steps} steps will not work: choose between 1 and {MAX_STEPS} "
            f"(the fast preset uses {presets().get('fast', {}).get('steps', 8)})."
        )
    if options.sampler not in SAMPLERS:
        raise VignetteError(f"Unknown sampler {options.sampler!r}. Choose one of: {', '.join(SAMPLERS)}.")
    if options.preset not in presets():
        raise VignetteError(f"Unknown preset {options.preset!r}. Choose one of: {', '.join(presets())}.")
    if options.style is not None and options.style not in styles():
        raise VignetteError(f"Unknown style {options.style!r}. Choose one of: {', '.join(styles())}.")
    if not (1.0 <= float(options.cfg_scale) <= MAX_CFG):
        raise VignetteError(
            f"The guidance scale {options.cfg_scale} is out of range: use 1 (off) to {MAX_CFG:g}; 7 is usual."
        )
    if float(options.clip_scale) < 0:
        raise VignetteError(f"The CLIP guidance scale {options.clip_scale} is negative: use 0 (off) or more.")
    if options.clip_scale > 0 and not (1 <= int(options.clip_cutouts) <= MAX_CUTOUTS):
        raise VignetteError(f"{options.clip_cutouts} CLIP cutouts will not work: use 1 to {MAX_CUTOUTS}.")
    if not 0.125 <= float(options.clip_decode_scale) <= 1.0:
        raise VignetteError(f"A CLIP decode scale of {options.clip_decode_scale} will not work: use 0.125 to 1.")
    if int(options.clip_every) < 1:
        raise VignetteError(f"CLIP guidance every {options.clip_every} steps will not work: use 1 or more.")
    if options.seed is not None and not (0 <= int(options.seed) <= MAX_SEED):
        raise VignetteError(f"The seed {options.seed} is out of range: use 0 to {MAX_SEED}.")
    if int(options.preview_every) < 0:
        raise VignetteError(f"preview_every must be 0 (no previews) or more, not {options.preview_every}.")
    return options
