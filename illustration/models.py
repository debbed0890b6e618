"""Image model profiles: what to load, whether it is here, and loading it once.

A *profile* names the diffusion components (diffusers ``UNet2DConditionModel``, ``AutoencoderKL``, a CLIP
text encoder and its tokenizer, and the training noise schedule) and the open_clip model used for CLIP
guidance. It is chosen by ``--models PROFILE`` or ``VIGNETTE_IMAGE_MODELS`` (``Settings.image_models``):

- ``default``: Stable Diffusion 1.5 (``stable-diffusion-v1-5/stable-diffusion-v1-5``, the maintained mirror
  of ``runwayml/stable-diffusion-v1-5``) with open_clip ``ViT-B-32`` / ``laion2b_s34b_b79k``. Why SD 1.5:
  an epsilon-prediction 512x512 model trained for classifier-free guidance, so the negative prompt and
  the CFG scale mean what they say (distilled "turbo" models are trained for guidance 0 and ignore
  both); its latent space is the one the cheap latent->RGB preview below was fitted on; the whole
  pipeline is ~2 GB in fp16 and runs (slowly) on a CPU; the CreativeML OpenRAIL-M licence allows use in
  an app. ViT-B-32 is the cheapest well-trained CLIP, which matters because guidance runs it on every
  cutout on every guided step.
- ``tiny-random`` (and ``tiny-random-v``, the same with v-prediction): tiny random components built
  locally under a fixed seed in well under a second. For tests and smoke checks: its images are noise,
  and every result says so.
- anything else: a Hub id, a local diffusers folder or a single-file checkpoint (``.safetensors``,
  ``.ckpt``), with the CLIP model of ``Settings.clip_model``.

Nothing is loaded at import time. :func:`image_models_status` answers "can I draw?" cheaply (no weights
are read), so the chat and the app can decide to fall back before any work; :func:`load_image_models`
loads a profile once per (profile, device, dtype) and caches it.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vignette import offline
from vignette.errors import VignetteError
from vignette.hub import in_hub_cache

DEFAULT_DIFFUSION = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_CLIP = "ViT-B-32:laion2b_s34b_b79k"
TINY = "tiny-random"
TINY_V = "tiny-random-v"
# Stable Diffusion 1.5's architecture at full size (UNet, VAE, CLIP ViT-L/14 text encoder) and open_clip
# ViT-B-32, all with random weights: time and memory are those of the real models (they depend on the
# architecture, not the weights), so speed can be measured where the weights cannot be downloaded.
# Pictures are noise.
SD15_RANDOM = "sd15-random"
NOISE_NOTICE = "This picture is noise: the test image models are untrained."  # set-up advice: the app's About panel
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class ModelProfile:
    name: str  # "default", "tiny-random", or the spec as given
    diffusion: str  # Hub id, diffusers folder, single-file checkpoint, or "tiny-random"/"tiny-random-v"
    # open_clip "MODEL:PRETRAINED" (a tag or a local file), "hf-hub:ORG/REPO", "local-dir:PATH", "none"
    clip: str

    @property
    def is_tiny(self) -> bool:
        return self.diffusion in (TINY, TINY_V)

    @property
    def is_random(self) -> bool:
        """Built locally with random weights (tiny, or full size for timing)."""
        return self.is_tiny or self.diffusion == SD15_RANDOM


PROFILE_NAMES = ("default", TINY, TINY_V, SD15_RANDOM)


def resolve_profile(settings, spec: str | None = None) -> ModelProfile:
    """The profile for ``spec`` (default: ``settings.image_models``)."""
    spec = (spec or settings.image_models or "default").strip()
    clip = (getattr(settings, "clip_model", None) or DEFAULT_CLIP).strip()
    if spec == "default":
        return ModelProfile("default", DEFAULT_DIFFUSION, clip)
    if spec in (TINY, TINY_V):
        return ModelProfile(spec, spec, TINY)
    if spec == SD15_RANDOM:
        return ModelProfile(spec, spec, "ViT-B-32 (random)")
    return ModelProfile(spec, spec, clip)


# --- availability (cheap: no weights are read) -------------------------------------------------------


def image_models_status(settings, spec: str | None = None) -> tuple[bool, str]:
    """(available, message): whether the profile can be loaded here without downloading anything.

    Reads no weights: checks that local paths exist and that Hub ids are in the local Hugging Face cache
    (or that downloads are allowed). The message says what is missing and what to do.
    """
    profile = resolve_profile(settings, spec)
    if profile.is_tiny:
        return (
            True,
            "tiny-random image models (built locally; pictures are noise, for checking the mechanics)",
        )
    if profile.diffusion == SD15_RANDOM:
        return True, "Stable Diffusion 1.5-sized models with random weights (for timing; pictures are noise)"
    ok, what = _diffusion_status(profile.diffusion, settings)
    if not ok:
        return False, _missing_message(profile, what)
    ok_clip, what_clip = _clip_status(profile.clip, settings)
    if not ok_clip:
        return False, _missing_message(profile, what_clip)
    return True, f"image models: {what}; CLIP guidance: {what_clip}"


def _downloads_allowed(settings) -> bool:
    return bool(getattr(settings, "allow_downloads", False)) or offline.downloads_allowed()


def _looks_like_path(spec: str) -> bool:
    return (
        spec.startswith(("/", "./", "../", "~", ".\\"))
        or Path(spec).expanduser().exists()
        or spec.lower().endswith(CHECKPOINT_SUFFIXES)
        or spec.count("/") > 1
        or "\\" in spec
    )


def _diffusion_status(spec: str, settings) -> tuple[bool, str]:
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if path.is_file():
            if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
                return False, f"{path} is not a checkpoint (expected {', '.join(CHECKPOINT_SUFFIXES)})"
            return True, f"single-file checkpoint {path.name}"
        if path.is_dir():
            if (path / "model_index.json").is_file() or (path / "unet" / "config.json").is_file():
                return True, f"diffusers folder {path}"
            return False, f"{path} is a folder but not a diffusers model (no model_index.json or unet/)"
        return False, f"{path} does not exist"
    if _downloads_allowed(settings):
        return True, f"{spec} (downloads allowed)"
    if in_hub_cache(spec, "model_index.json") or in_hub_cache(spec, "unet/config.json"):
        return True, f"{spec} (local Hugging Face cache)"
    return False, f"the diffusion model {spec!r} is not in the local Hugging Face cache"


def split_clip_spec(spec: str) -> tuple[str, str | None]:
    """'ViT-B-32:laion2b_s34b_b79k' -> ('ViT-B-32', 'laion2b_s34b_b79k'); schema names pass through."""
    if spec.startswith(("hf-hub:", "local-dir:")):
        return spec, None
    name, _, pretrained = spec.partition(":")
    return name, (pretrained or None)


def _clip_status(spec: str, settings) -> tuple[bool, str]:
    if spec in ("none", ""):
        return True, "none (CLIP guidance off)"
    import open_clip

    name, pretrained = split_clip_spec(spec)
    if name.startswith("local-dir:"):
        folder = Path(name[len("local-dir:") :]).expanduser()
        return (
            folder.is_dir(),
            f"open_clip folder {folder}" if folder.is_dir() else f"{folder} does not exist",
        )
    if name.startswith("hf-hub:"):
        repo = name[len("hf-hub:") :]
        if _downloads_allowed(settings) or in_hub_cache(repo, "open_clip_config.json"):
            return True, f"open_clip {name}"
        return False, f"the CLIP model {name!r} is not in the local Hugging Face cache"
    if name not in open_clip.list_models():
        return False, f"{name!r} is not an open_clip model (e.g. ViT-B-32, ViT-B-16, ViT-L-14)"
    if not pretrained:
        return (
            False,
            f"no pretrained weights named for the CLIP model {name!r} "
            f"(write {name}:TAG or {name}:/path/to/file)",
        )
    if Path(pretrained).expanduser().is_file():
        return True, f"open_clip {name} from {pretrained}"
    if _looks_like_path(pretrained):
        return False, f"the CLIP weights file {pretrained} does not exist"
    cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)[:6])
        return False, f"{pretrained!r} is not a pretrained tag of {name} (known: {tags})"
    if _downloads_allowed(settings):
        return True, f"open_clip {name}/{pretrained} (downloads allowed)"
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = hub.rstrip("/").rsplit("/", 1) if not hub.endswith("/") else (hub.rstrip("/"), "")
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if any(in_hub_cache(repo, n) for n in names):
            return True, f"open_clip {name}/{pretrained} (local Hugging Face cache)"
    url = cfg.get("url", "")
    if url and (Path("~/.cache/clip").expanduser() / Path(url).name).is_file():
        return True, f"open_clip {name}/{pretrained} (local cache)"
    return False, f"the CLIP weights {name}/{pretrained} are not in the local cache"


def _missing_message(profile: ModelProfile, what: str) -> str:
    return (
        f"Can't draw: {what}, and downloads are off. Either download it once with "
        f"VIGNETTE_ALLOW_DOWNLOADS=1, or set VIGNETTE_IMAGE_MODELS (or --models) to a local diffusers folder "
        f"or a .safetensors checkpoint (and VIGNETTE_CLIP_MODEL to MODEL:/path/to/open_clip weights), or use "
        f"--models tiny-random to try the mechanics (its pictures are noise)."
    )


def require_image_models(settings, spec: str | None = None) -> ModelProfile:
    """The profile, or a VignetteError saying what to do when it is not available offline."""
    ok, message = image_models_status(settings, spec)
    if not ok:
        raise VignetteError(message)
    return resolve_profile(settings, spec)


# --- device and dtype ---------------------------------------------------------------------------------


def resolve_device(name: str = "auto"):
    """'auto' -> CUDA, then Apple MPS, then CPU; an explicit device must exist."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VignetteError(f"Unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VignetteError(
            f"The device {name!r} was asked for, but no CUDA GPU is available here. Use --device auto or cpu."
        )
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise VignetteError(
            f"The device {name!r} was asked for, but Apple MPS is not available here. Use auto or cpu."
        )
    return device


