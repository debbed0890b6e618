"""k-diffusion denoisers over diffusers latent-diffusion components.

k-diffusion samplers call ``model(x, sigma, **extra_args) -> denoised`` (Karras et al. 2022, "Elucidating the
Design Space of Diffusion-Based Generative Models"). A diffusers ``UNet2DConditionModel`` trained as a
discrete DDPM predicts either the noise (epsilon) or v (Salimans & Ho 2022, "Progressive Distillation");
``k_diffusion.external.DiscreteEpsDDPMDenoiser`` / ``DiscreteVDDPMDenoiser`` turn either into a denoiser
given the training schedule's ``alphas_cumprod``. This module adds the thin adapter between the two call
conventions and classifier-free guidance (Ho & Salimans 2022) as one more wrapper, in k-diffusion's style:
guidance wraps the model, the sampler stays untouched.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

with warnings.catch_warnings():  # k-diffusion imports clip, which warns about pkg_resources on import
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    from k_diffusion import external


class DiffusersUNet(nn.Module):
    """``inner_model(x, t, cond=...)`` -> ``unet(x, t, encoder_hidden_states=cond)``.

    The sampler keeps ``x`` in float32 (its ODE/SDE arithmetic is then exact enough at 4 steps); the UNet
    runs in its own dtype (fp16 on a GPU) and its output comes back as float32.
    """

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, cond):
        dtype = self.unet.dtype
        out = self.unet(x.to(dtype), t, encoder_hidden_states=cond.to(dtype), return_dict=False)[0]
        return out.to(x.dtype)


def make_denoiser(unet, alphas_cumprod, prediction_type: str = "epsilon") -> nn.Module:
    """A k-diffusion denoiser ``(x, sigma, cond=...) -> denoised`` for an epsilon- or v-prediction UNet.

    ``quantize=True`` maps each sigma to the nearest of the 1,000 training timesteps: the UNet's timestep
    embedding only ever saw integers.
    """
    inner = DiffusersUNet(unet)
    if prediction_type == "epsilon":
        return external.DiscreteEpsDDPMDenoiser(inner, alphas_cumprod, quantize=True)
    if prediction_type == "v_prediction":
        return external.DiscreteVDDPMDenoiser(inner, alphas_cumprod, quantize=True)
    raise ValueError(f"unsupported prediction type {prediction_type!r}")


class CFGDenoiser(nn.Module):
    """Classifier-free guidance (Ho & Salimans 2022): ``uncond + (cond - uncond) * cond_scale``.

    The unconditional (negative prompt) and conditional halves go through the UNet as one batch, so a
    guided step costs one model call. ``cond_scale == 1`` or ``uncond is None`` skips the unconditional half.
    """

    def __init__(self, denoiser: nn.Module):
        super().__init__()
        self.inner_model = denoiser

    @property
    def sigma_min(self):
        return self.inner_model.sigma_min

    @property
    def sigma_max(self):
        return self.inner_model.sigma_max

    def forward(self, x, sigma, cond, uncond=None, cond_scale: float = 1.0):
        if uncond is None or cond_scale == 1.0:
            return self.inner_model(x, sigma, cond=cond)
        x_in = torch.cat([x, x])
        sigma_in = torch.cat([sigma, sigma])
        cond_in = torch.cat([uncond, cond])
        uncond_out, cond_out = self.inner_model(x_in, sigma_in, cond=cond_in).chunk(2)
        return uncond_out + (cond_out - uncond_out) * cond_scale


@torch.no_grad()
def encode_prompts(text_encoder, tokenizer, prompts: list[str], device) -> tuple[torch.Tensor, int]:
    """CLIP text-encoder hidden states for each prompt, padded to the encoder's window (77 for SD).

    Returns the embeddings and the longest prompt's token count before truncation, so the caller can say
    when the end of a prompt was cut.
    """
    max_length = int(getattr(text_encoder.config, "max_position_embeddings", 77))
    full = tokenizer(prompts, truncation=False, padding=False, verbose=False)  # only to count the tokens
    longest = max(len(ids) for ids in full["input_ids"])
    enc = tokenizer(
        prompts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
    )
    hidden = text_encoder(enc.input_ids.to(device))[0]
    return hidden, longest
