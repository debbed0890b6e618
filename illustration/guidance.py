"""CLIP guidance with open_clip, as a model wrapper (Crowson's CLIP-guided diffusion, after k-diffusion's
``sample_clip_guided.py``).

At a guided step the denoised latent prediction is decoded by the VAE, random cutouts of the picture are
embedded by CLIP, and the spherical distance between those embeddings and the prompt's CLIP text
embedding is the loss. Its negative gradient is added to the denoised prediction scaled by ``sigma**2``
(``denoised + grad * sigma**2``): by Tweedie's formula ``denoised = x + sigma**2 * score``, so this adds
``sigma**2 * grad log p(text | x)`` to the score, which is what conditioning on the text asks for.

One departure from the script: the gradient is taken with respect to the denoised prediction (through the
VAE decoder and CLIP), not with respect to ``x`` through the UNet as well. That drops a UNet backward
pass (the most expensive part, twice over with classifier-free guidance) from every guided step. The
chain rule's missing factor, the denoiser's Jacobian ``d denoised / d x``, is replaced by its value for
data of scale ``sigma_data`` (exact for Gaussian data):
``c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)``.
It is ~1 at low noise, where the script and this agree, and keeps the correction bounded
(``sigma**2 * c_skip <= sigma_data**2``) at high noise, where the UNet's own Jacobian is small too. So
guided steps compute ``denoised + grad * sigma**2 * c_skip``. The cost is bounded further by guiding only
every ``every``-th step.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

with warnings.catch_warnings():  # k-diffusion imports clip, which warns about pkg_resources on import
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    from k_diffusion import utils as kutils


def spherical_dist_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between normalised embeddings (0 same direction, pi**2/2 opposite)."""
    x = F.normalize(x, dim=-1)
    y = F.normalize(y, dim=-1)
    return (x - y).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


class MakeCutouts:
    """Random square crops resized to CLIP's input size (Crowson's ``MakeCutouts``), seeded through a
    generator.

    ``cut_pow > 1`` favours small crops (detail), ``< 1`` large ones (composition).
    """

    def __init__(
        self, cut_size: int, cutn: int, cut_pow: float = 1.0, generator: torch.Generator | None = None
    ):
        self.cut_size = cut_size
        self.cutn = cutn
        self.cut_pow = cut_pow
        self.generator = generator

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        side_y, side_x = images.shape[2:4]
        max_size = min(side_x, side_y)
        min_size = min(side_x, side_y, self.cut_size)
        g = self.generator
        cutouts = []
        for _ in range(self.cutn):
            size = int(torch.rand([], generator=g) ** self.cut_pow * (max_size - min_size) + min_size)
            offset_x = int(torch.randint(0, side_x - size + 1, (), generator=g))
            offset_y = int(torch.randint(0, side_y - size + 1, (), generator=g))
            cutout = images[:, :, offset_y : offset_y + size, offset_x : offset_x + size]
            cutouts.append(F.adaptive_avg_pool2d(cutout, self.cut_size))
        return torch.cat(cutouts)


@dataclass
class ClipGuidanceSettings:
    scale: float  # multiplies the loss; 0 turns guidance off
    cutouts: int  # random crops embedded per guided step
    every: int  # guide every k-th step (bounds the cost)
    cut_pow: float = 1.0
    sigma_data: float = 1.0  # the latents' scale (SD latents are scaled to about unit variance)
    # < 1: decode a resized latent for the loss (0.5: a 256x256 picture instead of 512x512, about a quarter
    # of the VAE decoder's forward and backward cost; CLIP sees 224x224 cutouts either way). Changes the picture.
    decode_scale: float = 1.0

    def to_dict(self) -> dict:
        return {
            "scale": self.scale,
            "cutouts": self.cutouts,
            "every": self.every,
            "cut_pow": self.cut_pow,
            "sigma_data": self.sigma_data,
            "decode_scale": self.decode_scale,
        }