_DTYPES = {
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
}


def resolve_dtype(name: str, device):
    """'auto' -> fp16 on CUDA/MPS (half the memory, tensor cores), fp32 on CPU (fp16 is slow or
    unsupported there)."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if name not in _DTYPES:
        raise VignetteError(f"Unknown dtype {name!r}: use auto, float32, float16 or bfloat16.")
    return getattr(torch, _DTYPES[name])


# --- loaded components ----------------------------------------------------------------------------------


@dataclass
class ClipBundle:
    """An open_clip model for guidance (``encode_image``, ``encode_text``), its tokenizer and input
    normalisation."""

    model: Any
    tokenizer: Any
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str


@dataclass
class ImageModels:
    profile: ModelProfile
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    alphas_cumprod: Any  # float32 tensor on device: the training noise schedule (k-diffusion needs it)
    prediction_type: str  # "epsilon" or "v_prediction"
    clip: ClipBundle | None
    device: Any
    dtype: Any
    names: dict[str, str] = field(default_factory=dict)  # what to write in the PNG: diffusion, clip
    notice: str | None = None  # said with every picture (tiny-random: "this is noise")

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def scaling_factor(self) -> float:
        return float(getattr(self.vae.config, "scaling_factor", 0.18215) or 0.18215)


_CACHE: dict[tuple, ImageModels] = {}
_LOCK = threading.Lock()


def load_image_models(settings, spec: str | None = None) -> ImageModels:
    """Load the profile's components once (cached per profile, CLIP model, device and dtype)."""
    profile = require_image_models(settings, spec)
    device = resolve_device(getattr(settings, "device", "auto"))
    dtype = resolve_dtype(getattr(settings, "dtype", "auto"), device)
    key = (profile, str(device), str(dtype))
    with _LOCK:
        if key not in _CACHE:
            if profile.is_tiny:
                models = build_tiny_random(device, dtype, v_prediction=profile.diffusion == TINY_V)
                models.profile = profile
            elif profile.diffusion == SD15_RANDOM:
                models = build_sd15_random(device, dtype)
            else:
                models = _load_real(profile, settings, device, dtype)
            _CACHE[key] = models
        return _CACHE[key]


