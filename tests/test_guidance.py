"""CLIP guidance with open_clip over tiny random components."""

from __future__ import annotations

import math

import pytest
import torch

from illustration.denoiser import CFGDenoiser, encode_prompts, make_denoiser
from illustration.guidance import (
    CLIPGuidance,
    ClipGuidanceSettings,
    MakeCutouts,
    clip_loss,
    spherical_dist_loss,
)
from illustration.illustrator import Illustrator
from illustration.models import load_image_models
from illustration.sampler import karras_sigmas, sample
from vignette.settings import Settings

TEXT = "a red lighthouse on a black rock at night"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    settings = Settings.from_env(env={}, data_dir=tmp_path_factory.mktemp("data"), image_models="tiny-random")
    models = load_image_models(settings)
    embeds, _ = encode_prompts(models.text_encoder, models.tokenizer, ["", TEXT], models.device)
    denoiser = CFGDenoiser(make_denoiser(models.unet, models.alphas_cumprod, models.prediction_type))
    extra = {"cond": embeds[1:], "uncond": embeds[:1], "cond_scale": 7.0}

    def decode(latents):
        return models.vae.decode(latents / models.scaling_factor).sample

    return settings, models, denoiser, extra, decode


def test_spherical_distance_is_zero_for_the_same_direction_and_largest_for_the_opposite():
    x = torch.tensor([[1.0, 2.0, 3.0]])
    assert float(spherical_dist_loss(x, 5 * x)) == pytest.approx(0.0, abs=1e-6)
    assert float(spherical_dist_loss(x, -x)) == pytest.approx(math.pi**2 / 2, rel=1e-3)
    orthogonal = float(spherical_dist_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])))
    assert 0 < orthogonal < math.pi**2 / 2


def test_cutouts_are_seeded_and_sized_for_clip():
    images = torch.rand(1, 3, 48, 64)
    a = MakeCutouts(32, 5, generator=torch.Generator().manual_seed(1))(images)
    b = MakeCutouts(32, 5, generator=torch.Generator().manual_seed(1))(images)
    c = MakeCutouts(32, 5, generator=torch.Generator().manual_seed(2))(images)
    assert a.shape == (5, 3, 32, 32)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_clip_guidance_lowers_the_final_clip_loss_against_the_same_seed_unguided(setup):
    settings, models, denoiser, extra, decode = setup
    steps = 6
    sigmas = karras_sigmas(denoiser, steps)
    shape = (1, models.latent_channels, 8, 8)
    guidance = ClipGuidanceSettings(scale=20000.0, cutouts=8, every=1)
    unguided, guided = [], []
    for seed in range(6):
        plain = sample(denoiser, shape, sigmas, "dpmpp_2m", seed, extra_args=extra)
        wrapped = CLIPGuidance(models.clip, TEXT, decode, guidance, sigmas, seed=seed).wrap(denoiser)
        pulled = sample(wrapped, shape, sigmas, "dpmpp_2m", seed, extra_args=extra)
        with torch.no_grad():
            unguided.append(float(clip_loss(models.clip, decode(plain), TEXT)))
            guided.append(float(clip_loss(models.clip, decode(pulled), TEXT)))
    lower = sum(g < u for g, u in zip(guided, unguided))
    assert lower >= 5, (unguided, guided)
    assert sum(guided) / 6 < sum(unguided) / 6 - 0.01, (unguided, guided)


def test_guidance_applies_every_k_steps_only(setup):
    settings, models, denoiser, extra, decode = setup
    sigmas = karras_sigmas(denoiser, 7)
    guidance = CLIPGuidance(
        models.clip, TEXT, decode, ClipGuidanceSettings(scale=100.0, cutouts=2, every=3), sigmas
    )
    sample(guidance.wrap(denoiser), (1, 4, 4, 4), sigmas, "dpmpp_2m", 0, extra_args=extra)
    assert guidance.guided_steps == [0, 3, 6]


def test_zero_scale_changes_nothing(setup):
    settings, models, denoiser, extra, decode = setup
    sigmas = karras_sigmas(denoiser, 3)
    off = CLIPGuidance(models.clip, TEXT, decode, ClipGuidanceSettings(scale=0.0, cutouts=2, every=1), sigmas)
    a = sample(off.wrap(denoiser), (1, 4, 4, 4), sigmas, "euler", 4, extra_args=extra)
    b = sample(denoiser, (1, 4, 4, 4), sigmas, "euler", 4, extra_args=extra)
    assert torch.equal(a, b) and off.guided_steps == []


def test_drawing_with_clip_guidance_records_its_settings(setup, tmp_path):
    from illustration.metadata import read_metadata

    settings = setup[0]
    illustrator = Illustrator(settings)
    options = illustrator.options(
        "quality", steps=4, size="32x32", seed=2, clip_scale=500.0, clip_cutouts=3, clip_every=2
    )
    picture = illustrator.draw(TEXT, options, out=tmp_path / "g.png")
    assert picture.clip_guidance["scale"] == 500.0 and picture.clip_guidance["cutouts"] == 3
    assert read_metadata(picture.path)["clip_guidance"]["every"] == 2
    plain = illustrator.draw(
        TEXT,
        illustrator.options("quality", steps=4, size="32x32", seed=2, clip_scale=0),
        out=tmp_path / "p.png",
    )
    assert plain.clip_guidance is None
    assert list(picture.image.getdata()) != list(plain.image.getdata())