class CLIPGuidance:
    """Wraps a k-diffusion model so that every ``every``-th step's denoised prediction is pulled towards the
    prompt's CLIP embedding.

    ``decode`` maps a denoised latent to RGB in [-1, 1] (the VAE decoder, differentiable). ``sigmas`` is the
    sampling schedule, used to tell which step a model call belongs to (Heun and DPM-2 call the model
    twice per step).
    """

    def __init__(
        self,
        clip,
        text: str,
        decode: Callable[[torch.Tensor], torch.Tensor],
        settings: ClipGuidanceSettings,
        sigmas: torch.Tensor,
        seed: int = 0,
    ):
        self.clip = clip
        self.decode = decode
        self.settings = settings
        self.sigmas = sigmas.detach().float().cpu()
        generator = torch.Generator().manual_seed(int(seed))
        self.cutouts = MakeCutouts(clip.image_size, settings.cutouts, settings.cut_pow, generator)
        self.mean = torch.tensor(clip.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(clip.std).view(1, 3, 1, 1)
        self.text_embed = embed_text(clip, text)
        self.guided_steps: list[int] = []

    def step_of(self, sigma: torch.Tensor) -> int:
        value = float(sigma.reshape(-1)[0])
        return int((self.sigmas - value).abs().argmin())

    def applies(self, sigma: torch.Tensor) -> bool:
        return self.settings.scale > 0 and self.step_of(sigma) % max(1, self.settings.every) == 0

    def loss(self, latents: torch.Tensor) -> torch.Tensor:
        """Per-image spherical distance, averaged over the cutouts."""
        if self.settings.decode_scale != 1.0:
            latents = F.interpolate(latents, scale_factor=self.settings.decode_scale, mode="bilinear",
                                    align_corners=False)
        images = (self.decode(latents).float() + 1) / 2
        cutouts = self.cutouts(images)
        device = cutouts.device
        cutouts = (cutouts - self.mean.to(device)) / self.std.to(device)
        embeds = self.clip.model.encode_image(cutouts.to(_dtype_of(self.clip.model))).float()
        dists = spherical_dist_loss(embeds, self.text_embed.to(device))
        return dists.view(self.settings.cutouts, latents.shape[0]).mean(0)

    def wrap(self, model: Callable) -> Callable:
        """``model_fn(x, sigma, **extra) -> denoised + grad * sigma**2 * c_skip`` on guided steps, else
        ``denoised``."""

        def model_fn(x, sigma, **extra_args):
            denoised = model(x, sigma, **extra_args)
            if not self.applies(sigma):
                return denoised
            self.guided_steps.append(self.step_of(sigma))
            with torch.enable_grad():
                latents = denoised.detach().requires_grad_()
                loss = self.loss(latents).sum() * self.settings.scale
                grad = -torch.autograd.grad(loss, latents)[0]
            s2, d2 = sigma**2, self.settings.sigma_data**2
            return denoised + grad * kutils.append_dims(s2 * d2 / (s2 + d2), x.ndim)

        return model_fn


def _dtype_of(module) -> torch.dtype:
    return next(module.parameters()).dtype


@torch.no_grad()
def embed_text(clip, text: str) -> torch.Tensor:
    """The prompt's CLIP text embedding, normalised, float32, shape [1, D]."""
    device = next(clip.model.parameters()).device
    tokens = clip.tokenizer([text]).to(device)
    return F.normalize(clip.model.encode_text(tokens).float(), dim=-1)


@torch.no_grad()
def clip_loss(clip, images: torch.Tensor, text: str, cutouts: int = 16, seed: int = 1234) -> torch.Tensor:
    """How far pictures (RGB in [-1, 1], [B, 3, H, W]) are from the text in CLIP space: the spherical distance
    averaged over the whole picture and ``cutouts`` fixed (seeded) crops. Lower is closer. For evaluation."""
    device = next(clip.model.parameters()).device
    images = ((images.float() + 1) / 2).to(device)
    generator = torch.Generator().manual_seed(seed)
    crops = torch.cat(
        [
            F.adaptive_avg_pool2d(images, clip.image_size),
            MakeCutouts(clip.image_size, cutouts, 1.0, generator)(images),
        ]
    )
    mean = torch.tensor(clip.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(clip.std, device=device).view(1, 3, 1, 1)
    embeds = clip.model.encode_image(((crops - mean) / std).to(_dtype_of(clip.model))).float()
    dists = spherical_dist_loss(embeds, embed_text(clip, text))
    return dists.view(cutouts + 1, images.shape[0]).mean(0)