def _load_real(profile: ModelProfile, settings, device, dtype) -> ImageModels:
    import torch  # noqa: F401

    local_only = not _downloads_allowed(settings)
    try:
        parts = _load_diffusion(profile.diffusion, dtype, local_only)
    except VignetteError:
        raise
    except Exception as err:  # diffusers raises many kinds; the user needs one sentence
        raise VignetteError(
            f"Could not load the image model {profile.diffusion!r}: {str(err).splitlines()[0][:300]}",
            hint="Check that it is a Stable Diffusion 1.x/2.x model (a diffusers folder, a Hub id or a "
            ".safetensors checkpoint). Single-file checkpoints need their configuration once: run with "
            "VIGNETTE_ALLOW_DOWNLOADS=1.",
        ) from err
    unet, vae, text_encoder, tokenizer, scheduler_config = parts
    if getattr(unet.config, "addition_embed_type", None):
        raise VignetteError(
            f"{profile.diffusion!r} looks like an SDXL-class model (it needs extra conditioning); "
            "Vignette draws with "
            "Stable Diffusion 1.x/2.x models. Use --models default or another SD 1.x/2.x model."
        )
    for module in (unet, vae, text_encoder):
        _place(module, device, dtype)
    alphas_cumprod, prediction_type = _schedule(scheduler_config)
    clip = _load_clip(profile.clip, device, local_only)
    return ImageModels(
        profile=profile,
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        alphas_cumprod=alphas_cumprod.to(device),
        prediction_type=prediction_type,
        clip=clip,
        device=device,
        dtype=dtype,
        names={"diffusion": profile.diffusion, "clip": profile.clip},
    )


