"""The sampler: k-diffusion's samplers by name, Karras sigmas, seeding, progress with previews, cancelling.

The algorithms are k-diffusion's own functions (one signature: ``sampler(model, x, sigmas, extra_args,
callback)``); this module only chooses one, seeds it, and watches it:

- **Sigmas**: the Karras et al. (2022) schedule, ``rho = 7``, between the model's smallest and largest
  training sigma (``k_diffusion.sampling.get_sigmas_karras``).
- **Seeding**: k-diffusion samplers take no generator. The initial noise comes from a seeded
  ``torch.Generator``; ancestral samplers get a noise sampler drawing from a second seeded generator; SDE
  samplers (DPM++ SDE, 2M SDE, 3M SDE) get a ``BrownianTreeNoiseSampler`` with the seed; and the global RNG
  is forked and seeded for the run, so nothing else leaks in or out. Same seed, same picture.
- **Progress**: ``callback(dict)`` once per step with ``step``, ``steps``, ``sigma`` and, every
  ``preview_every`` steps, ``preview`` (a PIL image from a cheap linear latent->RGB map, no VAE call).
- **Cancel**: a ``threading.Event``; checked before every model call and after every step, so setting it
  stops the run within one step with :class:`Cancelled`.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable

import torch

with warnings.catch_warnings():  # k-diffusion imports clip, which warns about pkg_resources on import
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    from k_diffusion import sampling as ksampling

from vignette.errors import VignetteError

#: name -> (k-diffusion function, kind); kind is "ode", "ancestral" (fresh noise each step) or "sde"
#: (Brownian).
SAMPLERS: dict[str, tuple[Callable, str]] = {
    "dpmpp_2m": (ksampling.sample_dpmpp_2m, "ode"),
    "dpmpp_2m_sde": (ksampling.sample_dpmpp_2m_sde, "sde"),
    "dpmpp_3m_sde": (ksampling.sample_dpmpp_3m_sde, "sde"),
    "dpmpp_sde": (ksampling.sample_dpmpp_sde, "sde"),
    "dpmpp_2s_ancestral": (ksampling.sample_dpmpp_2s_ancestral, "ancestral"),
    "euler": (ksampling.sample_euler, "ode"),
    "euler_ancestral": (ksampling.sample_euler_ancestral, "ancestral"),
    "heun": (ksampling.sample_heun, "ode"),
    "dpm_2": (ksampling.sample_dpm_2, "ode"),
    "dpm_2_ancestral": (ksampling.sample_dpm_2_ancestral, "ancestral"),
    "lms": (ksampling.sample_lms, "ode"),
}


class Cancelled(VignetteError):
    """The drawing was cancelled (the cancel event was set)."""

    def __init__(self, step: int = 0, steps: int = 0):
        self.step = step
        self.steps = steps
        super().__init__(f"Stopped at step {step} of {steps}.")


def karras_sigmas(denoiser, steps: int, device=None) -> torch.Tensor:
    """Karras et al. (2022) noise levels for ``steps`` steps, ending in 0 (``steps + 1`` values)."""
    return ksampling.get_sigmas_karras(
        steps, float(denoiser.sigma_min), float(denoiser.sigma_max), rho=7.0, device=device or "cpu"
    )


def initial_noise(shape: tuple[int, ...], seed: int, device) -> torch.Tensor:
    """Unit Gaussian noise from a seeded CPU generator (the same numbers on every device)."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)


def noise_sampler_for(kind: str, x: torch.Tensor, sigmas: torch.Tensor, seed: int):
    if kind == "sde":
        positive = sigmas[sigmas > 0]
        return ksampling.BrownianTreeNoiseSampler(
            x, float(positive.min()), float(positive.max()), seed=int(seed)
        )
    if kind == "ancestral":
        generator = torch.Generator().manual_seed(int(seed) + 1)
        shape, device = x.shape, x.device
        return lambda sigma, sigma_next: torch.randn(shape, generator=generator, dtype=torch.float32).to(
            device
        )
    return None


# Linear map from SD 1.x latents (the sampler's space, i.e. VAE latents times 0.18215) to RGB in [-1, 1],
# least-squares fitted by the community (used by A1111's cheap previews): 4 latent channels -> R, G, B.
LATENT_RGB = torch.tensor(
    [
        [0.298, 0.207, 0.208],
        [0.187, 0.286, 0.173],
        [-0.158, 0.189, 0.264],
        [-0.184, -0.271, -0.473],
    ]
)


def latent_preview(latents: torch.Tensor, size: tuple[int, int] | None = None):
    """A cheap preview (PIL image) of the first latent in the batch; no VAE call. ``size`` is (W, H)."""
    from PIL import Image

    lat = latents[0].detach().float().cpu()
    if lat.shape[0] == LATENT_RGB.shape[0]:
        rgb = torch.einsum("chw,cr->rhw", lat, LATENT_RGB)
    else:  # another latent layout: show the first three channels
        rgb = lat[:3]
    rgb = ((rgb + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(rgb)
    return image.resize(size, Image.NEAREST) if size else image


def check_sampler(name: str) -> None:
    if name not in SAMPLERS:
        raise VignetteError(f"Unknown sampler {name!r}. Choose one of: {', '.join(SAMPLERS)}.")


def sample(
    model: Callable,
    shape: tuple[int, ...],
    sigmas: torch.Tensor,
    sampler: str = "dpmpp_2m",
    seed: int = 0,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    cancel: threading.Event | None = None,
    preview_every: int = 0,
    preview: Callable[[torch.Tensor], object] | None = None,
) -> torch.Tensor:
    """Run a k-diffusion sampler from seeded noise; returns the final latents.

    ``model(x, sigma, **extra_args) -> denoised`` is any k-diffusion model (e.g. :class:`CFGDenoiser`,
    possibly wrapped by CLIP guidance). ``preview(denoised) -> image`` makes the preview image (default
    :func:`latent_preview`); previews are made every ``preview_every`` steps (0: never).
    """
    check_sampler(sampler)
    fn, kind = SAMPLERS[sampler]
    steps = len(sigmas) - 1
    device = sigmas.device
    cancel = cancel or threading.Event()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        x = initial_noise(shape, seed, device) * sigmas[0]
        state = {"step": 0}

        def guarded_model(x, sigma, **kw):
            if cancel.is_set():
                raise Cancelled(state["step"], steps)
            return model(x, sigma, **kw)

        def on_step(info: dict) -> None:
            state["step"] = info["i"] + 1
            if callback is not None:
                report = {"step": info["i"] + 1, "steps": steps, "sigma": float(info["sigma"])}
                if preview_every and (info["i"] % preview_every == 0 or info["i"] == steps - 1):
                    report["preview"] = (preview or latent_preview)(info["denoised"])
                callback(report)
            if cancel.is_set():
                raise Cancelled(state["step"], steps)

        kwargs = {"extra_args": extra_args or {}, "callback": on_step, "disable": True}
        noise_sampler = noise_sampler_for(kind, x, sigmas, seed)
        if noise_sampler is not None:
            kwargs["noise_sampler"] = noise_sampler
        with warnings.catch_warnings():
            # torchsde warns when a float32 sigma lands a hair outside the Brownian tree's interval; harmless
            warnings.filterwarnings("ignore", message="Should have", module="torchsde")
            return fn(guarded_model, x, sigmas, **kwargs)