def _load_diffusion(spec: str, dtype, local_only: bool):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    path = Path(spec).expanduser()
    if path.is_file():
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline.from_single_file(
            str(path),
            torch_dtype=dtype,
            local_files_only=local_only,
            safety_checker=None,
            requires_safety_checker=False,
        )
        return pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, dict(pipe.scheduler.config)
    source = str(path) if path.is_dir() else spec
    kw = {"local_files_only": local_only}
    unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=dtype, **kw)
    vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **kw)
    text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", dtype=dtype, **kw)
    tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **kw)
    from diffusers import DDPMScheduler

    scheduler_config = DDPMScheduler.load_config(source, subfolder="scheduler", **kw)
    return unet, vae, text_encoder, tokenizer, dict(scheduler_config)


def _place(module, device, dtype) -> None:
    """Move to the device, cast only when the dtype differs (diffusers warns on a no-op cast), freeze."""
    module.to(device)
    if next(module.parameters()).dtype != dtype:
        module.to(dtype)
    module.eval().requires_grad_(False)


def _schedule(scheduler_config: dict):
    """alphas_cumprod and the prediction type from the model's own scheduler config (as trained)."""
    from diffusers import DDPMScheduler

    keep = {k: v for k, v in scheduler_config.items() if not k.startswith("_")}
    scheduler = DDPMScheduler.from_config(keep)
    prediction_type = scheduler.config.prediction_type
    if prediction_type not in ("epsilon", "v_prediction"):
        raise VignetteError(
            f"This model predicts {prediction_type!r}; Vignette's sampler handles epsilon and "
            "v-prediction models."
        )
    return scheduler.alphas_cumprod.float(), prediction_type


def _load_clip(spec: str, device, local_only: bool) -> ClipBundle | None:
    if spec in ("none", ""):
        return None
    import open_clip

    name, pretrained = split_clip_spec(spec)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=device
        )
    except Exception as err:
        raise VignetteError(
            f"Could not load the CLIP model {spec!r}: {str(err).splitlines()[0][:300]}",
            hint="Set VIGNETTE_CLIP_MODEL to MODEL:TAG (cached) or MODEL:/path/to/open_clip_weights, or "
            "'none' to draw "
            "without CLIP guidance.",
        ) from err
    model.eval().requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(name)
    return _bundle(model, tokenizer, spec)


def _bundle(model, tokenizer, name: str) -> ClipBundle:
    size = model.visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mean = tuple(getattr(model.visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073))
    std = tuple(getattr(model.visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711))
    return ClipBundle(model=model, tokenizer=tokenizer, image_size=size, mean=mean, std=std, name=name)


def _quietly(fn, *args, **kwargs):
    """open_clip warns that a model built without weights is random: for tiny-random, that is the point."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        return fn(*args, **kwargs)
    finally:
        root.setLevel(level)


# --- tiny random components -----------------------------------------------------------------------------

_TINY_CLIP_NAME = "vignette-tiny-clip"
_TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
_TINY_DIR: Path | None = None


def _tiny_dir() -> Path:
    """A temp folder with the tiny open_clip config and a small CLIP BPE tokenizer (once per process)."""
    global _TINY_DIR
    if _TINY_DIR is not None:
        return _TINY_DIR
    import open_clip

    folder = Path(tempfile.mkdtemp(prefix="vignette-tiny-"))
    (folder / "clip").mkdir()
    (folder / "clip" / f"{_TINY_CLIP_NAME}.json").write_text(json.dumps(_TINY_CLIP_CONFIG))
    open_clip.add_model_config(folder / "clip")
    _write_clip_bpe(folder, 2000)
    _TINY_DIR = folder
    return folder


def _write_clip_bpe(folder: Path, n_merges: int) -> None:
    """CLIP's real byte-level BPE (packaged with open_clip), its first ``n_merges`` merges, as the
    ``vocab.json``/``merges.txt`` pair CLIPTokenizer reads. 48,894 merges give CLIP's full 49,408 tokens."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as fh:
        merges = [tuple(line.split()) for line in fh.read().split("\n")[1 : n_merges + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = (
        vocab
        + [v + "</w>" for v in vocab]
        + ["".join(m) for m in merges]
        + ["<|startoftext|>", "<|endoftext|>"]
    )
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")


def build_tiny_random(device=None, dtype=None, *, v_prediction: bool = False, seed: int = 0) -> ImageModels:
    """Tiny random latent-diffusion components (UNet, VAE with 8x downsampling like SD, CLIP text encoder and
    tokenizer, open_clip model) built under a fixed seed. Pictures are noise; the notice says so."""
    import open_clip
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    device = device or torch.device("cpu")
    dtype = dtype or torch.float32
    folder = _tiny_dir()
    with torch.random.fork_rng(devices=[]):  # a fixed seed without disturbing the caller's random state
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(16, 32),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=4,
            norm_num_groups=8,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=8,
            block_out_channels=(8, 8, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            sample_size=64,
        )
        tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        clip_model = _quietly(open_clip.create_model, _TINY_CLIP_NAME, pretrained=None, device=device)
    for module in (unet, vae, text_encoder):
        _place(module, device, dtype)
    clip_model.eval().requires_grad_(False)
    alphas_cumprod, prediction_type = _schedule(
        {
            "num_train_timesteps": 1000,
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
            "prediction_type": "v_prediction" if v_prediction else "epsilon",
        }
    )
    name = TINY_V if v_prediction else TINY
    return ImageModels(
        profile=ModelProfile(name, name, TINY),
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        alphas_cumprod=alphas_cumprod.to(device),
        prediction_type=prediction_type,
        clip=_bundle(clip_model, open_clip.get_tokenizer(_TINY_CLIP_NAME), f"{_TINY_CLIP_NAME} (random)"),
        device=device,
        dtype=dtype,
        names={"diffusion": f"{name} (random)", "clip": f"{_TINY_CLIP_NAME} (random)"},
        notice=NOISE_NOTICE,
    )


def build_sd15_random(device=None, dtype=None, *, seed: int = 0) -> ImageModels:
    """Stable Diffusion 1.5's components at full size from its published configuration, with random weights:
    the UNet (block_out_channels 320/640/1280/1280, cross-attention 768), the VAE (128/256/512/512), the CLIP
    ViT-L/14 text encoder with CLIP's full 49,408-token BPE, and open_clip ViT-B-32 for guidance. For timing
    and memory (``python -m eval.bench sample --full-size``): pictures are noise."""
    import open_clip
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    device = device or torch.device("cpu")
    dtype = dtype or torch.float32
    folder = Path(tempfile.mkdtemp(prefix="vignette-sd15-"))
    _write_clip_bpe(folder, 49408 - 256 * 2 - 2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=64,
            in_channels=4,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            layers_per_block=2,
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            sample_size=512,
        )
        tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                hidden_act="quick_gelu",
                projection_dim=768,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        clip_model = _quietly(open_clip.create_model, "ViT-B-32", pretrained=None, device=device)
    for module in (unet, vae, text_encoder):
        _place(module, device, dtype)
    clip_model.eval().requires_grad_(False)  # float32, as _load_clip leaves a pretrained one
    alphas_cumprod, prediction_type = _schedule(
        {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
         "prediction_type": "epsilon"}
    )
    return ImageModels(
        profile=ModelProfile(SD15_RANDOM, SD15_RANDOM, "ViT-B-32 (random)"),
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        alphas_cumprod=alphas_cumprod.to(device),
        prediction_type=prediction_type,
        clip=_bundle(clip_model, open_clip.get_tokenizer("ViT-B-32"), "ViT-B-32 (random)"),
        device=device,
        dtype=dtype,
        names={"diffusion": f"{SD15_RANDOM} (random weights)", "clip": "ViT-B-32 (random)"},
        notice="This picture is noise: the models have Stable Diffusion 1.5's size but random weights (for timing).",
    )
